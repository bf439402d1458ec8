"""params.yaml is validated before compute: errors name the file, the key and what is allowed."""

from __future__ import annotations

import importlib.util
import re
import sys

import pytest
import yaml

from dvd360.config import load_params, repo_root, stage_params
from dvd360.params_schema import ParamsFileError, validated_stage_params

# The settings model (or {profile: model}) each stage script checks its section with (from the package).
STAGE_MODELS = {"prepare": "PrepareSettings", "models": "ModelsSettings", "caption": "CaptionSettings",
                "flow": "FlowSettings", "train": "TrainSettings", "generate": "GenerateSettings",
                "score": "ScoreSettings", "compare": "CompareSettings", "study": "StudySettings"}


def _stage_module(stage: str):
    name = f"stage_{stage}"
    spec = importlib.util.spec_from_file_location(name, repo_root() / "pipelines" / f"{stage}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the model's annotations in its module
    spec.loader.exec_module(module)
    return module


def _stage_settings(stage: str):
    """The settings model a stage script checks with (e.g. FlowSettings in pipelines/flow.py)."""
    return getattr(_stage_module(stage), STAGE_MODELS[stage])


def _shipped() -> dict:
    return yaml.safe_load((repo_root() / "params.yaml").read_text(encoding="utf-8"))


def _write(tmp_path, params):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def test_every_stage_script_checks_its_settings():
    scripts = {path.stem for path in (repo_root() / "pipelines").glob("*.py")}
    assert scripts == set(STAGE_MODELS)
    for stage in scripts:
        source = (repo_root() / "pipelines" / f"{stage}.py").read_text(encoding="utf-8")
        assert re.findall(rf'(\w*)stage_params\("{stage}"', source) == ["validated_"], stage


@pytest.mark.parametrize("stage", sorted(STAGE_MODELS))
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
    ("generate", lambda p: p["generate"]["paper"].update(dtype="fp17"),
     r"generate\.paper\.dtype: Input should be 'float32', 'float16' or 'bfloat16' \(got 'fp17'\)"),
    ("generate", lambda p: p["generate"]["tiny"].update(device="gpu"), r"generate\.tiny\.device: .*auto\|cpu\|mps\|cuda"),
    ("generate", lambda p: p["generate"]["tiny"].update(width=200), r"generate\.tiny\.width: .*multiple of 64 \(got 200\)"),
    ("generate", lambda p: p["generate"]["common"].update(stepz=3),
     r"generate\.tiny\.stepz: unknown key \(allowed: models_dir, .*steps, "),
    ("generate", lambda p: p["generate"]["tiny"].update(seeds=[]), r"generate\.tiny\.seeds: List should have at least 1"),
    ("train", lambda p: p["train"]["paper"].update(mixed_precision="fp8"),
     r"train\.paper\.mixed_precision: Input should be 'no', 'fp16' or 'bf16' \(got 'fp8'\)"),
    ("train", lambda p: p["train"]["tiny"].update(lr="1e-3"), r"train\.tiny\.lr: Input should be a valid number \(got '1e-3'\)"),
    ("train", lambda p: p["train"]["tiny"].update(steps=0), r"train\.tiny\.steps: Input should be greater than 0"),
    ("train", lambda p: p["train"]["common"].update(text_dropout=1.5), r"train\.paper\.text_dropout: .*less than or equal to 1"),
    ("train", lambda p: p["train"]["tiny"]["validation"].update(stepz=3),
     r"train\.tiny\.validation\.stepz: unknown key \(allowed: prompt, steps, "),
    ("train", lambda p: p["train"]["common"].update(out_dir="elsewhere"), r"train\.tiny\.out_dir: unknown key"),
    ("prepare", lambda p: p["prepare"]["tiny"].update(width=100), r"prepare\.tiny: width must be 2 x height \(got 64x100\)"),
    ("prepare", lambda p: p["prepare"]["tiny"].update(clips=0), r"prepare\.tiny\.clips: Input should be greater than 0"),
    ("prepare", lambda p: p["prepare"]["paper"].update(lenient="yes"), r"prepare\.paper\.lenient: .*valid boolean \(got 'yes'\)"),
    ("models", lambda p: p["models"]["tiny"].update(sd15="x"), r"models\.tiny\.sd15: unknown key \(allowed: seed\)"),
    ("models", lambda p: p["models"]["paper"].update(clip=None), r"models\.paper\.clip: Input should be a valid string"),
    ("compare", lambda p: p["compare"]["common"].update(methods=["A", "E"]),
     r"compare\.tiny\.methods: Input should list method ids of eval/methods\.yaml: A, B, C, D, D_no_360tf"),
    ("compare", lambda p: p["compare"]["common"].update(reference="D_no_latloss"),
     r"compare\.tiny\.reference: Input should be one of the compared methods: A, B, C, D"),
])
def test_bad_stage_values_name_file_key_and_allowed_values(tmp_path, stage, change, message):
    params = _shipped()
    change(params)
    path = _write(tmp_path, params)
    with pytest.raises(ParamsFileError, match=message) as error:
        validated_stage_params(stage, load_params(path), _stage_settings(stage), path)  # the other profile too
    assert str(path) in str(error.value)


def test_a_profile_without_a_section_is_not_checked(tmp_path):
    """A file that sets up one profile only (a user's own paper run) is valid for that profile; the
    other profile's section, once present, is checked like the active one."""
    params = _shipped()
    del params["generate"]["tiny"]
    params["profile"] = "paper"
    settings = validated_stage_params("generate", params, _stage_settings("generate"))
    assert settings.suite == params["generate"]["paper"]["suite"]
    params["generate"]["tiny"] = {"steps": 0}
    with pytest.raises(ParamsFileError, match=r"generate\.tiny\.steps"):
        validated_stage_params("generate", params, _stage_settings("generate"))


@pytest.mark.parametrize("stage", sorted(STAGE_MODELS))
def test_the_active_profile_settings_come_back_typed(stage):
    """What the stage reads is the model's instance: `common` + the profile, defaults filled in."""
    params = load_params(repo_root() / "params.yaml")
    models = _stage_settings(stage)
    settings = validated_stage_params(stage, params, models)
    assert type(settings) is (models[params["profile"]] if isinstance(models, dict) else models)
    assert settings.model_dump(exclude_unset=True) == stage_params(stage, params)


def test_a_training_run_adds_only_its_variant_and_folders_to_the_train_settings():
    from dvd360.training.config import TrainConfig, TrainSettings

    assert set(TrainConfig.model_fields) - set(TrainSettings.model_fields) == {"variant", "out_dir", "checkpoint_dir",
                                                                                "report_dir"}


def test_paper_models_settings_name_every_feature_net():
    from dvd360.models.feature_nets import KINDS

    assert set(KINDS) <= set(_stage_settings("models")["paper"].model_fields)
