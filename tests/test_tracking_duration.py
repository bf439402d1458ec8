"""A stage's MLflow run records the stage's own start and end: from its process's start to its
`stage_run`'s exit, whenever the MLflow process applies the requests; a failing stage ends FAILED
at its real end, and a nested run keeps its own times."""

from __future__ import annotations

import subprocess
import sys
import time

STAGE = """\
import sys, time
from dvd360.stage_process import begin_stage
from dvd360.tracking import log_metrics, stage_run

begin_stage()
time.sleep(1.0)  # the stage's work before its run opens (loading, generating)
run = None
try:
    with stage_run(sys.argv[1], profile="tiny") as run:
        time.sleep(0.5)
        with stage_run(sys.argv[1], profile="tiny", run_name="child", nested=True) as child:
            time.sleep(0.5)
            log_metrics({"x": 1.0})
        time.sleep(0.5)
        if sys.argv[2] == "fail":
            raise RuntimeError("the stage failed")
finally:
    print(run.info.run_id, child.info.run_id, flush=True)
"""

SLACK_MS = 1000  # clock granularity and process start-up; the old bug was seconds off


def _run_stage(folder, stage: str, outcome: str) -> tuple[float, float, list[str], int]:
    started = time.time()
    done = subprocess.run([sys.executable, str(folder / "stage.py"), stage, outcome], check=False, cwd=folder,
                          capture_output=True, text=True, timeout=300)
    ended = time.time()
    return started * 1000, ended * 1000, done.stdout.split(), done.returncode


def test_stage_runs_record_the_stages_own_times(tmp_path, monkeypatch):
    import mlflow

    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "params.yaml").write_text("profile: tiny\n")
    (folder / "stage.py").write_text(STAGE)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = mlflow.MlflowClient(uri)

    recorded = {}
    for stage, outcome in (("prepare", "ok"), ("caption", "fail")):
        started, ended, run_ids, returncode = _run_stage(folder, stage, outcome)
        assert returncode == (0 if outcome == "ok" else 1) and len(run_ids) == 2, run_ids
        run, child = (client.get_run(run_id).info for run_id in run_ids)
        assert run.status == ("FINISHED" if outcome == "ok" else "FAILED") and child.status == "FINISHED"
        # the run spans the stage's process: it starts before the 1 s of work ahead of stage_run
        assert started - SLACK_MS <= run.start_time and run.end_time <= ended + SLACK_MS
        assert 2500 <= run.end_time - run.start_time <= ended - started + SLACK_MS
        # the nested run: its own 0.5 s, inside its parent
        assert run.start_time + 1500 <= child.start_time and child.end_time + 500 <= run.end_time
        assert 500 <= child.end_time - child.start_time <= 500 + SLACK_MS
        recorded[stage] = run

    experiment = client.get_experiment_by_name("dvd360-tiny").experiment_id
    listed = client.search_runs([experiment], filter_string="tags.`mlflow.runName` != 'child'",
                                order_by=["attributes.start_time ASC"])
    assert [r.info.run_id for r in listed] == [recorded["prepare"].run_id, recorded["caption"].run_id]
    assert recorded["prepare"].end_time <= recorded["caption"].start_time
