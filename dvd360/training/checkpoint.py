"""Training checkpoints: `checkpoint-{step:08d}/` folders that make a resumed run exact.

A checkpoint holds the adapter (`adapter.safetensors` + JSON config, via `save_adapter`), the
optimiser state (`optimizer.pt`), the python/numpy/torch(/CUDA) RNG states of every process
(`rng-{rank}.pt`), and `state.json` (step, the content fingerprint of the run, the world size and batch
that fix the sample order, the loss history). Folders appear complete or not at all: they are
written under a temporary name and renamed last. Only the newest `keep` are kept.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dvd360.atomic import write_json
from dvd360.models.adapter import load_adapter, save_adapter

PREFIX = "checkpoint-"


@dataclass
class Checkpoint:
    path: Path
    step: int
    state: dict


def rng_states() -> dict:
    """The global RNG states of this process."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def staging_path(folder: Path, step: int) -> Path:
    return folder / f".{PREFIX}{step:08d}.tmp"


def write_main(folder: Path, step: int, adapter, optimizer, state: dict) -> Path:
    """Main process: start the checkpoint of `step` (adapter, optimiser, state) in a staging folder."""
    staging = staging_path(folder, step)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    save_adapter(adapter, staging / "adapter.safetensors")
    torch.save(optimizer.state_dict(), staging / "optimizer.pt")
    write_json(staging / "state.json", {"step": step, **state})
    return staging


def write_rng(folder: Path, step: int, rank: int) -> None:
    """Every process, after `write_main`: its RNG states."""
    torch.save(rng_states(), staging_path(folder, step) / f"rng-{rank}.pt")


def publish(folder: Path, step: int, keep: int) -> Path:
    """Main process, after every `write_rng`: rename the staging folder, drop old checkpoints."""
    final = folder / f"{PREFIX}{step:08d}"
    if final.exists():
        shutil.rmtree(final)
    staging_path(folder, step).rename(final)
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        shutil.rmtree(old)
    return final


def list_checkpoints(folder: Path) -> list[Path]:
    """Finished checkpoint folders, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{PREFIX}*") if p.is_dir() and (p / "state.json").is_file())


def latest(folder: str | Path, fingerprint: str) -> Checkpoint | None:
    """The newest checkpoint written under the same content fingerprint, or None."""
    for path in reversed(list_checkpoints(Path(folder))):
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        if state.get("fingerprint") == fingerprint:
            return Checkpoint(path, int(state["step"]), state)
    return None


STALE = "stale"


def set_aside_stale(folder: str | Path, fingerprint: str) -> list[Path]:
    """Move the checkpoints written under another fingerprint to `{folder}/stale/` (replacing
    what an earlier run set aside there), so they are never resumed nor mixed with this run's;
    return their new paths."""
    folder = Path(folder)
    stale = [path for path in list_checkpoints(folder)
             if json.loads((path / "state.json").read_text(encoding="utf-8")).get("fingerprint") != fingerprint]
    if not stale:
        return []
    aside = folder / STALE
    if aside.exists():
        shutil.rmtree(aside)
    aside.mkdir()
    return [path.rename(aside / path.name) for path in stale]


def restore(checkpoint: Checkpoint, adapter, optimizer, rank: int) -> None:
    """Load weights, optimiser state and this process's RNG states (rank 0's if it had fewer ranks)."""
    loaded = load_adapter(checkpoint.path / "adapter.safetensors")
    adapter.load_state_dict(loaded.state_dict(), strict=True)
    optimizer.load_state_dict(torch.load(checkpoint.path / "optimizer.pt", map_location="cpu", weights_only=True))
    rng_file = checkpoint.path / f"rng-{rank}.pt"
    if not rng_file.is_file():
        rng_file = checkpoint.path / "rng-0.pt"
    set_rng_states(torch.load(rng_file, weights_only=False))
