"""The shared plumbing: atomic writes, params per profile, MLflow runs, the CLI root."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from dvd360 import __version__
from dvd360.atomic import atomic_path, write_json
from dvd360.cli import main
from dvd360.config import load_params, stage_params


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~umask


def test_atomic_dir_keeps_the_old_folder_when_the_final_rename_fails(tmp_path, monkeypatch):
    from dvd360.atomic import atomic_dir

    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "old.txt").write_text("old")
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(src).name.endswith(".tmp"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        with atomic_dir(target) as tmp:
            (tmp / "new.txt").write_text("new")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (target / "old.txt").read_text() == "old"
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"] and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_writes_never_change_the_umask(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or 0o022)
    write_json(tmp_path / "a.json", {})
    from dvd360.atomic import atomic_dir

    with atomic_dir(tmp_path / "d"):
        pass
    assert calls == []


def test_stage_params_merges_common_and_profile(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("profile: paper\nstage:\n  common: {a: 1, b: 2}\n  tiny: {b: 3}\n  paper: {b: 4, c: 5}\n")
    params = load_params(params_file)
    assert stage_params("stage", params) == {"a": 1, "b": 4, "c": 5}
    params["profile"] = "tiny"
    assert stage_params("stage", params) == {"a": 1, "b": 3}


def test_unknown_profile_names_the_file(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("profile: huge\n")
    with pytest.raises(ValueError, match=r"(?s)params\.yaml.*huge"):
        load_params(params_file)


def test_stage_run_records_params_and_provenance():
    import mlflow

    from dvd360.tracking import log_metrics, stage_run, tracking_uri

    with stage_run("unit", profile="tiny", params={"outer": {"inner": 3}}) as run:
        log_metrics({"score": {"value": 0.5}, "label": "not a number"})
    stored = mlflow.MlflowClient(tracking_uri()).get_run(run.info.run_id)
    assert stored.data.params == {"outer.inner": "3"}
    assert stored.data.metrics == {"score.value": 0.5}
    assert stored.data.tags["dvd360.stage"] == "unit"
    assert stored.data.tags["version.torch"]


def test_cli_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


@pytest.mark.parametrize("script", sorted((Path(__file__).parents[1] / "pipelines").glob("*.py")), ids=lambda p: p.stem)
def test_stage_scripts_import(script):
    """Every DVC stage script imports: a renamed function elsewhere breaks it here, not in dvc repro."""
    spec = importlib.util.spec_from_file_location(f"stage_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None))


def test_repo_relative_paths_inside_the_repository_only(tmp_path, monkeypatch):
    from dvd360.config import repo_relative

    (tmp_path / "params.yaml").write_text("profile: tiny\n")
    monkeypatch.chdir(tmp_path)
    assert repo_relative(tmp_path / "data" / "web360" / "x.npz") == "data/web360/x.npz"
    assert repo_relative("data/x.mp4") == "data/x.mp4"
    assert repo_relative(tmp_path.parent / "elsewhere.mp4") == (tmp_path.parent / "elsewhere.mp4").as_posix()
