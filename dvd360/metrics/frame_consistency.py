"""Frame consistency: how alike consecutive frames look to CLIP.

``frame_consistency = 100 * mean_{t, v} cos(e_{t, v}, e_{t+1, v})`` over the F - 1 pairs of
consecutive frames t, t+1 (and, for views, the 4 horizontal views v, each compared with the same
view of the next frame), with the unit CLIP image embeddings of `metrics.clip_similarity`:
``frame_consistency_erp`` on whole ERP frames, ``frame_consistency_views`` on the views.
Range -100..100, 100 for a still video.
"""

from __future__ import annotations

import torch


def frame_consistency(embeddings: torch.Tensor) -> float:
    """100 * mean cosine between consecutive frames of embeddings (F, ..., D), F >= 2."""
    if embeddings.shape[0] < 2:
        raise ValueError(f"frame consistency needs at least 2 frames, got {embeddings.shape[0]}")
    unit = torch.nn.functional.normalize(embeddings.double(), dim=-1)
    return float(100.0 * (unit[:-1] * unit[1:]).sum(-1).mean())
