"""pole_continuity on synthetic ground truth: exact renders of the sphere against polar defects."""

from __future__ import annotations

import numpy as np
import pytest

from dvd360.data.synthetic import make_scene, render_clip
from dvd360.metrics.poles import pole_continuity
from dvd360.metrics.registry import METRICS
from dvd360.metrics.scoring import VideoScorer

HEIGHT = 64


@pytest.fixture(scope="module")
def renders():
    return [render_clip(make_scene(seed), HEIGHT, 2 * HEIGHT, 3).frames.astype(np.float64) / 255 for seed in range(3)]


def _by_hand(frames: np.ndarray) -> dict[str, float]:
    """The definition written out: rows whose centre latitude is within 5 degrees of a pole."""
    height = frames.shape[1]
    lat = 90 - (np.arange(height) + 0.5) * 180 / height

    def spread(rows):
        values = [abs(frames[f, r, j, c] - frames[f, r, :, c].mean()) for f in range(frames.shape[0]) for r in rows
                  for j in range(frames.shape[2]) for c in range(frames.shape[3])]
        return float(np.mean(values))

    north, south = spread(np.flatnonzero(lat >= 85)), spread(np.flatnonzero(lat <= -85))
    return {"pole_continuity": (north + south) / 2, "pole_continuity_north": north, "pole_continuity_south": south}


def _smear(frames: np.ndarray, strength: float, cap: int = 6) -> np.ndarray:
    """A polar smear: the cap rows take on the detail of a row at mid latitude (a whole image row
    of content on a tiny circle), blended with `strength`."""
    out = frames.copy()
    source = frames[:, HEIGHT // 4 : HEIGHT // 4 + 1]
    out[:, :cap] = (1 - strength) * frames[:, :cap] + strength * source
    return out


def _swirl(frames: np.ndarray, strength: float, cap: int = 6, seed: int = 0) -> np.ndarray:
    """Hallucinated texture in the south cap (the swirls generators paint at the nadir)."""
    out = frames.copy()
    noise = np.random.default_rng(seed).uniform(-1, 1, size=out[:, -cap:].shape)
    out[:, -cap:] = np.clip(out[:, -cap:] + strength * noise, 0, 1)
    return out


def test_matches_the_definition_written_out(renders):
    small = renders[0][:, :, ::4]  # 16 columns: the loop stays short
    assert pole_continuity(small) == pytest.approx(_by_hand(small), rel=1e-12)


def test_exact_renders_are_near_zero_and_defects_rank_monotonically(renders):
    for frames in renders:
        exact = pole_continuity(frames)
        smeared = [pole_continuity(_smear(frames, s))["pole_continuity_north"] for s in (0.25, 0.5, 1.0)]
        swirled = [pole_continuity(_swirl(frames, s))["pole_continuity_south"] for s in (0.05, 0.1, 0.2)]
        assert exact["pole_continuity"] < 0.01
        assert exact["pole_continuity_north"] < smeared[0] < smeared[1] < smeared[2]
        assert exact["pole_continuity_south"] < swirled[0] < swirled[1] < swirled[2]
        assert smeared[2] > 5 * exact["pole_continuity_north"] and swirled[2] > 5 * exact["pole_continuity_south"]


def test_invariant_to_a_longitude_roll(renders):
    frames = _swirl(renders[1], 0.1)
    assert pole_continuity(np.roll(frames, 37, axis=2)) == pytest.approx(pole_continuity(frames), abs=1e-15)


def test_registered_as_a_frames_metric_and_scored_for_every_video(renders):
    """A per-video metric added as one module and registry lines: the scorer computes it."""
    assert METRICS["pole_continuity"].needs == ("frames",) and METRICS["pole_continuity"].direction == "lower"
    result = VideoScorer(None, None).score(renders[2])
    assert result["metrics"]["pole_continuity"] == pytest.approx(pole_continuity(renders[2])["pole_continuity"])


def test_uint8_frames_are_read_as_pixel_values_in_0_1(renders):
    frames = np.round(renders[0] * 255).astype(np.uint8)
    assert pole_continuity(frames) == pytest.approx(pole_continuity(frames / 255.0), rel=1e-12)
