"""Score one ERP video with every metric; reference flows for flow agreement.

`VideoScorer` holds the CLIP model (load it once per stage) and the flow estimator settings;
`score(frames, prompt, reference_flow)` returns the metric values keyed by their stable names.
A metric that cannot be computed (no prompt, no reference flow, undefined value) is absent,
never zero. `describe()` says which model, input and scale every metric used, and the flow
estimator's own error at each scored size (measured on `rigid_rotation_clip`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dvd360.data.flow_estimation import describe as describe_estimator
from dvd360.data.flow_estimation import estimate_flow, resize_flow
from dvd360.geometry.rotation import roll_longitude, wrap_dx
from dvd360.metrics.clip_model import ClipModel
from dvd360.metrics.clip_similarity import VIEW_FOV_DEG, VIEW_LONS, clip_similarity, erp_embeddings, view_embeddings
from dvd360.metrics.flow_agreement import MIN_MOTION_PX, estimator_error, flow_agreement
from dvd360.metrics.frame_consistency import frame_consistency
from dvd360.metrics.seam import seam_metrics

# name -> (better, scale); order = column order of every table.
METRICS: dict[str, tuple[str, str]] = {
    "clip_similarity_erp": ("higher", "100 * max(cos, 0), 0..100"),
    "clip_similarity_views": ("higher", "100 * max(cos, 0), 0..100"),
    "frame_consistency_erp": ("higher", "100 * cos of consecutive frames, -100..100"),
    "frame_consistency_views": ("higher", "100 * cos of consecutive frames, -100..100"),
    "end_continuity": ("lower", "mean |last - first column|, pixel values in [0, 1], rows plain"),
    "seam_ratio": ("lower", "EC / interior EC, unitless (1 = no visible seam), rows plain"),
    "end_continuity_coslat": ("lower", "as end_continuity, rows weighted by cos(latitude)"),
    "seam_ratio_coslat": ("lower", "as seam_ratio, rows weighted by cos(latitude)"),
    "flow_epe_deg": ("lower", "degrees on the sphere, cos-latitude weighted"),
    "flow_direction_agreement": ("higher", "cos-latitude weighted mean direction cosine, -1..1"),
}
METRIC_NAMES = tuple(METRICS)
REFERENCE_KINDS = ("numeric", "encoded", "source")


class VideoScorer:
    """Scores ERP videos; `clip=None` skips the CLIP metrics, `flow_method=None` the flow ones."""

    def __init__(self, clip: ClipModel | None, flow_method: str | None = "ilk", flow_options: dict | None = None):
        self.clip = clip
        self.flow_method = flow_method
        self.flow_options = dict(flow_options or {})
        self._estimator_errors: dict[str, dict] = {}

    def estimator_error(self, height: int, width: int) -> dict:
        """The estimator's error on a synthetic rigid rotation at this size (cached)."""
        key = f"{height}x{width}"
        if key not in self._estimator_errors:
            self._estimator_errors[key] = estimator_error(height, width, self.flow_method, **self.flow_options)
        return self._estimator_errors[key]

    def describe(self) -> dict[str, dict]:
        """Per metric: better direction, scale, and the model or estimator that produced it."""
        info = {name: {"better": better, "scale": scale} for name, (better, scale) in METRICS.items()}
        if self.clip is not None:
            for name in METRIC_NAMES[:4]:
                info[name].update(self.clip.describe())
            for name in ("clip_similarity_views", "frame_consistency_views"):
                info[name]["views"] = f"{len(VIEW_LONS)} views at lon {VIEW_LONS}, lat 0, FoV {VIEW_FOV_DEG:g} deg"
        if self.flow_method is not None:
            for name in ("flow_epe_deg", "flow_direction_agreement"):
                info[name]["estimator"] = describe_estimator(self.flow_method, **self.flow_options)
                info[name]["estimator_error"] = {
                    size: {"flow_epe_deg": err["flow_epe_deg"], "flow_direction_agreement":
                           err["flow_direction_agreement"], "ground_truth": err["ground_truth"]}
                    for size, err in self._estimator_errors.items()}
            info["flow_direction_agreement"]["moving_pixels"] = f"reference moves >= {MIN_MOTION_PX} px"
        return info

    def score(self, frames: np.ndarray, prompt: str | None = None,
              reference_flow: np.ndarray | None = None) -> dict:
        """{"metrics": {name: value}, "prompt_truncated": bool | None} for one video (F, H, W, 3)."""
        frames = np.asarray(frames)
        metrics: dict[str, float] = dict(seam_metrics(frames))
        truncated = None
        if self.clip is not None:
            erp, views = erp_embeddings(self.clip, frames), view_embeddings(self.clip, frames)
            metrics["frame_consistency_erp"] = frame_consistency(erp)
            metrics["frame_consistency_views"] = frame_consistency(views)
            if prompt:
                text = self.clip.encode_texts([prompt])[0]
                metrics["clip_similarity_erp"] = clip_similarity(erp, text)
                metrics["clip_similarity_views"] = clip_similarity(views, text)
                truncated = self.clip.is_truncated(prompt)
        if self.flow_method is not None and reference_flow is not None:
            reference = align_reference_flow(reference_flow, *frames.shape[:3])
            estimated = estimate_flow(frames, self.flow_method, **self.flow_options)
            metrics.update(flow_agreement(estimated, reference))
            self.estimator_error(*frames.shape[1:3])
        ordered = {name: float(metrics[name]) for name in METRIC_NAMES
                   if name in metrics and math.isfinite(metrics[name])}
        return {"metrics": ordered, "prompt_truncated": truncated}


def align_reference_flow(flow: np.ndarray, frames: int, height: int, width: int) -> np.ndarray:
    """A reference flow (F', H', W', 2) matched to a video of `frames` frames at height x width.

    Needs F' >= frames - 1: the first frames - 1 flow frames are kept, the last duplicated, and the
    field is resampled to the video's size (`resize_flow`).
    """
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"reference flow must be (F, H, W, 2), got shape {flow.shape}")
    if flow.shape[0] < frames - 1:
        raise ValueError(f"reference flow has {flow.shape[0]} frames, the video needs at least {frames - 1}")
    flow = flow[:frames - 1]
    flow = np.concatenate([flow, flow[-1:]])
    return resize_flow(flow, height, width)


def stride_flow(flow: np.ndarray, indices: list[int]) -> np.ndarray:
    """Flow between the frames `indices` of a clip from its one-step flows (F, H, W, 2).

    Between frames a < b: the sum of the one-step flows a .. b-1 at the same pixel, dx wrapped.
    Exact for stride 1; for larger strides it neglects how the flow changes along the path
    (small for the slowly varying flows of camera motion). Last frame duplicated.
    """
    width = flow.shape[2]
    steps = [wrap_dx_sum(flow[a:b], width) for a, b in zip(indices[:-1], indices[1:])]
    if not steps:
        raise ValueError("need at least two frame indices")
    return np.stack(steps + steps[-1:]).astype(np.float32)


def wrap_dx_sum(flows: np.ndarray, width: int) -> np.ndarray:
    """Sum of flows (K, H, W, 2) over K with dx wrapped into [-W/2, W/2)."""
    total = flows.sum(axis=0)
    total[..., 0] = wrap_dx(total[..., 0], width)
    return total


def load_reference_flow(path: str | Path, kind: str = "auto", indices: list[int] | None = None,
                        roll_deg: float = 0.0, flow_method: str = "ilk") -> np.ndarray:
    """A reference flow from a file: kind "numeric" (.npz with a `flow` array (F, H, W, 2)),
    "encoded" (a flow video in the released visualisation, decoded with `decode_flow`), or
    "source" (a video whose flow is re-estimated wrap-aware); "auto" picks numeric for .npz,
    else encoded. `indices` select the source frames the scored video corresponds to (see
    `stride_flow`); `roll_deg` turns the flow in longitude (e.g. the net latent rotation).
    """
    from dvd360.data.flow_encoding import decode_flow
    from dvd360.data.video import read_frames

    path = Path(path)
    if kind == "auto":
        kind = "numeric" if path.suffix == ".npz" else "encoded"
    if kind not in REFERENCE_KINDS:
        raise ValueError(f"unknown reference flow kind {kind!r}; known: {', '.join(REFERENCE_KINDS)}")
    if kind == "source":
        frames = read_frames(path, indices)
        flow = estimate_flow(frames, flow_method)
    else:
        if kind == "numeric":
            with np.load(path) as data:
                if "flow" not in data:
                    raise ValueError(f"{path}: no 'flow' array (has {', '.join(data.files)})")
                flow = data["flow"].astype(np.float32)
        else:
            flow = decode_flow(read_frames(path))
        if indices is not None:
            if max(indices) >= flow.shape[0]:
                raise ValueError(f"{path}: has {flow.shape[0]} flow frames, indices reach {max(indices)}")
            flow = stride_flow(flow, list(indices))
    return roll_longitude(flow, roll_deg, dim=2) if roll_deg % 360 else flow
