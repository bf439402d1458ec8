"""The scoring engine: how the work is batched and overlapped.

- Devices and fixed-shape batches: `dvd360.device` (every frame model runs `fixed_batches`, so
  scores do not change with the scoring order, the batch neighbours or the number of processes).
- Feature extractors (`FeatureExtractor`): a frame model plugged into the batched loop (CLIP
  today; I3D / Inception features for the set metrics): `inputs(frames)` turns one video into
  N model inputs on the device, `extract(batch)` maps a fixed-size batch to features (B, D).
- Prefetch: `prefetch(fn, jobs, executor, depth)` runs the CPU part of each job (decode, flow,
  seam) ahead of the GPU part on an executor made once per run (`cpu_executor`: one thread, or
  a pool of spawned processes), at most `depth` jobs in flight, results in job order; large
  arrays come back from the workers in shared memory (`shared`).
- Data parallel: `dvd360.distributed` (shard the jobs over ranks, gather them in order).
"""

from __future__ import annotations

import functools
import multiprocessing
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
    pipe, several times faster for a video's frames and two flows (160 MB at 16x512x1024;
    figures in docs/performance.md). Where /dev/shm is small (containers default to
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
