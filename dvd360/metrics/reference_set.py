"""The reference set of real panorama videos the set metrics compare against.

- paper profile: WEB360's held-out split, which training never sees (`dvd360.data.reference_split`).
- tiny profile: every clip of the synthetic dataset (split "all").
- any folder of real panoramas (`dvd360-eval score --reference DIR`): every video in it.
Frames read per reference video: `frames` frames at `stride` from frame 0 (fewer when the
clip is shorter), the same sampling as the generated videos' conditions.
"""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from dvd360.data.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, probe_video


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
