"""The scoring engine: where the work runs, how it is batched, and how it is spread over processes.

- Devices: `resolve_device("auto")` is CUDA when present (under torchrun / accelerate, the
  process's own GPU, `LOCAL_RANK`); `device_label` names a device without its index, so the
  record does not depend on which GPU a rank got.
- Fixed-shape batches: `fixed_batches(fn, items, size)` runs a model on chunks of exactly
  `size` items (the last padded with zeros, dropped afterwards). Kernels are chosen by shape, so
  with one shape an item's result depends only on the item: scores do not change with the
  scoring order, with which videos share a forward pass, or with the number of processes.
- Feature extractors (`FeatureExtractor`): a frame model plugged into the batched loop (CLIP
  today; I3D / Inception features for the set metrics): `inputs(frames)` turns one video into
  N model inputs on the device, `extract(batch)` maps a fixed-size batch to features (B, D).
- Prefetch: `prefetch(fn, jobs, executor, depth)` runs the CPU part of each job (decode, flow,
  seam) ahead of the GPU part on an executor made once per run (`cpu_executor`: one thread, or
  a pool of spawned processes), at most `depth` jobs in flight, results in job order; large
  arrays come back from the workers in shared memory (`shared`).
- Data parallel (`torch.distributed`, started by torchrun or accelerate launch): `shard` gives
  rank r the jobs i with i % world == r, `gather_ordered` brings every rank's results to rank 0
  in the single-process order. Objects travel over gloo (CPU) even when the compute runs on
  GPUs: they are Python records on the host, NCCL would only copy them to a GPU and back.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import shutil
from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence, TypeVar

import numpy as np
import torch
import torch.multiprocessing  # noqa: F401 (registers the shared-memory pickling of tensors, see `shared`)

Job = TypeVar("Job")
_END = object()


def resolve_device(spec: str | torch.device) -> torch.device:
    """'auto' -> CUDA when available, else CPU; a bare 'cuda' under torchrun -> cuda:LOCAL_RANK."""
    text = str(spec)
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cuda":
        text = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    device = torch.device(text)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r}: CUDA is not available here (use cpu or auto)")
    return device


def device_label(device: str | torch.device) -> str:
    """'cpu' or 'cuda (NVIDIA H200)': the kind of device, not its index."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def fixed_batches(fn: Callable[[torch.Tensor], torch.Tensor], items: torch.Tensor, size: int) -> torch.Tensor:
    """fn over `items` (N, ...) in chunks of exactly `size` (zero-padded), results (N, ...) on the CPU."""
    out = []
    for start in range(0, items.shape[0], size):
        chunk = items[start:start + size]
        count = chunk.shape[0]
        if count < size:
            chunk = torch.cat([chunk, chunk.new_zeros((size - count, *chunk.shape[1:]))])
        out.append(fn(chunk)[:count].cpu())
    if not out:
        raise ValueError("no items to run")
    return torch.cat(out)


class FeatureExtractor(Protocol):
    """A frame model run batched over many videos (see module doc)."""

    name: str  # key of its features in a scoring result, e.g. "clip_image"
    batch_size: int  # inputs per forward pass

    def content_key(self) -> dict:
        """What its features depend on (model, weights, preprocessing, precision, batch): part of cache keys."""

    def inputs(self, frames: Any) -> torch.Tensor:
        """One video (F, H, W, 3) -> its model inputs (N, ...) on the extractor's device."""

    def extract(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inputs (N, ...) of any number of videos -> features (N, D) float32 on the CPU, N arbitrary
        (the extractor runs fixed-shape batches itself, e.g. with `fixed_batches`)."""


def extract_many(extractor: FeatureExtractor, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """One `extract` call per input shape over the inputs of several videos (videos of one size
    share forward passes); the features split back per video, in the given order."""
    out: list[torch.Tensor | None] = [None] * len(inputs)
    by_shape: dict[tuple, list[int]] = {}
    for index, x in enumerate(inputs):
        by_shape.setdefault(tuple(x.shape[1:]), []).append(index)
    for indices in by_shape.values():
        features = extractor.extract(torch.cat([inputs[i] for i in indices]))
        for i, part in zip(indices, features.split([len(inputs[i]) for i in indices])):
            out[i] = part
    return out


def _one_thread_each() -> None:
    """A worker computes one video at a time on one core: one torch thread, one OpenCV thread."""
    torch.set_num_threads(1)
    try:
        import cv2
    except ImportError:
        return
    cv2.setNumThreads(1)


@contextmanager
def cpu_executor(workers: int) -> Iterator[Executor]:
    """The executor for the CPU part of scoring, made once per run: with `workers` <= 1 one
    thread (decoding overlaps the GPU work), else that many spawned processes with one torch and
    one OpenCV thread each (scikit-image's flow holds the GIL, so threads would not run it in
    parallel; spawn, not fork: the parent holds torch threads a forked child must not inherit)."""
    if workers <= 1:
        executor: Executor = ThreadPoolExecutor(1, thread_name_prefix="dvd360-prefetch")
    else:
        executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_one_thread_each)
    with executor:
        yield executor


SHARED_MEMORY = "/dev/shm"
SHARED_MEMORY_ROOM = 8 << 30  # bytes free there before arrays travel through it: 32 jobs in flight at 160 MB


@functools.cache
def _shared_memory_has_room() -> bool:
    try:
        return shutil.disk_usage(SHARED_MEMORY).free >= SHARED_MEMORY_ROOM
    except OSError:
        return False


def shared(array: np.ndarray) -> torch.Tensor | np.ndarray:
    """`array` as a CPU tensor (no copy), which a `cpu_executor` worker returns through shared
    memory (torch.multiprocessing's pickling, as DataLoader workers do) instead of the result
    pipe: measured on 2 cores, a video's frames and two flows (160 MB at 16x512x1024) take
    0.80 s through the pipe, 0.21 s this way. Where /dev/shm is small (containers default to
    64 MB) the array itself is returned. Callers read either with np.asarray or torch.as_tensor."""
    return torch.from_numpy(np.ascontiguousarray(array)) if _shared_memory_has_room() else array


class JobError(Exception):
    """A job whose CPU part failed; `job` says which, the cause is chained."""

    def __init__(self, job: Any, error: BaseException):
        super().__init__(f"{error}")
        self.job, self.error = job, error


def prefetch(fn: Callable[[Job], Any], jobs: Iterable[Job], executor: Executor, depth: int) -> Iterator[tuple[Job, Any]]:
    """(job, fn(job)) in job order; at most `depth` jobs are submitted and not yet consumed, so
    they run while the caller works on the one yielded."""
    pending: deque = deque()
    jobs = iter(jobs)

    def top_up() -> None:
        while len(pending) < max(1, depth):
            job = next(jobs, _END)
            if job is _END:
                return
            pending.append((job, executor.submit(fn, job)))

    top_up()
    while pending:
        job, future = pending[0]
        try:
            result = future.result()
        except Exception as error:
            for _, later in pending:
                later.cancel()
            raise JobError(job, error) from error
        pending.popleft()
        top_up()
        yield job, result


def world() -> tuple[int, int]:
    """(rank, world size) of this process: from torch.distributed when initialised, else from the
    environment torchrun / accelerate launch set (RANK, WORLD_SIZE), else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_distributed() -> tuple[int, int]:
    """Join the process group torchrun / accelerate launch set up (gloo: see module doc); (rank, world)."""
    import torch.distributed as dist

    rank, size = world()
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return world()


def shard(jobs: Sequence[Job], rank: int, size: int) -> list[tuple[int, Job]]:
    """(index, job) of the jobs this rank scores: index i in the sorted job list with i % size == rank."""
    return [(i, job) for i, job in enumerate(jobs) if i % size == rank]


def gather_ordered(indexed: list[tuple[int, Any]], extra: Any = None) -> tuple[list[Any], list[Any]] | None:
    """On rank 0: (every rank's results ordered by job index, every rank's `extra` by rank); None
    elsewhere. Without a process group: this process's own results."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [result for _, result in sorted(indexed, key=lambda pair: pair[0])], [extra]
    parts = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object((indexed, extra), parts, dst=0)
    if dist.get_rank() != 0:
        return None
    merged = sorted((pair for part_indexed, _ in parts for pair in part_indexed), key=lambda pair: pair[0])
    return [result for _, result in merged], [part_extra for _, part_extra in parts]
