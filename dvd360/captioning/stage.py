"""Caption a WEB360 index: 360 Text Fusion captions and direct whole-ERP captions of the first frame.

For every clip: read frame 0, project the four views, caption them, fuse the captions
(`fused`), and caption the whole ERP frame directly (`erp`, the no-360TF ablation's captions).
Each finished clip is appended to a JSON-lines progress file at once, keyed on its content
fingerprint, so an interrupted run resumes where it stopped; a clip that fails is recorded with its error and the others go on.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from tqdm import tqdm

from dvd360.atomic import write_text
from dvd360.captioning.captioners import Captioner
from dvd360.captioning.views import VIEW_LONGITUDES, first_frame_views
from dvd360.data.video import read_frames
from dvd360.data.web360 import write_captions
from dvd360.fingerprint import fingerprint


@dataclass
class CaptionResult:
    """Per-clip records (id, views, fused, erp) of the clips that worked, and the failures."""

    records: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    resumed: int = 0


def caption_clip(video_path: str | Path, clip_id: str, captioner: Captioner,
                 fuse: Callable[[Sequence[str]], str], view_size: int) -> dict:
    """The caption record of one clip: four view captions, their fusion and the direct ERP caption."""
    frame = read_frames(video_path, indices=[0])[0]
    views = first_frame_views(frame, size=view_size)
    view_captions = captioner.caption(views, clip_id)
    erp_caption = captioner.caption([frame], clip_id)[0]
    return {"videoid": clip_id, "view_longitudes": list(VIEW_LONGITUDES), "views": view_captions,
            "fused": fuse(view_captions), "erp": erp_caption}


def caption_settings(captioner: Captioner, fuser: str, view_size: int) -> dict:
    """The settings that key every clip's captions: the captioner's name and weights' content,
    the fuser and the view size (px)."""
    return {"captioner": captioner.name, "captioner_weights_sha256": captioner.weights_sha256, "fuser": fuser,
            "view_size": view_size}


# The code that shapes a caption record (with its transitive dvd360 imports).
CAPTION_CODE = ("dvd360.captioning",)


def clip_fingerprint(settings: Mapping, inputs: Mapping[str, Path | None], clip) -> str:
    """Content fingerprint of one clip's captions: the settings, the shared inputs (e.g. the
    captioner's scene metadata), the clip's video bytes and the captioning code."""
    return fingerprint({**settings, "videoid": clip.id}, {**inputs, "video": clip.video_path}, CAPTION_CODE)


def _load_progress(path: Path) -> dict[str, dict]:
    """{fingerprint: entry} of the progress file's complete lines."""
    entries: dict[str, dict] = {}
    if not path.is_file():
        return entries
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by an interruption
            continue
        entries[entry["fingerprint"]] = entry
    return entries


def _progress_line(entry: dict) -> str:
    return json.dumps(entry, ensure_ascii=False) + "\n"


def caption_clips(clips: Iterable, captioner: Captioner, fuse: Callable[[Sequence[str]], str],
                  progress_path: str | Path, settings: Mapping, view_size: int = 384,
                  inputs: Mapping[str, Path | None] | None = None) -> CaptionResult:
    """Caption `clips` (objects with `id` and `video_path`), resuming from `progress_path`.

    A clip's progress entry is reused only under its current content fingerprint
    (`clip_fingerprint`); entries of other fingerprints (stale data, settings or code) are
    dropped from the file before any new one is appended, so old and new never mix.
    """
    progress_path = Path(progress_path)
    clips = list(clips)
    keys = {clip.id: clip_fingerprint(settings, inputs or {}, clip) for clip in clips}
    entries = _load_progress(progress_path)
    done = {entry["record"]["videoid"]: entry["record"] for key, entry in entries.items()
            if keys.get(entry["record"]["videoid"]) == key}
    write_text(progress_path, "".join(_progress_line({"fingerprint": keys[i], "record": r}) for i, r in done.items()))
    result = CaptionResult()
    with progress_path.open("a", encoding="utf-8") as log:
        for clip in tqdm(clips, desc="caption", unit="clip"):
            if clip.id in done:
                result.records.append(done[clip.id])
                result.resumed += 1
                continue
            try:
                record = caption_clip(clip.video_path, clip.id, captioner, fuse, view_size)
            except Exception as error:  # report the clip, keep going with the others
                result.failures.append({"videoid": clip.id, "video": str(clip.video_path),
                                        "error": f"{type(error).__name__}: {error}"})
                continue
            log.write(_progress_line({"fingerprint": keys[clip.id], "record": record}))
            log.flush()
            os.fsync(log.fileno())
            result.records.append(record)
    return result


def write_caption_csvs(records: Sequence[dict], out_dir: str | Path) -> dict[str, Path]:
    """`fused.csv` (360 Text Fusion) and `erp.csv` (direct ERP captions), WEB360 format, atomically."""
    out_dir = Path(out_dir)
    return {column: write_captions(out_dir / f"{column}.csv", {r["videoid"]: r[column] for r in records})
            for column in ("fused", "erp")}
