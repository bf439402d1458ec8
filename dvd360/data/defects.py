"""Controlled defects of ERP videos, each at 3 strengths: what the metric audit (`dvd360.audit`)
applies to reference videos to see what every metric reacts to.

Frames are uint8 RGB (F, H, W, 3); x = frames / 255, results rounded and clipped back to uint8.
Column j of W, row i of H; a "strength" is the defect's one parameter:

- seam_step (s = 0.02, 0.05, 0.1): x + s ((j + 0.5) / W - 1/2): a jump of s (W - 1) / W across the
  seam (column W-1 to 0), s / W between interior neighbours.
- seam_blur (k = W/128, W/64, W/32 columns, at least 1): the k columns on each side of the seam
  replaced by the circular horizontal mean over 2k + 1 columns centred on each.
- polar_smear (t = 10, 20, 30 degrees): the n = round(t / 180 H) rows nearest each pole replaced by
  the first row outside the cap (row n; row H - n - 1): streaks converging on the pole.
- blur (s = 1/128, 1/64, 1/32): Gaussian blur of sigma s H px, circular in longitude.
- noise (s = 0.02, 0.05, 0.1): x + N(0, s^2) per pixel and channel (seeded).
- h264 (crf = 18, 28, 35): written as H.264 yuv420p at that crf (`data.video.write_video`), read back.
- frame_drop (k = 4, 3, 2): frames t with t mod k = k - 1 removed (1/4, 1/3, 1/2 of them).
- frame_repeat (r = 2, 3, 4): every frame shown r times (web frame-rate upsampling).
- temporal_jitter (p = 0.25, 0.5, 1): frames (2m, 2m + 1) swapped with probability p (seeded).
- roll (d = 45, 90, 180 degrees): the content turned d degrees in longitude
  (`geometry.rotation.roll_longitude`): a rigid rotation, invisible on the sphere.
- pitch (d = 30, 60, 90 degrees): the camera pitched by d (`geometry.perspective.rotate_erp`): at 90
  the north pole lands at (lon 0, lat 0) and the horizon runs vertically.

`expect`: "worse" (a metric that sees the defect should rank the video worse) or "invariant" (it
should not move: the roll; repeats, which scoring detects and drops). The defects import torch,
scipy and PyAV when applied, so the list itself (`DEFECTS`, read by `--help`) stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np


@dataclass(frozen=True)
class Defect:
    """One defect: its strengths (weakest first), what they measure, and the expected response."""

    name: str
    strengths: tuple[float, float, float]
    unit: str
    expect: Literal["worse", "invariant"]
    apply: Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


def _float(frames: np.ndarray) -> np.ndarray:
    return np.asarray(frames, dtype=np.float64) / 255.0


def _uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def seam_step(frames: np.ndarray, s: float, rng=None) -> np.ndarray:
    width = frames.shape[2]
    ramp = s * ((np.arange(width) + 0.5) / width - 0.5)
    return _uint8(_float(frames) + ramp[None, None, :, None])


def seam_blur(frames: np.ndarray, fraction: float, rng=None) -> np.ndarray:
    from scipy import ndimage

    width = frames.shape[2]
    k = max(1, round(fraction * width))
    mean = ndimage.uniform_filter1d(_float(frames), 2 * k + 1, axis=2, mode="wrap")
    out = _float(frames)
    band = np.r_[0:k, width - k:width]
    out[:, :, band] = mean[:, :, band]
    return _uint8(out)


def polar_smear(frames: np.ndarray, degrees: float, rng=None) -> np.ndarray:
    height = frames.shape[1]
    n = round(degrees / 180 * height)
    out = np.array(frames)
    out[:, :n] = frames[:, n:n + 1]
    out[:, height - n:] = frames[:, height - n - 1:height - n]
    return out


def blur(frames: np.ndarray, fraction: float, rng=None) -> np.ndarray:
    from scipy import ndimage

    sigma = fraction * frames.shape[1]
    return _uint8(ndimage.gaussian_filter(_float(frames), (0, sigma, sigma, 0), mode=("nearest", "nearest", "wrap",
                                                                                         "nearest")))


def noise(frames: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return _uint8(_float(frames) + rng.normal(0.0, sigma, frames.shape))


def h264(frames: np.ndarray, crf: float, rng=None) -> np.ndarray:
    import tempfile
    from pathlib import Path

    from dvd360.data.video import read_frames, write_video

    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(Path(tmp) / "defect.mp4", np.asarray(frames), crf=int(crf))
        return read_frames(path)


def frame_drop(frames: np.ndarray, k: float, rng=None) -> np.ndarray:
    k = int(k)
    return frames[[t for t in range(len(frames)) if t % k != k - 1]]


def frame_repeat(frames: np.ndarray, r: float, rng=None) -> np.ndarray:
    return np.repeat(frames, int(r), axis=0)


def temporal_jitter(frames: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    order = np.arange(len(frames))
    for start in range(0, len(frames) - 1, 2):
        if rng.random() < p:
            order[[start, start + 1]] = order[[start + 1, start]]
    return frames[order]


def roll(frames: np.ndarray, degrees: float, rng=None) -> np.ndarray:
    from dvd360.geometry.rotation import roll_longitude

    return roll_longitude(np.asarray(frames), degrees, dim=2)


def pitch(frames: np.ndarray, degrees: float, rng=None) -> np.ndarray:
    import torch

    from dvd360.geometry.perspective import rotate_erp

    erp = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    return rotate_erp(erp, pitch=degrees).permute(0, 2, 3, 1).contiguous().numpy()


DEFECTS: dict[str, Defect] = {d.name: d for d in (
    Defect("seam_step", (0.02, 0.05, 0.1), "jump at the seam, pixel values in [0, 1]", "worse", seam_step),
    Defect("seam_blur", (1 / 128, 1 / 64, 1 / 32), "blurred band on each side of the seam, fraction of W", "worse",
           seam_blur),
    Defect("polar_smear", (10.0, 20.0, 30.0), "smeared cap around each pole, degrees", "worse", polar_smear),
    Defect("blur", (1 / 128, 1 / 64, 1 / 32), "Gaussian sigma, fraction of H", "worse", blur),
    Defect("noise", (0.02, 0.05, 0.1), "Gaussian noise sigma, pixel values in [0, 1]", "worse", noise),
    Defect("h264", (18.0, 28.0, 35.0), "x264 crf (yuv420p)", "worse", h264),
    Defect("frame_drop", (4.0, 3.0, 2.0), "every k-th frame dropped", "worse", frame_drop),
    Defect("frame_repeat", (2.0, 3.0, 4.0), "every frame repeated r times", "invariant", frame_repeat),
    Defect("temporal_jitter", (0.25, 0.5, 1.0), "probability of swapping frame pairs (2m, 2m + 1)", "worse",
           temporal_jitter),
    Defect("roll", (45.0, 90.0, 180.0), "longitude roll, degrees", "invariant", roll),
    Defect("pitch", (30.0, 60.0, 90.0), "camera pitch, degrees", "worse", pitch),
)}


def apply_defect(frames: np.ndarray, name: str, strength: float, seed: int = 0) -> np.ndarray:
    """`frames` (uint8 (F, H, W, 3)) with defect `name` at `strength`; `seed` drives noise and jitter."""
    if name not in DEFECTS:
        raise KeyError(f"unknown defect {name!r}; known: {', '.join(DEFECTS)}")
    return DEFECTS[name].apply(np.asarray(frames), strength, np.random.default_rng(seed))
