"""The model store: fetch (resumable, checked before it is placed), verify and import, against a
local HTTP server on 127.0.0.1 that each test starts and stops (no other address is contacted)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from model_server import model_server

from dvd360.models.download import digests
from dvd360.models.registry import Registry
from dvd360.models.store import (
    HashMismatchError,
    ManualSourceError,
    SourceNotFoundError,
    Store,
    TransferError,
)

GOOD = bytes(range(256)) * 4096  # 1 MiB
OTHER = b"not the published file" * 1000


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """urllib must go to 127.0.0.1 directly, whatever proxy the environment names."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _registry(base: str, **files: dict) -> Registry:
    """One generator model per keyword: name -> the fields of its single file."""
    return Registry(models={name: {"title": name, "role": "generator", "kind": "checkpoint", "piece": name,
                                   "licence": "test", "files": [{"hash_source": "the test", **spec,
                                                                 "urls": [f"{base}/{u}" for u in spec.pop("urls")]}
                                                                if "urls" in spec else spec]}
                            for name, spec in files.items()})


def _stored(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_good_file_is_fetched_checked_and_verified(tmp_path):
    with model_server({"good.bin": GOOD}) as (base, state):
        store = Store(tmp_path / "store", _registry(base, good={"path": "good.bin", "sha256": _sha(GOOD),
                                                                "size": len(GOOD), "urls": ["good.bin"]}))
        assert store.fetch("good", progress=False) == ["good.bin"]
        assert store.path("good").read_bytes() == GOOD
        assert store.record("good")["good.bin"]["checked"] == "sha256"
        assert store.verify("good") == [("good.bin", True, f"sha256 {_sha(GOOD)[:12]}… (sha256)")]
        requests = len(state["log"])
        assert store.fetch("good", progress=False) == []  # a second fetch does nothing
        assert len(state["log"]) == requests
        assert _stored(tmp_path / "store") == ["models/good/good.bin", "records/good.json"]
        store.path("good").write_bytes(OTHER)  # a changed file is seen by verify
        [(_, ok, what)] = store.verify("good")
        assert not ok and "CHANGED" in what and f"expected {len(GOOD)} bytes" in what


def test_a_cut_transfer_resumes_where_it_stopped(tmp_path):
    with model_server({"big.bin": GOOD}, cut={"big.bin": 300_000}) as (base, state):
        store = Store(tmp_path / "store", _registry(base, big={"path": "big.bin", "sha256": _sha(GOOD),
                                                               "urls": ["big.bin"]}))
        store.fetch("big", progress=False)
        assert store.path("big").read_bytes() == GOOD
        assert state["log"] == [("big.bin", None), ("big.bin", "bytes=300000-")]


def test_a_transfer_cut_every_time_keeps_its_bytes_for_the_next_fetch(tmp_path):
    with model_server({"big.bin": GOOD}, cut={"big.bin": 200_000}, cut_times=1) as (base, state):
        store = Store(tmp_path / "store", _registry(base, big={"path": "big.bin", "sha256": _sha(GOOD),
                                                               "urls": ["big.bin"]}))
        with pytest.raises(TransferError, match="200000 bytes kept"):
            store.fetch("big", progress=False, attempts=1)  # one try: it stops with the bytes it got
        assert store.state("big").state == "partial" and not store.path("big").exists()
        store.fetch("big", progress=False, attempts=1)  # the next fetch resumes from them
        assert store.path("big").read_bytes() == GOOD
        assert state["log"][-1] == ("big.bin", "bytes=200000-")


def test_a_server_ignoring_range_restarts_the_file(tmp_path):
    with model_server({"big.bin": GOOD}, cut={"big.bin": 100_000}, ignore_range=True) as (base, _):
        store = Store(tmp_path / "store", _registry(base, big={"path": "big.bin", "sha256": _sha(GOOD),
                                                               "urls": ["big.bin"]}))
        store.fetch("big", progress=False)
        assert store.path("big").read_bytes() == GOOD


def test_a_wrong_hash_is_refused_and_nothing_is_kept(tmp_path):
    with model_server({"bad.bin": OTHER}) as (base, _):
        store = Store(tmp_path / "store", _registry(base, bad={"path": "bad.bin", "sha256": _sha(GOOD),
                                                               "urls": ["bad.bin"]}))
        with pytest.raises(HashMismatchError, match=f"bad: bad.bin: expected sha256 {_sha(GOOD)} .*got sha256 "
                                                    f"{_sha(OTHER)}.*nothing kept"):
            store.fetch("bad", progress=False)
        assert _stored(tmp_path / "store") == []


def test_a_wrong_size_or_prefix_is_refused(tmp_path):
    with model_server({"w-0badc0de.bin": GOOD}) as (base, _):
        store = Store(tmp_path / "store", _registry(base, pre={"path": "w-0badc0de.bin", "sha256_prefix": "0badc0de",
                                                               "urls": ["w-0badc0de.bin"]}))
        with pytest.raises(HashMismatchError, match="a sha256 starting 0badc0de"):
            store.fetch("pre", progress=False)
        assert _stored(tmp_path / "store") == []


def test_a_published_prefix_and_git_blob_are_checked(tmp_path):
    prefix = _sha(GOOD)[:8]
    blob = digests_of(GOOD)[1]
    with model_server({f"w-{prefix}.pth": GOOD, "i3d.pt": GOOD}) as (base, _):
        store = Store(tmp_path / "store", _registry(
            base, pre={"path": f"w-{prefix}.pth", "sha256_prefix": prefix, "urls": [f"w-{prefix}.pth"]},
            blob={"path": "i3d.pt", "git_blob_sha1": blob, "urls": ["i3d.pt"]}))
        store.fetch("pre", progress=False)
        store.fetch("blob", progress=False)
        assert store.record("pre")[f"w-{prefix}.pth"]["checked"] == "sha256_prefix"
        assert store.record("blob")["i3d.pt"]["checked"] == "git_blob_sha1"


def digests_of(data: bytes) -> tuple[str, str]:
    return _sha(data), hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_a_missing_file_is_a_named_404(tmp_path):
    with model_server({}) as (base, _):
        store = Store(tmp_path / "store", _registry(base, gone={"path": "gone.bin", "sha256": _sha(GOOD),
                                                                "urls": ["gone.bin"]}))
        with pytest.raises(SourceNotFoundError, match=r"gone: gone.bin: http://127.0.0.1:\d+/gone.bin: 404 Not Found"):
            store.fetch("gone", progress=False)
        assert _stored(tmp_path / "store") == []


def test_an_unverified_file_is_pinned_at_its_first_copy(tmp_path):
    with model_server({"free.bin": GOOD}) as (base, state):
        store = Store(tmp_path / "store", _registry(base, free={"path": "free.bin", "urls": ["free.bin"]}))
        store.fetch("free", progress=False)
        assert store.record("free")["free.bin"]["sha256"] == _sha(GOOD)
        assert "unverified" in store.record("free")["free.bin"]["checked"]
        store.path("free").unlink()
        state["files"]["free.bin"] = OTHER  # the source changed: the pin refuses the new copy
        with pytest.raises(HashMismatchError, match="pinned in the store"):
            store.fetch("free", progress=False)


def test_a_manual_source_says_how_to_get_it(tmp_path):
    store = Store(tmp_path / "store", _registry("", lora={"path": "L.safetensors", "manual": "from CivitAI"}))
    with pytest.raises(ManualSourceError, match="from CivitAI, then `dvd360-eval models import DIR`"):
        store.fetch("lora", progress=False)


def test_import_takes_files_by_content_not_by_name(tmp_path):
    prefix = _sha(GOOD)[:8]
    cache = tmp_path / "vbench_cache"
    (cache / "pyiqa_model").mkdir(parents=True)
    (cache / "pyiqa_model" / "renamed.pth").write_bytes(GOOD)         # the prefix model, under another name
    (cache / "sa_0_4_vit_l_14_linear.pth").write_bytes(OTHER)          # the published name, wrong content
    (cache / "checkpoint.safetensors").write_bytes(b"a personalised checkpoint")  # unverified: by name
    store = Store(tmp_path / "store", _registry(
        "", pre={"path": f"musiq-{prefix}.pth", "sha256_prefix": prefix, "urls": ["x"]},
        laion={"path": "sa_0_4_vit_l_14_linear.pth", "sha256": _sha(GOOD[:10]), "urls": ["x"]},
        ckpt={"path": "checkpoint.safetensors", "urls": ["x"]}))
    taken = {(model, how) for model, _, _, how in store.import_dir(cache, progress=False)}
    assert ("pre", "sha256_prefix") in taken and not any(model == "laion" for model, _ in taken)
    assert store.path("pre").read_bytes() == GOOD and not store.path("laion").exists()
    assert ("ckpt", "unverified: imported by name, its sha256 pinned") in taken
    assert store.verify("pre")[0][1] and store.state("pre").present
    assert store.import_dir(cache, progress=False) == []  # what is present is not imported again


def test_import_reads_a_hugging_face_cache_by_its_blob_names(tmp_path):
    sha = _sha(GOOD)
    repo = tmp_path / "hub" / "models--org--model"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / sha).write_bytes(GOOD)
    snapshot = repo / "snapshots" / "abc123" / "unet"
    snapshot.mkdir(parents=True)
    os.symlink(repo / "blobs" / sha, snapshot / "diffusion_pytorch_model.safetensors")
    store = Store(tmp_path / "store", Registry(models={"sd": {
        "title": "sd", "role": "generator", "kind": "diffusers", "piece": "sd", "licence": "test",
        "hub_repo": "org/model", "files": [{"path": "unet/diffusion_pytorch_model.safetensors",
                                            "hub_published": True}]}}))
    [(model, path, _, how)] = store.import_dir(tmp_path / "hub", progress=False)
    assert (model, path) == ("sd", "unet/diffusion_pytorch_model.safetensors") and "blob name" in how
    assert digests(store.path("sd"))[0] == sha


def test_a_hub_file_is_checked_against_the_hubs_own_hash(tmp_path, monkeypatch):
    """huggingface_hub is replaced here (no network): the hub's hash of a file is its LFS sha256 or,
    for a small file, its git blob id; a copy that matches neither is refused."""
    from pathlib import Path

    import dvd360.models.store as store_module

    published = {"unet/model.safetensors": _sha(GOOD), "unet/config.json": digests_of(b"{}")[1]}
    content = {"unet/model.safetensors": GOOD, "unet/config.json": b"{}"}

    def fake_hub(repo, filename, revision, folder):
        path = Path(folder) / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content[filename])
        return path, published[filename], len(content[filename])

    monkeypatch.setattr(store_module, "hub_download", fake_hub)
    registry = Registry(models={"sd": {"title": "sd", "role": "generator", "kind": "diffusers", "piece": "sd",
                                       "licence": "test", "hub_repo": "org/model",
                                       "files": [{"path": p, "hub_published": True} for p in content]}})
    store = Store(tmp_path / "store", registry)
    assert store.fetch("sd", progress=False) == list(content)
    assert [store.record("sd")[p]["checked"] for p in content] == ["hub sha256", "hub git blob"]
    assert store.sha256("sd") is not None and store.verify("sd")[0][1]
    content["unet/model.safetensors"] = OTHER  # the hub's hash no longer fits the bytes
    store.path("sd", "unet/model.safetensors").unlink()
    with pytest.raises(HashMismatchError):
        store.fetch("sd", progress=False)


def test_the_hub_is_not_contacted_offline(tmp_path, monkeypatch):
    from dvd360.models.download import FetchError, hub_download

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FetchError, match="HF_HUB_OFFLINE is set"):
        hub_download("org/model", "config.json", "main", tmp_path)


def test_the_models_commands(tmp_path, monkeypatch):
    """`dvd360-eval models fetch --for`, `list`, `verify` and `import` on a registry served from 127.0.0.1."""
    from click.testing import CliRunner

    import dvd360.models.store as store_module
    from dvd360.cli import main

    monkeypatch.setenv("DVD360_HOME", str(tmp_path / "home"))
    prefix = _sha(GOOD)[:8]
    with model_server({f"musiq-{prefix}.pth": GOOD}) as (base, _):
        registry = Registry(models={
            "musiq_test": {"title": "MUSIQ", "role": "scorer", "kind": "musiq", "piece": "musiq", "licence": "t",
                           "metrics": ["imaging_quality_erp", "imaging_quality_views"],
                           "files": [{"path": f"musiq-{prefix}.pth", "sha256_prefix": prefix, "hash_source": "t",
                                      "urls": [f"{base}/musiq-{prefix}.pth"]}]},
            "laion_test": {"title": "LAION", "role": "scorer", "kind": "aesthetic", "piece": "aesthetic",
                           "licence": "t", "metrics": ["aesthetic_quality_erp"],
                           "files": [{"path": "head.pth", "sha256": _sha(OTHER), "hash_source": "t",
                                      "urls": [f"{base}/head.pth"]}]}})
        monkeypatch.setattr(store_module, "load_registry", lambda: registry)
        runner = CliRunner()
        listed = runner.invoke(main, ["models", "list"])
        assert listed.exit_code == 0 and "blocks: imaging_quality_erp, imaging_quality_views" in listed.output
        fetched = runner.invoke(main, ["models", "fetch", "--for", "imaging_quality_views"])
        assert fetched.exit_code == 0, fetched.output
        assert f"musiq_test: fetched musiq-{prefix}.pth (sha256 {_sha(GOOD)})" in fetched.output
        listed = runner.invoke(main, ["models", "list", "--json"])
        states = {m["name"]: (m["state"], m["sha256"], m["blocked"]) for m in json.loads(listed.output)["models"]}
        assert states == {"musiq_test": ("present", _sha(GOOD), []),
                          "laion_test": ("missing", None, ["aesthetic_quality_erp"])}
        failed = runner.invoke(main, ["models", "fetch", "laion_test"])
        assert failed.exit_code == 1 and "SourceNotFoundError" in failed.output and "404" in failed.output
        assert "Traceback" not in failed.output
        verified = runner.invoke(main, ["models", "verify"])
        assert verified.exit_code == 0 and "1 file(s) verified" in verified.output
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        (downloads / "whatever-name.bin").write_bytes(OTHER)
        imported = runner.invoke(main, ["models", "import", str(downloads)])
        assert imported.exit_code == 0 and "laion_test/head.pth <- " in imported.output
        assert "1 file(s) imported" in imported.output
