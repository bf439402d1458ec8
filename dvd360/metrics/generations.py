"""Score the generate stage's videos: `data/generations/{method}/{prompt_id}-s{seed}.mp4` + `.json`.

The record JSON beside each video gives the prompt, prompt_id, seed and the prompt's reference
motion (`reference_motion`: clip id and source frame indices; every method of a prompt is scored
against the same motion, so methods without a motion condition show the chance level); the
reference flow comes from that clip in the prepared dataset (its numeric `.npz` flow when
present, else its flow video decoded), at the source frames the condition used, turned by the
net latent rotation when the condition was rotated with the latent (the output video is the
un-rotated sample turned by that angle). Records are reused when the video's SHA-256 and the
scorer settings are unchanged, so an interrupted stage resumes where it stopped. The videos of
every method are scored in one batched stream (`VideoScorer.score_sharded`), data-parallel
under torchrun. The frames scored are the `.npz` beside each mp4 when present (the generate
stage's exact frames: the yuv420p mp4 is the browser copy for the study and MLflow, and its
codec would add a seam), read by the scoring protocol (`data.protocol`: repeated frames dropped
unless `keep_repeats`, then the frames it selects at its working size); every record says what
was detected, dropped and selected (`detections`, `data.detections`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import Field

from dvd360.config import repo_relative, repo_root
from dvd360.data.reference_split import SPLITS
from dvd360.data.protocol import ScoringProtocol, read_video
from dvd360.data.flow_estimation import DEFAULT_METHOD
from dvd360.fingerprint import code_sha256, content_sha256
from dvd360.metrics.flow_agreement import FLOW_FACTORS
from dvd360.metrics.registry import METRIC_NAMES
from dvd360.metrics.scorers import Scorers, ScoringSettings
from dvd360.params_schema import StrictModel
from dvd360.metrics.scoring import VideoInput, VideoScorer, load_reference_flow
from dvd360.provenance import sha256_of
from dvd360.stats import summarize


class ReferenceSettings(StrictModel):
    """The set metrics' reference clips: a split of the prepared dataset, sampled as the conditions."""

    split: Literal[SPLITS]
    frames: int | None = Field(default=None, gt=0)
    stride: int = Field(default=1, gt=0)


class ScoreSettings(ScoringSettings):
    """params.yaml `score`: how to score (`ScoringSettings`; the quality metrics on by default),
    where the generations, the prepared dataset and the outputs are, the bootstrap and the
    reference set."""

    generations: str
    prepared: str
    scores: str
    summary: str
    quality: bool | None = True
    bootstrap_resamples: int = Field(gt=0)
    reference: ReferenceSettings


def record_settings(scorers: Scorers, settings: ScoreSettings) -> dict[str, Any]:
    """What a score record is reused under (with its video's and generation record's SHA-256): the
    CLIP, quality and flow settings, the scoring protocol, the prepared index, the models' content and the scoring code
    (this module's import closure, `dvd360.fingerprint.code_sha256`)."""
    clip, quality = scorers.video.clip, scorers.video.quality
    return {"clip": clip.name, "clip_device": clip.device.type, "clip_precision": clip.precision,
            "clip_batch_size": clip.batch_size, "flow_method": settings.flow_method,
            "flow_options": settings.flow_options or {}, "keep_repeats": settings.keep_repeats,
            "protocol": settings.protocol.model_dump(),
            "prepared_index_sha256": sha256_of(Path(settings.prepared) / "index.json"),
            "clip_weights_sha256": content_sha256(settings.clip),
            "quality": quality.content_key() if quality is not None else None,
            "code_sha256": code_sha256(["dvd360.metrics.generations"])}


def condition_of(record: Mapping[str, Any]) -> tuple[str | None, list[int] | None, float]:
    """(reference clip id, its source frame indices or None, longitude roll in degrees).

    The roll is the net latent rotation when the condition was rotated with the latent.
    """
    reference = record.get("reference_motion") or {}
    clip_id, indices = reference.get("clip_id"), reference.get("frame_indices")
    rotated = record.get("rotate_condition") is True
    roll = float(record.get("latent_rotation_net_degrees") or 0.0) if rotated else 0.0
    return (None if clip_id is None else str(clip_id)), (None if indices is None else [int(i) for i in indices]), roll


def reference_note(record: Mapping[str, Any], clips: Mapping[str, Any], num_frames: int) -> dict:
    """Where a generation's reference flow comes from: {"source": "numeric" | "encoded", "clip_id",
    "path" (repository-relative when inside it), "roll_deg", "frame_indices"}, or {"source": None,
    "reason"} when it has none."""
    clip_id, indices, roll = condition_of(record)
    if clip_id is None:
        return {"source": None, "reason": "no reference motion in the generation record"}
    if clip_id not in clips:
        return {"source": None, "reason": f"condition clip {clip_id!r} not in the prepared dataset"}
    clip = clips[clip_id]
    path, kind = (clip.flow_npz_path, "numeric") if clip.flow_npz_path else (clip.flow_video_path, "encoded")
    if path is None:
        return {"source": None, "reason": f"clip {clip_id!r} has no flow"}
    return {"source": kind, "clip_id": clip_id, "path": repo_relative(path), "roll_deg": roll,
            "frame_indices": indices if indices is not None else f"0..{num_frames - 1} (not recorded)"}


def reference_for(record: Mapping[str, Any], clips: Mapping[str, Any], num_frames: int,
                  flow_method: str = DEFAULT_METHOD, kept: list[int] | None = None) -> tuple[Any, dict]:
    """The reference flow of a generation and a note of where it came from; (None, note) if none.
    `kept`: the video frames scored (repeats dropped): the flow between them is used."""
    note = reference_note(record, clips, num_frames)
    if note["source"] is None:
        return None, note
    indices = note["frame_indices"] if isinstance(note["frame_indices"], list) else list(range(num_frames))
    if kept is not None:
        indices = [indices[k] for k in kept]
    flow = load_reference_flow(repo_root() / note["path"], note["source"], indices=indices, roll_deg=note["roll_deg"],
                               flow_method=flow_method)
    return flow, note


@dataclass(frozen=True)
class GenerationJob:
    """One generated video to score: its method, file, generation record and their SHA-256s, and
    the file scored: the generate stage's exact frames (`.npz` beside the mp4) when present, so
    the browser mp4's codec seam is not scored, else the mp4."""

    method: str
    video: Path
    record: dict
    video_sha256: str
    record_sha256: str | None
    frames_path: Path
    frames_sha256: str


def load_generation(job: GenerationJob, clips: Mapping[str, Any], flow_method: str,
                    keep_repeats: bool = False, protocol: ScoringProtocol = ScoringProtocol()) -> VideoInput:
    """A generation's frames as `protocol` reads them (repeated frames dropped unless
    `keep_repeats`), prompt, reference flow and input detections (run ahead, in a worker)."""
    scored = read_video(job.frames_path, protocol, keep_repeats)
    count = scored.detections["size"]["frames"] or scored.indices[-1] + 1
    reference, _ = reference_for(job.record, clips, count, flow_method, scored.indices)
    return VideoInput(scored.frames, job.record.get("prompt"), reference, scored.detections)


def generation_videos(folder: Path) -> list[Path]:
    """The videos of a method folder: every `*.mp4`, sorted by name (the order of its records)."""
    return sorted(Path(folder).glob("*.mp4"))


def generation_jobs(method: str, folder: Path) -> list[GenerationJob]:
    """Every video of a method folder (`generation_videos`) with its record and digests."""
    jobs = []
    for video in generation_videos(folder):
        sidecar = video.with_suffix(".json")
        record = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
        frames = video.with_suffix(".npz") if video.with_suffix(".npz").is_file() else video
        jobs.append(GenerationJob(method, video, record, sha256_of(video),
                                  sha256_of(sidecar) if sidecar.is_file() else None, frames, sha256_of(frames)))
    return jobs


def score_generations(scorers: Scorers, folders: Mapping[str, Path], clips: Mapping[str, Any],
                      settings: Mapping[str, Any], previous: Mapping[str, Mapping[str, Mapping]] | None = None,
                      set_paths: list[Path] = ()) -> dict[str, list[dict]] | None:
    """Per method (in `folders` order), the records of its videos, sorted by file name.

    A record in `previous[method]` is reused while its video, generation record and `settings`
    (`record_settings`) are unchanged; the others are scored in one batched stream over every
    method (`Scorers.run`: data-parallel under torchrun, the set features of `set_paths`
    extracted beside it). None on ranks other than 0.
    """
    scorer = scorers.video
    previous = previous or {}
    kept: dict[tuple[str, str], Mapping] = {}
    to_score: list[GenerationJob] = []
    for method, folder in folders.items():
        for job in generation_jobs(method, Path(folder)):
            old = previous.get(method, {}).get(job.video.name)
            if (old and old.get("video_sha256") == job.video_sha256 and old.get("record_sha256") == job.record_sha256
                    and old.get("frames_sha256") == job.frames_sha256 and old.get("settings") == dict(settings)):
                kept[method, job.video.name] = old
            else:
                to_score.append(job)
    scored = scorers.run(to_score, partial(load_generation, clips=clips, flow_method=scorer.flow_method or DEFAULT_METHOD,
                                           keep_repeats=scorers.settings.keep_repeats,
                                           protocol=scorers.settings.protocol), set_paths)
    if scored is None:
        return None
    for old in kept.values():
        if "flow_epe_deg" in old["metrics"]:
            scorer.estimator_error(old["height"], old["width"])  # keep it beside the reused figure
    fresh = {(job.method, job.video.name): _record(job, shape, result, clips, settings)
             for job, shape, result in scored}
    records = {**kept, **fresh}
    return {method: [records[key] for key in sorted(k for k in records if k[0] == method)] for method in folders}


def _record(job: GenerationJob, shape: tuple[int, int, int], result: dict, clips: Mapping[str, Any],
            settings: Mapping[str, Any]) -> dict:
    record = job.record
    return {"video": job.video.name, "video_sha256": job.video_sha256, "record_sha256": job.record_sha256,
            "scored_from": job.frames_path.name, "frames_sha256": job.frames_sha256,
            "detections": result.get("detections", {}),
            "prompt": record.get("prompt"), "prompt_id": record.get("prompt_id", job.video.stem.rsplit("-s", 1)[0]),
            "seed": record.get("seed"), "frames": shape[0], "height": shape[1], "width": shape[2],
            "reference_flow": reference_note(record, clips, shape[0]),
            "prompt_truncated": result["prompt_truncated"], "settings": dict(settings), "metrics": result["metrics"],
            "absent": result["absent"], **{factor: result[factor] for factor in FLOW_FACTORS if factor in result}}


def summarize_records(records: list[Mapping], seed: int = 0, n_resamples: int = 10_000) -> dict[str, dict]:
    """Per metric: mean, 95% bootstrap CI and n over the videos that have it."""
    summary = {}
    for name in METRIC_NAMES:
        values = [r["metrics"][name] for r in records if name in r["metrics"]]
        if values:
            summary[name] = summarize(values, seed=seed, n_resamples=n_resamples)
    return summary
