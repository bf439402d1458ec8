"""Score one ERP video with every metric; reference flows for flow agreement.

`VideoScorer` holds the CLIP model (load it once per process) and the flow estimator settings;
`score(frames, prompt, reference_flow)` returns the metric values keyed by their stable names,
`score_stream(jobs, load, workers)` scores many videos with the engine (`metrics.engine`):
decoding, seam and flow run ahead on CPU workers while CLIP embeds earlier videos in
fixed-shape batches spanning several videos; every score equals the one-video `score`.
A metric that cannot be computed (no prompt, no reference flow, undefined value) is absent,
never zero. `describe()` says which model, input and scale every metric used, and the flow
estimator's own error at each scored size (measured on `rigid_rotation_clip`).
"""

from __future__ import annotations

import math
from concurrent.futures import Executor
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from dvd360.data.flow_estimation import describe as describe_estimator
from dvd360.data.flow_estimation import DEFAULT_METHOD, estimate_flow, resize_flow
from dvd360.geometry.rotation import roll_longitude, wrap_dx
from dvd360.models.clip_model import ClipModel
from dvd360.metrics.clip_similarity import VIEW_FOV_DEG, VIEW_LONS, ClipImages, clip_similarity
from dvd360.device import device_label
from dvd360.distributed import gather_ordered, init_distributed, shard
from dvd360.metrics.engine import FeatureExtractor, cpu_executor, extract_many, prefetch, shared
from dvd360.metrics.flow_agreement import (FLOW_FACTORS, MIN_MOTION_PX, absent_reasons, estimator_error, flow_agreement,
                                           flow_agreement_unknown_speed)
from dvd360.metrics.frame_consistency import frame_consistency
from dvd360.metrics.quality import QualityScorer
from dvd360.metrics.registry import METRIC_NAMES, VIDEO_METRICS, frame_metrics, names_needing

REFERENCE_KINDS = ("numeric", "encoded", "source")
FRAME_METRICS = frame_metrics()  # compute reference -> names: the metrics of the frames alone (CPU)
FLOW_METRICS = names_needing("reference_flow")
CLIP_METRICS = tuple(n for n in names_needing("clip") if "quality_models" not in VIDEO_METRICS[n].needs)
GROUP_BATCHES = 4  # frame-model batches gathered before a forward pass: the padding wastes < 1/4


@dataclass
class VideoInput:
    """One video to score: RGB ERP frames (F, H, W, 3), its prompt and its reference flow (optional),
    and what was detected about the input (`data.detections`), carried into the result."""

    frames: np.ndarray
    prompt: str | None = None
    reference_flow: np.ndarray | None = None
    detections: dict = field(default_factory=dict)


class FlowPair(NamedTuple):
    """A video's estimated flow and its reference flow aligned to it (F, H, W, 2), and whether the
    reference's speed is unknown (a flow_vis video: `flow_agreement_unknown_speed`)."""

    estimated: np.ndarray | torch.Tensor
    reference: np.ndarray | torch.Tensor
    relative: bool

    def agreement(self, device: str | torch.device | None = None) -> dict[str, float]:
        """The flow figures of the pair, computed in float64 on `device`."""
        agree = flow_agreement_unknown_speed if self.relative else flow_agreement
        return agree(self.estimated, self.reference, device=device)


@dataclass
class Prepared:
    """A video after the CPU part of scoring: its frames (for the GPU part), prompt, CPU metrics,
    and its flows when their agreement is left to the main process (`CpuMetrics.agree`); the
    arrays as `engine.shared` returns them (read them with np.asarray)."""

    frames: np.ndarray | torch.Tensor
    prompt: str | None
    metrics: dict[str, float]
    detections: dict = field(default_factory=dict)
    flows: FlowPair | None = None


class Scored(NamedTuple):
    """One scored job: the job as given, the video's (frames, height, width) and its result."""

    job: Any
    shape: tuple[int, int, int]
    result: dict


@dataclass(frozen=True)
class CpuMetrics:
    """The metrics computed on the CPU from the frames and the reference flow: seam, flow estimation
    and, with `agree`, flow agreement (else the flows are returned for the GPU). Holds no model, so
    it pickles into the engine's worker processes."""

    flow_method: str | None = DEFAULT_METHOD
    flow_options: dict = field(default_factory=dict)
    agree: bool = True

    def __call__(self, video: VideoInput) -> tuple[dict[str, float], FlowPair | None]:
        frames = np.asarray(video.frames)
        metrics: dict[str, float] = {}
        for compute, names in FRAME_METRICS.items():
            values = VIDEO_METRICS[names[0]].function()(frames)
            metrics.update({name: values[name] for name in names})
        if self.flow_method is None or video.reference_flow is None:
            return metrics, None
        pair = FlowPair(estimate_flow(frames, self.flow_method, **self.flow_options),
                        align_reference_flow(video.reference_flow, *frames.shape[:3]),
                        (video.detections.get("flow_encoding") or {}).get("magnitude") == "relative")
        if not self.agree:
            return metrics, pair
        return {**metrics, **pair.agreement()}, None


def as_video(job: VideoInput) -> VideoInput:
    """The loader of jobs that already are videos."""
    return job


def prepare_job(load: Callable[[Any], VideoInput], cpu_metrics: CpuMetrics, job: Any) -> Prepared:
    """The CPU part of one job, run ahead on the engine's executor: load (decode) it, CPU metrics."""
    video = load(job)
    metrics, flows = cpu_metrics(video)
    if flows is not None:
        flows = flows._replace(estimated=shared(flows.estimated), reference=shared(flows.reference))
    return Prepared(shared(np.asarray(video.frames)), video.prompt, metrics, video.detections, flows)


class VideoScorer:
    """Scores ERP videos; `clip=None` skips the CLIP metrics, `flow_method=None` the flow ones,
    `quality=None` the quality ones (`metrics.quality`; they need the CLIP).

    `flow_device`: where flow agreement (float64) runs; default the CLIP's device (CPU without
    CLIP). On CPU it runs in the worker processes beside the flow estimate; on a GPU the
    workers send both flows back and the main process computes it there (seconds on a CPU
    thread against milliseconds on a GPU: docs/performance.md), with the same figures within
    float64 rounding.

    `extractors`: more frame models (`metrics.engine.FeatureExtractor`) run in the same batched
    loop; their features come back per video under result["features"][name].
    """

    def __init__(self, clip: ClipModel | None, flow_method: str | None = DEFAULT_METHOD,
                 flow_options: dict | None = None,
                 extractors: Sequence[FeatureExtractor] = (), quality: QualityScorer | None = None,
                 flow_device: str | torch.device | None = None):
        if quality is not None and clip is None:
            raise ValueError("the quality metrics need the CLIP model (the aesthetic head reads its embeddings)")
        self.clip, self.quality = clip, quality
        self.flow_device = torch.device(flow_device) if flow_device is not None else (
            clip.device if clip is not None else torch.device("cpu"))
        self.cpu = CpuMetrics(flow_method, dict(flow_options or {}), agree=self.flow_device.type == "cpu")
        self.extra_extractors = list(extractors)
        self.extractors = (([ClipImages(clip)] if clip is not None else [])
                           + (list(quality.extractors) if quality is not None else []) + self.extra_extractors)
        self._texts: dict[str, tuple[torch.Tensor, bool]] = {}
        self._estimator_errors: dict[str, dict] = {}

    @property
    def flow_method(self) -> str | None:
        return self.cpu.flow_method

    @property
    def flow_options(self) -> dict:
        return dict(self.cpu.flow_options)

    def estimator_error(self, height: int, width: int) -> dict:
        """The estimator's error on a synthetic rigid rotation at this size (cached)."""
        key = f"{height}x{width}"
        if key not in self._estimator_errors:
            self._estimator_errors[key] = estimator_error(height, width, self.flow_method, **self.flow_options)
        return self._estimator_errors[key]

    @property
    def estimator_errors(self) -> dict[str, dict]:
        """Every estimator error measured so far, by size 'HxW'."""
        return dict(self._estimator_errors)

    def add_estimator_errors(self, errors: dict[str, dict]) -> None:
        """Take estimator errors another process measured (data-parallel scoring)."""
        for key, error in errors.items():
            self._estimator_errors.setdefault(key, error)

    def describe(self) -> dict[str, dict]:
        """Per metric: better direction, scale, the device it ran on, and the model or estimator."""
        info = {name: spec.describe() for name, spec in VIDEO_METRICS.items()}
        for names in FRAME_METRICS.values():
            for name in names:
                info[name]["device"] = "cpu"
        if self.clip is not None:
            for name in CLIP_METRICS:
                info[name].update(self.clip.describe())
            for name in ("clip_similarity_views", "frame_consistency_views"):
                info[name]["views"] = f"{len(VIEW_LONS)} views at lon {VIEW_LONS}, lat 0, FoV {VIEW_FOV_DEG:g} deg"
        if self.flow_method is not None:
            sizes = sorted(self._estimator_errors, key=lambda size: tuple(int(n) for n in size.split("x")))
            device = device_label(self.flow_options.get("device", "cpu")) if self.flow_method == "raft" else "cpu"
            for name in FLOW_METRICS:
                info[name]["device"] = device
                info[name]["agreement_device"] = f"{device_label(self.flow_device)} (float64)"
                info[name]["estimator"] = describe_estimator(self.flow_method, **self.flow_options)
                info[name]["estimator_error"] = {
                    size: {"flow_epe_deg": err["flow_epe_deg"], "flow_direction_agreement":
                           err["flow_direction_agreement"], "ground_truth": err["ground_truth"]}
                    for size, err in ((size, self._estimator_errors[size]) for size in sizes)}
            info["flow_direction_agreement"]["moving_pixels"] = f"reference moves >= {MIN_MOTION_PX} px"
        if self.quality is not None:
            for name, description in self.quality.describe().items():
                info[name].update(description)
        return info

    def score(self, frames: np.ndarray, prompt: str | None = None,
              reference_flow: np.ndarray | None = None) -> dict:
        """{"metrics": {name: value}, "absent": {name: why}, "prompt_truncated": bool | None} for one
        video (F, H, W, 3)."""
        [scored] = self.score_stream([VideoInput(np.asarray(frames), prompt, reference_flow)])
        return scored.result

    def score_stream(self, jobs: Iterable[Any], load: Callable[[Any], VideoInput] = as_video, workers: int = 1,
                     depth: int | None = None, executor: Executor | None = None) -> Iterator[Scored]:
        """Score jobs in order: `load(job)` (a picklable function when `workers` > 1) decodes a job
        into a `VideoInput`; it and the CPU metrics run ahead on `workers` processes (<= 1: one
        thread; or on `executor`, when the caller keeps one for several streams), at most `depth`
        jobs in flight; the frame models run batched over several videos (fixed-shape batches, so
        no score depends on the order, the grouping or the batch neighbours). Yields
        `Scored(job, (F, H, W), result)`."""
        depth = depth or max(2, 2 * workers)
        pending: list[tuple[Any, Prepared, dict[str, torch.Tensor]]] = []
        with nullcontext(executor) if executor is not None else cpu_executor(workers) as executor:
            for job, prepared in prefetch(partial(prepare_job, load, self.cpu), jobs, executor, depth):
                frames = np.asarray(prepared.frames)
                pending.append((job, prepared, {e.name: e.inputs(frames) for e in self.extractors}))
                if self._group_is_full(pending):
                    yield from self._finish(pending)
                    pending = []
            yield from self._finish(pending)

    def score_sharded(self, jobs: Sequence[Any], load: Callable[[Any], VideoInput] = as_video, workers: int = 1,
                      desc: str = "score") -> list[Scored] | None:
        """Data-parallel `score_stream`: under torchrun / accelerate launch rank r scores the jobs
        i % world == r, rank 0 gets every `Scored` in job order (and every rank's estimator errors);
        other ranks get None. Without a process group: all jobs, here. Scores do not depend on
        the world size (fixed-shape batches, per-video CPU metrics)."""
        rank, size = init_distributed()
        mine = shard(list(jobs), rank, size)
        label = desc if size == 1 else f"{desc} (rank {rank}/{size})"
        stream = self.score_stream((job for _, job in mine), load, workers)
        scored = [(index, item) for (index, _), item in zip(mine, tqdm(stream, total=len(mine), desc=label,
                                                                        leave=False))]
        gathered = gather_ordered(scored, self.estimator_errors)
        if gathered is None:
            return None
        merged, errors = gathered
        for part in errors:
            self.add_estimator_errors(part)
        return merged

    def _group_is_full(self, pending: list) -> bool:
        """True once every frame model has GROUP_BATCHES full batches of inputs waiting."""
        return all(sum(len(inputs[e.name]) for _, _, inputs in pending) >= GROUP_BATCHES * e.batch_size
                   for e in self.extractors)

    def _text(self, prompt: str) -> tuple[torch.Tensor, bool]:
        if prompt not in self._texts:
            self._texts[prompt] = self.clip.encode_texts([prompt])[0], self.clip.is_truncated(prompt)
        return self._texts[prompt]

    def _finish(self, pending: list) -> Iterator[Scored]:
        if not pending:
            return
        features = {e.name: extract_many(e, [inputs[e.name] for _, _, inputs in pending]) for e in self.extractors}
        for k, (job, prepared, _) in enumerate(pending):
            metrics, truncated = dict(prepared.metrics), None
            if prepared.flows is not None:
                metrics.update(prepared.flows.agreement(self.flow_device))
            if self.clip is not None:
                erp, views = ClipImages.split(features[ClipImages.name][k])
                metrics["frame_consistency_erp"] = frame_consistency(erp)
                metrics["frame_consistency_views"] = frame_consistency(views)
                if prepared.prompt:
                    text, truncated = self._text(prepared.prompt)
                    metrics["clip_similarity_erp"] = clip_similarity(erp, text)
                    metrics["clip_similarity_views"] = clip_similarity(views, text)
                if self.quality is not None:
                    metrics.update(self.quality.metrics({e.name: features[e.name][k] for e in self.quality.extractors},
                                                        views))
            shape = tuple(int(n) for n in prepared.frames.shape[:3])
            if "flow_scale" in metrics:
                self.estimator_error(*shape[1:])
            ordered = {name: float(metrics[name]) for name in METRIC_NAMES
                       if name in metrics and math.isfinite(metrics[name])}
            result = {"metrics": ordered, "absent": absent_reasons(metrics), "prompt_truncated": truncated,
                      "detections": prepared.detections}
            for factor in FLOW_FACTORS:  # the speed factors behind flow_epe_deg_scaled (None: undefined)
                if factor in metrics:
                    result[factor] = metrics[factor] if math.isfinite(metrics[factor]) else None
            if self.extra_extractors:
                result["features"] = {e.name: features[e.name][k] for e in self.extra_extractors}
            yield Scored(job, shape, result)


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

    Between frames a < b: the sum of the one-step flows a .. b-1 at the same pixel, dx wrapped
    (b = a + 1: flow a as it is). Exact for stride 1; for larger strides it neglects how the flow changes along the path
    (small for the slowly varying flows of camera motion). Last frame duplicated.
    """
    width = flow.shape[2]
    steps = [flow[a] if b == a + 1 else wrap_dx_sum(flow[a:b], width) for a, b in zip(indices[:-1], indices[1:])]
    if not steps:
        raise ValueError("need at least two frame indices")
    return np.stack(steps + steps[-1:]).astype(np.float32)


def wrap_dx_sum(flows: np.ndarray, width: int) -> np.ndarray:
    """Sum of flows (K, H, W, 2) over K with dx wrapped into [-W/2, W/2)."""
    total = flows.sum(axis=0)
    total[..., 0] = wrap_dx(total[..., 0], width)
    return total


def load_reference_flow(path: str | Path, kind: str = "auto", indices: list[int] | None = None,
                        roll_deg: float = 0.0, flow_method: str = DEFAULT_METHOD,
                        encoding: str = "auto", size: tuple[int, int] | None = None) -> np.ndarray:
    """The flow of `read_reference_flow`, without its note."""
    return read_reference_flow(path, kind, indices, roll_deg, flow_method, encoding, size)[0]


def read_reference_flow(path: str | Path, kind: str = "auto", indices: list[int] | None = None,
                        roll_deg: float = 0.0, flow_method: str = DEFAULT_METHOD,
                        encoding: str = "auto", size: tuple[int, int] | None = None) -> tuple[np.ndarray, dict]:
    """(reference flow, note) from a file: kind "numeric" (.npz with a `flow` array (F, H, W, 2)),
    "encoded" (a flow video in `encoding`: released, released-rgb, flowvis, or auto-detected;
    `encoded_flow`), or "source" (a video whose flow is re-estimated wrap-aware); "auto" picks
    numeric for .npz, else encoded. `indices` (increasing) select the source frames the scored
    video corresponds to (see `stride_flow`); `size` (height, width) resamples the flow to the
    scored frames (`resize_flow`); `roll_deg` turns it in longitude (e.g. the net latent
    rotation). The note says how it was read: {"encoding", "magnitude" ("pixels", or "relative"
    for a flow_vis video: speed unknown), "summary"} (+ "chosen" for videos).
    """
    from dvd360.data.video import read_frames

    path = Path(path)
    if kind == "auto":
        kind = "numeric" if path.suffix == ".npz" else "encoded"
    if kind not in REFERENCE_KINDS:
        raise ValueError(f"unknown reference flow kind {kind!r}; known: {', '.join(REFERENCE_KINDS)}")
    if indices is not None and list(indices) != sorted(set(indices)):
        raise ValueError(f"{path}: frame indices must increase, got {list(indices)[:8]}")
    note = {"encoding": kind, "magnitude": "pixels"}
    if kind == "source":
        flow = estimate_flow(read_frames(path, indices), flow_method)
        note["encoding"] = f"estimated ({flow_method})"
    elif kind == "encoded":
        flow, note = encoded_flow(path, indices, encoding, size)
    else:
        with np.load(path) as data:
            if "flow" not in data:
                raise ValueError(f"{path}: no 'flow' array (has {', '.join(data.files)})")
            flow = data["flow"].astype(np.float32)
        if indices is not None:
            if max(indices) >= flow.shape[0]:
                raise ValueError(f"{path}: has {flow.shape[0]} flow frames, indices reach {max(indices)}")
            flow = stride_flow(flow, list(indices))
    if size is not None:
        flow = resize_flow(flow, *size)
    note["summary"] = " ".join([note["encoding"], f"({note['chosen']})" if "chosen" in note else "",
                                f"magnitude {note['magnitude']}"]).replace("  ", " ")
    return (roll_longitude(flow, roll_deg, dim=2) if roll_deg % 360 else flow), note


def encoded_flow(path: str | Path, indices: list[int] | None = None, encoding: str = "auto",
                 size: tuple[int, int] | None = None) -> tuple[np.ndarray, dict]:
    """(flow, `flow_note`) of a flow video read as a stream: only the flow frames between the first
    and the last of `indices` (increasing; None: every frame, each its own step) are colour-decoded,
    summed per step as `stride_flow` does and resampled to `size` one step at a time, so memory
    holds one flow frame at the video's size and the steps at `size`. "auto" decides the encoding
    on those frames (`data.flow_encoding.choose_encoding`, a first pass) before decoding them."""
    from contextlib import closing

    from dvd360.data.flow_encoding import ENCODINGS, choose_encoding, decode_encoded, encoding_votes, flow_note
    from dvd360.data.video import stream_frames

    path = Path(path)
    if encoding not in ("auto", *ENCODINGS):
        raise ValueError(f"unknown flow encoding {encoding!r}; known: auto, {', '.join(ENCODINGS)}")
    if indices is not None and len(indices) < 2:
        raise ValueError(f"{path}: need at least two frame indices, got {list(indices)}")
    first, last = (0, None) if indices is None else (indices[0], indices[-1])

    def needed():  # (index, uint8 image) of the flow frames the steps sum, streamed
        count = 0
        _, stream = stream_frames(path)
        with closing(stream):
            for frame in stream:
                if last is not None and frame.index >= last:
                    return
                count = frame.index + 1
                if frame.index >= first:
                    yield frame.index, frame.rgb()
        if last is not None:
            raise ValueError(f"{path}: has {count} flow frames, the frames scored need {last}")

    chosen = encoding
    if encoding == "auto":
        votes = sum(encoding_votes(image, str(path)) for _, image in needed())
        chosen = choose_encoding(votes, str(path))
    bounds = list(indices[1:]) if indices is not None else None
    steps, total, start = [], None, first
    for index, image in needed():
        flow = decode_encoded(image, chosen)
        total = flow if total is None else total + flow
        if bounds is None or index + 1 == bounds[len(steps)]:
            if bounds is not None and index > start:
                total[..., 0] = wrap_dx(total[..., 0], total.shape[1])
            steps.append(total if size is None else resize_flow(total[None], *size)[0])
            total, start = None, index + 1
    if not steps:
        raise ValueError(f"{path}: no flow frame between the frames {first} and {last}")
    if indices is not None:
        steps.append(steps[-1])
    return np.stack(steps), flow_note(chosen, encoding == "auto")
