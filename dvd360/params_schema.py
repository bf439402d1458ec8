"""One validation of params.yaml (pydantic), before any stage computes anything.

`load_params` checks the structure: `profile`; `paths` (every stage I/O path, strings); that
every stage section holds only `common`, `tiny` and `paper` mappings. A stage script then checks
its own settings with `validated_stage_params` and a `StageSettings` model declared beside the
values it allows (e.g. `captioning.captioners.CaptionSettings`), for both profiles. (Models
live with their stage so that a stage's code dependencies stay its own.) Every error names the
file, the key and what is allowed::

    params.yaml: flow.paper.method: Input should be 'dis', 'ilk', 'tvl1' or 'raft' (got 'lk')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError

from dvd360.config import PROFILES

SECTION_KEYS = ("common", *PROFILES)


class StageSettings(BaseModel):
    """Base of a stage's checked settings; keys it does not declare pass through to the stage."""

    model_config = ConfigDict(extra="allow")


class ParamsFileError(ValueError):
    """An invalid params.yaml; the message names the file and every bad key with what is allowed."""


def _problems(error: ValidationError, where: str) -> list[str]:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"] if not str(part).startswith("literal["))
        problems.append(f"{where}{'.' + key if key else ''}: {item['msg']} (got {item.get('input')!r})")
    return problems


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


def validated_stage_params(stage: str, params: Mapping[str, Any], model: type[StageSettings],
                           path: str | Path = "params.yaml") -> dict[str, Any]:
    """The active profile's settings of `stage` after checking BOTH profiles' merged settings
    against `model` (so a typo in the profile not being run is caught too)."""
    from dvd360.config import stage_params

    problems = []
    for profile in PROFILES:
        try:
            model.model_validate(stage_params(stage, {**params, "profile": profile}))
        except ValidationError as error:
            problems += _problems(error, f"{stage}.{profile}")
    if problems:
        raise ParamsFileError(f"{path}: invalid parameters:\n  " + "\n  ".join(problems))
    return stage_params(stage, params)
