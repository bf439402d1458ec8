"""Seam continuity of an ERP video: End Continuity (EC) and the seam ratio (SR).

Frames are RGB (F, H, W, 3), uint8 (divided by 255) or float in [0, 1].

- End Continuity, the published definition (PanoWan's table; 0.0323 reported for 360DVD):
  ``EC = mean_{f, i, c} |I[f, i, W-1, c] - I[f, i, 0, c]|`` in [0, 1] pixel units.
- Seam ratio: ``SR = EC / mean_{f, i, j, c} |I[f, i, j+1, c] - I[f, i, j, c]|`` over the
  W - 1 interior pairs of adjacent columns (j = 0 .. W-2). Unitless; near 1 the seam looks
  like any other column boundary, above 1 it is a visible cut.
- Codec-matched seam ratio: ``SR_codec = EC / mean_{f, i, k, c} |I[f, i, 16k, c] - I[f, i, 16k-1, c]|``
  over the W/16 - 1 interior pairs (16k - 1, 16k) that straddle a macroblock edge, k = 1 .. W/16 - 1.
  A block codec (H.264/HEVC/VP9: 4/8/16-pixel transform and prediction blocks on a grid from
  column 0, 4:2:0 chroma in column pairs (2j, 2j + 1)) treats the seam pair (W - 1, 0) like
  these: both columns lie in different blocks and different chroma samples, while most
  interior pairs share a block and half share a chroma sample, so plain SR counts the codec's
  block and chroma edges against the seam (seamless content at crf 18-28: 1.1-1.8 on textures,
  1.8-3.9 on the smooth textured sphere of `rigid_rotation_clip`). Defined
  for W a multiple of 16 (every mp4 size we score), NaN otherwise. Measured on seamless moving
  textures (tests/test_metrics_seam.py): 0.9-1.2 at crf 18-23, 1.0 at crf 28 for still content;
  a seamless video panning horizontally at crf 28 still reads 1.3-1.6, because the content
  entering at a picture edge is predicted from edge-replicated reference pixels, which no
  interior pair shares; smooth content, where codec error dominates the column differences,
  reads 1.0-2.6. A new metric with its own name: `seam_ratio` keeps its definition.
- ``*_coslat`` variants weight row i by cos(lat_i) (`geometry.erp.pixel_row_weights`) before
  averaging, so the stretched pole rows count as much as they cover on the sphere:
  ``mean_w(x) = sum_i w_i mean_{f, c} x[f, i, c] / sum_i w_i``. They are new metrics with
  their own names; the plain versions keep DESIGN.md's names.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dvd360.geometry.erp import pixel_row_weights


CODEC_BLOCK = 16  # the macroblock width: its edges are also 4- and 8-pixel block and chroma-pair edges


def _row_profiles(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel row (H,): mean |I[:, i, W-1] - I[:, i, 0]|, mean |I[:, i, j+1] - I[:, i, j]|
    (the W - 1 interior pairs j) and the same over the block-edge pairs (16k - 1, 16k) (NaN
    unless W is a multiple of 16), over frames and channels, in [0, 1] pixel units."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[2] < 3:
        raise ValueError(f"frames must be (F, H, W >= 3, 3), got shape {frames.shape}")
    if frames.dtype == np.uint8:  # exact integer differences, then one division
        work, scale = frames.astype(np.int16), 255.0
    else:
        work, scale = frames.astype(np.float64), 1.0
    seam = np.abs(work[:, :, -1] - work[:, :, 0]).mean(axis=(0, 2)) / scale
    interior = np.abs(np.diff(work, axis=2)).mean(axis=(0, 2, 3)) / scale
    width = frames.shape[2]
    if width % CODEC_BLOCK or width < 2 * CODEC_BLOCK:
        block_edges = np.full_like(interior, np.nan)
    else:
        right = np.arange(CODEC_BLOCK, width, CODEC_BLOCK)
        block_edges = np.abs(work[:, :, right] - work[:, :, right - 1]).mean(axis=(0, 2, 3)) / scale
    return seam, interior, block_edges


def _average(per_row: np.ndarray, coslat: bool) -> float:
    """Mean over rows: plain, or weighted by cos(latitude)."""
    if not coslat:
        return float(per_row.mean())
    weights = pixel_row_weights(per_row.shape[0], dtype=torch.float64).numpy()
    return float((weights * per_row).sum() / weights.sum())


def _ratio(seam: float, interior: float) -> float:
    return float("nan") if interior == 0.0 or math.isnan(interior) else seam / interior


def end_continuity(frames: np.ndarray, coslat: bool = False) -> float:
    """EC: mean absolute difference between the last and the first column, values in [0, 1]."""
    return _average(_row_profiles(frames)[0], coslat)


def interior_continuity(frames: np.ndarray, coslat: bool = False) -> float:
    """The same statistic as EC between adjacent interior columns (j, j+1), j = 0 .. W-2."""
    return _average(_row_profiles(frames)[1], coslat)


def seam_ratio(frames: np.ndarray, coslat: bool = False) -> float:
    """SR = EC / interior continuity; NaN for a video without interior edges (constant rows)."""
    seam, interior, _ = _row_profiles(frames)
    return _ratio(_average(seam, coslat), _average(interior, coslat))


def seam_ratio_codec(frames: np.ndarray, coslat: bool = False) -> float:
    """SR_codec = EC / the same statistic over the block-edge pairs (16k - 1, 16k); NaN unless
    W is a multiple of 16 (and at least 32) and those pairs differ somewhere."""
    seam, _, block_edges = _row_profiles(frames)
    return _ratio(_average(seam, coslat), _average(block_edges, coslat))


def seam_metrics(frames: np.ndarray) -> dict[str, float]:
    """Every seam figure of one video, keyed by metric name (one pass over the video): end_continuity,
    seam_ratio, seam_ratio_codec and their _coslat variants."""
    seam, interior, block_edges = _row_profiles(frames)
    out = {}
    for suffix, coslat in (("", False), ("_coslat", True)):
        ec = _average(seam, coslat)
        out[f"end_continuity{suffix}"] = ec
        out[f"seam_ratio{suffix}"] = _ratio(ec, _average(interior, coslat))
        out[f"seam_ratio_codec{suffix}"] = _ratio(ec, _average(block_edges, coslat))
    return out
