"""The reference set of real panorama videos the set metrics compare against.

- paper profile: a deterministic held-out split of WEB360 that training never sees: clip `id` is
  held out iff the first 8 hex digits of sha256("dvd360-reference-v1:" + id), read as an integer
  / 2^32, are below `HELD_OUT_FRACTION` (10%). It depends only on the id (not on the list or its
  order), so adding clips never moves another clip across the split. Training must skip the
  clips for which `is_reference_clip(id)` is true.
- tiny profile: every clip of the synthetic dataset (split "all").
- any folder of real panoramas (`dvd360-eval score --reference DIR`): every video in it.
Frames read per reference video: `frames` frames at `stride` from frame 0 (fewer when the
clip is shorter), the same sampling as the generated videos' conditions.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

from tqdm.auto import tqdm

from dvd360.data.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, probe_video

SPLIT_SALT = "dvd360-reference-v1"
HELD_OUT_FRACTION = 0.1
SPLITS = ("all", "held_out")


def is_reference_clip(clip_id: str, fraction: float = HELD_OUT_FRACTION) -> bool:
    """Whether a WEB360 clip belongs to the held-out reference split."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{clip_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32 < fraction


def reference_clip_ids(clip_ids: Iterable[str], split: str) -> list[str]:
    """The sorted ids of `split` ("all" or "held_out") among clip_ids."""
    if split not in SPLITS:
        raise ValueError(f"unknown reference split {split!r}; known: {', '.join(SPLITS)}")
    ids = sorted(clip_ids)
    return ids if split == "all" else [i for i in ids if is_reference_clip(i)]


def videos_in_folder(folder: str | Path) -> list[Path]:
    """The videos of a folder (files with a video suffix, and sub-folders of frames), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: reference folder does not exist")
    found = [p for p in sorted(folder.iterdir())
             if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
             or (p.is_dir() and any(q.suffix.lower() in IMAGE_SUFFIXES for q in p.iterdir()))]
    if len(found) < 2:
        raise ValueError(f"{folder}: a reference set needs at least 2 videos, found {len(found)}")
    return found


def frame_indices(path: str | Path, frames: int | None, stride: int) -> list[int] | None:
    """`frames` indices at `stride` from 0 within the video (None: every frame)."""
    if frames is None:
        return None
    count = probe_video(path).frames
    return list(range(0, count, stride))[:frames]


def reference_features(extractor, paths: list[Path], frames: int | None = None, stride: int = 1) -> list[dict]:
    """Per-video feature dicts of the reference videos (`SetFeatureExtractor`, cached)."""
    return [extractor.features_of_file(path, frame_indices(path, frames, stride))
            for path in tqdm(paths, desc="reference features", leave=False)]
