"""Training clips from a WEB360 index: frame sampling, joint augmentation, the torch Dataset.

Sampling follows the release: a window of (length - 1) * stride + 1 frames (shrunk to the
video when shorter) at a random start, `length` evenly spaced indices in it, the same for
the video and its flow. Augmentation is joint: a horizontal roll by 0..W-1 columns (a yaw
rotation: flow values unchanged) and a horizontal flip that also negates dx (the release
flipped only the flow image, so its flipped flows pointed the wrong way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from dvd360.data.flow_encoding import decode_flow, encode_flow
from dvd360.data.flow_estimation import resize_flow
from dvd360.data.video import read_frames
from dvd360.data.web360 import FLOW_KEY, Clip, Web360Index, read_captions
from dvd360.geometry.rotation import wrap_dx


def sample_indices(num_frames: int, length: int = 16, stride: int = 4,
                   generator: torch.Generator | None = None) -> np.ndarray:
    """`length` indices spaced by about `stride`: the release's
    linspace(start, start + window - 1, length) with window = min(num_frames, (length-1)*stride + 1),
    so a short video gives a denser (possibly repeating) sample. The start is drawn uniformly
    from 0..num_frames-window with `generator`; without one it is 0.
    """
    if num_frames < 1 or length < 1 or stride < 1:
        raise ValueError(f"need num_frames, length, stride >= 1, got {num_frames}, {length}, {stride}")
    window = min(num_frames, (length - 1) * stride + 1)
    start = 0
    if generator is not None:
        start = int(torch.randint(0, num_frames - window + 1, (1,), generator=generator))
    return np.linspace(start, start + window - 1, length, dtype=int)


def roll(video: torch.Tensor, flow: torch.Tensor, shift: int,
         condition: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Roll video (F, C, H, W), its flow (F, H, W, 2) and condition (F, C, H, W) by `shift`
    columns together (content moves right). Flow values are unchanged by a yaw rotation."""
    return (torch.roll(video, shift, dims=-1), torch.roll(flow, shift, dims=-2),
            None if condition is None else torch.roll(condition, shift, dims=-1))


def flip(video: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror video (F, C, H, W) and flow (F, H, W, 2) left-right: column j -> W-1-j and
    dx -> -dx (wrapped into [-W/2, W/2)); dy is unchanged."""
    width = flow.shape[-2]
    mirrored = torch.flip(flow, dims=(-2,))
    dx = wrap_dx(-mirrored[..., 0], width)
    return torch.flip(video, dims=(-1,)), torch.stack([dx, mirrored[..., 1]], dim=-1)


def _resize_images(frames: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 (F, H, W, 3) -> float (F, 3, height, width) in [-1, 1], bilinear with antialiasing."""
    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1
    if images.shape[-2:] != (height, width):
        images = F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False,
                               antialias=True).clamp(-1, 1)
    return images


class Web360ClipDataset(torch.utils.data.Dataset):
    """Clips of a WEB360 index as training items.

    Item: `video` float (F, 3, H, W) in [-1, 1]; `condition` the flow visualisation
    (F, 3, H, W) in [-1, 1], i.e. the clip's flow video frames resized as the release did
    (re-encoded from the flipped numeric flow when flipped); `flow` float (F, H, W, 2)
    pixels at the training size (the npz if present, else decoded from the flow video, then
    resized with dx, dy rescaled); `caption`; `clip_id`; `indices` (F,) the sampled frames.
    `height`/`width` default to the stored size. With `augment`, the start frame, a roll by
    0..W-1 columns and a flip with probability 1/2 are drawn from torch's global generator
    (seeded per DataLoader worker, so seeding torch makes epochs reproducible); without
    it, frames start at 0 and nothing is rolled or flipped. `captions` ({id: caption} or a
    caption CSV path) replaces the index's captions, e.g. by 360 Text Fusion ones.
    """

    def __init__(self, index: Web360Index, length: int = 16, stride: int = 4,
                 height: int | None = None, width: int | None = None, augment: bool = True,
                 captions: Mapping[str, str] | str | Path | None = None):
        if not index.clips:
            raise ValueError(f"{index.root}: the index holds no clips")
        if any(clip.flow_video_path is None for clip in index.clips):
            raise ValueError(f"{index.root}: training needs flow videos for every clip")
        if captions is not None and not isinstance(captions, Mapping):
            captions = read_captions(captions)
        if captions is not None:
            missing = sorted(clip.id for clip in index.clips if not captions.get(clip.id))
            if missing:
                raise KeyError(f"no caption for {len(missing)} clip(s): {', '.join(missing[:10])}")
        self.clips: list[Clip] = list(index.clips)
        self.captions = {clip.id: (captions or {}).get(clip.id, clip.caption) for clip in self.clips}
        self.length, self.stride, self.augment = length, stride, augment
        self.height = height or self.clips[0].height
        self.width = width or self.clips[0].width

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, item: int) -> dict:
        clip = self.clips[item]
        indices = sample_indices(clip.num_frames, self.length, self.stride,
                                 torch.default_generator if self.augment else None)
        video = _resize_images(read_frames(clip.video_path, indices), self.height, self.width)
        flow_images = read_frames(clip.flow_video_path, indices)
        condition = _resize_images(flow_images, self.height, self.width)
        if clip.flow_npz_path is not None:
            with np.load(clip.flow_npz_path) as archive:
                numeric = archive[FLOW_KEY][indices].astype(np.float32)
        else:
            numeric = decode_flow(flow_images)
        flow = torch.from_numpy(resize_flow(numeric, self.height, self.width))
        if self.augment:
            shift = int(torch.randint(0, self.width, (1,)))
            video, flow, condition = roll(video, flow, shift, condition)
            if bool(torch.rand(()) < 0.5):
                video, flow = flip(video, flow)
                condition = _resize_images(encode_flow(flow.numpy()), self.height, self.width)
        return {"video": video, "condition": condition, "flow": flow, "caption": self.captions[clip.id],
                "clip_id": clip.id, "indices": torch.from_numpy(indices)}
