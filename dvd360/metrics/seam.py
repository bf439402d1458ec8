"""Seam continuity of an ERP video: End Continuity (EC) and the seam ratio (SR).

Frames are RGB (F, H, W, 3), uint8 (divided by 255) or float in [0, 1].

- End Continuity, the published definition (PanoWan's table; 0.0323 reported for 360DVD):
  ``EC = mean_{f, i, c} |I[f, i, W-1, c] - I[f, i, 0, c]|`` in [0, 1] pixel units.
- Seam ratio: ``SR = EC / mean_{f, i, j, c} |I[f, i, j+1, c] - I[f, i, j, c]|`` over the
  W - 1 interior pairs of adjacent columns (j = 0 .. W-2). Unitless; near 1 the seam looks
  like any other column boundary, above 1 it is a visible cut.
- ``*_coslat`` variants weight row i by cos(lat_i) (`geometry.erp.pixel_row_weights`) before
  averaging, so the stretched pole rows count as much as they cover on the sphere:
  ``mean_w(x) = sum_i w_i mean_{f, c} x[f, i, c] / sum_i w_i``. They are new metrics with
  their own names; the plain versions keep DESIGN.md's names.
"""

from __future__ import annotations

import numpy as np
import torch

from dvd360.geometry.erp import pixel_row_weights


def _row_profiles(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel row (H,): mean |I[:, i, W-1] - I[:, i, 0]| and mean |I[:, i, j+1] - I[:, i, j]|
    over frames, channels (and the W - 1 interior pairs j), in [0, 1] pixel units."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[2] < 3:
        raise ValueError(f"frames must be (F, H, W >= 3, 3), got shape {frames.shape}")
    if frames.dtype == np.uint8:  # exact integer differences, then one division
        work, scale = frames.astype(np.int16), 255.0
    else:
        work, scale = frames.astype(np.float64), 1.0
    seam = np.abs(work[:, :, -1] - work[:, :, 0]).mean(axis=(0, 2)) / scale
    interior = np.abs(np.diff(work, axis=2)).mean(axis=(0, 2, 3)) / scale
    return seam, interior


def _average(per_row: np.ndarray, coslat: bool) -> float:
    """Mean over rows: plain, or weighted by cos(latitude)."""
    if not coslat:
        return float(per_row.mean())
    weights = pixel_row_weights(per_row.shape[0], dtype=torch.float64).numpy()
    return float((weights * per_row).sum() / weights.sum())


def _ratio(seam: float, interior: float) -> float:
    return float("nan") if interior == 0.0 else seam / interior


def end_continuity(frames: np.ndarray, coslat: bool = False) -> float:
    """EC: mean absolute difference between the last and the first column, values in [0, 1]."""
    return _average(_row_profiles(frames)[0], coslat)


def interior_continuity(frames: np.ndarray, coslat: bool = False) -> float:
    """The same statistic as EC between adjacent interior columns (j, j+1), j = 0 .. W-2."""
    return _average(_row_profiles(frames)[1], coslat)


def seam_ratio(frames: np.ndarray, coslat: bool = False) -> float:
    """SR = EC / interior continuity; NaN for a video without interior edges (constant rows)."""
    seam, interior = _row_profiles(frames)
    return _ratio(_average(seam, coslat), _average(interior, coslat))


def seam_metrics(frames: np.ndarray) -> dict[str, float]:
    """All four seam figures of one video, keyed by their metric names (one pass over the video)."""
    seam, interior = _row_profiles(frames)
    out = {}
    for suffix, coslat in (("", False), ("_coslat", True)):
        ec = _average(seam, coslat)
        out[f"end_continuity{suffix}"] = ec
        out[f"seam_ratio{suffix}"] = _ratio(ec, _average(interior, coslat))
    return {name: out[name] for name in ("end_continuity", "seam_ratio", "end_continuity_coslat", "seam_ratio_coslat")}
