"""DVC stage `score`: every generated video -> metrics; per-method summaries with 95% CIs.

Reads `data/generations/{method}/*.mp4` (+ `.json` records) for every method folder the
generate stage wrote, the prepared dataset (`data/web360`, reference flows), the CLIP folder
(`data/models/clip`) and the quality models (`data/models/features/{musiq,aesthetic}`). Writes `data/scores/{method}.json` (per-video records and the
method summary) and `reports/metrics/summary.json` (DVC metrics); logs one MLflow run with a
nested run per method, named with the score files they logged in `data/scores/mlflow/runs.run.json`
(the runs the results page links). Set metrics (FVD, FID/KID, `dvd360.metrics.set_scoring`) compare each method's
videos with the reference clips of the prepared dataset (`score.reference`), features cached in
`score.feature_cache`. Data parallel: `torchrun --nproc_per_node N pipelines/score.py` shards
the videos over N processes (one GPU each); rank 0 writes exactly the single-process outputs.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field

from dvd360.atomic import write_json
from dvd360.config import load_params
from dvd360.data.flow_estimation import METHODS
from dvd360.data.web360 import load_prepared
from dvd360.fingerprint import code_sha256, content_sha256
from dvd360.metrics.clip_model import BATCH, PRECISIONS, load_clip
from dvd360.metrics.engine import world
from dvd360.metrics.generations import TINY_NOTE, generation_videos, score_generations, summarize_records
from dvd360.metrics.quality import QualityScorer
from dvd360.metrics.reference_set import SPLITS, reference_clip_ids
from dvd360.metrics.scoring import VideoScorer
from dvd360.metrics.set_metrics import summary_row
from dvd360.metrics.set_scoring import SetScorer
from dvd360.params_schema import Device, StageSettings, StrictModel, validated_stage_params
from dvd360.provenance import sha256_of, versions
from dvd360.report.runs import write_score_runs
from dvd360.stage_process import begin_stage
from dvd360.tracking import log_artifact, log_metrics, stage_run


class ReferenceSettings(StrictModel):
    """The set metrics' reference clips: a split of the prepared dataset, sampled as the conditions."""

    split: Literal[SPLITS]
    frames: int | None = Field(default=None, gt=0)
    stride: int = Field(default=1, gt=0)


class ScoreSettings(StageSettings):
    model_config = ConfigDict(extra="forbid")
    generations: str
    prepared: str
    clip: str
    scores: str
    summary: str
    features: str
    feature_cache: str
    seed: int
    bootstrap_resamples: int = Field(gt=0)
    set_bootstrap_resamples: int = Field(gt=0)
    keep_repeats: bool = False
    flow_method: Literal[METHODS]
    flow_options: dict[str, Any] | None = None
    device: Device = "auto"
    precision: Literal[("auto", *PRECISIONS)] = "auto"
    batch_size: int = Field(default=BATCH, gt=0)
    workers: int = Field(default=1, ge=0)  # 0: one process per core
    reference: ReferenceSettings


def main() -> None:
    begin_stage(tracks=world()[0] == 0)  # rank 0 logs the stage
    all_params = load_params()
    profile, params = all_params["profile"], validated_stage_params("score", all_params, ScoreSettings)
    generations, scores_dir = Path(params["generations"]), Path(params["scores"])
    summary_path = Path(params["summary"])
    methods = sorted(p.name for p in generations.iterdir() if p.is_dir() and any(p.glob("*.mp4")))
    if not methods:
        raise SystemExit(f"{generations}: no method folder with videos; run `dvc repro generate`")
    clips = load_prepared(params["prepared"]).by_id()
    clip = load_clip(params["clip"], device=params.get("device", "auto"), precision=params.get("precision", "auto"),
                     batch_size=int(params.get("batch_size", BATCH)))
    features = Path(params["features"])
    quality = QualityScorer(features / "musiq", features / "aesthetic", clip, params.get("device", "auto"))
    scorer = VideoScorer(clip, params["flow_method"], params.get("flow_options"), quality=quality)
    # A record is reused only while the video, these settings, the prepared index, the CLIP and
    # quality models' content and the scoring code (its dvd360 import closure) are unchanged.
    settings = {"clip": clip.name, "clip_device": clip.device.type, "clip_precision": clip.precision,
                "clip_batch_size": clip.batch_size, "flow_method": params["flow_method"],
                "flow_options": params.get("flow_options") or {}, "keep_repeats": bool(params.get("keep_repeats", False)),
                "prepared_index_sha256": sha256_of(Path(params["prepared"]) / "index.json"),
                "clip_weights_sha256": content_sha256(params["clip"]), "quality": quality.content_key(),
                "code_sha256": code_sha256(["dvd360.metrics.generations"])}
    previous = {}
    for method in methods:
        out = scores_dir / f"{method}.json"
        if out.is_file():
            previous[method] = {r["video"]: r for r in json.loads(out.read_text(encoding="utf-8")).get("videos", [])}
    workers = int(params.get("workers", 1)) or os.cpu_count() or 1
    seed, resamples = int(params["seed"]), int(params["bootstrap_resamples"])
    # Set metrics (FVD, FID/KID) against the reference clips of the prepared dataset (features
    # cached), on rank 0; the generated videos' features are extracted while the engine runs.
    reference = params["reference"]
    set_scorer = None
    if world()[0] == 0:
        set_scorer = SetScorer(params["features"], params["feature_cache"], params.get("device", "auto"), seed=seed,
                               n_resamples=int(params["set_bootstrap_resamples"]))
        set_scorer.use_reference([clips[i].video_path for i in reference_clip_ids(clips, reference["split"])],
                                 reference.get("frames"), int(reference.get("stride", 1)),
                                 source=f"{params['prepared']} ({reference['split']} split)")
    beside = (set_scorer.started([video for m in methods for video in generation_videos(generations / m)])
              if set_scorer is not None else contextlib.nullcontext())
    with beside:
        by_method = score_generations(scorer, {m: generations / m for m in methods}, clips, settings, previous, workers,
                                      keep_repeats=settings["keep_repeats"])
    if by_method is None:
        return  # a torchrun rank other than 0: rank 0 writes every rank's records
    random_weights = clip.random_weights or set_scorer.random_weights or quality.random_weights
    note = TINY_NOTE if profile == "tiny" or random_weights else None
    summary = {"profile": profile, "note": note, "methods": {}}
    with stage_run("score", profile=profile, params=params) as run:
        method_runs = {}
        for method, records in by_method.items():
            out = scores_dir / f"{method}.json"
            method_summary = summarize_records(records, seed=seed, n_resamples=resamples)
            sets = set_scorer.score([generations / method / r["video"] for r in records], desc=f"set features {method}")
            write_json(out, {"method": method, "profile": profile, "note": note, "metrics_info": scorer.describe(),
                             "bootstrap": {"seed": seed, "resamples": resamples, "confidence": 0.95},
                             "summary": method_summary, "videos": records, "versions": versions(),
                             "set_metrics": sets, "set_metrics_info": set_scorer.describe()})
            summary["methods"][method] = {**method_summary, **{name: summary_row(r) for name, r in sets.items()}}
            with stage_run("score", profile=profile, run_name=f"score-{method}", nested=True,
                           tags={"dvd360.method": method}) as method_run:
                log_metrics({name: s["mean"] for name, s in method_summary.items()})
                log_metrics({f"{name}.n": s["n"] for name, s in method_summary.items()})
                log_metrics({name: r["value"] for name, r in sets.items()})
                log_metrics({f"{name}.{k}": r[k] for name, r in sets.items() for k in ("n", "n_reference", "std",
                                                                                       "ci_low", "ci_high")
                             if r.get(k) is not None})
                log_artifact(out)
            method_runs[method] = method_run.info
            print(f"{method}: {len(records)} videos -> {out}")
        summary["metrics_info"] = {**scorer.describe(), **set_scorer.describe()}
        write_json(summary_path, summary)
        log_artifact(summary_path)
        write_score_runs(scores_dir, run.info, method_runs)  # the runs the results page links


if __name__ == "__main__":
    main()
