"""Validation videos of a training run: a small 360DVD sample with the adapter being trained.

The train stage hands `validation_video` to the trainer (`train(..., validate=)`), so the trainer,
and with it the training checkpoints' fingerprint, imports nothing of the sampler.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from dvd360.data.video import write_video
from dvd360.sampling.pipeline import Panorama360Pipeline


def validation_video(settings: Mapping[str, Any], components, adapter, condition: torch.Tensor, path: Path) -> Path:
    """Sample `settings` (TrainConfig.validation's fields: prompt, seed, steps, guidance, height, width,
    frames) with the adapter on `condition`, latent rotation and circular padding; write the mp4 at `path`."""
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        result = Panorama360Pipeline.from_components(components)(
            settings["prompt"], seed=settings["seed"], steps=settings["steps"], guidance=settings["guidance"],
            height=settings["height"], width=settings["width"], num_frames=settings["frames"], condition=condition,
            adapter=adapter, latent_rotation=True, circular_padding=True)
    return write_video(path, result.frames, fps=8)
