"""The benchmarks' clock: wall time of a call, the GPU's queued work included."""

from __future__ import annotations

import time

import torch


class Clock:
    """Wall time of a block, CUDA work included: the device is synchronised before the clock
    starts and before it stops."""

    def __init__(self, device: torch.device):
        self.device = device

    def __call__(self, fn, *args, **kwargs) -> tuple[float, object]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start, result
