"""MLflow tracking: failed stages end FAILED; a copied clone writes into its own artifacts."""

from __future__ import annotations

import shutil

import pytest


def _repo(folder, monkeypatch):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text("profile: tiny\n")
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")


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
