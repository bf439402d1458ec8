"""Flow agreement: does the generated video move the way its reference flow says?

The generated video's flow is estimated wrap-aware (`dvd360.data.flow_estimation`) and compared
with a reference flow of the same shape (F, H, W, 2), ERP pixels, (dx, dy) from frame t to t+1.
Only the F - 1 real flow frames are compared (the last frame duplicates the one before).
Pixel rows are weighted by w_i = cos(lat_i), so every part of the sphere counts by its area.

- ``flow_epe_deg`` (degrees, lower is better): cos-lat weighted mean over frames and pixels of
  the great-circle angle between where the two flows send each pixel centre
  (`geometry.sphere_flow.endpoint_angle_deg`).
- ``flow_direction_agreement`` (in [-1, 1], higher is better): over the pixels where the
  reference moves at least `MIN_MOTION_PX` equatorial pixels of arc, the cos-lat weighted mean
  cosine between the two displacement directions in the local tangent plane
  (`geometry.sphere_flow.direction_cosine`); a pixel where the estimate does not move counts 0.
  Absent (NaN) when the reference does not move anywhere.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dvd360.geometry.erp import pixel_row_weights
from dvd360.geometry.sphere_flow import direction_cosine, endpoint_angle_deg, tangent_components

MIN_MOTION_PX = 0.25


def _check(estimated, reference) -> tuple[torch.Tensor, torch.Tensor]:
    est = torch.as_tensor(np.asarray(estimated, dtype=np.float32))
    ref = torch.as_tensor(np.asarray(reference, dtype=np.float32))
    if est.shape != ref.shape or est.dim() != 4 or est.shape[-1] != 2 or est.shape[0] < 2:
        raise ValueError(f"flows must both be (F >= 2, H, W, 2); got {tuple(est.shape)} and {tuple(ref.shape)}")
    for name, flow in (("estimated", est), ("reference", ref)):
        bad = int((~torch.isfinite(flow)).sum())
        if bad:  # a NaN/inf would turn a metric into NaN or a fake 0, never an honest figure
            raise ValueError(f"the {name} flow holds {bad} non-finite value(s)")
    return est[:-1].double(), ref[:-1].double()


def _weighted_mean(values: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """cos-lat weighted mean of (F, H, W) values over the pixels in `mask` (all if None)."""
    weights = pixel_row_weights(values.shape[1], dtype=torch.float64)[None, :, None].expand_as(values)
    if mask is not None:
        weights = weights * mask
    total = weights.sum()
    if total <= 0:
        return float("nan")
    return float((weights * values).sum() / total)


def flow_epe_deg(estimated, reference) -> float:
    """Cos-lat weighted mean angular end-point error in degrees on the sphere."""
    est, ref = _check(estimated, reference)
    return _weighted_mean(endpoint_angle_deg(est, ref))


def flow_direction_agreement(estimated, reference, min_motion_px: float = MIN_MOTION_PX) -> float:
    """Cos-lat weighted mean direction cosine over pixels where the reference moves (see module doc)."""
    est, ref = _check(estimated, reference)
    moving = torch.linalg.vector_norm(tangent_components(ref), dim=-1) >= min_motion_px * math.pi / ref.shape[1]
    cosine = torch.nan_to_num(direction_cosine(est, ref), nan=0.0)
    return _weighted_mean(cosine, moving.double())


def flow_agreement(estimated, reference) -> dict[str, float]:
    """Both flow figures, keyed by their metric names."""
    return {"flow_epe_deg": flow_epe_deg(estimated, reference),
            "flow_direction_agreement": flow_direction_agreement(estimated, reference)}


def _texture(directions: torch.Tensor, seed: int, waves: int = 24) -> torch.Tensor:
    """An analytic RGB texture on the sphere: 0.5 + 0.5 * mean_k sin(f_k a_k . d + phi_k) per channel."""
    generator = torch.Generator().manual_seed(seed)
    axes = torch.nn.functional.normalize(torch.randn(3, waves, 3, generator=generator, dtype=torch.float64), dim=-1)
    freqs = 2.0 + 10.0 * torch.rand(3, waves, 1, generator=generator, dtype=torch.float64)
    phases = 2 * math.pi * torch.rand(3, waves, generator=generator, dtype=torch.float64)
    proj = torch.einsum("...d,ckd->...ck", directions, axes * freqs)  # (..., 3, waves)
    return 0.5 + 0.5 * torch.sin(proj + phases).mean(-1)


def rigid_rotation_clip(height: int, width: int, frames: int = 4, *, yaw_deg: float = 3.0,
                        pitch_deg: float = 1.5, roll_deg: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A camera turning at a constant rate inside a textured sphere, with its exact flow.

    Frame t sees world direction R_t d at camera pixel direction d, R_t = rotation_matrix(t * yaw,
    t * pitch, t * roll); the texture is analytic (no resampling), so the flow is exactly
    `geometry.rotation.rotation_flow(h, w, R_t^T R_{t+1})`. Returns (uint8 (F, H, W, 3), flow (F, H, W, 2)).
    """
    from dvd360.geometry.erp import pixel_directions
    from dvd360.geometry.rotation import rotation_flow, rotation_matrix

    dirs = pixel_directions(height, width, dtype=torch.float64)  # (H, W, 3)
    orientations = [rotation_matrix(t * yaw_deg, t * pitch_deg, t * roll_deg, dtype=torch.float64)
                    for t in range(frames)]
    video = torch.stack([_texture(dirs @ R.T, seed) for R in orientations])  # (F, H, W, 3)
    flow = torch.stack([rotation_flow(height, width, orientations[t].T @ orientations[t + 1])
                        for t in range(frames - 1)])
    flow = torch.cat([flow, flow[-1:]])
    return (video * 255).round().clamp(0, 255).to(torch.uint8).numpy(), flow.float().numpy()


def estimator_error(height: int, width: int, method: str = "ilk", frames: int = 4, seed: int = 0,
                    **options) -> dict:
    """The flow estimator's own error at this size, on `rigid_rotation_clip` (exact flow known).

    Returns {"flow_epe_deg", "flow_direction_agreement", "ground_truth"} measured exactly as the
    metrics are, so the error sits beside every flow figure.
    """
    from dvd360.data.flow_estimation import estimate_flow

    video, truth = rigid_rotation_clip(height, width, frames, seed=seed)
    scores = flow_agreement(estimate_flow(video, method, **options), truth)
    scores["ground_truth"] = (f"rigid rotation yaw 3, pitch 1.5, roll 1 deg/frame, textured sphere, "
                              f"{frames} frames {height}x{width}, seed {seed}")
    return scores
