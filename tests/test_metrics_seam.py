"""Seam metrics on known answers: an independent EC, a seamless clip, a 180-degree roll, a cut;
the codec-matched seam ratio on seamless and cut videos through H.264."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dvd360.metrics.flow_agreement import rigid_rotation_clip
from dvd360.data.video import read_frames, write_video
from dvd360.metrics.seam import end_continuity, seam_metrics, seam_ratio, seam_ratio_codec


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


def _periodic_texture(frames: int, height: int, pan_px: float, seed: int = 0) -> np.ndarray:
    """A seamless 2:1 video written without dvd360: 32 sinusoids per channel with whole numbers of
    periods across the width (so column W-1 continues into column 0), panning `pan_px` px/frame."""
    width = 2 * height
    rng = np.random.default_rng(seed)
    kx = rng.integers(1, width // 4, size=(32, 3))
    ky, phase = rng.uniform(0.5, height / 4, size=(32, 3)), rng.uniform(0, 2 * np.pi, size=(32, 3))
    x, y = np.arange(width)[None, :, None, None], ((np.arange(height) + 0.5) / height)[:, None, None, None]
    video = np.stack([(np.sin(2 * np.pi * kx * (x - pan_px * t) / width + 2 * np.pi * ky * y + phase)
                       / np.sqrt(kx)).sum(axis=-2) for t in range(frames)])
    video = (video - video.min()) / (video.max() - video.min())
    return (video * 255).round().astype(np.uint8)


def _cut_off_grid(frames: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Columns [0, W/2 + 5) of one seamless video and the rest of another: a cut at the seam (and
    one interior cut at a column that is not on the 16-pixel block grid)."""
    c = frames.shape[2] // 2 + 5
    return np.concatenate([frames[:, :, :c], other[:, :, c:]], axis=2)


def test_seam_ratio_codec_is_ec_over_block_edge_pairs():
    rng = np.random.default_rng(2)
    video = rng.integers(0, 256, size=(2, 4, 48, 3), dtype=np.uint8).astype(int)
    # Independent: the pairs (15, 16) and (31, 32) by explicit loops.
    edges = [abs(video[f, i, j, c] - video[f, i, j - 1, c]) for f in range(2) for i in range(4)
             for j in (16, 32) for c in range(3)]
    seam = [abs(video[f, i, 47, c] - video[f, i, 0, c]) for f in range(2) for i in range(4) for c in range(3)]
    assert seam_ratio_codec(video.astype(np.uint8)) == pytest.approx(np.mean(seam) / np.mean(edges), rel=1e-12)
    scores = seam_metrics(video.astype(np.uint8))
    assert scores["seam_ratio_codec"] == pytest.approx(np.mean(seam) / np.mean(edges), rel=1e-12)
    assert "seam_ratio_codec_coslat" in scores
    assert math.isnan(seam_ratio_codec(video[:, :, :40].astype(np.uint8)))  # W not a multiple of 16


@pytest.mark.parametrize("height", [64, 128])
def test_seam_ratio_codec_of_seamless_and_cut_videos_through_h264(tmp_path, height):
    # Measured (64x128 | 128x256), seam_ratio_codec at crf 18 / 23 / 28:
    #   still texture 0.87 / 0.87 / 1.05 | 0.98 / 0.96 / 1.03 (plain seam_ratio 1.08-1.44)
    #   panning 1.37 px/frame 0.97 / 1.13 / 1.36 | 1.07 / 1.23 / 1.55 (plain 1.18-1.83): content
    #   entering at a picture edge is predicted from edge-replicated pixels, no interior pair is.
    #   a cut between two textured-sphere clips (seeds 0-2): 4.1-6.5 | 7.2-11.4 (raw: 8-23).
    still, pan = _periodic_texture(6, height, 0.0), _periodic_texture(6, height, 1.37)
    cut = _cut_off_grid(*(rigid_rotation_clip(height, 2 * height, 6, seed=seed)[0] for seed in (1, 11)))
    for crf in (18, 23, 28):
        decoded = {name: read_frames(write_video(tmp_path / f"{name}.mp4", video, crf=crf))
                   for name, video in (("still", still), ("pan", pan), ("cut", cut))}
        scores = {name: seam_metrics(video) for name, video in decoded.items()}
        assert 0.8 <= scores["still"]["seam_ratio_codec"] <= 1.25, crf
        assert 0.8 <= scores["still"]["seam_ratio_codec_coslat"] <= 1.25, crf
        if crf == 18:
            assert 0.8 <= scores["pan"]["seam_ratio_codec"] <= 1.25
        for name in ("still", "pan"):  # the codec's block and chroma edges no longer count against the seam
            assert scores[name]["seam_ratio_codec"] < scores[name]["seam_ratio"] - 0.15, (name, crf)
        assert scores["cut"]["seam_ratio_codec"] >= 3, crf
        assert scores["cut"]["seam_ratio_codec_coslat"] >= 3, crf
