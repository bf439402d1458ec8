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

from dvd360.geometry.erp import pixel_row_weights


def _as_unit_float(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (F, H, W, 3), got shape {frames.shape}")
    if frames.dtype == np.uint8:
        return frames.astype(np.float64) / 255.0
    return frames.astype(np.float64)


def _row_mean(diff: np.ndarray, coslat: bool) -> float:
    """Mean of |differences| (F, H, ..., 3): plain, or rows weighted by cos(latitude)."""
    per_row = diff.mean(axis=tuple(a for a in range(diff.ndim) if a != 1))  # (H,)
    if not coslat:
        return float(per_row.mean())
    weights = np.asarray(pixel_row_weights(diff.shape[1]), dtype=np.float64)
    return float((weights * per_row).sum() / weights.sum())


def end_continuity(frames: np.ndarray, coslat: bool = False) -> float:
    """EC: mean absolute difference between the last and the first column, values in [0, 1]."""
    frames = _as_unit_float(frames)
    return _row_mean(np.abs(frames[:, :, -1, :] - frames[:, :, 0, :]), coslat)


def interior_continuity(frames: np.ndarray, coslat: bool = False) -> float:
    """The same statistic as EC between adjacent interior columns (j, j+1), j = 0 .. W-2."""
    frames = _as_unit_float(frames)
    return _row_mean(np.abs(np.diff(frames, axis=2)), coslat)


def seam_ratio(frames: np.ndarray, coslat: bool = False) -> float:
    """SR = EC / interior continuity; NaN for a constant video (no interior edges at all)."""
    interior = interior_continuity(frames, coslat)
    if interior == 0.0:
        return float("nan")
    return end_continuity(frames, coslat) / interior


def seam_metrics(frames: np.ndarray) -> dict[str, float]:
    """All four seam figures of one video, keyed by their metric names."""
    return {
        "end_continuity": end_continuity(frames),
        "seam_ratio": seam_ratio(frames),
        "end_continuity_coslat": end_continuity(frames, coslat=True),
        "seam_ratio_coslat": seam_ratio(frames, coslat=True),
    }
