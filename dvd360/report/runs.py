"""The MLflow runs a report links to: its stage's own run and the runs that logged its scores.

The score stage writes `{scores}/mlflow/runs.run.json` beside the score files: its run and each
method's nested run, each with the sha256 of the score files it logged. A report links such a
run only while those files are unchanged, so scores rewritten since (another scoring run, a
copy) never link a run that did not make them.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Mapping

from dvd360.atomic import write_json
from dvd360.provenance import RUN_SUFFIX, sha256_of
from dvd360.report.gallery import ReportInputError

# A subfolder: no `{method}.json` name is taken. Run ids differ on every run, so it is a run
# record (RUN_SUFFIX), which DVC ignores: scores made again with the same bytes rerun no report.
RUNS_FILE = f"mlflow/runs{RUN_SUFFIX}"


def run_link(label: str, info: Any) -> dict:
    """{"label", "run_id", "experiment_id", "experiment"} of a run's info (a TrackedRun's `.info`)."""
    return {"label": label, "run_id": info.run_id, "experiment_id": info.experiment_id,
            "experiment": info.experiment_name}


def write_score_runs(scores_dir: str | Path, stage: Any, methods: Mapping[str, Any]) -> Path:
    """`{scores_dir}/RUNS_FILE`: the score stage's run (`stage`, an info) and each method's
    (`methods`: method -> info), with the sha256 of `{method}.json` as it is now."""
    scores_dir = Path(scores_dir)
    files = {f"{method}.json": sha256_of(scores_dir / f"{method}.json") for method in methods}
    runs = [{**run_link("score stage", stage), "files": files}]
    runs += [{**run_link(f"score {method}", info), "files": {f"{method}.json": files[f"{method}.json"]}}
             for method, info in sorted(methods.items())]
    return write_json(scores_dir / RUNS_FILE, {"runs": runs})


def score_runs(scores_dir: str | Path) -> list[dict]:
    """The links of `{scores_dir}/RUNS_FILE` whose score files are unchanged ([] without it)."""
    scores_dir = Path(scores_dir)
    path = scores_dir / RUNS_FILE
    if not path.is_file():
        return []
    try:
        runs = json.loads(path.read_text())["runs"]
    except (ValueError, KeyError, TypeError) as error:
        raise ReportInputError(f"{path}: not a score-runs file ({type(error).__name__}: {error})") from error

    @functools.cache
    def current(name: str) -> str | None:
        return sha256_of(scores_dir / name) if (scores_dir / name).is_file() else None

    def unchanged(files: Mapping[str, str]) -> bool:
        return all(current(name) == sha for name, sha in files.items())

    return [{k: run[k] for k in ("label", "run_id", "experiment_id", "experiment")}
            for run in runs if unchanged(run["files"])]


def score_run_links(profile: str) -> list[dict]:
    """The latest finished score run of the profile's MLflow experiment, then its per-method runs
    by method (for scores read from MLflow: `dvd360-eval compare --mlflow`)."""
    from types import SimpleNamespace

    from dvd360.compare import latest_score_runs
    from dvd360.tracking import experiment_name

    def info(run) -> SimpleNamespace:
        return SimpleNamespace(run_id=run.info.run_id, experiment_id=run.info.experiment_id,
                               experiment_name=experiment_name(profile))

    parent, children = latest_score_runs(profile)
    methods = sorted((c.data.tags.get("dvd360.method", ""), c) for c in children if c.data.tags.get("dvd360.method"))
    return [run_link("score stage", info(parent))] + [run_link(f"score {method}", info(child))
                                                      for method, child in methods]
