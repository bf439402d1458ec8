"""Wrap-aware optical flow of an ERP video: OpenCV's DIS (the default), scikit-image (iLK or
TV-L1) or torchvision's RAFT.

An ERP frame is periodic in width: a pixel leaving through the right edge comes back on the
left. Off-the-shelf estimators treat the edges as borders, so near the seam they lose the
motion. We pad each frame circularly in width by `pad` columns on both sides (so the
estimator sees the content across the seam), estimate, crop back to W columns, and wrap dx
into [-W/2, W/2). Height is not padded (the poles are borders on the sphere too).

Convention (contracts.md): flow[t] = (dx, dy) in pixels from frame t to frame t+1, float32
(F, H, W, 2); the last flow frame duplicates the previous one. scikit-image returns the field
that registers `moving` (frame t+1) onto `reference` (frame t), i.e.
frame_t(x) ~ frame_{t+1}(x + flow(x)): exactly the forward flow t -> t+1; OpenCV's
`DISOpticalFlow.calc(I0, I1)` returns the same forward field, on 8-bit grey frames.

Why DIS (preset medium) by default: in `python -m dvd360.benchmarks.flow` it is more accurate
than iLK on the rigid rotation of `rigid_rotation_clip` and on `synthetic.render_clip` worlds with
moving objects, about as accurate as TV-L1 on rigid rotation (TV-L1 is better on the worlds), and
over 20x faster than either; preset fast and finer settings were less accurate on one or the
other (figures: docs/performance.md). Each pair runs on one OpenCV thread (set around the
call, so the caller's setting never matters; tests check) and pairs spread over processes like
the others.

RAFT (`method="raft"`) needs its weights as a local file (`weights=PATH`, torchvision's
`raft_large` state dict, e.g. `raft_large_C_T_SKHT_V2-ff5fadd5.pth`): nothing is downloaded.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from itertools import repeat
from pathlib import Path

import cv2
import numpy as np
from skimage.color import rgb2gray
from skimage.registration import optical_flow_ilk, optical_flow_tvl1
from tqdm.auto import tqdm

from dvd360.geometry.rotation import wrap_dx

METHODS = ("dis", "ilk", "tvl1", "raft")
DEFAULT_METHOD = "dis"
LIBRARIES = {"dis": f"OpenCV {cv2.__version__}", "ilk": "scikit-image", "tvl1": "scikit-image",
             "raft": "torchvision"}
DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
# DIS settings other than the preset, each an OpenCV setter: finest_scale -> setFinestScale, ...
DIS_SETTINGS = ("finest_scale", "patch_size", "patch_stride", "gradient_descent_iterations",
                "variational_refinement_iterations", "variational_refinement_alpha",
                "variational_refinement_delta", "variational_refinement_gamma", "use_mean_normalization",
                "use_spatial_propagation")
# DIS preset medium (chosen by measurement, module docstring); iLK window radius 7 and 10 warps
# are scikit-image's defaults; TV-L1 keeps its defaults too.
RAFT_MIN_SIDE = 128  # RAFT's correlation pyramid needs feature maps of at least 16 x 16
DEFAULT_OPTIONS = {"dis": {"preset": "medium"}, "ilk": {"radius": 7, "num_warp": 10}, "tvl1": {},
                   "raft": {"device": "cpu"}}


def default_pad(width: int) -> int:
    """Circular padding per side: W/8 columns (45 degrees of longitude), at least 8."""
    return max(8, width // 8)


def settings_of(method: str = DEFAULT_METHOD, **options) -> dict:
    """The estimator's full settings: its defaults updated by `options`, without `workers`
    (how many processes changes the speed, never the flow). Checked: unknown DIS settings and
    presets are refused here, before any compute."""
    if method not in METHODS:
        raise ValueError(f"unknown flow method {method!r}; known: {', '.join(METHODS)}")
    settings = {**DEFAULT_OPTIONS[method], **options}
    settings.pop("workers", None)
    if method == "dis":
        unknown = sorted(set(settings) - {"preset", *DIS_SETTINGS})
        if unknown:
            raise ValueError(f"unknown DIS option(s) {', '.join(unknown)}; known: preset, {', '.join(DIS_SETTINGS)}")
        if settings["preset"] not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {settings['preset']!r}; known: {', '.join(DIS_PRESETS)}")
    return settings


def describe(method: str = DEFAULT_METHOD, **options) -> str:
    """A one-line name of the estimator and its settings, recorded with every flow score."""
    text = ", ".join(f"{k}={v}" for k, v in sorted(settings_of(method, **options).items()))
    return f"{LIBRARIES[method]} {method} ({text}), circular width padding W/8, dx wrapped"


@contextmanager
def opencv_threads(count: int):
    """OpenCV's thread count set to `count` inside the block, restored after."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def _dis(settings: dict):
    """A DIS estimator: the preset, then every other setting through its OpenCV setter."""
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[settings["preset"]])
    for name in DIS_SETTINGS:
        if name in settings:
            getattr(dis, "set" + "".join(part.capitalize() for part in name.split("_")))(settings[name])
    return dis


def _estimate_pair(reference: np.ndarray, moving: np.ndarray, method: str, options: dict) -> np.ndarray:
    """(dx, dy) float32 (H, W, 2) from `reference` to `moving` (grey; uint8 for DIS, float else)."""
    if method == "dis":
        with opencv_threads(1):  # one pair, one thread: pairs run in parallel over processes
            return _dis(options).calc(reference, moving, None)
    estimator = optical_flow_ilk if method == "ilk" else optical_flow_tvl1
    dy, dx = estimator(reference, moving, dtype=np.float32, **options)
    return np.stack([dx, dy], axis=-1)


def _load_raft(weights: str | None, device: str):
    """torchvision's RAFT-large with weights from a local file; a clear error when absent."""
    import torch
    from torchvision.models.optical_flow import raft_large

    if not weights or not Path(weights).is_file():
        raise FileNotFoundError(
            f"RAFT weights not found at {weights!r}: pass weights=PATH to a local copy of "
            "torchvision's raft_large state dict (Raft_Large_Weights.C_T_SKHT_V2, file "
            "raft_large_C_T_SKHT_V2-ff5fadd5.pth), or use method='ilk' or 'tvl1'")
    model = raft_large(weights=None, progress=False)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval().to(device)


def _raft_flows(frames: np.ndarray, pad: int, weights: str | None, device: str,
                progress: bool) -> np.ndarray:
    """RAFT flows (F-1, H, W + 2 pad, 2) of circularly padded frames, as (dx, dy) pixels."""
    import torch

    model = _load_raft(weights, device)
    video = np.asarray(frames, dtype=np.float32)
    video = video / 255.0 if np.asarray(frames).dtype == np.uint8 else video
    video = np.pad(video, ((0, 0), (0, 0), (pad, pad), (0, 0)), mode="wrap")
    height, width = video.shape[1:3]
    tensor = torch.from_numpy(video).permute(0, 3, 1, 2) * 2 - 1  # RAFT expects [-1, 1]
    # RAFT needs sides divisible by 8 and at least 128: replicate rows at the bottom, columns
    # at the right (the flow is cropped back to the padded frame's size afterwards).
    extra_h, extra_w = (max(RAFT_MIN_SIDE, side + -side % 8) - side for side in (height, width))
    tensor = torch.nn.functional.pad(tensor, (0, extra_w, 0, extra_h), mode="replicate")
    flows = []
    with torch.inference_mode():
        for t in tqdm(range(len(tensor) - 1), desc="flow (raft)", disable=not progress, leave=False):
            pair = tensor[t:t + 2].to(device)
            flows.append(model(pair[:1], pair[1:])[-1][0, :, :height, :width].permute(1, 2, 0).cpu())
    return torch.stack(flows).numpy()


def flow_pool(workers: int = 0) -> ProcessPoolExecutor:
    """A process pool for `estimate_flow(..., pool=...)`: create it once per run and reuse it for
    every video (`workers` processes, 0: every core). Spawned, not forked: the caller may hold
    torch threads, which a forked child must not inherit."""
    workers = (os.cpu_count() or 1) if workers == 0 else workers
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def _pair_flows(gray: np.ndarray, method: str, settings: dict, workers: int, pool: Executor | None,
                progress: bool):
    """(dx, dy) of each consecutive pair, in order; one pair runs on one core, so the pairs go to
    `pool` when given, else to `workers` > 1 new processes (0: every core). The result does not
    depend on either."""
    pairs = len(gray) - 1
    bar = dict(total=pairs, desc=f"flow ({method})", disable=not progress, leave=False)
    if pool is not None:
        yield from tqdm(pool.map(_estimate_pair, gray[:-1], gray[1:], repeat(method), repeat(settings)), **bar)
        return
    workers = min((os.cpu_count() or 1) if workers == 0 else workers, pairs)
    if workers <= 1:
        yield from tqdm((_estimate_pair(gray[t], gray[t + 1], method, settings) for t in range(pairs)), **bar)
        return
    with flow_pool(workers) as own:
        yield from _pair_flows(gray, method, settings, workers, own, progress)


def _grey(frames: np.ndarray, method: str) -> np.ndarray:
    """Grey frames (F, H, W): uint8 for DIS (OpenCV's BT.601 luma), float32 in [0, 1] otherwise."""
    if method != "dis":
        return rgb2gray(frames).astype(np.float32)  # uint8 is scaled to [0, 1]
    if frames.dtype != np.uint8:
        frames = (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)
    return np.stack([cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY) for frame in frames])


def estimate_flow(frames: np.ndarray, method: str = DEFAULT_METHOD, *, pad: int | None = None,
                  progress: bool = False, workers: int = 1, pool: Executor | None = None,
                  **options) -> np.ndarray:
    """Wrap-aware forward flow (F, H, W, 2) float32 of an RGB ERP video (F >= 2, uint8 or [0, 1]).

    `options` go to the estimator (e.g. preset="medium" for DIS, radius=7 for iLK; weights=PATH
    and device for RAFT); the frame pairs of DIS / iLK / TV-L1 run on `pool` (an executor made
    once per run, e.g. `flow_pool()`) or, without one, on `workers` new processes (0: every core).
    """
    settings = settings_of(method, **options)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 2:
        raise ValueError(f"frames must be (F >= 2, H, W, 3), got shape {frames.shape}")
    count, height, width, _ = frames.shape
    pad = default_pad(width) if pad is None else pad
    flow = np.empty((count, height, width, 2), dtype=np.float32)
    if method == "raft":
        raw = _raft_flows(frames, pad, settings.get("weights"), settings["device"], progress)
        flow[:-1, ..., 0] = wrap_dx(raw[:, :, pad:pad + width, 0], width)
        flow[:-1, ..., 1] = raw[:, :, pad:pad + width, 1]
        flow[-1] = flow[-2]
        return flow
    gray = np.pad(_grey(frames, method), ((0, 0), (0, 0), (pad, pad)), mode="wrap")
    for t, pair in enumerate(_pair_flows(gray, method, settings, workers, pool, progress)):
        flow[t, ..., 0] = wrap_dx(pair[:, pad:pad + width, 0], width)
        flow[t, ..., 1] = pair[:, pad:pad + width, 1]
    flow[-1] = flow[-2]
    return flow


def _linear_taps(src: int, dst: int, wrap: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (i0, i1) and weight of i1 for linear resampling of pixel centres."""
    x = (np.arange(dst) + 0.5) * src / dst - 0.5
    i0 = np.floor(x).astype(np.int64)
    frac = (x - i0).astype(np.float32)
    i1 = i0 + 1
    if wrap:
        return i0 % src, i1 % src, frac
    return np.clip(i0, 0, src - 1), np.clip(i1, 0, src - 1), frac


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resample a flow field (F, H, W, 2) to (F, height, width, 2), rescaling dx, dy in pixels.

    Linear interpolation between pixel centres, circular in width (the ERP wraps) and clamped
    in height. dx is re-wrapped into [-width/2, width/2).
    """
    flow = np.asarray(flow, dtype=np.float32)
    src_h, src_w = flow.shape[1:3]
    if (src_h, src_w) == (height, width):
        return flow
    r0, r1, fr = _linear_taps(src_h, height, wrap=False)
    c0, c1, fc = _linear_taps(src_w, width, wrap=True)
    rows = flow[:, r0] * (1 - fr)[None, :, None, None] + flow[:, r1] * fr[None, :, None, None]
    out = rows[:, :, c0] * (1 - fc)[None, None, :, None] + rows[:, :, c1] * fc[None, None, :, None]
    out[..., 0] = wrap_dx(out[..., 0] * (width / src_w), width)
    out[..., 1] *= height / src_h
    return out.astype(np.float32)
