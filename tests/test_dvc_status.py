"""What DVC would rerun, in a copy of the repository with placeholder outputs (no compute):
nothing after nothing changed, no tiny stage after a paper-only param edit, after a source
edit exactly the stages whose scripts import that file, and a train stage only for code that
shapes the adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dvd360.code_deps import stage_bodies, stage_code_deps
from dvd360.methods import load_variants
from repo_support import copy_repository

pytestmark = pytest.mark.slow


def _placeholders(repo) -> None:
    """A small file or folder at every path a stage reads or writes that does not exist yet."""
    root = Path(repo.root_dir)
    for stage in repo.index.stages:
        for entry in (*stage.deps, *stage.outs):
            if not hasattr(entry, "def_path") or hasattr(entry, "params"):
                continue
            path = root / str(entry.def_path)
            if path.exists():
                continue
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("placeholder\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "placeholder").write_text(str(entry.def_path))


def _changed(root: Path) -> set[str]:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return set(repo.status())


def _up_to_date_copy(root: Path) -> None:
    """A copy of the repository at `root` (the working directory) in which every stage is up to date."""
    from dvc.repo import Repo

    copy_repository(root)
    with Repo(str(root)) as repo:
        _placeholders(repo)
        _placeholders(repo)  # outputs nested in other stages' deps appear on the second pass
        repo.commit(force=True)


def test_dvc_reruns_exactly_what_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _up_to_date_copy(tmp_path)
    assert _changed(tmp_path) == set()  # nothing changed, nothing reruns

    params_file = tmp_path / "params.yaml"
    text = params_file.read_text()
    params = yaml.safe_load(text)
    paper_steps, tiny_steps = params["generate"]["paper"]["steps"], params["generate"]["tiny"]["steps"]
    paper_edit = text.replace(f"    steps: {paper_steps}\n", f"    steps: {paper_steps + 1}\n", 1)
    assert yaml.safe_load(paper_edit)["generate"]["paper"]["steps"] == paper_steps + 1
    params_file.write_text(paper_edit)
    assert _changed(tmp_path) == set()  # a paper-only edit reruns no tiny stage

    params_file.write_text(text.replace(f"    steps: {tiny_steps}   ", f"    steps: {tiny_steps + 1}   ", 1))
    assert yaml.safe_load(params_file.read_text())["generate"]["tiny"]["steps"] == tiny_steps + 1
    generate_stages = {name for name in _changed(tmp_path)}
    assert generate_stages and all(name.startswith("generate@") for name in generate_stages)
    params_file.write_text(text)

    dvc_yaml = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    expected = {"dvd360/training/loss.py": {"train"}, "dvd360/study/render.py": {"study"},
                "dvd360/geometry/erp.py": None}  # None: whatever imports it (many stages)
    for source, known in expected.items():
        edited = tmp_path / source
        original = edited.read_text()
        edited.write_text(original + "\n# edited\n")
        importing = {name for name, body in stage_bodies(dvc_yaml).items()
                     if source in stage_code_deps(body["cmd"].split()[1])}
        changed = {name.split("@")[0] for name in _changed(tmp_path)}
        assert changed == importing and importing == (known or importing) and len(importing) >= 1, source
        edited.write_text(original)
    assert _changed(tmp_path) == set()


@pytest.mark.parametrize("source, reruns_training", [("dvd360/metrics/engine.py", False),
                                                     ("dvd360/sampling/fast_path.py", False),
                                                     ("dvd360/training/loss.py", True)])
def test_train_stages_rerun_only_for_what_shapes_the_adapter(tmp_path, monkeypatch, source, reruns_training):
    """Any byte edit reruns the stages that list the file: the scoring engine and the sampler's fast
    path no train stage, the latitude loss every train stage (and nothing else)."""
    monkeypatch.chdir(tmp_path)
    _up_to_date_copy(tmp_path)
    edited = tmp_path / source
    edited.write_bytes(edited.read_bytes() + b"# edit\n")
    changed, training = _changed(tmp_path), {f"train@{variant}" for variant in load_variants()}
    if reruns_training:
        assert changed == training
    else:
        assert changed and not changed & training, changed  # the edit reruns some stage, no train stage
