"""Pole continuity: how much an ERP video's polar caps contradict the sphere.

The top pixel row of an ERP frame samples a circle of angular radius 90/H degrees around the
north pole, the bottom row one around the south pole; the rows next to them sample the small
circles of the polar caps. On the sphere those circles are tiny, so a correct render varies
little along them, while a generator that treats the cap rows as ordinary image rows (swirls,
smears, pinched content) puts a whole image row of detail on them. Per cap:

    pole_continuity_{north,south} = mean over frames f and cap rows r of
        mean_{j, c} | I[f, r, j, c] - mean_j I[f, r, j, c] |

the mean absolute deviation of each cap row from its own mean colour (pixel values in [0, 1],
RGB channels averaged), over the rows whose pixel-centre latitude is within `CAP_DEG` = 5 degrees
of the pole (at least one row); `pole_continuity` = the mean of both caps. 0 = every cap row is
one colour (the exact value at the pole itself); lower is better. A row statistic, so a rigid
longitude roll (a circular shift of every row) leaves it unchanged.
"""

from __future__ import annotations

import numpy as np

CAP_DEG = 5.0


def cap_rows(height: int, cap_deg: float = CAP_DEG) -> int:
    """Rows per cap: those whose pixel-centre latitude 90 - (r + 0.5) 180 / H is >= 90 - cap_deg."""
    return max(1, int(np.floor(cap_deg * height / 180.0 + 0.5)))


def _row_spread(rows: np.ndarray) -> float:
    """Mean over rows of the mean |value - row mean| (rows (F, R, W, C))."""
    return float(np.abs(rows - rows.mean(axis=2, keepdims=True)).mean())


def pole_continuity(frames: np.ndarray) -> dict[str, float]:
    """{"pole_continuity", "pole_continuity_north", "pole_continuity_south"} of RGB ERP frames
    (F, H, W, 3), uint8 (divided by 255) or float in [0, 1] (see module doc)."""
    frames = np.asarray(frames)
    frames = frames / 255.0 if frames.dtype == np.uint8 else frames.astype(np.float64)
    if frames.ndim != 4 or frames.shape[1] < 2:
        raise ValueError(f"expected frames (F, H, W, C) with H >= 2, got {frames.shape}")
    rows = cap_rows(frames.shape[1])
    north, south = _row_spread(frames[:, :rows]), _row_spread(frames[:, -rows:])
    return {"pole_continuity": (north + south) / 2, "pole_continuity_north": north, "pole_continuity_south": south}
