"""Checks shared by every reader of user files: bounded, strict JSON and finite arrays.

- `read_json` refuses a file larger than `max_bytes` (from its size on disk, before reading)
  or nested deeper than `max_depth` (counted on the text with strings blanked, before
  parsing, so a file of 200,000 brackets never reaches the recursive parser), and JSON's
  non-standard constants NaN/Infinity (Python's `json` accepts them by default), reporting
  how many there are and on which lines.
- `nonfinite_problem` says how many values of an array are NaN/inf and in which frames.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_CONSTANT = re.compile(rb'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)', re.DOTALL)


class InputError(ValueError):
    """A user file that cannot be used; `str()` names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _size_text(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count} bytes"


def json_depth(raw: bytes) -> int:
    """Deepest nesting of [ and { in JSON text, strings excluded (0 for a scalar)."""
    code = np.frombuffer(_STRING.sub(b'""', raw), dtype=np.uint8)
    step = np.isin(code, (ord("["), ord("{"))).astype(np.int64) - np.isin(code, (ord("]"), ord("}")))
    return int(np.cumsum(step).max(initial=0))


def _nonfinite_lines(raw: bytes) -> list[int]:
    """1-based line numbers of the bare NaN/Infinity tokens of JSON text (not inside strings)."""
    return [raw.count(b"\n", 0, match.start()) + 1 for match in _CONSTANT.finditer(raw) if match.group(1)]


def _lines_text(lines: list[int], limit: int = 8) -> str:
    shown = ", ".join(map(str, lines[:limit]))
    return shown + (f" and {len(lines) - limit} more" if len(lines) > limit else "")


def read_json(path: str | Path, what: str, *, max_bytes: int, max_depth: int):
    """Parse a JSON file after checking its size and nesting; raise InputError naming the file.

    Errors: no such file, unreadable, larger than `max_bytes`, not UTF-8 (line given), empty,
    nested deeper than `max_depth`, NaN/Infinity (count and lines), invalid JSON (line and column).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise InputError(path, f"not a file (a {what} was expected)")
        if size > max_bytes:
            raise InputError(path, f"{what} of {_size_text(size)}, over the {_size_text(max_bytes)} limit "
                                   "(checked before reading)")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, f"no such {what}") from None
    except OSError as error:
        raise InputError(path, f"unreadable {what} ({error.strerror or error})") from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise InputError(path, f"{what} is not UTF-8 text (line {line}, byte {error.start}: {error.reason})") from None
    if not text.strip():
        raise InputError(path, f"empty {what}")
    depth = json_depth(raw)
    if depth > max_depth:
        raise InputError(path, f"{what} nests {depth} levels deep, more than the {max_depth} allowed "
                               "(checked before parsing)")
    lines = _nonfinite_lines(raw)
    if lines:
        raise InputError(path, f"{what} holds {len(lines)} non-finite number(s) (NaN/Infinity) on line(s) "
                               f"{_lines_text(lines)}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(path, f"not valid JSON, truncated or damaged? ({error})") from None


def nonfinite_problem(array: np.ndarray, unit: str = "frame") -> str | None:
    """'N non-finite value(s) (NaN a, inf b) in frames i-j (k of F frames)' for an array whose
    first axis is frames, or None when every value is finite."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        return None
    bad = ~np.isfinite(array)
    count = int(bad.sum())
    if not count:
        return None
    nans = int(np.isnan(array).sum())
    frames = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1)) if array.ndim else np.array([0])
    where = f"{unit} {frames[0]}" if len(frames) == 1 else f"{unit}s {frames[0]}-{frames[-1]}"
    return (f"{count} non-finite value(s) (NaN {nans}, inf {count - nans}) in {where} "
            f"({len(frames)} of {array.shape[0] if array.ndim else 1} {unit}s affected)")
