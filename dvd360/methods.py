"""The benchmark as data: methods (`eval/methods.yaml`) and prompt suites (`eval/prompts.yaml`).

A method is a composition of: the panorama LoRA (off, or on at a weight), latent rotation,
circular padding, a trained 360-Adapter variant (read from
`data/adapters/{variant}/adapter.safetensors`) and which motion condition it gets (`clip`: the
prompt's dataset clip, `zero`: none). The methods file also lists the trained adapter variants
(`load_variants`); dvc.yaml's `foreach` reads both lists from it. Both files are validated on load; every error names the
file and lists what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dvd360.config import repo_root

CONDITIONS = ("clip", "zero")
METHOD_KEYS = ("label", "description", "lora", "latent_rotation", "circular_padding", "adapter", "condition",
               "deps")
VARIANT_KEYS = ("captions", "temporal", "latitude_loss")  # the TrainConfig settings a variant may change
PROMPT_KEYS = ("id", "text", "condition")
ADAPTER_FILE = "adapter.safetensors"


class BenchmarkFileError(ValueError):
    """An invalid methods or prompts file; the message names the file and every problem."""


@dataclass(frozen=True)
class Method:
    """One generator configuration. `lora_weight` is None when the LoRA is off."""

    id: str
    label: str
    description: str
    lora_weight: float | None
    latent_rotation: bool
    circular_padding: bool
    adapter: str | None
    condition: str

    def adapter_path(self, adapters_dir: str | Path = "data/adapters") -> Path | None:
        """`{adapters_dir}/{variant}/adapter.safetensors`, or None without an adapter."""
        return None if self.adapter is None else Path(adapters_dir) / self.adapter / ADAPTER_FILE


@dataclass(frozen=True)
class Prompt:
    """A prompt of a suite: `condition` is "zero" or a dataset clip id."""

    id: str
    text: str
    condition: str


def _read_yaml(path: Path, top: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise BenchmarkFileError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(data, dict) or not isinstance(data.get(top), dict) or not data[top]:
        raise BenchmarkFileError(f"{path}: expected a non-empty mapping under `{top}:`")
    return data[top]


def _check_keys(where: str, entry: Any, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(entry, dict):
        return [f"{where}: expected a mapping, got {type(entry).__name__}"]
    problems = [f"{where}: unknown key {key!r} (known: {', '.join(allowed)})" for key in entry if key not in allowed]
    problems += [f"{where}: missing key {key!r}" for key in allowed if key not in entry]
    return problems


def methods_file() -> Path:
    """`eval/methods.yaml` of the repository: the one list of methods and training variants."""
    return repo_root() / "eval" / "methods.yaml"


def load_variants(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The trained adapter variants of `eval/methods.yaml` (or `path`): {name: settings it changes}."""
    path = Path(path) if path is not None else methods_file()
    variants, problems = _read_yaml(path, "variants"), []
    if "full" not in variants:
        problems.append("variants: `full` (360DVD as published) is missing")
    for name, changes in variants.items():
        changes = {} if changes is None else changes
        if not isinstance(changes, dict):
            problems.append(f"variant {name}: expected a mapping of settings, got {changes!r}")
            continue
        problems += [f"variant {name}: unknown setting {key!r} (known: {', '.join(VARIANT_KEYS)})"
                     for key in changes if key not in VARIANT_KEYS]
        variants[name] = changes
    if problems:
        raise BenchmarkFileError(f"{path}: invalid variants:\n  " + "\n  ".join(problems))
    return {str(name): dict(changes) for name, changes in variants.items()}


def _method(method_id: str, entry: dict[str, Any], variants: dict[str, dict]) -> tuple[Method | None, list[str]]:
    problems = _check_keys(f"method {method_id}", entry, METHOD_KEYS)
    if problems:
        return None, problems
    lora = entry["lora"]
    if lora is not None and not (isinstance(lora, dict) and set(lora) == {"weight"}
                                 and isinstance(lora["weight"], (int, float))):
        problems.append(f"method {method_id}: lora must be null or {{weight: <number>}}, got {lora!r}")
    for key in ("latent_rotation", "circular_padding"):
        if not isinstance(entry[key], bool):
            problems.append(f"method {method_id}: {key} must be true or false, got {entry[key]!r}")
    if entry["adapter"] is not None and entry["adapter"] not in variants:
        problems.append(f"method {method_id}: adapter {entry['adapter']!r} is not a trained variant "
                        f"(known: null, {', '.join(variants)})")
    expected_deps = "data/models" if entry["adapter"] is None else f"data/adapters/{entry['adapter']}"
    if entry["deps"] != expected_deps:
        problems.append(f"method {method_id}: deps must be {expected_deps!r} (its adapter's folder, or "
                        f"data/models without one), got {entry['deps']!r}")
    if entry["condition"] not in CONDITIONS:
        problems.append(f"method {method_id}: condition {entry['condition']!r} (known: {', '.join(CONDITIONS)})")
    elif entry["condition"] == "clip" and entry["adapter"] is None:
        problems.append(f"method {method_id}: condition clip needs an adapter")
    for key in ("label", "description"):
        if not isinstance(entry[key], str) or not entry[key].strip():
            problems.append(f"method {method_id}: {key} must be a non-empty string")
    if problems:
        return None, problems
    return Method(id=method_id, label=entry["label"], description=entry["description"],
                  lora_weight=None if lora is None else float(lora["weight"]),
                  latent_rotation=entry["latent_rotation"], circular_padding=entry["circular_padding"],
                  adapter=entry["adapter"], condition=entry["condition"]), []


def load_methods(path: str | Path | None = None) -> dict[str, Method]:
    """All methods of `eval/methods.yaml` (or `path`), validated, in file order."""
    path = Path(path) if path is not None else methods_file()
    methods, problems = {}, []
    variants = load_variants(path)
    for method_id, entry in _read_yaml(path, "methods").items():
        method, found = _method(str(method_id), entry, variants)
        problems += found
        if method is not None:
            methods[method.id] = method
    if problems:
        raise BenchmarkFileError(f"{path}: invalid methods:\n  " + "\n  ".join(problems))
    return methods


def get_method(method_id: str, path: str | Path | None = None) -> Method:
    """One method by id; an unknown id raises KeyError listing the known ones."""
    methods = load_methods(path)
    if method_id not in methods:
        raise KeyError(f"unknown method {method_id!r}; known: {', '.join(methods)}")
    return methods[method_id]


def load_prompts(suite: str, path: str | Path | None = None) -> list[Prompt]:
    """The prompts of one suite of `eval/prompts.yaml` (or `path`), validated."""
    path = Path(path) if path is not None else repo_root() / "eval" / "prompts.yaml"
    suites = _read_yaml(path, "suites")
    if suite not in suites:
        raise KeyError(f"{path}: unknown prompt suite {suite!r}; known: {', '.join(suites)}")
    entries = suites[suite].get("prompts") if isinstance(suites[suite], dict) else None
    if not isinstance(entries, list) or not entries:
        raise BenchmarkFileError(f"{path}: suite {suite!r} needs a non-empty `prompts:` list")
    problems, prompts = [], []
    for number, entry in enumerate(entries):
        where = f"suite {suite} prompt {number}"
        found = _check_keys(where, entry, PROMPT_KEYS)
        if not found:
            found = [f"{where}: {key} must be a non-empty string" for key in PROMPT_KEYS
                     if not isinstance(entry[key], str) or not entry[key].strip()]
        if not found and not entry["id"].replace("_", "").replace("-", "").isalnum():
            found.append(f"{where}: id {entry['id']!r} must be letters, digits, '_' or '-' (it names files)")
        problems += found
        if not found:
            prompts.append(Prompt(id=entry["id"], text=entry["text"], condition=entry["condition"]))
    ids = [p.id for p in prompts]
    problems += [f"suite {suite}: prompt id {i!r} repeats" for i in sorted(set(ids)) if ids.count(i) > 1]
    if problems:
        raise BenchmarkFileError(f"{path}: invalid prompts:\n  " + "\n  ".join(problems))
    return prompts
