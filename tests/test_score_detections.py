"""What scoring detects in its inputs is printed per video and recorded: repeated frames are
dropped (or kept with --keep-repeats), the reference flow follows the kept frames, and the
score stage scores the generate stage's exact frames (.npz) rather than the browser mp4."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from dvd360.cli import main
from dvd360.data.detections import detection_line
from dvd360.data.protocol import read_video
from dvd360.data.video import write_video
from dvd360.models.clip_model import build_tiny_clip, load_clip
from dvd360.metrics.flow_agreement import rigid_rotation_clip
from dvd360.metrics.scoring import VideoScorer


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "clip", seed=0)


def _repeated_with_flow(factor: int = 3):
    """A turning clip (6 frames, 32x64) with every frame shown `factor` times, and the one-step
    flow of that timeline: zero between repeats, the clip's step where the picture changes."""
    frames, flow = rigid_rotation_clip(32, 64, 6, yaw_deg=8.0, pitch_deg=0.0, roll_deg=0.0, seed=1)
    steps = np.zeros((factor * 6, 32, 64, 2), np.float32)
    steps[factor - 1::factor] = flow
    return frames, np.repeat(frames, factor, axis=0), steps


def test_detection_line_is_built_from_every_entry(tmp_path):
    frames = np.repeat(rigid_rotation_clip(16, 32, 3, yaw_deg=20.0, seed=0)[0], 2, axis=0)
    np.savez(tmp_path / "a.npz", frames=frames)
    scored = read_video(tmp_path / "a.npz")
    assert scored.indices == [0, 2, 4] and scored.frames.shape[0] == 3
    detections = {**scored.detections, "flow_encoding": {"summary": "flowvis (white = still)"}}  # another detector's
    line = detection_line("a.npz", detections)
    assert line == ("a.npz: size 6 frames 16x32; repeats x2.00 (3 distinct of 6 frames, 3 dropped); "
                    "protocol 3 frames (first, N=16) at 16x32; flow encoding flowvis (white = still)")
    assert read_video(tmp_path / "a.npz", keep_repeats=True).detections["repeats"]["dropped"] == []


def test_score_cli_drops_repeats_and_says_so(clip_dir, tmp_path):
    original, repeated, steps = _repeated_with_flow()
    write_video(tmp_path / "videos" / "turning.mp4", repeated, crf=18)
    (tmp_path / "flows").mkdir()
    np.savez(tmp_path / "flows" / "turning.npz", flow=steps)
    outputs = {}
    for flag in ([], ["--keep-repeats"]):
        out = tmp_path / f"scores{len(flag)}.json"
        result = CliRunner().invoke(main, ["score", str(tmp_path / "videos"), "--flows", str(tmp_path / "flows"),
                                           "--model", str(clip_dir), "--out", str(out), "--frames", "all", "--no-quality", *flag])
        assert result.exit_code == 0, result.output
        [record] = json.loads(out.read_text())["videos"]
        outputs[bool(flag)] = record, result.stderr
    dropped, stderr = outputs[False]
    assert "turning.mp4: size 18 frames 32x64; repeats x3.00 (6 distinct of 18 frames, 12 dropped)" in stderr
    assert dropped["frames"] == 6 and dropped["detections"]["repeats"]["dropped"] == [
        i for i in range(18) if i % 3]
    # The flow between the kept frames is the clip's own: the estimator's error only.
    assert dropped["metrics"]["flow_epe_deg"] < 1.0 and dropped["metrics"]["flow_direction_agreement"] > 0.9
    kept, stderr = outputs[True]
    assert "12 kept (--keep-repeats)" in stderr and kept["frames"] == 18
    assert kept["detections"]["repeats"]["dropped"] == []
    assert kept["metrics"]["frame_consistency_erp"] > dropped["metrics"]["frame_consistency_erp"]


def test_score_stage_scores_the_exact_frames_and_records_detections(clip_dir, tmp_path):
    from dvd360.metrics.generations import score_generations
    from dvd360.metrics.scorers import Scorers, ScoringSettings

    original, repeated, _ = _repeated_with_flow(factor=2)
    method = tmp_path / "A"
    method.mkdir()
    write_video(method / "p0-s0.mp4", repeated, crf=28)  # the browser copy, with a codec seam
    np.savez_compressed(method / "p0-s0.npz", frames=repeated)  # the generate stage's exact frames
    (method / "p0-s0.json").write_text(json.dumps({"prompt": "a sphere", "prompt_id": "p0", "seed": 0}))
    scorer = VideoScorer(load_clip(clip_dir), None)
    scorers = Scorers(ScoringSettings(clip=str(clip_dir)), scorer, None)
    [record] = score_generations(scorers, {"A": method}, {}, {"clip": "tiny"})["A"]
    assert record["scored_from"] == "p0-s0.npz" and record["frames"] == 6
    assert record["detections"]["repeats"]["factor"] == 2.0
    assert record["detections"]["size"] == {"frames": 12, "height": 32, "width": 64, "summary": "12 frames 32x64"}
    exact = scorer.score(original)["metrics"]
    assert record["metrics"]["seam_ratio"] == pytest.approx(exact["seam_ratio"], rel=1e-12)
    keeping = Scorers(ScoringSettings(clip=str(clip_dir), keep_repeats=True), scorer, None)
    [kept] = score_generations(keeping, {"A": method}, {}, {"clip": "tiny"})["A"]
    assert kept["frames"] == 12 and kept["detections"]["repeats"]["dropped"] == []
