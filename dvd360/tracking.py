"""MLflow tracking: one sqlite store at the repository root, one experiment per profile.

The store defaults to `sqlite:///<repo>/mlflow.db` (MLflow 3.13+ refuses bare `file:` stores);
set MLFLOW_TRACKING_URI to use another. Artifacts (videos, plots) go to `<repo>/mlartifacts`
of the clone that runs the stage (re-resolved when a clone is copied or moved). A stage that
raises ends its run as FAILED, so a failed stage never reads as finished. A run's start and end
times are the stage's own: a stage's first run starts when its process began (`begin_stage`), a
nested run when it opens, and every run ends when its `stage_run` exits.

MLflow itself runs in a process of its own (`dvd360.tracking_worker`, one per stage process,
started by `start_tracking`): its seconds of import and store set-up then overlap the stage's
start-up instead of adding to it (18 stage processes in a tiny `dvc repro`). The
calls here send requests to it in order; a run's end waits until all are applied.

Look at runs with::

    mlflow ui --backend-store-uri sqlite:///mlflow.db
"""

from __future__ import annotations

import atexit
import json
import math
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator, Mapping

from dvd360 import tracking_worker
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


class TrackingError(RuntimeError):
    """MLflow refused a stage's request (the message names it) or its process died."""


class _Tracker:
    """This process's connection to its MLflow process (`dvd360.tracking_worker`), started once."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-m", tracking_worker.__name__], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, encoding="utf-8")
        self.open_runs = 0

    def send(self, request: dict, reply: bool = False) -> dict | None:
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline() if reply else None
        except (BrokenPipeError, ValueError):
            line = ""
        if line == "":
            raise TrackingError(f"the MLflow process (python -m {tracking_worker.__name__}) has exited "
                                f"(status {self.process.poll()}); its messages are above")
        return json.loads(line) if reply else None

    def close(self) -> None:
        """End of input: the MLflow process ends what is still open (KILLED) and exits."""
        try:
            self.process.stdin.close()
        except OSError:  # it has already exited
            pass
        self.process.wait(timeout=120)


_tracker: _Tracker | None = None
_stage_started: float | None = None  # when this stage's process began, until its first run takes it


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def mark_stage_start(started: float) -> None:
    """This process is a stage that began at `started` (seconds since the epoch): its first
    top-level run starts then."""
    global _stage_started
    _stage_started = started


def start_tracking() -> _Tracker:
    """Start this process's MLflow process now (idempotent), so that MLflow's start-up overlaps
    the stage's own; stage scripts call it first. `stage_run` starts it when nobody has."""
    global _tracker
    if _tracker is None or _tracker.process.poll() is not None:
        _tracker = _Tracker()
        atexit.register(_tracker.close)
    return _tracker


class TrackedRun:
    """An open (or ended) stage run: `.info` has run_id, experiment_id, experiment_name,
    artifact_uri, run_name.

    Read while the run is open, `.info` waits for MLflow; after the run it is the ended run's.
    """

    def __init__(self, tracker: _Tracker):
        self._tracker, self._info = tracker, None

    @property
    def info(self) -> SimpleNamespace:
        if self._info is None:
            self._set(self._tracker.send({"op": "info"}, reply=True))
        return self._info

    def _set(self, reply: dict) -> None:
        if reply.get("error"):
            raise TrackingError(f"MLflow run: {reply['error']}")
        keys = ("run_id", "experiment_id", "experiment_name", "artifact_uri", "run_name")
        self._info = SimpleNamespace(**{k: reply[k] for k in keys})


@contextmanager
def stage_run(stage: str, *, profile: str, params: Mapping[str, Any] | None = None,
              run_name: str | None = None, nested: bool = False,
              tags: Mapping[str, str] | None = None) -> Iterator[TrackedRun]:
    """Open an MLflow run for a pipeline stage, tagged with stage, profile, commit and versions.

    Nested runs (`nested=True`) open inside the enclosing run, in its experiment. The run is
    written by this process's MLflow process; its end waits for every request to be applied and
    raises TrackingError if MLflow refused one (a stage that raised ends its run FAILED). The run
    starts when the stage's process began (its first top-level run, see `mark_stage_start`) or
    else now, and ends when this block exits, whenever MLflow applies the requests.
    """
    global _stage_started
    started = time.time()
    if not nested and _stage_started is not None:
        started, _stage_started = _stage_started, None
    tracker = start_tracking()
    name = experiment_name(profile)
    all_tags = {"dvd360.stage": stage, "dvd360.profile": profile,
                "dvd360.git_commit": git_commit(repo_root()) or "unknown"}
    all_tags.update({f"version.{package}": value for package, value in versions().items()})
    all_tags.update(tags or {})
    tracker.send({"op": "start", "tracking_uri": tracking_uri(), "experiment": name,
                  "artifacts": (repo_root() / "mlartifacts" / name).as_uri(), "store_in_repo": _store_in_repo(),
                  "run_name": run_name or stage, "nested": nested, "tags": all_tags,
                  "params": _flatten(params) if params else {}, "start_time": _ms(started)})
    tracker.open_runs += 1
    run, status = TrackedRun(tracker), "FAILED"
    try:
        yield run
        status = "FINISHED"
    finally:
        ended = time.time()
        tracker.open_runs -= 1
        try:
            reply = tracker.send({"op": "end", "status": status, "end_time": _ms(ended)}, reply=True)
        except TrackingError:
            if status == "FINISHED":
                raise
            reply = {"error": "unknown"}  # the stage's own exception is the one to see
        if status == "FINISHED" or not reply.get("error"):
            run._set(reply)


def _active_tracker() -> _Tracker:
    if _tracker is None or _tracker.open_runs == 0:
        raise TrackingError("log_metrics / log_artifact outside a stage_run: open the stage's run first")
    return _tracker


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log the finite numeric entries of a (possibly nested) mapping, keys joined by '.'."""
    numeric = {}
    for key, value in _flatten(metrics).items():
        try:
            number = float(value)
        except ValueError:
            continue
        if math.isfinite(number):
            numeric[key] = number
    if numeric:
        _active_tracker().send({"op": "metrics", "metrics": numeric, "step": step, "time": _ms(time.time())})


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Attach a file (video, plot, JSON) to the active run."""
    path = Path(path).resolve()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file to attach to the MLflow run")
    _active_tracker().send({"op": "artifact", "path": str(path), "artifact_path": artifact_path})
