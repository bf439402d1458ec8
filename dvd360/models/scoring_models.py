"""The scorer's models, found through the registry and the model store (what `dvd360-eval score` uses
when no local folder is given).

`resolve_scoring_models(kinds, store, offline)` returns the CLIP folder and the features folder
(i3d/, inception/, musiq/, aesthetic/) for the registry's scoring models of `kinds`: each raw
file from the store (fetched on demand unless offline), converted once into the folder format the
loaders read and cached under `<store>/converted/` (rebuilt when the raw file's sha256 changes).
What is missing comes back in `missing`, each with the exact command that gets it; nothing is
written to the store while resolving fails offline. `tiny_scoring_models(root)` builds the
random-weight stand-ins, only when asked for (`--models tiny`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dvd360.models.registry import ModelEntry
from dvd360.models.store import FetchError, Store, fetch_command

SET_KINDS = ("i3d", "inception")
QUALITY_KINDS = ("musiq", "aesthetic")
CONVERTED = "converted"
TINY_SEED = 0


@dataclass(frozen=True)
class MissingModel:
    """A registry model the run needs but the store lacks: why, what it blocks, how to get it."""

    entry: ModelEntry
    reason: str

    @property
    def command(self) -> str:
        return fetch_command([self.entry.name])

    def describe(self) -> dict:
        return {"model": self.entry.name, "title": self.entry.title, "metrics": list(self.entry.metrics),
                "reason": self.reason, "fetch": self.command}


@dataclass
class ScoringModels:
    """The folders the scorer loads (None where absent) and the registry models that are missing."""

    clip: str | None = None
    features: str | None = None
    kinds: tuple[str, ...] = ()
    missing: list[MissingModel] = field(default_factory=list)


def _converted_folder(store: Store, kind: str) -> Path:
    return store.root / CONVERTED / ("clip" if kind == "clip" else f"features/{kind}")


def _converted_sha(folder: Path, kind: str) -> str | None:
    info = folder / ("dvd360_clip.json" if kind == "clip" else "features.json")
    return json.loads(info.read_text(encoding="utf-8")).get("sha256") if info.is_file() else None


def convert(store: Store, entry: ModelEntry) -> Path:
    """The loader's folder of a present scoring model, converted from its raw file once (atomically;
    again when the raw file's sha256 differs from the one the folder was made from)."""
    from dvd360.atomic import atomic_dir

    folder, sha256 = _converted_folder(store, entry.kind), store.sha256(entry.name)
    if _converted_sha(folder, entry.kind) == sha256:
        return folder
    raw, identity = store.path(entry.name), {"registry": entry.name, "sha256": sha256}
    if entry.kind == "clip":
        from dvd360.models.clip_model import convert_openai_clip

        return convert_openai_clip(raw, folder, entry.open_clip, identity)
    from dvd360.models.feature_nets import write_paper_feature_net

    with atomic_dir(folder) as tmp:
        write_paper_feature_net(tmp, entry.kind, raw, identity)
    return folder


def resolve_scoring_models(kinds: tuple[str, ...], store: Store, offline: bool,
                           log: Callable[[str], None] = print, progress: bool = True) -> ScoringModels:
    """The store's (converted) folders of the registry's scoring models of `kinds`; a missing one is
    fetched first unless `offline`, and listed in `missing` when it cannot be had."""
    result = ScoringModels()
    entries = [store.registry.scorer(kind) for kind in kinds]
    for entry in entries:
        if store.present(entry.name):
            continue
        if offline:
            result.missing.append(MissingModel(entry, "not in the model store, and offline"))
            continue
        log(f"{entry.name}: not in the model store ({store.root}); fetching it")
        try:
            store.fetch(entry.name, progress=progress, log=log)
        except FetchError as error:
            result.missing.append(MissingModel(entry, f"fetch failed: {error}"))
    missing = {m.entry.name for m in result.missing}
    present = [e for e in entries if e.name not in missing]
    for entry in present:
        convert(store, entry)
    result.kinds = tuple(e.kind for e in present)
    if "clip" in result.kinds:
        result.clip = str(_converted_folder(store, "clip"))
    if set(result.kinds) - {"clip"}:
        result.features = str(store.root / CONVERTED / "features")
    return result


def tiny_scoring_models(root: str | Path, seed: int = TINY_SEED) -> tuple[str, str]:
    """(CLIP folder, features folder) of the tiny random-weight stand-ins, built once under
    `root/tiny/seed<seed>` (the same seeds as the tiny profile's `models` stage)."""
    from dvd360.atomic import atomic_dir
    from dvd360.models.clip_model import build_tiny_clip
    from dvd360.models.feature_nets import KINDS, build_tiny_feature_net
    from dvd360.models.materialize import PIECE_SEEDS

    folder = Path(root) / "tiny" / f"seed{seed}"
    if not (folder / "complete").is_file():
        with atomic_dir(folder) as tmp:
            build_tiny_clip(tmp / "clip", seed=seed * 100 + PIECE_SEEDS["clip"])
            for kind in KINDS:
                build_tiny_feature_net(tmp / "features" / kind, kind, seed * 100 + PIECE_SEEDS[kind])
            (tmp / "complete").write_text("built by dvd360.models.scoring_models.tiny_scoring_models\n")
    return str(folder / "clip"), str(folder / "features")
