"""MLflow tracking (in its own process): failed stages end FAILED, a dead stage KILLED; refused requests
fail the stage; a copied clone writes into its own artifacts."""

from __future__ import annotations

import shutil

import pytest


def _repo(folder, monkeypatch):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text("profile: tiny\n")
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")  # this process's queries read the same store


def test_a_stage_that_raises_ends_its_run_failed(tmp_path, monkeypatch):
    import mlflow

    from dvd360.tracking import stage_run

    _repo(tmp_path / "repo", monkeypatch)
    with pytest.raises(SystemExit):
        with stage_run("caption", profile="tiny") as run:
            raise SystemExit("caption: every clip failed")
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"
    with stage_run("caption", profile="tiny") as run:
        pass
    assert mlflow.get_run(run.info.run_id).info.status == "FINISHED"


def test_a_copied_clone_writes_into_its_own_artifacts(tmp_path, monkeypatch):
    import mlflow

    from dvd360.tracking import experiment_name, log_artifact, stage_run

    first = tmp_path / "first"
    _repo(first, monkeypatch)
    (first / "note.txt").write_text("x")
    with stage_run("models", profile="tiny"):
        log_artifact(first / "note.txt")
    shutil.copytree(first, tmp_path / "second")
    second = tmp_path / "second"
    _repo(second, monkeypatch)
    with stage_run("models", profile="tiny") as run:
        log_artifact(second / "note.txt")
    assert run.info.artifact_uri.startswith((second / "mlartifacts").as_uri())
    assert (second / "mlartifacts").is_dir()
    assert len(list((first / "mlartifacts").rglob("note.txt"))) == 1  # the first clone's untouched
    names = [e.name for e in mlflow.search_experiments()]
    assert experiment_name("tiny") in names and any(n.startswith("dvd360-tiny (artifacts in ") for n in names)
    with stage_run("models", profile="tiny") as again:  # now settled: the same experiment
        pass
    assert again.info.experiment_id == run.info.experiment_id


def test_a_refused_request_fails_the_run_and_names_the_request(tmp_path, monkeypatch):
    import mlflow

    from dvd360.tracking import TrackingError, log_metrics, stage_run

    _repo(tmp_path / "repo", monkeypatch)
    with pytest.raises(TrackingError, match=r"metrics: MlflowException.*Names may only contain"):
        with stage_run("flow", profile="tiny") as run:
            log_metrics({"bad*name": 1.0})
            log_metrics({"good": 2.0})  # skipped: the run has already failed
    failed = mlflow.search_runs(experiment_names=["dvd360-tiny"], output_format="list",
                                filter_string="tags.`dvd360.stage` = 'flow'")
    assert [r.info.status for r in failed] == ["FAILED"] and run._info is None


def test_nested_runs_and_logging_outside_a_run(tmp_path, monkeypatch):
    import mlflow

    from dvd360.tracking import TrackingError, log_artifact, log_metrics, stage_run

    _repo(tmp_path / "repo", monkeypatch)
    with pytest.raises(TrackingError, match="outside a stage_run"):
        log_metrics({"x": 1.0})
    with pytest.raises(FileNotFoundError, match="missing.json"):
        with stage_run("score", profile="tiny"):
            log_artifact(tmp_path / "missing.json")
    with stage_run("score", profile="tiny") as parent:
        with stage_run("score", profile="tiny", run_name="score-A", nested=True) as child:
            log_metrics({"seam_ratio": 1.5}, step=0)
        assert parent.info.run_id  # asked of the MLflow process while the run is open
    stored = mlflow.get_run(child.info.run_id)
    assert stored.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert stored.data.metrics == {"seam_ratio": 1.5} and child.info.experiment_id == parent.info.experiment_id


def test_score_run_links_name_the_runs_and_drop_a_rewritten_score_file(tmp_path, monkeypatch):
    """The score stage's runs file links its run and each method's while their score files are
    the ones they logged; a rewritten score file links neither it nor the stage's run."""
    from dvd360.report.gallery import ReportInputError
    from dvd360.report.runs import RUNS_FILE, score_runs, write_score_runs
    from dvd360.tracking import experiment_name, stage_run

    _repo(tmp_path / "repo", monkeypatch)
    scores = tmp_path / "scores"
    assert score_runs(scores) == []  # scores made elsewhere: nothing to link
    methods = {}
    with stage_run("score", profile="tiny") as parent:
        for method in ("A", "D"):
            (scores / f"{method}.json").parent.mkdir(exist_ok=True)
            (scores / f"{method}.json").write_text(f'{{"method": "{method}"}}')
            with stage_run("score", profile="tiny", run_name=f"score-{method}", nested=True) as child:
                pass
            methods[method] = child.info
        write_score_runs(scores, parent.info, methods)
    links = score_runs(scores)
    assert [link["label"] for link in links] == ["score stage", "score A", "score D"]
    assert [link["run_id"] for link in links] == [parent.info.run_id, methods["A"].run_id, methods["D"].run_id]
    assert {link["experiment"] for link in links} == {experiment_name("tiny")}
    (scores / "D.json").write_text('{"method": "D", "rescored": true}')
    assert [link["label"] for link in score_runs(scores)] == ["score A"]
    (scores / RUNS_FILE).write_text("[]")
    with pytest.raises(ReportInputError, match="runs.run.json: not a score-runs file"):
        score_runs(scores)


def test_the_mlflow_process_dying_fails_the_stage_and_the_next_run_starts_a_new_one(tmp_path, monkeypatch):
    import mlflow

    from dvd360 import tracking
    from dvd360.tracking import TrackingError, stage_run

    _repo(tmp_path / "repo", monkeypatch)
    with pytest.raises(TrackingError, match="has exited"):
        with stage_run("models", profile="tiny"):
            worker = tracking.start_tracking().process
            worker.kill()
            worker.wait()
    with stage_run("models", profile="tiny") as run:
        pass
    assert mlflow.get_run(run.info.run_id).info.status == "FINISHED"


def test_a_stage_process_that_dies_leaves_its_run_killed(tmp_path, monkeypatch):
    import subprocess
    import sys
    import time

    import mlflow

    _repo(tmp_path / "repo", monkeypatch)
    code = ("import os\nfrom dvd360.tracking import stage_run\n"
            "with stage_run('prepare', profile='tiny') as run:\n    print(run.info.run_id, flush=True)\n    os._exit(3)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    run_id = done.stdout.strip()
    for _ in range(600):  # the MLflow process ends the run once it sees the stage gone (a minute at most)
        if mlflow.get_run(run_id).info.status != "RUNNING":
            break
        time.sleep(0.1)
    assert mlflow.get_run(run_id).info.status == "KILLED"
