"""Content fingerprints: the one key of every in-stage cache and resume.

    fingerprint = sha256( canonical_json({"settings": settings,
                                          "inputs": {name: sha256 of the file or folder (None: absent)},
                                          "code": sha256 of the code of the dvd360 sources the named
                                                  modules import: `code_text`, without docstrings,
                                                  comments or layout}) )

A cache entry (a training checkpoint, a clip's captions or estimated flow, a generated video,
a score record, a feature cache) is reused only under the same fingerprint, so a changed
input, setting or piece of code always recomputes it. `canonical_json` refuses values it
cannot write exactly (no `str()` of arbitrary objects, whose text may hold memory addresses).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
from pathlib import Path, PurePath
from typing import Any, Iterable, Mapping

from dvd360.code_deps import module_sources, package_root
from dvd360.provenance import sha256_of


def _jsonable(value: Any) -> Any:
    if isinstance(value, PurePath):
        return value.as_posix()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"fingerprint settings: {type(value).__name__} {value!r} has no canonical JSON form")


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text; NaN and infinities refused (JSON has none)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_jsonable)


def content_sha256(path: str | Path | None) -> str | None:
    """sha256 of a file or folder's content (`provenance.sha256_of`); None when it does not exist."""
    if path is None or not Path(path).exists():
        return None
    return sha256_of(path)


@functools.cache
def code_text(source: bytes) -> bytes:
    """What a Python source computes, not what it says: its syntax tree without the module, class
    and function docstrings, written back by `ast.unparse` (no comments, one layout). Editing a
    comment, a docstring or the formatting leaves it unchanged, so no training, video or score is
    redone for it (docstrings reach no stage output: they are only `--help` text). A source that
    does not parse: its bytes. Cached on the bytes (parsing all of a stage's code takes ~0.1 s)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree).encode()


def code_sha256(modules: Iterable[str]) -> str:
    """sha256 over (relative path, `code_text`) of every dvd360 source file the modules import, transitively."""
    root = package_root().parent
    digest = hashlib.sha256()
    for source in module_sources(modules):
        digest.update(source.relative_to(root).as_posix().encode() + b"\n" + code_text(source.read_bytes()) + b"\n")
    return digest.hexdigest()


def fingerprint(settings: Mapping[str, Any], inputs: Mapping[str, str | Path | None] | None = None,
                code: Iterable[str] = ()) -> str:
    """The content fingerprint (64 hex digits) of settings, input files/folders and code modules.

    `inputs` maps a name to a path (its content is hashed; an absent path counts as None);
    `code` names dvd360 modules (e.g. "dvd360.training.trainer") whose import closure shapes the
    output. Floats must be finite.
    """
    record = {"settings": dict(settings),
              "inputs": {name: content_sha256(path) for name, path in sorted((inputs or {}).items())},
              "code": code_sha256(code) if code else None}
    return hashlib.sha256(canonical_json(record).encode("utf-8")).hexdigest()
