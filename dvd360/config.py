"""Parameters: one `params.yaml`, a `profile` key, per-stage sections split by profile.

Layout of `params.yaml`::

    profile: tiny            # or paper
    <stage>:
      common: {...}          # values shared by both profiles (optional)
      tiny: {...}
      paper: {...}

`stage_params(stage)` returns `common` updated with the active profile's section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PROFILES = ("tiny", "paper")


def repo_root() -> Path:
    """The repository root: the nearest parent of the working directory holding params.yaml."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file():
            return folder
    return here


def repo_relative(path: str | Path) -> str:
    """`path` relative to the repository root (POSIX) when it lies inside it, else absolute:
    what records store, so that a copied or moved clone's records stay true."""
    resolved = Path(path).resolve()
    root = repo_root()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else resolved.as_posix()


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """Read params.yaml (default: the repository root's), validated (`dvd360.params_schema`)."""
    path = Path(path) if path is not None else repo_root() / "params.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such parameter file")
    from dvd360.params_schema import validate_params

    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(params).__name__}")
    validate_params(params, path)  # ParamsFileError (a ValueError) naming every bad key
    params["profile"] = params.get("profile", "tiny")
    return params


def stage_params(stage: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters of one stage for the active profile: `common` updated by `<profile>`."""
    params = params if params is not None else load_params()
    if stage not in params:
        raise KeyError(f"params.yaml has no section {stage!r}")
    section = params[stage] or {}
    merged = dict(section.get("common", {}) or {})
    merged.update(section.get(params["profile"], {}) or {})
    return merged
