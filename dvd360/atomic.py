"""Atomic file writes: write to a temporary sibling, then `os.replace` onto the target.

A reader never sees a half-written file and an interrupted stage leaves no partial output
under the final name, so "the file exists" means "the file is complete".
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def _sibling(target: Path, suffix: str) -> Path:
    """An unused hidden name beside `target`."""
    return target.parent / f".{target.name}.{secrets.token_hex(6)}{suffix}"


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target` (same suffix); on success rename it onto `target`.

    The temporary file is created with mode 0666 less the umask, as open() would, so the result
    has the usual permissions; the process umask itself is never changed (other threads read it).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp_path = _sibling(target, f".tmp{target.suffix}")
        try:
            os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success replace `target` with it.

    The old folder is renamed aside first and removed only once the new one is in place; if
    the final rename fails, the old folder is put back, so a failure never loses both.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target, ".tmp")
    tmp.mkdir(mode=0o777)  # less the umask, as a plain mkdir
    try:
        yield tmp
        old = _sibling(target, ".old") if target.exists() else None
        if old is not None:
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if old is not None:
                os.replace(old, target)
            raise
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(target: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: str | Path, data: Any) -> Path:
    """Write JSON (indented, keys in insertion order, UTF-8) atomically."""
    return write_text(target, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
