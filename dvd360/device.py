"""Where work runs: resolve a device setting, name a device in records, move frames to a device,
run a model in fixed-shape batches. Below every layer that computes (models, sampling, training, metrics), so
that none of them imports another for it.

- `resolve_device("auto")` is CUDA when present (under torchrun / accelerate, the process's own
  GPU, `LOCAL_RANK`); `device_label` names a device without its index, so a record does not
  depend on which GPU a rank got.
- `fixed_batches(fn, items, size)` runs a model on chunks of exactly `size` items (the last
  padded with zeros, dropped afterwards). Kernels are chosen by shape, so with one shape an
  item's result depends only on the item, not on its batch neighbours.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch


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


def frames_to_tensor(frames: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB frames (F, H, W, 3), uint8 or float in [0, 1] -> float32 tensor (F, 3, H, W) in [0, 1] on
    `device` (uint8 is moved first, then converted: a quarter of the bytes cross the bus)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (F, H, W, 3), got shape {frames.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2)
    return tensor.float() / 255.0 if frames.dtype == np.uint8 else tensor.float()
