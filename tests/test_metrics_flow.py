"""Wrap-aware flow estimation and flow agreement on exact synthetic ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from dvd360.data.flow_estimation import estimate_flow, resize_flow
from dvd360.geometry.rotation import roll_longitude
from dvd360.metrics.flow_agreement import flow_agreement, rigid_rotation_clip
from dvd360.metrics.scoring import align_reference_flow, load_reference_flow, stride_flow

# Measured (scikit-image 0.26, iLK radius 7, 4 frames, seed 0): 0.35 deg at 32x64, 0.25 deg at
# 64x128, 0.23 deg at 128x256, direction agreement 0.99; the true motion is about 3.5 deg per
# frame and a zero flow scores 2.7 deg. The bound leaves room for other library versions.
EPE_BOUND_DEG = 0.5


@pytest.fixture(scope="module")
def rotation():
    return rigid_rotation_clip(32, 64, 4, seed=0)


def test_estimator_error_on_rigid_rotation_is_below_the_stated_bound(rotation):
    frames, truth = rotation
    estimated = estimate_flow(frames, "ilk")
    assert estimated.shape == truth.shape and estimated.dtype == np.float32
    np.testing.assert_array_equal(estimated[-1], estimated[-2])  # last frame duplicated
    scores = flow_agreement(estimated, truth)
    assert scores["flow_epe_deg"] < EPE_BOUND_DEG
    assert scores["flow_direction_agreement"] > 0.97
    assert flow_agreement(np.zeros_like(truth), truth)["flow_epe_deg"] > 4 * EPE_BOUND_DEG
    assert np.all(estimated[..., 0] >= -32) and np.all(estimated[..., 0] < 32)


def test_circular_padding_helps_at_the_seam(rotation):
    frames, truth = rotation
    seam = np.r_[0:3, 61:64]
    wrapped = estimate_flow(frames, "ilk")[:, :, seam]
    plain = estimate_flow(frames, "ilk", pad=0)[:, :, seam]
    error = lambda f: flow_agreement(f, truth[:, :, seam])["flow_epe_deg"]  # noqa: E731
    assert error(wrapped) < error(plain)


def test_flow_agreement_prefers_the_matching_condition(rotation):
    frames, truth = rotation
    _, other = rigid_rotation_clip(32, 64, 4, yaw_deg=-3.0, pitch_deg=-1.5, roll_deg=2.0, seed=0)
    estimated = estimate_flow(frames, "ilk")
    matching, mismatched = flow_agreement(estimated, truth), flow_agreement(estimated, other)
    assert matching["flow_epe_deg"] < mismatched["flow_epe_deg"] / 2
    assert matching["flow_direction_agreement"] > mismatched["flow_direction_agreement"] + 0.5


def test_flow_agreement_known_answers(rotation):
    _, truth = rotation
    same = flow_agreement(truth, truth)
    assert same["flow_epe_deg"] == pytest.approx(0.0, abs=1e-6)
    assert same["flow_direction_agreement"] == pytest.approx(1.0, abs=1e-9)
    assert flow_agreement(-truth, truth)["flow_direction_agreement"] == pytest.approx(-1.0, abs=1e-6)
    assert np.isnan(flow_agreement(truth, np.zeros_like(truth))["flow_direction_agreement"])


def test_resize_and_align_reference_flow():
    flow = np.zeros((3, 8, 16, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, -1.0
    resized = resize_flow(flow, 16, 32)
    np.testing.assert_allclose(resized[..., 0], 4.0)
    np.testing.assert_allclose(resized[..., 1], -2.0)
    aligned = align_reference_flow(flow, frames=3, height=4, width=8)
    assert aligned.shape == (3, 4, 8, 2)
    np.testing.assert_allclose(aligned[..., 0], 1.0)
    with pytest.raises(ValueError, match="at least 4"):
        align_reference_flow(flow, frames=5, height=8, width=16)


def test_reference_flow_from_numeric_file_with_stride_and_roll(tmp_path):
    flow = np.zeros((6, 8, 16, 2), np.float32)
    flow[..., 0] = np.arange(6)[:, None, None]  # frame t moves by t pixels
    flow[:, :, 3, 1] = 1.0  # marks column 3
    path = tmp_path / "clip.npz"
    np.savez(path, flow=flow)
    strided = load_reference_flow(path, indices=[0, 2, 4])
    np.testing.assert_allclose(strided[0, ..., 0], 0 + 1)
    np.testing.assert_allclose(strided[1, ..., 0], 2 + 3)
    np.testing.assert_array_equal(strided[2], strided[1])
    np.testing.assert_array_equal(stride_flow(flow, [0, 1, 2])[:2], flow[:2])
    rolled = load_reference_flow(path, roll_deg=90.0)  # content at lon L moves to L + 90: 4 columns right
    np.testing.assert_array_equal(rolled[:, :, 7, 1], 2.0 * np.ones((6, 8)) / 2)
    np.testing.assert_array_equal(rolled, roll_longitude(flow, 90.0, dim=2))


def test_raft_needs_local_weights_and_keeps_the_flow_convention(tmp_path):
    import torch
    from torchvision.models.optical_flow import raft_large

    frames = rigid_rotation_clip(64, 128, frames=3, yaw_deg=3.0, seed=0)[0]
    with pytest.raises(FileNotFoundError, match="RAFT weights not found"):
        estimate_flow(frames, "raft", weights=str(tmp_path / "absent.pth"))
    torch.manual_seed(0)
    weights = tmp_path / "raft.pth"
    torch.save(raft_large(weights=None).state_dict(), weights)  # random weights: plumbing only
    flow = estimate_flow(frames, "raft", weights=str(weights))
    assert flow.shape == (3, 64, 128, 2) and np.isfinite(flow).all()
    assert (flow[..., 0] >= -64).all() and (flow[..., 0] < 64).all()
    np.testing.assert_array_equal(flow[-1], flow[-2])


def _independent_scale(estimated: np.ndarray, reference: np.ndarray) -> float:
    """argmin_{s >= 0} of the cos-lat weighted squared tangent-plane distance, by numerical search."""
    from scipy.optimize import minimize_scalar

    height, width = estimated.shape[1:3]
    lat = np.pi / 2 - (np.arange(height) + 0.5) * np.pi / height
    weights = np.cos(lat)[None, :, None]

    def tangent(flow):
        return np.stack([flow[:-1, ..., 0] * 2 * np.pi / width * np.cos(lat)[None, :, None],
                         -flow[:-1, ..., 1] * np.pi / height], axis=-1)

    t_est, t_ref = tangent(estimated.astype(np.float64)), tangent(reference.astype(np.float64))
    cost = lambda s: float((weights * ((s * t_est - t_ref) ** 2).sum(-1)).sum())  # noqa: E731
    return minimize_scalar(cost, bounds=(0.0, 10.0), method="bounded", options={"xatol": 1e-9}).x


def test_scaled_epe_known_answers_and_an_independent_scale(rotation):
    frames, truth = rotation
    twice = flow_agreement(2 * truth, truth)
    assert twice["flow_scale"] == pytest.approx(0.5, abs=1e-9)
    assert twice["flow_epe_deg_scaled"] == pytest.approx(0.0, abs=1e-6) and twice["flow_epe_deg"] > 2
    against = flow_agreement(-truth, truth)  # no positive factor helps: s* = 0, named, not scored
    assert against["flow_scale"] == 0.0 and np.isnan(against["flow_epe_deg_scaled"])
    still = flow_agreement(np.zeros_like(truth), truth)
    assert np.isnan(still["flow_scale"]) and np.isnan(still["flow_epe_deg_scaled"])
    estimated = estimate_flow(frames)
    assert flow_agreement(estimated, 0.7 * truth)["flow_scale"] == pytest.approx(
        _independent_scale(estimated, 0.7 * truth), rel=1e-6)


def test_scaled_epe_forgives_speed_and_raw_epe_does_not():
    frames, truth = rigid_rotation_clip(64, 128, 4, seed=0)
    _, half = rigid_rotation_clip(64, 128, 4, yaw_deg=1.5, pitch_deg=0.75, roll_deg=0.5, seed=0)
    estimated = estimate_flow(frames)
    full, slow = flow_agreement(estimated, truth), flow_agreement(estimated, half)
    assert slow["flow_scale"] == pytest.approx(0.5, abs=0.05)
    # measured: scaled 0.235 -> 0.118 deg (the reference's own speed sets the degrees), raw 0.236 -> 1.73
    assert slow["flow_epe_deg_scaled"] <= full["flow_epe_deg_scaled"] + 0.02
    assert slow["flow_epe_deg"] > 5 * full["flow_epe_deg"]


def test_own_flow_vis_video_beats_other_clips_flows(tmp_path):
    """A clip scored against its own flow written in the flow_vis encoding (auto-detected, speed
    unknown) beats it scored against other clips' flow_vis videos; flow_epe_deg is left out."""
    import flow_vis

    from dvd360.data.synthetic import make_scene, render_clip
    from dvd360.data.video import write_video
    from dvd360.metrics.scoring import VideoInput, VideoScorer, read_reference_flow

    clips = [render_clip(make_scene(seed), 64, 128, 6) for seed in (0, 1, 3)]
    scorer, results, absent = VideoScorer(None), [], []
    for k, clip in enumerate(clips):
        path = write_video(tmp_path / f"{k}.mp4", np.stack([flow_vis.flow_to_color(f) for f in clip.flow]))
        flow, note = read_reference_flow(path)
        assert note["encoding"] == "flowvis" and note["magnitude"] == "relative"
        [scored] = scorer.score_stream([VideoInput(clips[0].frames, None, flow, {"flow_encoding": note})])
        assert "flow_epe_deg" not in scored.result["metrics"] and scored.result["flow_scale"] >= 0
        results.append(scored.result["metrics"])
        absent.append(scored.result["absent"])
    own, others = results[0], results[1:]
    for other, why in zip(others, absent[1:]):
        assert own["flow_direction_agreement"] > other["flow_direction_agreement"]
        # another clip's motion may oppose this one's (s* = 0): then the scaled EPE is absent, named
        assert own["flow_epe_deg_scaled"] < other["flow_epe_deg_scaled"] if "flow_epe_deg_scaled" in other else (
            why["flow_epe_deg_scaled"].startswith("flow_scale 0"))


def test_a_reference_of_unknown_speed_per_frame_is_brought_to_the_videos_speed(rotation):
    from dvd360.metrics.flow_agreement import flow_agreement_unknown_speed

    _, truth = rotation
    factors = np.array([0.1, 0.25, 0.5, 0.5], np.float32)  # e.g. flow_vis units: each frame / its max
    scores = flow_agreement_unknown_speed(truth, truth * factors[:, None, None, None])
    assert set(scores) == {"flow_epe_deg_scaled", "flow_direction_agreement", "flow_scale", "flow_reference_scale"}
    assert scores["flow_epe_deg_scaled"] == pytest.approx(0.0, abs=1e-4)
    assert scores["flow_scale"] == pytest.approx(1.0, abs=1e-5)
    assert scores["flow_reference_scale"] == pytest.approx(np.mean(1 / factors[:-1]), rel=1e-5)
    assert scores["flow_direction_agreement"] == pytest.approx(1.0, abs=1e-9)
