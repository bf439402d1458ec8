"""The benchmark as data: methods (`eval/methods.yaml`) and prompt suites (`eval/prompts.yaml`).

A method is a composition of: the panorama LoRA (off, or on at a weight), latent rotation,
circular padding, a trained 360-Adapter variant (read from
`data/adapters/{variant}/adapter.safetensors`) and which motion condition it gets (`clip`: the
prompt's dataset clip, `zero`: none). The methods file also lists the trained adapter variants
(`load_variants`); dvc.yaml's `foreach` reads both lists from it. Both files are validated on
load (the pydantic models below); every error names the file,
the key and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from dvd360.config import repo_root
from dvd360.params_schema import StrictModel, read_yaml, validated, validated_file

CONDITIONS = ("clip", "zero")
CAPTION_SOURCES = ("fused", "erp", "dataset")  # 360 Text Fusion, whole-ERP, the dataset's own captions
ADAPTER_FILE = "adapter.safetensors"
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class BenchmarkFileError(ValueError):
    """An invalid methods or prompts file; the message names the file and every problem."""


class VariantChanges(StrictModel):
    """The TrainConfig settings a trained variant changes relative to `full`."""

    captions: Literal[CAPTION_SOURCES] = "fused"
    temporal: bool = True
    latitude_loss: bool = True


class LoraSetting(StrictModel):
    weight: float


class MethodEntry(StrictModel):
    """One method of eval/methods.yaml (see the comments there)."""

    label: Text
    description: Text
    lora: LoraSetting | None
    latent_rotation: bool
    circular_padding: bool
    adapter: str | None
    deps: str
    condition: Literal[CONDITIONS]

    @field_validator("adapter")
    @classmethod
    def _trained_variant(cls, adapter: str | None, info: ValidationInfo) -> str | None:
        variants = info.context["variants"]
        if adapter is not None and adapter not in variants:
            raise PydanticCustomError("variant", "Input should be null or a trained variant: {known}",
                                      {"known": ", ".join(map(repr, variants))})
        return adapter

    @field_validator("deps")
    @classmethod
    def _adapter_folder(cls, deps: str, info: ValidationInfo) -> str:
        if "adapter" in info.data:
            expected = "data/models" if info.data["adapter"] is None else f"data/adapters/{info.data['adapter']}"
            if deps != expected:
                raise PydanticCustomError("deps", f"Input should be {expected!r} (the adapter's folder, or "
                                          "data/models without one)")
        return deps

    @field_validator("condition")
    @classmethod
    def _clip_needs_adapter(cls, condition: str, info: ValidationInfo) -> str:
        if condition == "clip" and info.data.get("adapter", "") is None:
            raise PydanticCustomError("condition", "condition clip needs an adapter (without one: 'zero')")
        return condition


class MethodsFile(StrictModel):
    variants: dict[str, VariantChanges | None]
    methods: dict[str, MethodEntry] = Field(min_length=1)

    @field_validator("variants")
    @classmethod
    def _full_is_listed(cls, variants: dict) -> dict:
        if "full" not in variants:
            raise PydanticCustomError("full", "Input should list `full` (360DVD as published)")
        return variants


class PromptEntry(StrictModel):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]  # it names files
    text: Text
    condition: Text  # "zero" or a dataset clip id


class Suite(StrictModel):
    description: str = ""
    prompts: list[PromptEntry] = Field(min_length=1)

    @field_validator("prompts")
    @classmethod
    def _unique_ids(cls, prompts: list[PromptEntry]) -> list[PromptEntry]:
        ids = [prompt.id for prompt in prompts]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise PydanticCustomError("unique", "prompt ids repeat: {ids} (each names files)",
                                      {"ids": ", ".join(map(repr, repeated))})
        return prompts


class PromptsFile(StrictModel):
    suites: dict[str, Suite] = Field(min_length=1)


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


def methods_file() -> Path:
    """`eval/methods.yaml` of the repository: the one list of methods and training variants."""
    return repo_root() / "eval" / "methods.yaml"


def _methods_file(path: str | Path | None) -> MethodsFile:
    path = Path(path) if path is not None else methods_file()
    data = read_yaml(path, BenchmarkFileError)
    variants = data.get("variants") if isinstance(data, dict) else None  # what method adapters may name
    return validated(MethodsFile, data, path, BenchmarkFileError, "methods",
                     context={"variants": list(variants) if isinstance(variants, dict) else []})


def load_variants(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The trained adapter variants of `eval/methods.yaml` (or `path`): {name: settings it changes}."""
    variants = _methods_file(path).variants
    return {name: {} if changes is None else changes.model_dump(exclude_unset=True)
            for name, changes in variants.items()}


def load_methods(path: str | Path | None = None) -> dict[str, Method]:
    """All methods of `eval/methods.yaml` (or `path`), validated, in file order."""
    return {method_id: Method(id=method_id, label=entry.label, description=entry.description,
                              lora_weight=None if entry.lora is None else float(entry.lora.weight),
                              latent_rotation=entry.latent_rotation, circular_padding=entry.circular_padding,
                              adapter=entry.adapter, condition=entry.condition)
            for method_id, entry in _methods_file(path).methods.items()}


def get_method(method_id: str, path: str | Path | None = None) -> Method:
    """One method by id; an unknown id raises KeyError listing the known ones."""
    methods = load_methods(path)
    if method_id not in methods:
        raise KeyError(f"unknown method {method_id!r}; known: {', '.join(methods)}")
    return methods[method_id]


def load_prompts(suite: str, path: str | Path | None = None) -> list[Prompt]:
    """The prompts of one suite of `eval/prompts.yaml` (or `path`), validated (the whole file)."""
    path = Path(path) if path is not None else repo_root() / "eval" / "prompts.yaml"
    suites = validated_file(PromptsFile, path, BenchmarkFileError, "prompts").suites
    if suite not in suites:
        raise KeyError(f"{path}: unknown prompt suite {suite!r}; known: {', '.join(suites)}")
    return [Prompt(id=entry.id, text=entry.text, condition=entry.condition) for entry in suites[suite].prompts]
