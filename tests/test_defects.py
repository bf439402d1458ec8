"""The audit's controlled defects (`dvd360.data.defects`): each applied exactly as documented."""

from __future__ import annotations

import numpy as np
import pytest

from dvd360.data.defects import DEFECTS, apply_defect
from dvd360.data.repeats import detect_repeats, drop_repeats


@pytest.fixture(scope="module")
def frames():
    """6 frames of smooth random colour fields, 32x64 (a seamless-looking texture per frame)."""
    rng = np.random.default_rng(0)
    base = rng.uniform(40, 215, (6, 8, 16, 3))
    return np.kron(base, np.ones((1, 4, 4, 1))).round().astype(np.uint8)


def test_every_defect_has_three_increasing_strengths_and_keeps_the_frame_format(frames):
    for name, defect in DEFECTS.items():
        assert len(defect.strengths) == 3 and defect.expect in ("worse", "invariant")
        for strength in defect.strengths:
            out = apply_defect(frames, name, strength, seed=1)
            assert out.dtype == np.uint8 and out.shape[1:] == frames.shape[1:], name
    with pytest.raises(KeyError, match="known: seam_step"):
        apply_defect(frames, "vignette", 1.0)


def test_seam_step_is_a_ramp_with_its_jump_at_the_seam():
    grey = np.full((2, 16, 64, 3), 128, np.uint8)
    out = apply_defect(grey, "seam_step", 0.1).astype(float) / 255
    jump = out[..., -1, :] - out[..., 0, :]
    assert np.allclose(jump, 0.1 * 63 / 64, atol=1 / 255)
    assert np.abs(np.diff(out, axis=2)).max() <= 0.1 / 64 + 1 / 255  # interior neighbours: s / W (+ rounding)


def test_seam_blur_averages_the_k_columns_each_side_of_the_seam(frames):
    k = 2  # 1/32 of 64
    out = apply_defect(frames, "seam_blur", 1 / 32).astype(float)
    assert np.array_equal(out[:, :, k:-k], frames[:, :, k:-k])
    circular = np.concatenate([frames[:, :, -k:], frames[:, :, :k + 1]], axis=2).astype(float)  # columns -k .. k
    assert np.allclose(out[:, :, 0], np.round(circular.mean(axis=2)), atol=0.5)


def test_polar_smear_repeats_the_first_row_outside_each_cap(frames):
    n = round(30 / 180 * 32)
    out = apply_defect(frames, "polar_smear", 30.0)
    assert np.array_equal(out[:, :n], np.repeat(frames[:, n:n + 1], n, axis=1))
    assert np.array_equal(out[:, -n:], np.repeat(frames[:, -n - 1:-n], n, axis=1))
    assert np.array_equal(out[:, n:-n], frames[:, n:-n])


def test_blur_is_circular_in_longitude_and_keeps_flat_frames(frames):
    flat = np.full_like(frames, 77)
    assert np.array_equal(apply_defect(flat, "blur", 1 / 32), flat)
    blurred = apply_defect(frames, "blur", 1 / 32)
    assert np.array_equal(np.roll(blurred, 16, axis=2), apply_defect(np.roll(frames, 16, axis=2), "blur", 1 / 32))
    assert np.abs(np.diff(blurred.astype(float), axis=2)).mean() < np.abs(np.diff(frames.astype(float), axis=2)).mean()


def test_noise_has_the_stated_sigma_and_follows_the_seed():
    grey = np.full((4, 32, 64, 3), 128, np.uint8)
    out = apply_defect(grey, "noise", 0.05, seed=3)
    assert (out.astype(float) - 128).std() / 255 == pytest.approx(0.05, rel=0.05)
    assert np.array_equal(out, apply_defect(grey, "noise", 0.05, seed=3))
    assert not np.array_equal(out, apply_defect(grey, "noise", 0.05, seed=4))


def test_h264_loses_more_at_higher_crf(frames):
    errors = [np.abs(apply_defect(frames, "h264", crf).astype(float) - frames).mean() for crf in (18.0, 35.0)]
    assert 0 < errors[0] < errors[1]


def test_frame_drops_repeats_and_jitter_change_the_frame_order_as_documented(frames):
    assert np.array_equal(apply_defect(frames, "frame_drop", 2.0), frames[[0, 2, 4]])
    assert np.array_equal(apply_defect(frames, "frame_drop", 3.0), frames[[0, 1, 3, 4]])
    repeated = apply_defect(frames, "frame_repeat", 3.0)
    assert np.array_equal(repeated, np.repeat(frames, 3, axis=0))
    assert np.array_equal(drop_repeats(repeated, detect_repeats(repeated)), frames)  # what scoring keeps
    assert np.array_equal(apply_defect(frames, "temporal_jitter", 1.0), frames[[1, 0, 3, 2, 5, 4]])
    jittered = apply_defect(frames, "temporal_jitter", 0.5, seed=2)
    assert sorted(map(bytes, jittered)) == sorted(map(bytes, frames))  # a permutation of the same frames


def test_roll_turns_longitude_and_pitch_moves_the_pole_to_the_front(frames):
    assert np.array_equal(apply_defect(frames, "roll", 90.0), np.roll(frames, 16, axis=2))
    marked = np.zeros((1, 32, 64, 3), np.uint8)
    marked[:, 0] = 255  # the north pole's row
    out = apply_defect(marked, "pitch", 90.0)[0, ..., 0]
    row, column = np.unravel_index(np.argmax(out), out.shape)
    assert (row, column) in {(15, 31), (15, 32), (16, 31), (16, 32)}  # lat 0, lon 0: the image centre
    assert out[0].max() == 0  # and the pole row now shows the old horizon, not the pole
