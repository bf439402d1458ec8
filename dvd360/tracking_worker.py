"""The MLflow side of `dvd360.tracking`: a process that applies a stage's tracking requests.

    python -m dvd360.tracking_worker    # started by dvd360.tracking, never by hand

Why a process of its own: importing MLflow and opening its sqlite store take seconds of Python
(sqlalchemy's ORM set-up; docs/performance.md), paid by every stage. In this process they run
beside the stage's own start-up (on another core) instead of after it; MLflow's own async
logging runs in threads of the stage's interpreter, so it cannot hide its import.

Protocol: one JSON request per line on stdin, applied in order; the requests `info` and `end`
get one JSON reply line each on the original stdout (MLflow's own prints go to
stderr). A failed request is remembered and reported in the reply to the run's `end` (which
then ends the run FAILED); the following requests of that run are skipped. End of input ends
any run still open as KILLED (the stage process died without ending it). Requests carry the
stage's own times (ms since the epoch): a run is created with the `start` request's `start_time`,
ended with the `end` request's `end_time` and metrics are stamped with their `time`, so what MLflow
records does not depend on when this process gets to a request.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _experiment_id(mlflow, name: str, artifacts: str, store_in_repo: bool) -> str:
    """The experiment `name`, its artifacts at `artifacts` (a file URI in the stage's clone).

    MLflow records the artifact location as an absolute path; a copied or moved clone's store
    still names the original's. Such an experiment is renamed (`... (artifacts in <old place>)`,
    its runs kept) and a new one made here, so a clone never writes into another's artifacts.
    """
    found = mlflow.get_experiment_by_name(name)
    if found is not None and (found.artifact_location == artifacts or not store_in_repo):
        return found.experiment_id
    if found is not None:
        mlflow.MlflowClient().rename_experiment(found.experiment_id,
                                                f"{name} (artifacts in {found.artifact_location})")
    return mlflow.create_experiment(name, artifact_location=artifacts)


def _info(mlflow, run) -> dict:
    info = run.info
    return {"run_id": info.run_id, "experiment_id": info.experiment_id, "artifact_uri": info.artifact_uri,
            "run_name": info.run_name, "experiment_name": mlflow.get_experiment(info.experiment_id).name}


class Worker:
    """Applies requests through an MlflowClient; `runs` is the stack of open runs (nesting)."""

    def __init__(self, mlflow):
        self.mlflow = mlflow
        self.client = None  # made at the first `start`, for its tracking URI
        self.runs: list[Any] = []
        self.errors: list[str | None] = []   # per open run: its first failure

    def handle(self, request: dict) -> dict | None:
        op = request["op"]
        if op == "start":
            self._start(request)
            return None
        if op == "end":
            return self._end(request["status"], request["end_time"])
        if self.errors and self.errors[-1] is not None:
            return {"error": self.errors[-1]} if op == "info" else None
        try:
            if op == "info":
                return _info(self.mlflow, self.runs[-1])
            run_id = self.runs[-1].info.run_id
            if op == "metrics":
                step = request["step"] or 0
                self.client.log_batch(run_id, metrics=[self.mlflow.entities.Metric(key, value, request["time"], step)
                                                       for key, value in request["metrics"].items()])
            elif op == "artifact":
                self.client.log_artifact(run_id, request["path"], artifact_path=request["artifact_path"])
            else:
                raise ValueError(f"unknown tracking request {op!r}")
        except Exception as error:  # reported at the run's end, with the request that failed
            self._fail(f"{op}: {type(error).__name__}: {error}")
            return {"error": self.errors[-1]} if op == "info" else None
        return None

    def _fail(self, message: str) -> None:
        if self.errors:
            self.errors[-1] = self.errors[-1] or message

    def _start(self, request: dict) -> None:
        self.errors.append(None)
        try:
            self.mlflow.set_tracking_uri(request["tracking_uri"])
            self.client = self.mlflow.MlflowClient(request["tracking_uri"])
            parent = self.runs[-1] if request["nested"] and self.runs else None
            experiment_id = (parent.info.experiment_id if parent else
                             _experiment_id(self.mlflow, request["experiment"], request["artifacts"],
                                            request["store_in_repo"]))
            tags = {**request["tags"], "mlflow.runName": request["run_name"]}
            if parent:
                tags["mlflow.parentRunId"] = parent.info.run_id
            tags = self.mlflow.tracking.context.registry.resolve_tags(tags)  # what mlflow.start_run adds
            run = self.client.create_run(experiment_id, start_time=request["start_time"], tags=tags,
                                         run_name=request["run_name"])
            self.runs.append(run)
            if request["params"]:
                self.client.log_batch(run.info.run_id, params=[self.mlflow.entities.Param(key, value)
                                                               for key, value in request["params"].items()])
        except Exception as error:
            self._fail(f"start: {type(error).__name__}: {error}")
            if len(self.runs) < len(self.errors):  # the run did not open
                self.runs.append(None)

    def _end(self, status: str, end_time: int) -> dict:
        """End the innermost run at `end_time`; the reply has its info and the run's first failure (or None)."""
        run, error = self.runs.pop(), self.errors.pop()
        if run is None:
            return {"error": error}
        try:
            self.client.set_terminated(run.info.run_id, "FAILED" if error else status, end_time=end_time)
        except Exception as failure:
            error = error or f"end: {type(failure).__name__}: {failure}"
        return {**_info(self.mlflow, run), "error": error}

    def close(self) -> None:
        """End every run still open as KILLED (the stage died without ending it)."""
        while self.runs:
            run = self.runs.pop()
            if run is not None:
                self.client.set_terminated(run.info.run_id, "KILLED")


def main() -> None:
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # MLflow's prints must not mix with replies
    import mlflow
    # The sqlite store's module (sqlalchemy's ORM) is the slow part of a first request: load it
    # now, while the stage starts up.
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

    worker = Worker(mlflow)
    for line in sys.stdin:
        reply = worker.handle(json.loads(line))
        if reply is not None:
            replies.write(json.dumps(reply) + "\n")
            replies.flush()
    worker.close()
    replies.close()
    sys.stderr.flush()
    os._exit(0)  # everything is committed: skip the interpreter's (and sqlalchemy's) slow teardown


if __name__ == "__main__":
    main()
