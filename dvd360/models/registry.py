"""The model registry: every real model dvd360 uses, as data (`registry.yaml` beside this file).

`load_registry()` reads and validates it once (pydantic; unknown keys are errors). A `ModelEntry`
holds a model's role, kind, params piece, the metrics that need it, licence and `ModelFile`s; a
`ModelFile` its store path, size, sources (URLs, a hub file, or manual instructions) and what
it is checked against (`check`: sha256, sha256_prefix, git_blob_sha1, hub_published or
unverified). Plain data: no torch, no network (the `models` stage, the scorer and
`dvd360-eval models` read it; `dvd360.models.store` fetches and checks the files).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

REGISTRY_FILE = Path(__file__).with_name("registry.yaml")
SCORER_KINDS = ("clip", "i3d", "inception", "musiq", "aesthetic")
GENERATOR_KINDS = ("diffusers", "checkpoint", "lora", "adapter")
_HEX = r"^[0-9a-f]{%s}$"
TORCH_HUB_PREFIX = re.compile(r"-([0-9a-f]{8,})\.[^.]+$")  # torch.hub's HASH_REGEX, on the file name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubFile(_Strict):
    """A file of a Hugging Face hub repository."""

    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    file: str = Field(min_length=1)
    revision: str = "main"

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}/resolve/{self.revision}/{self.file}"


class ModelFile(_Strict):
    """One file of a model (see registry.yaml's header for the fields)."""

    path: str = Field(min_length=1)
    size: int | None = Field(default=None, gt=0)
    sha256: str | None = Field(default=None, pattern=_HEX % 64)
    sha256_prefix: str | None = Field(default=None, pattern=_HEX % "8,63")
    git_blob_sha1: str | None = Field(default=None, pattern=_HEX % 40)
    hub_published: bool = False
    hash_source: str | None = None
    urls: tuple[str, ...] = ()
    hub: HubFile | None = None
    manual: str | None = None
    note: str | None = None
    optional: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> ModelFile:
        hashes = [self.sha256, self.sha256_prefix, self.git_blob_sha1]
        if any(h is not None for h in hashes) and not self.hash_source:
            raise ValueError(f"{self.path}: a recorded hash needs hash_source (where it was published)")
        if self.sha256_prefix is not None:
            named = TORCH_HUB_PREFIX.search(Path(self.path).name)
            if named is None or named.group(1) != self.sha256_prefix:
                raise ValueError(f"{self.path}: sha256_prefix {self.sha256_prefix} is not the file name's hash suffix")
        if self.hub_published and self.hub is None:
            raise ValueError(f"{self.path}: hub_published needs a hub file")
        if not (self.urls or self.hub or self.manual):
            raise ValueError(f"{self.path}: no source (urls, hub or manual)")
        return self

    @property
    def check(self) -> str:
        """What a copy is checked against: the strongest published hash, else "unverified"."""
        for name in ("sha256", "sha256_prefix", "git_blob_sha1"):
            if getattr(self, name) is not None:
                return name
        return "hub_published" if self.hub_published else "unverified"

    @property
    def automatic(self) -> bool:
        """Whether `fetch` can download it (a URL or a hub file)."""
        return bool(self.urls or self.hub)

    def describe_check(self) -> str:
        """The check in words, for `models list`."""
        return {"sha256": f"sha256 {str(self.sha256)[:12]}… published",
                "sha256_prefix": f"sha256 prefix {self.sha256_prefix} published",
                "git_blob_sha1": f"git blob {str(self.git_blob_sha1)[:12]}… published",
                "hub_published": "hub's LFS sha256 / blob id, read at fetch",
                "unverified": "unverified: first copy's sha256 pinned"}[self.check]

    def source_text(self) -> str:
        """Where it comes from, in words."""
        if self.urls:
            return self.urls[0]
        if self.hub is not None:
            return f"hf://{self.hub.repo}/{self.hub.file}"
        return f"manual: {self.manual}"


class ModelEntry(_Strict):
    """One model of the registry."""

    name: str = ""
    title: str
    role: Literal["scorer", "generator"]
    kind: Literal[SCORER_KINDS + GENERATOR_KINDS]
    piece: str = Field(min_length=1)
    metrics: tuple[str, ...] = ()
    licence: str = Field(min_length=1)
    open_clip: str | None = None
    hub_repo: str | None = Field(default=None, pattern=r"^[\w.-]+/[\w.-]+$")
    files: tuple[ModelFile, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _hub_repo_files(cls, data: dict) -> dict:
        """`hub_repo` on the model: every file without its own hub file is that repo's file of its path."""
        repo = data.get("hub_repo") if isinstance(data, dict) else None
        if repo:
            data = {**data, "files": [f if "hub" in f else {**f, "hub": {"repo": repo, "file": f["path"]}}
                                      for f in data.get("files", [])]}
        return data

    @model_validator(mode="after")
    def _role_fits(self) -> ModelEntry:
        scorer = self.kind in SCORER_KINDS
        if scorer != (self.role == "scorer"):
            raise ValueError(f"{self.name}: kind {self.kind} does not fit role {self.role}")
        if scorer and not self.metrics:
            raise ValueError(f"{self.name}: a scorer names the metrics that need it")
        return self

    @property
    def required_files(self) -> tuple[ModelFile, ...]:
        return tuple(f for f in self.files if not f.optional)

    @property
    def automatic(self) -> bool:
        return all(f.automatic for f in self.required_files)

    def source_text(self) -> str:
        """Where it comes from, in words (a hub repo, else its first file's source)."""
        return f"hf://{self.hub_repo}" if self.hub_repo else self.required_files[0].source_text()


class Registry(_Strict):
    """Every model, by registry name."""

    models: dict[str, ModelEntry]

    @model_validator(mode="before")
    @classmethod
    def _names(cls, data: dict) -> dict:
        return {**data, "models": {name: {**entry, "name": name} for name, entry in data["models"].items()}}

    @model_validator(mode="after")
    def _unique(self) -> Registry:
        pieces = [entry.piece for entry in self.models.values()]
        doubled = sorted({p for p in pieces if pieces.count(p) > 1})
        if doubled:
            raise ValueError(f"pieces named by more than one model: {', '.join(doubled)}")
        return self

    def __getitem__(self, name: str) -> ModelEntry:
        try:
            return self.models[name]
        except KeyError:
            raise KeyError(f"no model {name!r} in the registry; known: {', '.join(self.models)}") from None

    def scorer(self, kind: str) -> ModelEntry:
        """The registry's scoring model of `kind` (clip, i3d, inception, musiq, aesthetic)."""
        return next(e for e in self.models.values() if e.role == "scorer" and e.kind == kind)

    def by_piece(self, piece: str) -> ModelEntry | None:
        """The model behind params.yaml `models.paper.<piece>` (e.g. "i3d", "personalised.lyriel")."""
        return next((e for e in self.models.values() if e.piece == piece), None)

    def for_metrics(self, metrics: list[str] | tuple[str, ...]) -> list[ModelEntry]:
        """The models that the metrics need, in registry order."""
        wanted = set(metrics)
        return [e for e in self.models.values() if wanted & set(e.metrics)]


@lru_cache(maxsize=1)
def load_registry(path: str | Path = REGISTRY_FILE) -> Registry:
    """The validated registry (read once)."""
    return Registry(**yaml.safe_load(Path(path).read_text(encoding="utf-8")))
