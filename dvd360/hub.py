"""Finding model weights: a local folder, or a Hugging Face hub snapshot (cache first; a download
only when HF_HUB_OFFLINE is unset). Light on purpose (no torch): stages that only look up weights
import it without importing the model code.
"""

from __future__ import annotations

import os
from pathlib import Path


def offline() -> bool:
    """Whether HF_HUB_OFFLINE forbids downloads."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_folder(repo_id: str, patterns: tuple[str, ...], files: tuple[str, ...]) -> tuple[Path | None, str]:
    """The local snapshot of a hub repo holding `files`: from the cache, else downloaded unless
    HF_HUB_OFFLINE is set (so an absent network never blocks). Returns (folder, problem)."""
    from huggingface_hub import snapshot_download

    attempts = (True,) if offline() else (True, False)
    problem = ""
    for local_only in attempts:
        try:
            folder = Path(snapshot_download(repo_id, allow_patterns=list(patterns), local_files_only=local_only))
        except Exception as error:  # hub errors (offline, not cached, no network) all mean "not here"
            problem = f"`{repo_id}` is not in the Hugging Face cache" + (
                " and HF_HUB_OFFLINE is set" if offline() else f" and could not be downloaded ({type(error).__name__})")
            continue
        missing = [f for f in files if not (folder / f).is_file()]
        if not missing:
            return folder, ""
        problem = f"`{repo_id}` is cached without {', '.join(missing)}"
    return None, problem


def folder_or_hub(value: str, patterns: tuple[str, ...], files: tuple[str, ...]) -> tuple[Path | None, str]:
    """`value` as a local folder holding `files`, else as a hub id "owner/name" (`hub_folder`).
    Returns (folder, problem): folder None with the problem in words when it is not there."""
    path = Path(value)
    if path.is_dir():
        missing = [f for f in files if not (path / f).is_file()]
        return (None, f"{path}: folder lacks {', '.join(missing)}") if missing else (path, "")
    if path.exists() or value.count("/") != 1 or path.suffix:
        return None, f"{path}: no such file or folder"
    return hub_folder(value, patterns, files)
