"""Repeated frames: x2/x3 repeats found raw and through H.264, real motion at 1 px/frame is not,
and frame consistency after dropping repeats equals the original's."""

from __future__ import annotations

import numpy as np
import pytest

from dvd360.data.repeats import REPEAT_MAX_CHANGE, detect_repeats, drop_repeats, pair_changes
from dvd360.data.synthetic import make_scene, render_clip
from dvd360.data.synthetic_dataset import clip_seed
from dvd360.data.video import read_frames, write_video


@pytest.fixture(scope="module")
def clips():
    """Two synthetic dataset clips (64x128, 6 frames): sharp landmarks over smooth sky and ground."""
    return [render_clip(make_scene(clip_seed(0, n)), 64, 128, 6).frames for n in (0, 8)]


def _pan(frame: np.ndarray, frames: int) -> np.ndarray:
    """A frame (H, W, 3) panned by exactly 1 px per frame in longitude (wraps)."""
    return np.stack([np.roll(frame, t, axis=1) for t in range(frames)])


def test_pair_change_matches_an_independent_computation():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, size=(3, 4, 8, 3), dtype=np.uint8)
    a, b = video[0].astype(float), video[1].astype(float)
    pan = np.mean([abs(a[i, (j + 1) % 8, c] - a[i, j, c]) for i in range(4) for j in range(8) for c in range(3)])
    assert pair_changes(video)[0] == pytest.approx(np.abs(b - a).mean() / pan, rel=1e-12)
    # A one-pixel pan in longitude changes a frame by exactly one pan of itself.
    assert pair_changes(_pan(video[0], 2))[0] == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("factor", [2, 3])
def test_repeats_are_found_and_dropped(clips, factor):
    for frames in clips:
        repeated = np.repeat(frames, factor, axis=0)
        info = detect_repeats(repeated)
        assert info.factor == factor and info.longest_run == factor and not info.still
        assert info.kept == tuple(range(0, len(repeated), factor))
        assert len(info.dropped) == len(repeated) - len(frames)
        np.testing.assert_array_equal(drop_repeats(repeated, info), frames)
        assert info.to_json()["repeated"] == list(info.dropped)


@pytest.mark.parametrize("crf", [18, 23, 28])
def test_repeats_survive_an_mp4_round_trip(clips, tmp_path, crf):
    # Measured codec noise on the repeats of all 12 dataset clips: rho <= 0.11 / 0.13 / 0.23 at
    # crf 18 / 23 / 28 (threshold 0.5).
    for n, frames in enumerate(clips):
        decoded = read_frames(write_video(tmp_path / f"{n}.mp4", np.repeat(frames, 3, axis=0), crf=crf))
        info = detect_repeats(decoded)
        assert info.factor == 3 and info.kept == tuple(range(0, 3 * len(frames), 3))
        assert info.to_json()["max_change_of_a_repeat"] < REPEAT_MAX_CHANGE / 1.5


def test_motion_of_one_pixel_per_frame_is_not_a_repeat(clips, tmp_path):
    for n, frames in enumerate(clips):
        pans = {"raw": _pan(frames[0], 6), "crf 35": read_frames(write_video(tmp_path / f"{n}.mp4",
                                                                              _pan(frames[0], 6), crf=35)),
                "tilt": np.stack([np.roll(frames[0], t, axis=0) for t in range(6)]),
                "own camera motion": frames}
        for name, video in pans.items():
            info = detect_repeats(video)
            assert info.factor == 1.0 and not info.dropped, name
            assert min(info.changes) > 1.4 * REPEAT_MAX_CHANGE, name


def test_a_still_video_keeps_every_frame(clips):
    still = np.repeat(clips[0][:1], 5, axis=0)
    info = detect_repeats(still)
    assert info.still and info.factor == 1.0 and info.kept == tuple(range(5))
    assert detect_repeats(np.zeros((3, 4, 8, 3), np.uint8)).still  # constant frames: nothing to tell apart


def test_frame_consistency_with_repeats_dropped_equals_the_original(clips, tiny_models, tmp_path):
    from dvd360.models.clip_model import load_clip
    from dvd360.metrics.scoring import VideoScorer

    scorer = VideoScorer(load_clip(tiny_models / "clip"), flow_method=None)
    frames = clips[0]
    original = scorer.score(frames)["metrics"]
    repeated = np.repeat(frames, 3, axis=0)
    kept = scorer.score(repeated)["metrics"]
    dropped = scorer.score(drop_repeats(repeated, detect_repeats(repeated)))["metrics"]
    for name in ("frame_consistency_erp", "frame_consistency_views"):
        # Exact arrays: the distinct frames are the original frames, so the score is the same
        # up to float summation order (tolerance 1e-4 points of 100).
        assert dropped[name] == pytest.approx(original[name], abs=1e-4)
        assert kept[name] > original[name]  # repeats make a video look more consistent
    # Through H.264 (crf 18) the kept frames carry codec noise: within 0.5 points of the original.
    decoded = read_frames(write_video(tmp_path / "r.mp4", repeated, crf=18))
    through_mp4 = scorer.score(drop_repeats(decoded, detect_repeats(decoded)))["metrics"]
    assert through_mp4["frame_consistency_erp"] == pytest.approx(original["frame_consistency_erp"], abs=0.5)
