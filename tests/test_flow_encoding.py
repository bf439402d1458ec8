"""The released flow visualisation: known colours, the release's formula, decode error bounds."""

from __future__ import annotations

import numpy as np
import pytest

from dvd360.data.flow_encoding import decode_flow, encode_flow
from dvd360.data.video import read_frames, write_video


def smooth_flows(frames: int = 6, height: int = 32, width: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth flows with every direction and magnitudes up to about 20 px."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    out = []
    for _ in range(frames):
        a, b, c, d = rng.uniform(0, 2 * np.pi, 4)
        u = 9 * np.sin(2 * np.pi * x / width + a) * np.cos(np.pi * y / height + b) + rng.normal(0, 4)
        v = 6 * np.cos(4 * np.pi * x / width + c) * np.sin(np.pi * y / height + d) + rng.normal(0, 3)
        out.append(np.stack([u, v], axis=-1))
    return np.stack(out).astype(np.float32)


def one_pixel(u: float, v: float, bgr: bool = True) -> np.ndarray:
    return encode_flow(np.array([[[[u, v]]]], np.float32), bgr=bgr)[0, 0, 0]


def test_known_colours_of_the_middlebury_wheel():
    # No motion is black (the release inverts the wheel image).
    assert one_pixel(0, 0).tolist() == [0, 0, 0]
    # +x at 25 px: atan2(-0.0, -25) = -pi -> wheel entry 0, red (255, 0, 0), at full
    # saturation; inverted (0, 255, 255); channel-reversed as the release wrote it (255, 255, 0).
    assert one_pixel(25, 0, bgr=False).tolist() == [0, 255, 255]
    assert one_pixel(25, 0).tolist() == [255, 255, 0]
    # -x: angle 0 -> wheel entry 27 (0, 255 - floor(255 * 2 / 11), 255) = (0, 209, 255).
    assert one_pixel(-25, 0, bgr=False).tolist() == [255, 46, 0]
    # +y (down): angle -pi/2 -> halfway between entries 13 and 14, (255, (221 + 238) / 2, 0).
    assert one_pixel(0, 25, bgr=False).tolist() == [0, 255 - 229, 255]


def test_power_scaled_magnitude():
    # r = 12.5 px -> rho = (r/25)^0.1 * r / (25 + 1e-5); channel = 255 - floor(255 (1 - rho (1 - w)))
    rho = (12.5 / 25) ** 0.1 * 12.5 / (25 + 1e-5)
    wheel = np.array([1.0, 0.0, 0.0])  # direction +x: wheel entry 0
    expected = 255 - np.floor(255 * (1 - rho * (1 - wheel)))
    assert one_pixel(12.5, 0, bgr=False).tolist() == expected.astype(int).tolist()
    # beyond 25 px the wheel saturates: colour * 0.75, inverted
    assert one_pixel(60, 0, bgr=False).tolist() == (255 - np.floor(255 * 0.75 * wheel)).astype(int).tolist()


def test_batched_encoding_equals_per_frame_flow_vis():
    import flow_vis

    flows = smooth_flows(frames=3)
    encoded = encode_flow(flows)
    for flow, image in zip(flows, encoded):
        u, v = flow[..., 0], flow[..., 1]
        scale = np.power(np.sqrt(u ** 2 + v ** 2) / 25, 0.1)
        reference = 255 - flow_vis.flow_uv_to_colors(scale * u / (25 + 1e-5), scale * v / (25 + 1e-5))
        np.testing.assert_array_equal(image, reference[..., ::-1])


def end_point_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1)


@pytest.mark.parametrize("bgr", [True, False])
def test_decode_of_exact_images(bgr):
    flows = smooth_flows()
    assert np.linalg.norm(flows, axis=-1).max() < 25
    error = end_point_error(decode_flow(encode_flow(flows, bgr=bgr), bgr=bgr), flows)
    assert error.mean() < 0.1 and np.percentile(error, 99) < 0.3  # docstring: 0.05 / 0.17 px


def test_decode_after_h264(tmp_path):
    flows = smooth_flows(height=64, width=128)
    video = write_video(tmp_path / "flow.mp4", encode_flow(flows))
    error = end_point_error(decode_flow(read_frames(video)), flows)
    assert error.mean() < 0.5 and np.percentile(error, 95) < 1.0  # docstring: 0.35 / 0.72 px


def test_saturated_flow_keeps_its_direction():
    flows = np.array([[[[40.0, 0.0], [0.0, -60.0], [-30.0, 30.0]]]], np.float32)
    decoded = decode_flow(encode_flow(flows))[0, 0]
    np.testing.assert_allclose(np.linalg.norm(decoded, axis=-1), 25, atol=1e-4)
    cosine = (decoded * flows[0, 0]).sum(-1) / (np.linalg.norm(decoded, axis=-1) * np.linalg.norm(flows[0, 0], axis=-1))
    assert cosine.min() > 0.999
