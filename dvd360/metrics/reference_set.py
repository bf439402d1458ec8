"""The reference set of real panorama videos the set metrics compare against.

- paper profile: WEB360's held-out split, which training never sees (`dvd360.data.reference_split`).
- tiny profile: every clip of the synthetic dataset (split "all").
- any folder of real panoramas (`dvd360-eval score --reference DIR`): every video in it.
Frames read per reference video: `frames` frames at `stride` from frame 0 (fewer when the
clip is shorter), the same sampling as the generated videos' conditions, at the scoring
protocol's working size (`reference_protocol`).
"""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from dvd360.data.protocol import ScoringProtocol
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


def reference_protocol(frames: int | None, stride: int, protocol: ScoringProtocol = ScoringProtocol()) -> ScoringProtocol:
    """How reference videos are read: `frames` frames at `stride` from frame 0 (None: every frame),
    at the working size of the scoring `protocol`, every frame kept (`data.protocol`)."""
    return ScoringProtocol(frames=frames, sample=f"stride:{stride}", size=protocol.size)


def reference_features(extractor, paths: list[Path], protocol: ScoringProtocol) -> list[dict]:
    """Per-video feature dicts of the reference videos read by `protocol` (`SetFeatureExtractor`, cached)."""
    return [extractor.features_of_file(path, protocol) for path in tqdm(paths, desc="reference features", leave=False)]
