"""`dvd360-eval score` on videos the project did not make, and the score stage's per-method scoring."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dvd360.cli import main
from dvd360.models.clip_model import build_tiny_clip, load_clip
from dvd360.metrics.flow_agreement import rigid_rotation_clip
from dvd360.metrics.registry import METRIC_NAMES
from dvd360.metrics.scoring import VideoScorer


def _write_with_av(path, frames, fps=8):
    """Write frames with PyAV directly (not the project's writer): an 'other method' video."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "clip", seed=0)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two mp4s written with av, one folder of PNG frames, prompts, and a numeric flow for one mp4."""
    root = tmp_path_factory.mktemp("other_method")
    folder, flows = root / "videos", root / "flows"
    folder.mkdir(), flows.mkdir()
    turning, flow = rigid_rotation_clip(32, 64, 4, seed=0)
    _write_with_av(folder / "turning.mp4", turning)
    np.savez(flows / "turning.npz", flow=flow)
    rng = np.random.default_rng(0)
    _write_with_av(folder / "noise.mp4", rng.integers(0, 256, (3, 32, 64, 3), dtype=np.uint8))
    frames_dir = folder / "stills"
    frames_dir.mkdir()
    for i in range(3):
        Image.fromarray(turning[0]).save(frames_dir / f"{i:03d}.png")
    prompts = root / "prompts.json"
    prompts.write_text(json.dumps({"turning": "a textured sphere", "noise": "television static",
                                   "stills": "a still panorama"}))
    return root


def test_score_cli_on_foreign_videos(videos, clip_dir, tmp_path):
    from dvd360.models.feature_nets import QUALITY_KINDS, build_tiny_feature_net

    for kind in QUALITY_KINDS:
        build_tiny_feature_net(tmp_path / "features" / kind, kind, seed=0)
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(main, ["score", str(videos / "videos"), "--prompts", str(videos / "prompts.json"),
                                       "--flows", str(videos / "flows"), "--model", str(clip_dir),
                                       "--features", str(tmp_path / "features"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    records = {r["path"].split("/")[-1]: r for r in data["videos"]}
    assert sorted(records) == ["noise.mp4", "stills", "turning.mp4"]
    # The flow metrics need a reference flow: present for `turning` only, never filled with 0.
    assert set(records["turning.mp4"]["metrics"]) == set(METRIC_NAMES)
    assert "flow_epe_deg" not in records["noise.mp4"]["metrics"]
    assert records["turning.mp4"]["metrics"]["flow_epe_deg"] < 1.0  # H.264 on top of the estimator error
    assert records["stills"]["metrics"]["frame_consistency_erp"] == pytest.approx(100.0, abs=1e-3)
    assert records["noise.mp4"]["prompt"] == "television static"
    assert "dvd360-tiny-clip" in data["metrics_info"]["clip_similarity_erp"]["model"]
    assert "MUSIQ" in data["metrics_info"]["imaging_quality_views"]["model"]
    assert "32x64" in data["metrics_info"]["flow_epe_deg"]["estimator_error"]
    assert "say nothing about quality" in data["note"]


def test_score_cli_lists_every_problem_before_scoring(videos, clip_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    _write_with_av(bad / "square.mp4", np.zeros((3, 32, 32, 3), np.uint8))
    _write_with_av(bad / "single.mp4", np.zeros((1, 32, 64, 3), np.uint8))
    (bad / "broken.mp4").write_bytes(b"not a video at all")
    _write_with_av(bad / "unprompted.mp4", np.zeros((3, 32, 64, 3), np.uint8))
    flows = tmp_path / "flows"
    flows.mkdir()
    np.savez(flows / "unprompted.npz", flow=np.zeros((1, 32, 64, 2), np.float32))  # too short for 3 frames
    result = CliRunner().invoke(main, ["score", str(bad), str(tmp_path / "missing.mp4"), "--flows", str(flows),
                                       "--prompts", str(videos / "prompts.json"), "--model", str(clip_dir)])
    assert result.exit_code != 0
    for expected in ("square.mp4: not an ERP panorama", "single.mp4: 1 frame(s)", "broken.mp4",
                     "unprompted.mp4: no prompt", "missing.mp4: no such file",
                     "unprompted.npz: 1 flow frame(s), the video needs at least 2"):
        assert expected in result.output
    assert "nothing scored" in result.output


def test_score_method_reads_generation_records(tmp_path, clip_dir):
    from dvd360.data.web360 import Clip
    from dvd360.metrics.generations import score_generations, summarize_records
    from dvd360.metrics.scorers import Scorers, ScoringSettings

    frames, flow = rigid_rotation_clip(32, 64, 7, yaw_deg=2.0, pitch_deg=0.0, roll_deg=0.0, seed=2)
    np.savez(tmp_path / "c0.npz", flow=flow)
    clips = {"c0": Clip("c0", "caption", tmp_path / "c0.mp4", None, tmp_path / "c0.npz", 7, 32, 64)}
    method = tmp_path / "D"
    method.mkdir()
    # A video of source frames 0, 2, 4, 6 (stride 2), generated with a 90-degree net latent rotation.
    video = np.roll(frames[::2], 16, axis=2)
    _write_with_av(method / "p0-s0.mp4", video)
    (method / "p0-s0.json").write_text(json.dumps({
        "prompt": "a sphere", "prompt_id": "p0", "seed": 0, "reference_motion": {"clip_id": "c0", "frame_indices": [0, 2, 4, 6]},
        "rotate_condition": True, "latent_rotation_net_degrees": 90}))
    scorer = Scorers(ScoringSettings(clip=str(clip_dir), flow_method="ilk"), VideoScorer(load_clip(clip_dir), "ilk"), None)
    records = score_generations(scorer, {"D": method}, clips, {"clip": "tiny"})["D"]
    assert len(records) == 1 and records[0]["reference_flow"]["roll_deg"] == 90.0
    assert records[0]["metrics"]["flow_epe_deg"] < 1.0 and records[0]["metrics"]["flow_direction_agreement"] > 0.9
    again = score_generations(scorer, {"D": method}, clips, {"clip": "tiny"}, previous={"D": {"p0-s0.mp4": records[0]}})
    assert again["D"][0] is records[0]  # unchanged video and settings: reused, not rescored
    changed = score_generations(scorer, {"D": method}, clips, {"clip": "other"}, previous={"D": {"p0-s0.mp4": records[0]}})
    assert changed["D"][0] is not records[0] and changed["D"][0]["metrics"] == records[0]["metrics"]
    summary = summarize_records(records)
    assert summary["seam_ratio"]["n"] == 1 and summary["seam_ratio"]["ci_low"] is None
