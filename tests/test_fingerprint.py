"""Content fingerprints and the import closure they (and dvc.yaml's code deps) are built on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dvd360.code_deps import module_sources, package_root, stage_code_deps
from dvd360.fingerprint import canonical_json, code_sha256, content_sha256, fingerprint

ROOT = package_root().parent


def test_canonical_json_is_order_free_and_exact():
    assert canonical_json({"b": 1, "a": [1, 2.5], "p": Path("x/y")}) == '{"a":[1,2.5],"b":1,"p":"x/y"}'
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    with pytest.raises(TypeError, match="no canonical JSON form"):
        canonical_json({"x": object()})


def test_fingerprint_is_the_sha256_of_the_documented_record(tmp_path):
    data = tmp_path / "a.bin"
    data.write_bytes(b"abc")
    record = {"settings": {"k": 1}, "inputs": {"data": hashlib.sha256(b"abc").hexdigest(), "none": None},
              "code": None}
    expected = hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert fingerprint({"k": 1}, {"data": data, "none": tmp_path / "absent"}) == expected


def test_fingerprint_follows_settings_content_and_code(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "x.txt").write_text("1")
    base = fingerprint({"k": 1}, {"in": folder}, ["dvd360.stats"])
    assert fingerprint({"k": 1}, {"in": folder}, ["dvd360.stats"]) == base
    assert fingerprint({"k": 2}, {"in": folder}, ["dvd360.stats"]) != base
    assert fingerprint({"k": 1}, {"in": folder}, ["dvd360.atomic"]) != base
    (folder / "x.txt").write_text("2")  # same path, other bytes
    changed = fingerprint({"k": 1}, {"in": folder}, ["dvd360.stats"])
    assert changed != base
    (folder / "y.txt").write_text("")  # a new file in the folder
    assert fingerprint({"k": 1}, {"in": folder}, ["dvd360.stats"]) != changed
    assert content_sha256(tmp_path / "absent") is None


def test_import_closure_is_transitive_and_counts_lazy_and_package_imports():
    files = {p.relative_to(ROOT).as_posix() for p in module_sources(["dvd360.generate"])}
    # direct, lazy (inside functions) and transitive imports, and the packages they run
    assert {"dvd360/generate.py", "dvd360/methods.py", "dvd360/data/clips.py", "dvd360/sampling/pipeline.py",
            "dvd360/models/materialize.py", "dvd360/__init__.py", "dvd360/data/__init__.py"} <= files
    assert "dvd360/study/packets.py" not in files
    captioning = {p.relative_to(ROOT).as_posix() for p in module_sources(["dvd360.captioning"])}
    assert "dvd360/captioning/views.py" in captioning and "dvd360/geometry/perspective.py" in captioning
    with pytest.raises(ModuleNotFoundError):
        module_sources(["dvd360.no_such_module"])


def test_code_hash_changes_with_any_imported_file(tmp_path, monkeypatch):
    package = tmp_path / "dvd360"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "leaf.py").write_text("X = 1\n")
    (package / "top.py").write_text("def f():\n    from .sub import leaf\n")
    (package / "other.py").write_text("")
    import dvd360.code_deps as code_deps

    code_deps._direct_imports.cache_clear()
    monkeypatch.setattr(code_deps, "package_root", lambda: package)
    import dvd360.fingerprint as fp

    monkeypatch.setattr(fp, "package_root", lambda: package)
    assert [p.name for p in code_deps.module_sources(["dvd360.top"])] == ["__init__.py", "__init__.py", "leaf.py",
                                                                          "top.py"]
    before = code_sha256(["dvd360.top"])
    (package / "other.py").write_text("Y = 2\n")  # not imported: no change
    assert code_sha256(["dvd360.top"]) == before
    # what it says, not what it computes: a docstring, a comment, the layout: no change
    (package / "sub" / "leaf.py").write_text('"""The leaf."""\n\nX = (1)  # one\n')
    (package / "top.py").write_text('def f():\n    """Import the leaf."""\n    from .sub import leaf  # lazily\n')
    code_deps._direct_imports.cache_clear()
    assert code_sha256(["dvd360.top"]) == before
    (package / "sub" / "leaf.py").write_text("X = 2\n")
    code_deps._direct_imports.cache_clear()
    assert code_sha256(["dvd360.top"]) != before
    code_deps._direct_imports.cache_clear()


@pytest.mark.parametrize("edited", [
    "def f(x):\n    return x + 2\n",                       # another constant
    "def f(x):\n    'doc'\n    return 'doc' + x\n",       # a string in the code (its docstring dropped)
    "def f(y):\n    return y + 1\n",                       # another name
    "class f:\n    pass\n"])                               # another kind
def test_code_text_changes_with_what_the_code_computes(edited):
    from dvd360.fingerprint import code_text

    original = 'def f(x):\n    """Add one."""\n    return x + 1  # the one\n'
    assert code_text(original.encode()) == code_text(b"def f(x):\n    return x+1\n")
    assert code_text(edited.encode()) != code_text(original.encode())
    assert code_text(b"def f(:\n") == b"def f(:\n"  # does not parse: its bytes


def test_stage_code_deps_lists_the_script_first():
    deps = stage_code_deps("pipelines/flow.py")
    assert deps[0] == "pipelines/flow.py" and "dvd360/training/conditions.py" in deps
    assert all((ROOT / dep).is_file() for dep in deps)
