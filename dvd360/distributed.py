"""Data parallelism over processes (`torch.distributed`, started by torchrun or accelerate launch):
`shard` gives rank r the jobs i with i % world == r, `gather_ordered` brings every rank's results
to rank 0 in the single-process order, so a sharded run writes the bytes of one process. Objects
travel over gloo (CPU) even when the compute runs on GPUs: they are Python records on the host,
NCCL would only copy them to a GPU and back.
"""

from __future__ import annotations

import os
from typing import Any, Sequence, TypeVar

Job = TypeVar("Job")


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
