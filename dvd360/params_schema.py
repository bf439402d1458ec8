"""One validation of configuration files (pydantic): params.yaml and eval/*.yaml, before any
stage computes anything.

`load_params` checks params.yaml's structure: `profile`; `paths` (every stage I/O path,
strings); that every stage section holds only `common`, `tiny` and `paper` mappings. A stage
script then gets its settings from `validated_stage_params`: the `StageSettings` model (or one
per profile) that the library code it configures declares, checked for both profiles and
returned as that model, which the stage and the library use as is. The eval files are read with
`validated_file` (or `read_yaml` + `validated`) and a `StrictModel` each (`dvd360.methods`, `dvd360.study.definition`).
Every error names the file, the key and what is allowed::

    params.yaml: invalid parameters:
      flow.paper.method: Input should be 'dis', 'ilk', 'tvl1' or 'raft' (got 'lk')
    eval/methods.yaml: invalid methods:
      methods.A.colour: unknown key (allowed: label, description, lora, ...)
"""

from __future__ import annotations

import collections.abc
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Mapping, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dvd360.config import PROFILES

SECTION_KEYS = ("common", *PROFILES)
Model = TypeVar("Model", bound=BaseModel)
# A device setting, as `dvd360.device.resolve_device` takes it ("auto": CUDA when there is one).
Device = Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")]


class StrictModel(BaseModel):
    """Base of a configuration file's models: strict types (YAML gives real types: "40" is no
    int), unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)


class StageSettings(StrictModel):
    """Base of a stage's settings: params.yaml `<stage>` of one profile (`common` + the profile),
    read only."""

    model_config = ConfigDict(frozen=True)


class ParamsFileError(ValueError):
    """An invalid params.yaml; the message names the file and every bad key with what is allowed."""


def _allowed_keys(model: Any, loc: tuple) -> list[str]:
    """The keys of the model nested at `loc` under `model` (through fields, dicts, lists, Optional)."""
    node = model
    for part in (*loc, None):
        while typing.get_origin(node) in (typing.Union, types.UnionType):  # X | None
            node = next(arg for arg in typing.get_args(node) if arg is not type(None))
        origin = typing.get_origin(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            fields = {field.alias or name: field for name, field in node.model_fields.items()}
            if part is None:
                return list(fields)
            node = fields[part].annotation if part in fields else None
        elif origin in (dict, list, collections.abc.Mapping):
            node = typing.get_args(node)[-1]
        else:
            return []
    return []


def problems(error: ValidationError, where: str = "", model: type[BaseModel] | None = None) -> list[str]:
    """One line per error: `where.key.path: what is wrong (got value)`; an unknown key lists the
    keys `model` allows there (`model`: the validated model, whose nesting `loc` follows)."""
    lines = []
    for item in error.errors():
        loc = tuple(part for part in item["loc"] if not str(part).startswith("literal["))
        key = ".".join(str(part) for part in (where, *loc) if part != "") or "(top level)"
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            lines.append(f"{key}: unknown key (allowed: {', '.join(allowed)})")
        elif item["type"] == "missing":
            lines.append(f"{key}: missing")
        elif isinstance(item.get("input"), dict):  # a whole mapping: its keys are named above
            lines.append(f"{key}: {item['msg']}")
        else:
            lines.append(f"{key}: {item['msg']} (got {item.get('input')!r})")
    return lines


def read_yaml(path: str | Path, error: type[ValueError]) -> Any:
    """The YAML document at `path` (None when empty); `error` when it is not YAML."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as failure:
        raise error(f"{path}: not valid YAML ({failure})") from failure


def validated(model: type[Model], data: Any, path: str | Path, error: type[ValueError], what: str,
              context: Mapping[str, Any] | None = None) -> Model:
    """`data` (read from `path`) checked against `model`; `error` lists every problem."""
    try:
        return model.model_validate({} if data is None else data, context=dict(context or {}))
    except ValidationError as failure:
        raise error(f"{path}: invalid {what}:\n  " + "\n  ".join(problems(failure, model=model))) from None


def validated_file(model: type[Model], path: str | Path, error: type[ValueError], what: str) -> Model:
    """The YAML file at `path` checked against `model`."""
    return validated(model, read_yaml(path, error), path, error, what)


def validate_params(params: Mapping[str, Any], path: str | Path = "params.yaml") -> None:
    """The file's structure: raise ParamsFileError listing every problem of a loaded params.yaml."""
    problems = []
    if params.get("profile", "tiny") not in PROFILES:
        problems.append(f"profile: must be one of {', '.join(PROFILES)} (got {params.get('profile')!r})")
    paths = params.get("paths")
    if paths is not None and not (isinstance(paths, dict)
                                  and all(isinstance(v, str) and v for v in paths.values())):
        problems.append(f"paths: must map names to non-empty path strings (got {paths!r})")
    for stage, section in params.items():
        if stage in ("profile", "paths"):
            continue
        if not isinstance(section, dict):
            problems.append(f"{stage}: must be a mapping of {', '.join(SECTION_KEYS)} (got {section!r})")
            continue
        shape = [f"{stage}.{key}: unknown section (allowed: {', '.join(SECTION_KEYS)})"
                 for key in section if key not in SECTION_KEYS]
        shape += [f"{stage}.{key}: must be a mapping (got {section[key]!r})" for key in SECTION_KEYS
                  if not isinstance(section.get(key) or {}, dict)]
        problems += shape
    if problems:
        raise ParamsFileError(f"{path}: invalid parameters:\n  " + "\n  ".join(problems))


def validated_stage_params(stage: str, params: Mapping[str, Any],
                           model: type[Model] | Mapping[str, type[Model]],
                           path: str | Path = "params.yaml") -> Model:
    """The active profile's settings of `stage` as `model` (`model` may map each profile to its
    own); the other profile's are checked too when the file has a section for it, so a typo in
    the profile not being run is caught as well."""
    from dvd360.config import stage_params

    found, active = [], None
    section = params.get(stage) or {}
    for profile in (p for p in PROFILES if p == params["profile"] or p in section):
        checked = model[profile] if isinstance(model, Mapping) else model
        try:
            settings = checked.model_validate(stage_params(stage, {**params, "profile": profile}))
        except ValidationError as error:
            found += problems(error, f"{stage}.{profile}", checked)
            continue
        if profile == params["profile"]:
            active = settings
    if found:
        raise ParamsFileError(f"{path}: invalid parameters:\n  " + "\n  ".join(found))
    return active
