"""MLflow tracking: one sqlite store at the repository root, one experiment per profile.

The store defaults to `sqlite:///<repo>/mlflow.db` (MLflow 3.13+ refuses bare `file:` stores);
set MLFLOW_TRACKING_URI to use another. Artifacts (videos, plots) go to `<repo>/mlartifacts`
of the clone that runs the stage (re-resolved when a clone is copied or moved). A stage that
raises ends its run as FAILED (MLflow's run context), so a failed stage never reads as finished.
Look at runs with::

    mlflow ui --backend-store-uri sqlite:///mlflow.db
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from dvd360.config import repo_root
from dvd360.provenance import git_commit, versions

MAX_PARAM_CHARS = 500


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the sqlite store at the repository root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def experiment_name(profile: str) -> str:
    """Runs of the two profiles never mix: `dvd360-tiny`, `dvd360-paper`."""
    return f"dvd360-{profile}"


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_CHARS]
    return flat


def _store_in_repo() -> bool:
    """True when the tracking store is a sqlite file inside this clone (it travels with a copy)."""
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        return False
    return Path(uri.removeprefix("sqlite:///")).resolve().is_relative_to(repo_root())


def _experiment_id(mlflow, profile: str) -> str:
    """The profile's experiment, its artifacts in `<this clone>/mlartifacts/<name>`.

    MLflow records the artifact location as an absolute path; a copied or moved clone's store
    still names the original's. Such an experiment is renamed (`... (artifacts in <old place>)`,
    its runs kept) and a new one made here, so a clone never writes into another's artifacts.
    """
    name = experiment_name(profile)
    artifacts = (repo_root() / "mlartifacts" / name).as_uri()
    found = mlflow.get_experiment_by_name(name)
    if found is not None and (found.artifact_location == artifacts or not _store_in_repo()):
        return found.experiment_id
    if found is not None:
        mlflow.MlflowClient().rename_experiment(found.experiment_id,
                                                f"{name} (artifacts in {found.artifact_location})")
    return mlflow.create_experiment(name, artifact_location=artifacts)


@contextmanager
def stage_run(stage: str, *, profile: str, params: Mapping[str, Any] | None = None,
              run_name: str | None = None, nested: bool = False,
              tags: Mapping[str, str] | None = None) -> Iterator[Any]:
    """Open an MLflow run for a pipeline stage, tagged with stage, profile, commit and versions.

    Nested runs (`nested=True`) must be opened inside a parent run of the same experiment.
    """
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    experiment_id = _experiment_id(mlflow, profile)
    all_tags = {"dvd360.stage": stage, "dvd360.profile": profile,
                "dvd360.git_commit": git_commit(repo_root()) or "unknown"}
    all_tags.update({f"version.{name}": value for name, value in versions().items()})
    all_tags.update(tags or {})
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name or stage,
                          nested=nested, tags=all_tags) as run:
        if params:
            mlflow.log_params(_flatten(params))
        yield run


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log the finite numeric entries of a (possibly nested) mapping, keys joined by '.'."""
    import math

    import mlflow

    numeric = {}
    for key, value in _flatten(metrics).items():
        try:
            number = float(value)
        except ValueError:
            continue
        if math.isfinite(number):
            numeric[key] = number
    if numeric:
        mlflow.log_metrics(numeric, step=step)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Attach a file (video, plot, JSON) to the active run."""
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=artifact_path)
