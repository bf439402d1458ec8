"""params.yaml is validated before compute: errors name the file, the key and what is allowed."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import yaml

from dvd360.config import load_params, repo_root
from dvd360.params_schema import ParamsFileError, validated_stage_params


def _stage_settings(stage: str):
    """The settings model a stage script declares (e.g. FlowSettings of pipelines/flow.py)."""
    name = f"stage_{stage}"
    spec = importlib.util.spec_from_file_location(name, repo_root() / "pipelines" / f"{stage}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the model's annotations in its module
    spec.loader.exec_module(module)
    return getattr(module, f"{stage.capitalize()}Settings")


def _shipped() -> dict:
    return yaml.safe_load((repo_root() / "params.yaml").read_text(encoding="utf-8"))


def _write(tmp_path, params):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


@pytest.mark.parametrize("stage", ["caption", "flow", "study"])
def test_the_shipped_params_are_valid(stage):
    params = load_params(repo_root() / "params.yaml")
    assert params["paths"]["models"] == "data/models"
    assert validated_stage_params(stage, params, _stage_settings(stage))


@pytest.mark.parametrize("change, message", [
    (lambda p: p["generate"].update(tinny={}), r"generate\.tinny: unknown section \(allowed: common, tiny, paper\)"),
    (lambda p: p.update(profile="huge"), r"profile: must be one of tiny, paper"),
    (lambda p: p["paths"].update(models=3), r"paths: must map names to non-empty path strings"),
    (lambda p: p.update(score=[1]), r"score: must be a mapping of common, tiny, paper"),
])
def test_a_badly_shaped_file_is_refused_on_load(tmp_path, change, message):
    params = _shipped()
    change(params)
    path = _write(tmp_path, params)
    with pytest.raises(ParamsFileError, match=message) as error:
        load_params(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("stage, change, message", [
    ("flow", lambda p: p["flow"]["paper"].update(method="lk"), r"flow\.paper\.method: Input should be 'dis', 'ilk'.*'lk'"),
    ("flow", lambda p: p["flow"]["tiny"].update(source="web"), r"flow\.tiny\.source: .*'released' or 'estimate'"),
    ("caption", lambda p: p["caption"]["tiny"].update(captioner="gpt"), r"caption\.tiny\.captioner: .*'landmarks' or 'blip'"),
    ("study", lambda p: p["study"]["paper"].update(raters=0), r"study\.paper\.raters: Input should be greater than 0"),
])
def test_bad_stage_values_name_file_key_and_allowed_values(tmp_path, stage, change, message):
    params = _shipped()
    change(params)
    path = _write(tmp_path, params)
    with pytest.raises(ParamsFileError, match=message) as error:
        validated_stage_params(stage, load_params(path), _stage_settings(stage), path)  # the other profile too
    assert str(path) in str(error.value)
