"""`dvd360-eval score` finds its models through the registry and the model store: offline with a
model missing it stops before any compute naming every one and its fetch command; random weights
only with `--models tiny`; every record names its models by registry name and sha256. Runs without
the pipeline-only packages (DVC, MLflow, peft, accelerate, diffusers). Network: 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from model_server import model_server

from dvd360.data.video import write_video
from dvd360.metrics.flow_agreement import rigid_rotation_clip
from dvd360.models.registry import Registry, load_registry
from dvd360.models.store import Store

WITHOUT_PIPELINE = Path(__file__).with_name("without_pipeline.py")
SCORERS = ("clip_vit_l14_openai", "musiq_spaq", "laion_aesthetic_vit_l14")


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    frames, _ = rigid_rotation_clip(32, 64, 4, seed=0)
    return write_video(tmp_path_factory.mktemp("video") / "turning.mp4", frames)


def _score(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess:
    """`dvd360-eval ARGS` in a fresh process, offline, with the pipeline-only packages hidden."""
    env = {**os.environ, "DVD360_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(WITHOUT_PIPELINE), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def test_offline_with_an_empty_store_stops_naming_every_model_and_writes_nothing(video, tmp_path):
    empty, home = tmp_path / "empty", tmp_path / "home"
    empty.mkdir()
    run = _score(["score", str(video), "--out", "scores.json"], empty, home)
    assert run.returncode != 0 and "Traceback" not in run.stderr + run.stdout
    for name in SCORERS:
        assert f"- {name} (" in run.stderr and f"get it: dvd360-eval models fetch {name}" in run.stderr
    assert f"dvd360-eval models fetch {' '.join(SCORERS)}" in run.stderr and "nothing scored" in run.stderr
    assert list(empty.iterdir()) == [] and not home.exists()


def test_tiny_models_only_when_asked_and_the_output_says_so_at_the_top(video, tmp_path):
    run = _score(["score", str(video), "--models", "tiny", "--out", "scores.json"], tmp_path, tmp_path / "home")
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "scores.json").read_text())
    assert next(iter(result)) == "note" and "random-weight" in result["note"]
    assert {kind: m["random_weights"] for kind, m in result["models"].items()} == {
        "clip": True, "musiq": True, "aesthetic": True}
    assert all(len(m["sha256"]) == 64 for m in result["models"].values())
    assert "random-weight" in run.stderr and "imaging_quality_views" in result["videos"][0]["metrics"]


def test_skip_missing_scores_what_it_can_and_lists_the_rest(video, tmp_path, monkeypatch):
    from dvd360.cli import main

    monkeypatch.setenv("DVD360_HOME", str(tmp_path / "home"))
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b"):
        (videos / f"{name}.mp4").write_bytes(video.read_bytes())
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(main, ["score", str(videos), "--reference", str(videos), "--skip-missing",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [s["model"] for s in data["skipped"]] == [*SCORERS, "i3d_kinetics400", "inception_fid"]
    assert data["skipped"][0]["fetch"] == "dvd360-eval models fetch clip_vit_l14_openai"
    assert "fvd_erp" in data["skipped"][3]["metrics"] and "set_metrics" not in data
    assert data["models"] == {} and data["note"] is None
    metrics = data["videos"][0]["metrics"]
    assert "end_continuity" in metrics and not any(m.startswith(("clip", "imaging", "aesthetic")) for m in metrics)
    assert "skipped (--skip-missing): musiq_spaq missing" in result.output


@pytest.fixture()
def openai_layout_clip(tmp_path):
    """A tiny CLIP saved as OpenAI's file is (a state dict of open_clip's CLIP), and its sha256."""
    import open_clip

    from dvd360.models.clip_model import TINY_NAME, build_tiny_clip

    build_tiny_clip(tmp_path / "registers-the-config", seed=0)
    torch.manual_seed(1)
    raw = tmp_path / "ViT-tiny.pt"
    torch.save(open_clip.create_model(TINY_NAME).state_dict(), raw)
    return raw.read_bytes()


def _clip_registry(base: str, data: bytes) -> Registry:
    clip = load_registry().scorer("clip")
    entry = {**clip.model_dump(exclude={"name", "files"}), "open_clip": "dvd360-tiny-clip/openai",
             "files": [{"path": "ViT-tiny.pt", "sha256": hashlib.sha256(data).hexdigest(), "hash_source": "the test",
                        "urls": [f"{base}/ViT-tiny.pt"]}]}
    others = {name: e.model_dump(exclude={"name"}) for name, e in load_registry().models.items() if e.kind != "clip"}
    return Registry(models={"test_clip": entry, **others})


def test_score_fetches_converts_and_names_the_store_model(video, tmp_path, monkeypatch, openai_layout_clip):
    """Online: the missing CLIP is fetched (from 127.0.0.1), checked, converted once, and the record
    names it by registry name and the raw file's sha256; offline the next run needs no network."""
    import dvd360.models.store as store_module
    from dvd360.cli import main

    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("DVD360_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    sha256 = hashlib.sha256(openai_layout_clip).hexdigest()
    with model_server({"ViT-tiny.pt": openai_layout_clip}) as (base, state):
        monkeypatch.setattr(store_module, "load_registry", lambda: _clip_registry(base, openai_layout_clip))
        args = ["score", str(video), "--no-quality", "--out", str(tmp_path / "one.json")]
        first = CliRunner().invoke(main, args)
        assert first.exit_code == 0, first.output
        assert "test_clip: not in the model store" in first.output and len(state["log"]) == 1
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        second = CliRunner().invoke(main, [*args[:-1], str(tmp_path / "two.json")])
        assert second.exit_code == 0, second.output
        assert len(state["log"]) == 1  # present: no request
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert one["models"] == two["models"] == {"clip": {"name": "test_clip", "sha256": sha256, "random_weights": False}}
    assert one["note"] is None and "clip_similarity_erp" not in one["videos"][0]["metrics"]  # no prompt given
    assert one["videos"][0]["metrics"]["frame_consistency_erp"] == two["videos"][0]["metrics"]["frame_consistency_erp"]
    assert str(tmp_path) not in json.dumps(one["models"])  # named, never by path
    store = Store(tmp_path / "home", _clip_registry("http://unused", openai_layout_clip))
    assert json.loads((store.root / "converted/clip/dvd360_clip.json").read_text())["sha256"] == sha256
