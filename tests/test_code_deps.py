"""dvc.yaml: every stage's code deps are what its script imports; params per profile; one list of
methods and variants; paths from params.yaml."""

from __future__ import annotations

import shutil

import pytest
import yaml

from dvd360.code_deps import expected_deps, package_root, stage_bodies, sync_dvc_yaml
from dvd360.methods import load_methods, load_variants

ROOT = package_root().parent


def _dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))


def test_each_stage_declares_exactly_the_code_its_script_imports():
    stale = sync_dvc_yaml(ROOT / "dvc.yaml")
    assert stale == [], f"dvc.yaml code deps out of date for {stale}: run `python -m dvd360.code_deps --write`"
    for name, body in stage_bodies(_dvc_yaml()).items():
        assert expected_deps(body) is not None, f"stage {name}: no `python pipelines/<script>.py` in its cmd"


def test_sync_rewrites_a_stale_stage_and_keeps_data_deps(tmp_path):
    copy = tmp_path / "dvc.yaml"
    shutil.copy(ROOT / "dvc.yaml", copy)
    data = yaml.safe_load(copy.read_text())
    data["stages"]["study"]["deps"] = ["pipelines/study.py", "dvd360/stats.py", "eval/study.yaml"]
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    assert sync_dvc_yaml(copy) == ["study"] and sync_dvc_yaml(copy, write=True) == ["study"]
    deps = yaml.safe_load(copy.read_text())["stages"]["study"]["deps"]
    assert "dvd360/stats.py" not in deps and "dvd360/study/packets.py" in deps and deps[-1] == "eval/study.yaml"
    assert sync_dvc_yaml(copy) == []


@pytest.fixture(scope="module")
def resolved_stages():
    """The stages as DVC resolves dvc.yaml's templating (vars, ${profile}, ${paths.*})."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        return {stage.addressing: stage for stage in repo.index.stages}


def test_foreach_lists_come_from_eval_methods_yaml(resolved_stages):
    assert {name for name in resolved_stages if name.startswith("generate@")} == {
        f"generate@{m}" for m in load_methods()}
    assert {name for name in resolved_stages if name.startswith("train@")} == {f"train@{v}" for v in load_variants()}
    deps = {str(d.def_path) for d in resolved_stages["generate@D_no_latloss"].deps}
    assert "data/adapters/no_latloss" in deps and "data/adapters/full" not in deps


def test_params_are_per_profile_so_paper_edits_leave_tiny_stages_alone(resolved_stages):
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert params["profile"] == "tiny"
    for name, stage in resolved_stages.items():
        keys = [key for dep in stage.deps if hasattr(dep, "params") for key in dep.params]
        assert keys and keys[0] == "profile", name
        for key in keys:
            assert "paper" not in key.split("."), f"{name} tracks {key}"
            node = params
            for part in key.split("."):
                assert part in node, f"{name}: params.yaml has no {key}"
                node = node[part]


def test_stage_paths_come_from_params(resolved_stages):
    paths = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["paths"]
    outs = {str(out.def_path) for stage in resolved_stages.values() for out in stage.outs}
    assert {paths[k] for k in ("models", "web360", "captions", "flows", "scores", "summary", "study")} <= outs
    assert f"{paths['adapters']}/full" in outs and f"{paths['generations']}/A" in outs
