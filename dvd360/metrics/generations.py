"""Score the generate stage's videos: `data/generations/{method}/{prompt_id}-s{seed}.mp4` + `.json`.

The record JSON beside each video gives the prompt, prompt_id, seed and the prompt's reference
motion (`reference_motion`: clip id and source frame indices; every method of a prompt is scored
against the same motion, so methods without a motion condition show the chance level); the
reference flow comes from that clip in the prepared dataset (its numeric `.npz` flow when
present, else its flow video decoded), at the source frames the condition used, turned by the
net latent rotation when the condition was rotated with the latent (the output video is the
un-rotated sample turned by that angle). Records are reused when the video's SHA-256 and the
scorer settings are unchanged, so an interrupted stage resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from tqdm.auto import tqdm

from dvd360.data.video import read_frames
from dvd360.metrics.scoring import METRIC_NAMES, VideoScorer, load_reference_flow
from dvd360.provenance import sha256_of
from dvd360.stats import summarize

TINY_NOTE = ("tiny profile: random-weight models; these numbers exercise the pipeline and say "
             "nothing about quality")


def condition_of(record: Mapping[str, Any]) -> tuple[str | None, list[int] | None, float]:
    """(reference clip id, its source frame indices or None, longitude roll in degrees).

    The roll is the net latent rotation when the condition was rotated with the latent.
    """
    reference = record.get("reference_motion") or {}
    clip_id, indices = reference.get("clip_id"), reference.get("frame_indices")
    rotated = record.get("rotate_condition") is True
    roll = float(record.get("latent_rotation_net_degrees") or 0.0) if rotated else 0.0
    return (None if clip_id is None else str(clip_id)), (None if indices is None else [int(i) for i in indices]), roll


def reference_for(record: Mapping[str, Any], clips: Mapping[str, Any], num_frames: int,
                  flow_method: str = "ilk") -> tuple[Any, dict]:
    """The reference flow of a generation and a note of where it came from; (None, note) if none."""
    clip_id, indices, roll = condition_of(record)
    if clip_id is None:
        return None, {"source": None, "reason": "no reference motion in the generation record"}
    if clip_id not in clips:
        return None, {"source": None, "reason": f"condition clip {clip_id!r} not in the prepared dataset"}
    clip = clips[clip_id]
    path, kind = (clip.flow_npz_path, "numeric") if clip.flow_npz_path else (clip.flow_video_path, "encoded")
    if path is None:
        return None, {"source": None, "reason": f"clip {clip_id!r} has no flow"}
    note = {"source": kind, "clip_id": clip_id, "path": str(path), "roll_deg": roll,
            "frame_indices": indices if indices is not None else f"0..{num_frames - 1} (not recorded)"}
    if indices is None:
        indices = list(range(num_frames))
    return load_reference_flow(path, kind, indices=indices, roll_deg=roll, flow_method=flow_method), note


def score_method(scorer: VideoScorer, folder: Path, clips: Mapping[str, Any], settings: Mapping[str, Any],
                 previous: Mapping[str, Mapping] | None = None) -> list[dict]:
    """Per-video records of every `*.mp4` in a method folder (sorted), reusing unchanged ones."""
    previous = previous or {}
    records = []
    videos = sorted(folder.glob("*.mp4"))
    for video in tqdm(videos, desc=f"score {folder.name}", leave=False):
        sidecar = video.with_suffix(".json")
        digest = sha256_of(video)
        record_digest = sha256_of(sidecar) if sidecar.is_file() else None
        old = previous.get(video.name)
        if (old and old.get("video_sha256") == digest and old.get("record_sha256") == record_digest
                and old.get("settings") == dict(settings)):
            if "flow_epe_deg" in old["metrics"]:
                scorer.estimator_error(old["height"], old["width"])  # keep it beside the reused figure
            records.append(old)
            continue
        record = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
        frames = read_frames(video)
        reference, note = reference_for(record, clips, frames.shape[0], scorer.flow_method or "ilk")
        result = scorer.score(frames, record.get("prompt"), reference)
        records.append({"video": video.name, "video_sha256": digest, "record_sha256": record_digest,
                        "prompt": record.get("prompt"),
                        "prompt_id": record.get("prompt_id", video.stem.rsplit("-s", 1)[0]),
                        "seed": record.get("seed"), "frames": int(frames.shape[0]),
                        "height": int(frames.shape[1]), "width": int(frames.shape[2]), "reference_flow": note,
                        "prompt_truncated": result["prompt_truncated"], "settings": dict(settings),
                        "metrics": result["metrics"]})
    return records


def summarize_records(records: list[Mapping], seed: int = 0, n_resamples: int = 10_000) -> dict[str, dict]:
    """Per metric: mean, 95% bootstrap CI and n over the videos that have it."""
    summary = {}
    for name in METRIC_NAMES:
        values = [r["metrics"][name] for r in records if name in r["metrics"]]
        if values:
            summary[name] = summarize(values, seed=seed, n_resamples=n_resamples)
    return summary
