"""The prepare stage: tiny synthesises the layout and logs an MLflow run; paper indexes in place."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from dvd360.data.synthetic_dataset import write_synthetic_web360
from dvd360.data.web360 import index_web360, load_prepared
from web360_support import make_web360

STAGE = Path(__file__).resolve().parents[1] / "pipelines" / "prepare.py"


def load_stage():
    spec = importlib.util.spec_from_file_location("prepare_stage", STAGE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def use_params(folder: Path, monkeypatch, profile: str, **section) -> None:
    """A repository root of its own (params.yaml) so outputs and artifacts stay in tmp."""
    params = {"profile": profile, "paths": {"web360": "data/web360"}, "prepare": {profile: section}}
    (folder / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.chdir(folder)


def test_tiny_profile_writes_the_layout_and_logs_a_run(tmp_path, monkeypatch):
    import mlflow

    from dvd360.tracking import experiment_name, tracking_uri

    use_params(tmp_path, monkeypatch, "tiny", clips=2, height=32, width=64, frames=6, fps=8, seed=3)
    assert load_stage().main() == 0
    out = tmp_path / "data" / "web360"
    for name in ("captions.csv", "metadata.json", "index.json", "preview.mp4",
                 "videos_32x64x6/00000.mp4", "flows_32x64x6/00001.mp4", "flows_32x64x6/00001.npz"):
        assert (out / name).is_file(), name
    index = load_prepared(out)
    assert [clip.id for clip in index.clips] == ["00000", "00001"]
    record = json.loads((out / "index.json").read_text())
    assert record["root"] == "." and record["statistics"]["frames_total"] == 12
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["arguments"]["seed"] == 3 and len(metadata["clips"]["00000"]["view_captions"]) == 4

    mlflow.set_tracking_uri(tracking_uri())
    runs = mlflow.search_runs(experiment_names=[experiment_name("tiny")], output_format="list")
    run = next(r for r in runs if r.data.tags.get("dvd360.stage") == "prepare"
               and r.data.params.get("seed") == "3")
    assert run.data.params["clips"] == "2"
    assert run.data.metrics["clips"] == 2 and run.data.metrics["mean_flow_px"] > 0
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "preview")}
    assert artifacts == {"preview/preview.mp4"}


def test_paper_profile_without_the_download_says_where_to_get_it(tmp_path, monkeypatch):
    use_params(tmp_path, monkeypatch, "paper", web360_dir="somewhere/WEB360")
    with pytest.raises(SystemExit) as stopped:
        load_stage().main()
    message = str(stopped.value.code)
    assert str(tmp_path / "somewhere" / "WEB360") in message
    assert "https://github.com/Akaneqwq/360DVD" in message and "videos_512x1024x100" in message
    assert not (tmp_path / "data" / "web360").exists()


def test_paper_profile_indexes_in_place(tmp_path, monkeypatch):
    download = make_web360(tmp_path / "download", clips=2)
    use_params(tmp_path, monkeypatch, "paper", web360_dir=str(download), stats_clips=1)
    assert load_stage().main() == 0
    out = tmp_path / "data" / "web360"
    assert sorted(p.name for p in out.iterdir()) == ["index.json", "preview.mp4"]  # nothing copied
    index = load_prepared(out)
    assert index.root == download and index.clips[0].video_path == download / "videos_32x64x6" / "000.mp4"


def test_synthetic_dataset_is_deterministic(tmp_path):
    first = write_synthetic_web360(tmp_path / "a", clips=2, height=32, width=64, frames=2, seed=1,
                                   progress=False)
    second = write_synthetic_web360(tmp_path / "b", clips=2, height=32, width=64, frames=2, seed=1,
                                    progress=False)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 8  # 2 videos, 2 flow videos, 2 npz, captions.csv, metadata.json
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert len(index_web360(first).clips) == 2
