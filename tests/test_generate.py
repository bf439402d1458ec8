"""The generate stage: outputs per contract, resumable (complete videos kept, truncated ones
redone), the same seed gives the same mp4 bytes, D reads its adapter and its clip's flow."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from dvd360.config import load_params, repo_root
from dvd360.generate import MEASURED, GenerateSettings, fingerprint, generate_method, is_complete, video_paths
from dvd360.methods import Prompt, load_methods
from dvd360.params_schema import validated_stage_params
from dvd360.provenance import RUN_SUFFIX

SMALL = GenerateSettings(models_dir="models", adapters_dir="adapters", prepared_dir="prepared", out_dir="gen",
                         suite="tiny", seeds=[0, 1], steps=2, guidance=7.5, height=64, width=128, frames=2, fps=8.0,
                         condition_stride=3, decode_chunk_size=2, device="cpu", dtype="float32")
SEA = Prompt(id="sea", text="a panoramic view of the sea", condition="00000")


@pytest.fixture(scope="module")
def prepared(tiny_web360, tmp_path_factory):
    """A `prepare`-style index of the tiny dataset (its clips stay where the fixture wrote them)."""
    from dvd360.data.web360 import INDEX_FILE, index_web360, save_index

    folder = tmp_path_factory.mktemp("prepared")
    save_index(index_web360(tiny_web360), folder / INDEX_FILE)
    return folder


def _run(method_id, settings, tmp_path, models, prepared, prompts=(SEA,)):
    folders = {"models_dir": str(models), "out_dir": str(tmp_path / "gen"), "adapters_dir": str(tmp_path / "adapters"),
               "prepared_dir": str(prepared)}
    return generate_method(load_methods()[method_id], list(prompts), settings.model_copy(update=folders),
                           progress=False)


def test_generate_resumes_and_is_deterministic(tiny_models, prepared, tmp_path):
    from dvd360.data.video import probe_video

    first = _run("C", SMALL, tmp_path, tiny_models, prepared)
    assert [(s["prompt_id"], s["seed"], s["status"]) for s in first] == [("sea", 0, "generated"), ("sea", 1, "generated")]
    paths = video_paths(tmp_path / "gen", "C", "sea", 0)
    assert paths.mp4 == tmp_path / "gen" / "C" / "sea-s0.mp4"
    record = json.loads(paths.json.read_text())
    assert (record["method"], record["prompt_id"], record["seed"], record["steps"]) == ("C", "sea", 0, 2)
    assert record["condition_clip"] is None  # C takes no motion condition
    # ... but its flow is scored against the prompt's motion: frames 0 and 3 (stride 3)
    assert record["reference_motion"] == {"clip_id": "00000", "frame_indices": [0, 3]}
    assert record["lora"]["weight"] == 1.0 and record["latent_rotation"] and record["circular_padding"]
    assert "versions" in record and not set(MEASURED) & set(record)  # the record: what the video is made from
    run = json.loads(paths.run.read_text())  # what this run measured
    assert set(run) == set(MEASURED) and run["seconds"] > 0 and run["peak_memory"]["gib"] > 0
    assert {"denoising", "decoding", "total"} <= set(run["timings_s"]) and run["graphs_compiled"] is None
    with np.load(paths.npz) as archive:
        frames = archive["frames"]
    assert frames.shape == (2, 64, 128, 3) and frames.dtype == np.uint8
    assert probe_video(paths.mp4).frames == 2
    original, original_record = paths.mp4.read_bytes(), paths.json.read_bytes()
    other = video_paths(tmp_path / "gen", "C", "sea", 1).mp4.read_bytes()
    assert original != other  # the seed matters

    again = _run("C", SMALL, tmp_path, tiny_models, prepared)
    assert [s["status"] for s in again] == ["skipped", "skipped"]

    paths.mp4.write_bytes(original[: len(original) // 2])  # an interrupted write
    third = _run("C", SMALL, tmp_path, tiny_models, prepared)
    assert [s["status"] for s in third] == ["generated", "skipped"]
    assert paths.mp4.read_bytes() == original  # same seed, same bytes
    assert paths.json.read_bytes() == original_record  # and the same record: the timings are in .run.json


def test_dvc_ignores_the_run_measurements():
    """DVC hashes the generations folders without `*.run.json`, so a rerun that makes the same
    videos leaves the folder's hash, and every stage after it, unchanged."""
    from dvc.repo import Repo

    from dvd360.config import repo_root

    repo = Repo(str(repo_root()))
    try:
        record = video_paths(repo_root() / "data" / "generations", "D", "sea", 0)
        assert repo.dvcignore.is_ignored_file(str(record.run)) and record.run.name.endswith(RUN_SUFFIX)
        assert not any(repo.dvcignore.is_ignored_file(str(path)) for path in (record.json, record.mp4, record.npz))
    finally:
        repo.close()


def test_changed_settings_make_a_video_stale(tiny_models, tmp_path):
    method = load_methods()["A"]
    paths = video_paths(tmp_path, "A", "sea", 0)
    paths.mp4.parent.mkdir(parents=True)
    for path in (paths.mp4, paths.npz):
        path.write_bytes(b"video")
    from dvd360.provenance import sha256_of

    current = fingerprint(method, SEA, 0, SMALL, "cpu", "models", None)
    paths.json.write_text(json.dumps({"fingerprint": current, "files": {
        "mp4_sha256": sha256_of(paths.mp4), "npz_sha256": sha256_of(paths.npz)}}))
    assert is_complete(paths, current)
    for change in ({"steps": 3}, {"dtype": "bfloat16"}, {"personalised": "toon"}, {"fast_path": True}):
        assert not is_complete(paths, fingerprint(method, SEA, 0, SMALL.model_copy(update=change), "cpu", "models", None))
    assert not is_complete(paths, fingerprint(method, SEA, 0, SMALL, "cuda", "models", None))  # another device type
    assert not is_complete(paths, fingerprint(method, SEA, 0, SMALL, "cpu", "other models", None))
    # which videos, where files are, and the device as written (not its type) leave a video as it is
    for change in ({"seeds": [5]}, {"suite": "paper"}, {"out_dir": "elsewhere"}, {"device": "auto"}):
        assert is_complete(paths, fingerprint(method, SEA, 0, SMALL.model_copy(update=change), "cpu", "models", None))


def test_changed_code_makes_a_video_stale(monkeypatch):
    import dvd360.fingerprint

    method = load_methods()["A"]
    before = fingerprint(method, SEA, 0, SMALL, "cpu", "models", None)
    assert fingerprint(method, SEA, 0, SMALL, "cpu", "models", None) == before
    monkeypatch.setattr(dvd360.fingerprint, "code_sha256", lambda modules: "edited sampler")
    assert fingerprint(method, SEA, 0, SMALL, "cpu", "models", None) != before


def test_changed_condition_clip_bytes_make_a_video_stale(tmp_path):
    method = load_methods()["D"]
    flow = tmp_path / "flow.mp4"
    flow.write_bytes(b"motion")
    files = {"condition_flow_video": flow, "condition_flow_npz": None}
    before = fingerprint(method, SEA, 0, SMALL, "cpu", "models", "adapter", files)
    assert fingerprint(method, SEA, 0, SMALL, "cpu", "models", "adapter", files) == before
    flow.write_bytes(b"other motion")  # same clip id and path, new dataset seed
    assert fingerprint(method, SEA, 0, SMALL, "cpu", "models", "adapter", files) != before


def test_D_uses_its_adapter_and_the_clip_condition(tiny_models, prepared, tmp_path):
    with pytest.raises(FileNotFoundError, match="full/adapter.safetensors.*dvc repro train@full"):
        _run("D", SMALL, tmp_path, tiny_models, prepared)
    full = tmp_path / "adapters" / "full"
    full.mkdir(parents=True)
    for name in ("adapter.safetensors", "adapter.json"):
        shutil.copyfile(tiny_models / "adapter_init" / name, full / name)
    with pytest.raises(KeyError, match="clip.*'99999'.*not in the prepared dataset"):
        _run("D", SMALL, tmp_path, tiny_models, prepared, [Prompt("x", "a panoramic view of the sea", "99999")])
    wide = SMALL.model_copy(update={"seeds": [0], "height": 128, "width": 256})
    summary = _run("D", wide, tmp_path, tiny_models, prepared)
    record = json.loads(summary[0]["paths"].json.read_text())
    assert record["condition_clip"] == "00000" and record["adapter"]["condition"] == "given"
    assert record["rotate_condition"] is True and record["lora"] is None
    assert record["reference_motion"] == {"clip_id": "00000", "frame_indices": [0, 3]}


def test_dvc_stages_cover_every_method_with_its_adapter():
    dvc = yaml.safe_load((repo_root() / "dvc.yaml").read_text())
    assert dvc["vars"] == ["eval/methods.yaml"] and dvc["stages"]["generate"]["foreach"] == "${methods}"
    assert "${item.deps}" in dvc["stages"]["generate"]["do"]["deps"]  # validated by load_methods


@pytest.mark.parametrize("profile", ["tiny", "paper"])
def test_params_sections_parse(profile):
    settings = validated_stage_params("generate", {**load_params(), "profile": profile}, GenerateSettings)
    assert settings.seeds and settings.width == 2 * settings.height
