"""`dvd360-eval score --flows` with flow videos in the flow_vis encoding: detected, recorded, honest."""

from __future__ import annotations

import json

import flow_vis
import numpy as np
import pytest
from click.testing import CliRunner

from dvd360.cli import main
from dvd360.data.video import write_video
from dvd360.models.clip_model import build_tiny_clip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A synthetic world clip, its exact flow as a flow_vis video, and a grey 'flow video'."""
    from dvd360.data.synthetic import make_scene, render_clip

    root = tmp_path_factory.mktemp("flowvis")
    for name in ("videos", "flows", "grey"):
        (root / name).mkdir()
    clip = render_clip(make_scene(0), 64, 128, 6)
    write_video(root / "videos" / "world.mp4", clip.frames)
    write_video(root / "flows" / "world.mp4", np.stack([flow_vis.flow_to_color(f) for f in clip.flow]))
    write_video(root / "grey" / "world.mp4", np.full((6, 64, 128, 3), 128, np.uint8))
    return root, build_tiny_clip(root / "clip", seed=0)


def test_flow_vis_reference_is_detected_recorded_and_scored_without_its_unknown_speed(inputs, tmp_path):
    root, clip_dir = inputs
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(main, ["score", str(root / "videos"), "--flows", str(root / "flows"),
                                       "--model", str(clip_dir), "--no-quality", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "flow encoding flowvis (auto) magnitude relative" in result.output
    [record] = json.loads(out.read_text())["videos"]
    note = record["reference_flow"]
    assert (note["encoding"], note["chosen"], note["magnitude"]) == ("flowvis", "auto", "relative")
    assert note["flow_scale"] > 0 and note["flow_reference_scale"] > 0
    metrics = record["metrics"]
    assert "flow_epe_deg" not in metrics  # the reference's speed is unknown: no raw EPE against it
    assert metrics["flow_direction_agreement"] > 0.9 and metrics["flow_epe_deg_scaled"] < 1.0


def test_a_flow_video_of_neither_encoding_is_refused_naming_the_file(inputs):
    root, clip_dir = inputs
    result = CliRunner().invoke(main, ["score", str(root / "videos"), "--flows", str(root / "grey"),
                                       "--model", str(clip_dir), "--no-quality"])
    assert result.exit_code != 0
    assert "grey/world.mp4" in result.output and "cannot tell the flow encoding" in result.output
