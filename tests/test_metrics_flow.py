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


def test_parallel_flow_estimation_equals_the_serial_one():
    frames = rigid_rotation_clip(32, 64, frames=4, yaw_deg=3.0, seed=1)[0]
    np.testing.assert_array_equal(estimate_flow(frames, "ilk", workers=2), estimate_flow(frames, "ilk"))
