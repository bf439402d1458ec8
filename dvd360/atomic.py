"""Atomic file writes: write to a temporary sibling, then `os.replace` onto the target.

A reader never sees a half-written file and an interrupted stage leaves no partial output
under the final name, so "the file exists" means "the file is complete".
"""

from __future__ import annotations

import json
import os
import stat
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def _mode_from_umask(base: int) -> int:
    """The mode a plain open() would give: `base` less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask & (stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target` (same suffix); on success rename it onto `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _mode_from_umask(0o666))  # mkstemp makes 0600; give the usual mode
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success replace `target` with it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, _mode_from_umask(0o777))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
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
