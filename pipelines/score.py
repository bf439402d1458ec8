"""DVC stage `score`: every generated video -> metrics; per-method summaries with 95% CIs.

Reads `data/generations/{method}/*.mp4` (+ `.json` records) for every method folder the
generate stage wrote, the prepared dataset (`data/web360`, reference flows), the CLIP folder
(`data/models/clip`) and the feature models (`data/models/features`). Writes
`data/scores/{method}.json` (per-video records and the method summary) and
`reports/metrics/summary.json` (DVC metrics); logs one MLflow run with a nested run per method,
named with the score files they logged in `data/scores/mlflow/runs.run.json` (the runs the
results page links). Set metrics compare each method's videos with the reference clips of the
prepared dataset (`score.reference`). The models and the scoring are `dvd360.metrics.scorers`'s,
as for `dvd360-eval score`. Data parallel: `torchrun --nproc_per_node N pipelines/score.py`
shards the videos over N processes (one GPU each); rank 0 writes exactly the single-process outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

from dvd360.atomic import write_json
from dvd360.config import load_params
from dvd360.data.reference_split import reference_clip_ids
from dvd360.data.web360 import load_prepared
from dvd360.distributed import world
from dvd360.metrics.generations import (ScoreSettings, generation_videos, record_settings, score_generations,
                                        summarize_records)
from dvd360.metrics.scorers import ReferenceSet, Scorers
from dvd360.metrics.set_metrics import summary_row
from dvd360.params_schema import validated_stage_params
from dvd360.provenance import versions
from dvd360.report.runs import write_score_runs
from dvd360.stage_process import begin_stage
from dvd360.tracking import log_artifact, log_metrics, stage_run


def previous_records(scores_dir: Path, methods: list[str]) -> dict[str, dict[str, dict]]:
    """{method: {video file name: record}} of the score files already there (reused when unchanged)."""
    previous = {}
    for method in methods:
        out = scores_dir / f"{method}.json"
        if out.is_file():
            previous[method] = {r["video"]: r for r in json.loads(out.read_text(encoding="utf-8")).get("videos", [])}
    return previous


def main() -> None:
    begin_stage(tracks=world()[0] == 0)  # rank 0 logs the stage
    all_params = load_params()
    profile, settings = all_params["profile"], validated_stage_params("score", all_params, ScoreSettings)
    generations, scores_dir, summary_path = Path(settings.generations), Path(settings.scores), Path(settings.summary)
    methods = sorted(p.name for p in generations.iterdir() if p.is_dir() and any(p.glob("*.mp4")))
    if not methods:
        raise SystemExit(f"{generations}: no method folder with videos; run `dvc repro generate`")
    clips = load_prepared(settings.prepared).by_id()
    split = settings.reference
    reference = ReferenceSet([clips[i].video_path for i in reference_clip_ids(clips, split.split)],
                             source=f"{settings.prepared} ({split.split} split)", frames=split.frames,
                             stride=split.stride)
    scorers = Scorers.build(settings, reference)
    seed, resamples = settings.seed, settings.bootstrap_resamples
    by_method = score_generations(
        scorers, {m: generations / m for m in methods}, clips, record_settings(scorers, settings),
        previous_records(scores_dir, methods), set_paths=[v for m in methods for v in generation_videos(generations / m)])
    if by_method is None:
        return  # a torchrun rank other than 0: rank 0 writes every rank's records
    note = scorers.note(profile)
    info = scorers.describe()
    summary = {"profile": profile, "note": note, "methods": {}}
    with stage_run("score", profile=profile, params=settings.model_dump()) as run:
        method_runs = {}
        for method, records in by_method.items():
            out = scores_dir / f"{method}.json"
            method_summary = summarize_records(records, seed=seed, n_resamples=resamples)
            sets = scorers.score_set([generations / method / r["video"] for r in records], desc=f"set features {method}")
            write_json(out, {"method": method, "profile": profile, "note": note, "models": info["models"],
                             "metrics_info": info["metrics_info"],
                             "bootstrap": {"seed": seed, "resamples": resamples, "confidence": 0.95},
                             "summary": method_summary, "videos": records, "versions": versions(),
                             "set_metrics": sets, "set_metrics_info": info["set_metrics_info"]})
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
        summary["metrics_info"] = {**info["metrics_info"], **info["set_metrics_info"]}
        write_json(summary_path, summary)
        log_artifact(summary_path)
        write_score_runs(scores_dir, run.info, method_runs)  # the runs the results page links


if __name__ == "__main__":
    main()
