"""The MLflow runs a report links to: the score stage's run, its per-method runs, and any given run."""

from __future__ import annotations

from typing import Any


def run_link(label: str, run: Any) -> dict:
    """{"label", "run_id", "experiment_id", "experiment"} of an MLflow run (entities.Run or ActiveRun)."""
    import mlflow

    from dvd360.tracking import tracking_uri

    experiment = mlflow.MlflowClient(tracking_uri()).get_experiment(run.info.experiment_id)
    return {"label": label, "run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
            "experiment": experiment.name if experiment else run.info.experiment_id}


def score_run_links(profile: str) -> list[dict]:
    """The latest finished score run of the profile's experiment, then its per-method runs by method."""
    from dvd360.compare import latest_score_runs

    parent, children = latest_score_runs(profile)
    methods = sorted((c.data.tags.get("dvd360.method", ""), c) for c in children if c.data.tags.get("dvd360.method"))
    return [run_link("score stage", parent)] + [run_link(f"score {method}", child) for method, child in methods]
