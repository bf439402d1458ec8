"""Which dvd360 source files a module or stage script imports, transitively.

One answer for two users: the code part of every content fingerprint (`dvd360.fingerprint`)
and the code dependencies of every DVC stage (dvc.yaml, checked by tests/test_code_deps.py).
Imports are read from the syntax tree (`ast`), including those inside functions, so a module
imported lazily counts too, and so does a string "dvd360.module:name" (a reference resolved at
run time, as the metric specs' `compute`); importing `dvd360.a.b` also runs `dvd360/__init__.py` and
`dvd360/a/__init__.py`, which therefore count as well. Print a stage's list, check dvc.yaml,
or rewrite the code deps of every dvc.yaml stage (other deps are kept as written) with::

    python -m dvd360.code_deps pipelines/train.py
    python -m dvd360.code_deps --check     # exit 1 listing the stages out of date
    python -m dvd360.code_deps --write
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Iterable

PACKAGE = "dvd360"
REFERENCE = re.compile(rf"{PACKAGE}(\.\w+)+:\w+")  # "dvd360.module:name", resolved with importlib


def package_root() -> Path:
    """The dvd360 package folder."""
    return Path(__file__).resolve().parent


def module_file(name: str) -> Path | None:
    """The source file of a dvd360 module or package (`__init__.py`), or None if there is none."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = package_root().joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    relative = path.resolve().relative_to(package_root().parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@lru_cache(maxsize=None)
def _direct_imports(path: Path) -> tuple[str, ...]:
    """dvd360 module names that the file at `path` imports (with their parent packages)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    here = _module_name(path) if path.resolve().is_relative_to(package_root()) else ""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and REFERENCE.fullmatch(node.value):
            found = [node.value.partition(":")[0]]
        elif isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                package = here.split(".") if is_package else here.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from a import b`: b is a submodule or a name defined in a
            found = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in found:
            if name.split(".")[0] == PACKAGE and module_file(name) is not None:
                names.update(n for n in _with_parents(name) if module_file(n) is not None)
    return tuple(sorted(names))


def module_sources(modules: Iterable[str | Path]) -> list[Path]:
    """Sorted dvd360 source files reached from `modules` (dotted names or script paths), transitively.

    A script path (e.g. pipelines/train.py) contributes its imports but is not listed itself.
    """
    pending: list[Path] = []
    for module in modules:
        if isinstance(module, Path) or str(module).endswith(".py"):
            pending.extend(module_file(name) for name in _direct_imports(Path(module).resolve()))
        else:
            path = module_file(str(module))
            if path is None:
                raise ModuleNotFoundError(f"no dvd360 source for module {module!r} under {package_root()}")
            pending.extend(module_file(name) for name in _with_parents(str(module)))
    seen: set[Path] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        pending.extend(module_file(name) for name in _direct_imports(path))
    return sorted(seen)


def stage_code_deps(script: str | Path) -> list[str]:
    """The code dependencies of a stage script as dvc.yaml lists them: the script, then every
    dvd360 source file it imports, as repository-relative POSIX paths."""
    root = package_root().parent
    return [Path(script).as_posix()] + [p.relative_to(root).as_posix() for p in module_sources([Path(script)])]


STAGE_SCRIPT = re.compile(r"python (pipelines/\w+\.py)")


def is_code_dep(dep: str) -> bool:
    """A dependency that names Python source (a stage script or a dvd360 module)."""
    return dep.endswith(".py") and (dep.startswith("pipelines/") or dep.startswith(f"{PACKAGE}/"))


def stage_bodies(dvc_yaml: dict) -> dict[str, dict]:
    """{stage name: the mapping holding its cmd and deps} (`do:` for foreach stages)."""
    return {name: stage.get("do", stage) for name, stage in dvc_yaml["stages"].items()}


def expected_deps(body: dict) -> list[str] | None:
    """A stage's deps with its code deps derived from its script's imports; None without a script."""
    found = STAGE_SCRIPT.search(str(body["cmd"]))
    if found is None:
        return None
    others = [str(dep) for dep in body.get("deps", []) if not is_code_dep(str(dep))]
    return stage_code_deps(found.group(1)) + others


def sync_dvc_yaml(path: str | Path = "dvc.yaml", write: bool = False) -> list[str]:
    """The stages of `path` whose code deps differ from their script's imports; rewritten in
    place (comments and order kept) when `write`."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    path = Path(path)
    data = yaml.load(path.read_text(encoding="utf-8"))
    stale = []
    for name, body in stage_bodies(data).items():
        expected = expected_deps(body)
        if expected is not None and [str(d) for d in body.get("deps", [])] != expected:
            stale.append(name)
            body["deps"] = expected
    if write and stale:
        with path.open("w", encoding="utf-8") as handle:
            yaml.dump(data, handle)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scripts", nargs="*", help="stage scripts whose code deps to print")
    parser.add_argument("--check", action="store_true", help="fail if dvc.yaml's code deps are out of date")
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    args = parser.parse_args(argv)
    for script in args.scripts:
        for dep in stage_code_deps(script):
            print(f"- {dep}")
    if args.check or args.write:
        stale = sync_dvc_yaml(write=args.write)
        verb = "rewrote" if args.write else "out of date"
        for name in stale:
            print(f"dvc.yaml stage {name}: code deps {verb}")
        return 1 if stale and args.check else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
