"""The gallery's content: for each prompt and seed, every method's video and its scores.

Videos are found where the score stage read them (`{generations}/{method}/{video}` of each
per-video record) and checked against the record's SHA-256, so the scores shown under a video
are the scores of that very file. Each distinct video is embedded once (base64 of its mp4
bytes, keyed by that SHA-256): the page plays it from a Blob URL, which stays same-origin when
the page is opened from disk (a video file beside the page would taint the WebGL viewer).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from dvd360.provenance import sha256_of


class ReportInputError(ValueError):
    """An input of the report is missing or does not match what was scored; the message names the file."""


@dataclass
class Media:
    """The embedded videos, base64 mp4 bytes by media id (the first 16 hex digits of the SHA-256)."""

    encoded: dict[str, str] = field(default_factory=dict)

    def add(self, path: Path, sha256: str) -> str:
        media_id = f"v{sha256[:16]}"
        if media_id not in self.encoded:
            self.encoded[media_id] = base64.b64encode(path.read_bytes()).decode("ascii")
        return media_id


def gallery_sets(scores: Mapping[str, Mapping], generations_dir: str | Path, media: Media,
                 rank: Mapping[str, Callable[[float], float]], max_sets: int | None = None) -> list[dict]:
    """[{"prompt_id", "seed", "prompt", "videos": [{"method", "path", "media", "sha256", "scores"}]}].

    Sets are sorted by (prompt_id, seed) and hold the methods in the order of `scores`; a method
    with no video for a set is absent from it. `scores` (per video) are [(metric, value, is_best)]
    in the order of `rank` (metric -> its `MetricSpec.rank_key`, smaller is better), is_best when
    the value is the set's best among two or more methods.
    """
    generations_dir = Path(generations_dir)
    sets: dict[tuple, dict] = {}
    for method, document in scores.items():
        for record in document.get("videos", []):
            key = (str(record.get("prompt_id")), record.get("seed"))
            entry = sets.setdefault(key, {"prompt_id": key[0], "seed": key[1], "prompt": record.get("prompt"),
                                          "videos": []})
            entry["videos"].append({"method": method, "record": record,
                                    "path": generations_dir / method / record["video"]})
    keys = sorted(sets, key=lambda k: (k[0], -1 if k[1] is None else k[1]))[:max_sets]
    chosen = [sets[k] for k in keys]
    for entry in chosen:  # validate every file before reading any into the page
        for video in entry["videos"]:
            _check_video(video["path"], video["record"].get("video_sha256"))
    for entry in chosen:
        for video in entry["videos"]:
            record = video.pop("record")
            video["sha256"] = record["video_sha256"]
            video["media"] = media.add(video["path"], record["video_sha256"])
            video["path"] = str(video["path"])
            video["size"] = f"{record.get('frames')} x {record.get('height')} x {record.get('width')}"
            video["values"] = record.get("metrics", {})
        _mark_scores(entry["videos"], rank)
    return chosen


def _check_video(path: Path, sha256: str | None) -> None:
    if not path.is_file():
        raise ReportInputError(f"{path}: video missing (it was scored; run `dvc repro generate` or point "
                               "--generations at the folder the score stage read)")
    if sha256 is None:
        raise ReportInputError(f"{path}: its score record has no video_sha256; score it again")
    if sha256_of(path) != sha256:
        raise ReportInputError(f"{path}: changed since it was scored (recorded sha256 {sha256[:12]}...); "
                               "run `dvc repro score`")


def _mark_scores(videos: list[dict], rank: Mapping[str, Callable[[float], float]]) -> None:
    for video in videos:
        video["scores"] = []
    for name, key in rank.items():
        values = [key(v["values"][name]) for v in videos if name in v["values"]]
        best = min(values) if len(values) > 1 else None
        for video in videos:
            if name in video["values"]:
                value = video["values"][name]
                video["scores"].append((name, value, best is not None and key(value) == best))
