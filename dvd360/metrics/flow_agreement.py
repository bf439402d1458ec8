"""Flow agreement: does the generated video move the way its reference flow says?

The generated video's flow is estimated wrap-aware (`dvd360.data.flow_estimation`) and compared
with a reference flow of the same shape (F, H, W, 2), ERP pixels, (dx, dy) from frame t to t+1.
Only the F - 1 real flow frames are compared (the last frame duplicates the one before).
Pixel rows are weighted by w_i = cos(lat_i), so every part of the sphere counts by its area.

- ``flow_epe_deg`` (degrees, lower is better): cos-lat weighted mean over frames and pixels of
  the great-circle angle between where the two flows send each pixel centre
  (`geometry.sphere_flow.endpoint_angle_deg`).
- ``flow_epe_deg_scaled`` (degrees, lower is better): the same EPE after scaling the estimated
  flow by the least-squares speed factor that best aligns it with the reference,
      s* = argmin_{s >= 0} sum_p w_p |s t_est(p) - t_ref(p)|^2 = max(0, sum w t_est.t_ref / sum w |t_est|^2),
  t = `tangent_components` (local east/north arc, radians), sums over frames and pixels; so a
  video that follows the reference's motion pattern at another speed is not punished for the
  speed. s* is reported as ``flow_scale`` (1: same speed; 0.5: the reference moves half as
  fast). s* >= 0: moving against the reference is never rescued by a negative factor. Absent
  (NaN), with its reason (`absent_reasons`), when s* is undefined (the estimate does not move at
  all) or 0 (the estimate opposes or ignores the reference: the EPE of a zero flow would be the
  reference's own magnitude, the same figure for every video scored against that reference);
  direction agreement then carries the verdict. Its degrees are those of the reference's
  speed: fair across videos scored against one reference (the benchmark's use), not across
  references of different speeds (e.g. flow_vis videos decoded without their scale, each in
  units of its own largest displacement), where direction agreement is the fair figure.
- ``flow_direction_agreement`` (in [-1, 1], higher is better): over the pixels where the
  reference moves at least `MIN_MOTION_PX` equatorial pixels of arc, the cos-lat weighted mean
  cosine between the two displacement directions in the local tangent plane
  (`geometry.sphere_flow.direction_cosine`); a pixel where the estimate does not move counts 0.
  Absent (NaN) when the reference does not move anywhere.

A reference whose speed is unknown (a flow_vis video decoded without its normalisation: each
frame in units of its own largest displacement) is first brought to the video's speed frame by
frame, k*_t = max(0, sum_{p in t} w t_est.t_ref / sum_{p in t} w |t_ref|^2) (their mean is
reported as ``flow_reference_scale``: estimated pixels per reference unit), and only the figures
that do not depend on its speed are reported (``flow_epe_deg_scaled``, ``flow_direction_agreement``;
`flow_agreement_unknown_speed`): the degrees of ``flow_epe_deg_scaled`` are then the video's own,
and the moving-pixel threshold of direction agreement applies to the video's speed.

`estimator_error` (the estimator's own error on exact ground truth) is computed once per
(estimator, settings, size, code, library versions) and cached on disk as JSON under
`$DVD360_CACHE_DIR` (default `$XDG_CACHE_HOME/dvd360`, i.e. `~/.cache/dvd360`), keyed on the
content fingerprint of all of these and written atomically.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from dvd360.atomic import write_json
from dvd360.fingerprint import fingerprint
from dvd360.geometry.erp import pixel_row_weights
from dvd360.geometry.sphere_flow import angle_between_deg, direction_cosine, flow_endpoints, tangent_components

MIN_MOTION_PX = 0.25
FLOW_FACTORS = ("flow_scale", "flow_reference_scale")  # per-video factors, recorded beside the metrics
ZERO_SCALE = ("flow_scale 0: the estimate opposes or ignores the reference (least-squares speed factor "
              "s* = 0); flow_direction_agreement carries the verdict")
STILL_ESTIMATE = "flow_scale undefined: the estimated flow does not move"
CACHE_ENV = "DVD360_CACHE_DIR"


def _check(estimated, reference, device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two flows' F - 1 real frames as float64 tensors on `device` (default: where they are)."""
    est, ref = (torch.as_tensor(np.asarray(f, dtype=np.float32) if not torch.is_tensor(f) else f)
                for f in (estimated, reference))
    if est.shape != ref.shape or est.dim() != 4 or est.shape[-1] != 2 or est.shape[0] < 2:
        raise ValueError(f"flows must both be (F >= 2, H, W, 2); got {tuple(est.shape)} and {tuple(ref.shape)}")
    est, ref = (f.to(device if device is not None else f.device, torch.float32) for f in (est, ref))
    for name, flow in (("estimated", est), ("reference", ref)):
        bad = int((~torch.isfinite(flow)).sum())
        if bad:  # a NaN/inf would turn a metric into NaN or a fake 0, never an honest figure
            raise ValueError(f"the {name} flow holds {bad} non-finite value(s)")
    return est[:-1].double(), ref[:-1].double()


def _weighted_mean(values: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """cos-lat weighted mean of (F, H, W) values over the pixels in `mask` (all if None)."""
    weights = pixel_row_weights(values.shape[1], device=values.device,
                                dtype=torch.float64)[None, :, None].expand_as(values)
    if mask is not None:
        weights = weights * mask
    total = weights.sum()
    if total <= 0:
        return float("nan")
    return float((weights * values).sum() / total)


def _scale(est: torch.Tensor, ref: torch.Tensor) -> float:
    """max(0, sum w t_est.t_ref / sum w |t_est|^2): the factor on `est` that best matches `ref`."""
    t_est, t_ref = tangent_components(est), tangent_components(ref)
    weights = pixel_row_weights(est.shape[1], device=est.device, dtype=torch.float64)[None, :, None]
    denominator = float((weights * t_est.square().sum(-1)).sum())
    if denominator <= 0:
        return float("nan")
    return max(0.0, float((weights * (t_est * t_ref).sum(-1)).sum()) / denominator)


def _epe(est: torch.Tensor, ref: torch.Tensor, ref_ends: torch.Tensor | None = None) -> float:
    """`endpoint_angle_deg` of the two flows, weighted; `ref_ends`: the reference's end points, when known."""
    return _weighted_mean(angle_between_deg(flow_endpoints(est), flow_endpoints(ref) if ref_ends is None else ref_ends))


def _epe_scaled(est: torch.Tensor, ref: torch.Tensor, ref_ends: torch.Tensor | None = None) -> tuple[float, float]:
    scale = _scale(est, ref)
    if not math.isfinite(scale) or scale == 0:
        return float("nan"), scale
    return _epe(est * scale, ref, ref_ends), scale


def _direction(est: torch.Tensor, ref: torch.Tensor, min_motion_px: float) -> float:
    moving = torch.linalg.vector_norm(tangent_components(ref), dim=-1) >= min_motion_px * math.pi / ref.shape[1]
    cosine = torch.nan_to_num(direction_cosine(est, ref), nan=0.0)
    return _weighted_mean(cosine, moving.double())


def _agreement(est: torch.Tensor, ref: torch.Tensor, speed_known: bool = True) -> dict[str, float]:
    """Every figure (without ``flow_epe_deg`` unless `speed_known`) and ``flow_scale``."""
    ends = flow_endpoints(ref)
    scaled, scale = _epe_scaled(est, ref, ends)
    figures = {"flow_epe_deg_scaled": scaled, "flow_direction_agreement": _direction(est, ref, MIN_MOTION_PX),
               "flow_scale": scale}
    return {"flow_epe_deg": _epe(est, ref, ends), **figures} if speed_known else figures


def flow_epe_deg(estimated, reference, device: str | torch.device | None = None) -> float:
    """Cos-lat weighted mean angular end-point error in degrees on the sphere."""
    return _epe(*_check(estimated, reference, device))


def flow_epe_deg_scaled(estimated, reference, device: str | torch.device | None = None) -> tuple[float, float]:
    """(EPE in degrees after the least-squares scale s*, s*) (module doc); (NaN, NaN) for a still
    estimate, (NaN, 0) when s* = 0."""
    return _epe_scaled(*_check(estimated, reference, device))


def absent_reasons(figures: dict[str, float]) -> dict[str, str]:
    """{metric name: why it is absent} for the flow figures of one video (`flow_agreement`'s output)."""
    scale = figures.get("flow_scale")
    if scale is None or "flow_epe_deg_scaled" not in figures:
        return {}
    if scale == 0:
        return {"flow_epe_deg_scaled": ZERO_SCALE}
    return {"flow_epe_deg_scaled": STILL_ESTIMATE} if not math.isfinite(scale) else {}


def flow_direction_agreement(estimated, reference, min_motion_px: float = MIN_MOTION_PX,
                             device: str | torch.device | None = None) -> float:
    """Cos-lat weighted mean direction cosine over pixels where the reference moves (see module doc)."""
    return _direction(*_check(estimated, reference, device), min_motion_px)


def flow_agreement(estimated, reference, device: str | torch.device | None = None) -> dict[str, float]:
    """Every flow figure keyed by its metric name, and the speed factor as ``flow_scale``; computed
    in float64 on `device` (numpy or torch inputs; default: where the inputs are, CPU for numpy)."""
    return _agreement(*_check(estimated, reference, device))


def flow_agreement_unknown_speed(estimated, reference, device: str | torch.device | None = None) -> dict[str, float]:
    """The scale-free figures (and ``flow_scale``) against a reference known only up to a
    scale per frame, each frame first brought to the video's speed by k*_t (module doc)."""
    est, ref = _check(estimated, reference, device)
    scales = np.array([_scale(ref[t:t + 1], est[t:t + 1]) for t in range(len(ref))])
    usable = np.isfinite(scales) & (scales > 0)  # a still or opposed frame keeps its units
    factors = torch.as_tensor(np.where(usable, scales, 1.0), dtype=torch.float32, device=ref.device)
    ref = (ref.float() * factors[:, None, None, None]).double()  # float32 product, as the flows are stored
    reference_scale = float(scales[usable].mean()) if usable.any() else float("nan")
    return {**_agreement(est, ref, speed_known=False), "flow_reference_scale": reference_scale}


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


def cache_dir() -> Path:
    """Where computed-once results live: $DVD360_CACHE_DIR, else $XDG_CACHE_HOME/dvd360 (~/.cache/dvd360)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dvd360"


def _estimator_key(height: int, width: int, method: str, frames: int, seed: int, options: dict) -> str:
    """Content fingerprint of one self-check: estimator settings, size, ground truth, code, libraries."""
    import cv2
    import skimage
    import torchvision

    from dvd360.data.flow_estimation import settings_of

    settings = settings_of(method, **options)
    libraries = {"opencv": cv2.__version__, "scikit-image": skimage.__version__, "numpy": np.__version__,
                 "torch": torch.__version__, "torchvision": torchvision.__version__}
    return fingerprint({"method": method, "settings": settings, "height": height, "width": width,
                        "frames": frames, "seed": seed, "libraries": libraries},
                       {"weights": settings.get("weights")}, ("dvd360.metrics.flow_agreement",))


def estimator_error(height: int, width: int, method: str = "dis", frames: int = 4, seed: int = 0,
                    cache: bool = True, **options) -> dict:
    """The flow estimator's own error at this size, on `rigid_rotation_clip` (exact flow known).

    Returns {"flow_epe_deg", "flow_epe_deg_scaled", "flow_direction_agreement", "flow_scale",
    "ground_truth", "estimator"} measured exactly as the metrics are, so the error sits beside
    every flow figure. With `cache`, read from / written to `cache_dir()` (module doc).
    """
    from dvd360.data.flow_estimation import describe, estimate_flow

    key = _estimator_key(height, width, method, frames, seed, options)
    path = cache_dir() / "estimator_error" / f"{key}.json"
    if cache and path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored.get("fingerprint") == key:
                return stored["scores"]
        except (OSError, ValueError, KeyError):
            pass  # unreadable or foreign entry: measure again and replace it
    video, truth = rigid_rotation_clip(height, width, frames, seed=seed)
    scores = flow_agreement(estimate_flow(video, method, **options), truth)
    scores["ground_truth"] = (f"rigid rotation yaw 3, pitch 1.5, roll 1 deg/frame, textured sphere, "
                              f"{frames} frames {height}x{width}, seed {seed}")
    scores["estimator"] = describe(method, **options)
    if cache:
        write_json(path, {"fingerprint": key, "scores": scores})
    return scores
