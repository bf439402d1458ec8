"""Seam metrics on known answers: an independent EC, a seamless clip, a 180-degree roll, a cut."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dvd360.metrics.flow_agreement import rigid_rotation_clip
from dvd360.metrics.seam import end_continuity, seam_metrics, seam_ratio


@pytest.fixture(scope="module")
def seamless_clips():
    """Textured-sphere clips: a function of the world direction, so seamless by construction."""
    return [rigid_rotation_clip(32, 64, 3, seed=seed)[0] for seed in range(3)]


def _cut_at_seam(frames):
    """Swap the first two quarters: the border now joins content 90 degrees apart (a cut)."""
    q = frames.shape[2] // 4
    return np.concatenate([frames[:, :, q:2 * q], frames[:, :, :q], frames[:, :, 2 * q:]], axis=2)


def test_end_continuity_matches_independent_numpy():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, size=(3, 8, 16, 3), dtype=np.uint8)
    # Independent: explicit loops over frames, rows and channels in integer arithmetic.
    total = sum(abs(int(video[f, i, 15, c]) - int(video[f, i, 0, c]))
                for f in range(3) for i in range(8) for c in range(3))
    assert end_continuity(video) == pytest.approx(total / (3 * 8 * 3) / 255.0, rel=1e-12)
    lat = [math.pi / 2 - (i + 0.5) / 8 * math.pi for i in range(8)]
    per_row = [np.mean(np.abs(video[:, i, 15].astype(int) - video[:, i, 0].astype(int))) / 255 for i in range(8)]
    weighted = sum(math.cos(a) * r for a, r in zip(lat, per_row)) / sum(math.cos(a) for a in lat)
    assert end_continuity(video, coslat=True) == pytest.approx(weighted, rel=1e-12)
    # Float input in [0, 1] gives the same number as uint8.
    assert end_continuity(video / 255.0) == pytest.approx(end_continuity(video), rel=1e-12)


def test_seam_ratio_is_ec_over_interior_pairs():
    rng = np.random.default_rng(1)
    video = rng.random((2, 4, 10, 3))
    interior = np.mean([np.abs(video[:, :, j + 1] - video[:, :, j]).mean() for j in range(9)])
    assert seam_ratio(video) == pytest.approx(end_continuity(video) / interior, rel=1e-12)
    assert math.isnan(seam_ratio(np.zeros((2, 4, 8, 3))))


def test_seamless_clip_has_seam_ratio_near_one(seamless_clips):
    # Measured on seeds 0-7 of this clip: 0.92-1.19 plain, 0.90-1.20 cos-lat weighted.
    for frames in seamless_clips:
        scores = seam_metrics(frames)
        assert 0.8 <= scores["seam_ratio"] <= 1.25
        assert 0.8 <= scores["seam_ratio_coslat"] <= 1.25


def test_swapping_halves_of_a_panorama_is_a_roll_and_stays_seamless(seamless_clips):
    # Swapping the halves of a full 360-degree ERP is a 180-degree roll: columns W-1 and 0 then hold
    # the formerly adjacent columns W/2-1 and W/2, so no cut appears at the seam.
    for frames in seamless_clips:
        w = frames.shape[2]
        swapped = np.concatenate([frames[:, :, w // 2:], frames[:, :, :w // 2]], axis=2)
        assert 0.8 <= seam_ratio(swapped) <= 1.25


def test_content_cut_at_the_seam_has_seam_ratio_at_least_three(seamless_clips):
    # Measured on seeds 0-7 at 32x64: 3.3-5.5 plain, 3.0-4.8 cos-lat weighted.
    for frames in seamless_clips:
        cut = _cut_at_seam(frames)
        scores = seam_metrics(cut)
        assert scores["seam_ratio"] >= 3
        assert scores["seam_ratio_coslat"] >= 3
        assert scores["end_continuity"] > 3 * seam_metrics(frames)["end_continuity"]
