"""Small WEB360 folders built from known content, for the data-layer tests (fast: no renderer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dvd360.data.web360 import write_captions, write_clip


def panning_clip(frames: int = 6, height: int = 32, width: int = 64, speed: int = 2,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random panorama yawing right by `speed` px per frame, and its exact flow
    (dx = speed, dy = 0 everywhere; the last flow frame duplicates the previous one)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 215, size=(height // 8, width // 8, 3))
    image = np.kron(coarse, np.ones((8, 8, 1)))
    # a smooth blur across the block edges, circular in width
    for axis in (0, 1):
        image = (image + np.roll(image, 1, axis) + np.roll(image, -1, axis)) / 3
    video = np.stack([np.roll(image, speed * t, axis=1) for t in range(frames)]).round().astype(np.uint8)
    flow = np.zeros((frames, height, width, 2), np.float32)
    flow[..., 0] = speed
    return video, flow


def make_web360(root: Path, clips: int = 3, frames: int = 6, height: int = 32, width: int = 64) -> Path:
    """A valid WEB360 folder: `clips` panning clips (speeds 1, 2, ...), captions.csv."""
    captions = {}
    for number in range(clips):
        clip_id = f"{number:03d}"
        video, flow = panning_clip(frames, height, width, speed=number + 1, seed=number)
        captions[clip_id] = f"a panorama panning right at {number + 1} pixels per frame"
        write_clip(root, clip_id, video, flow, captions[clip_id], fps=8)
    write_captions(root / "captions.csv", captions)
    return root
