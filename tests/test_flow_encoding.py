"""Flow visualisations: known colours, the release's formula, the flow_vis encoding, decode error
bounds, and telling the encodings apart."""

from __future__ import annotations

import numpy as np
import pytest

from dvd360.data.flow_encoding import decode_flow, decode_flow_video, decode_flow_vis, detect_encoding, encode_flow
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


def flow_vis_video(flows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The standard flow_vis images of each flow frame (normalised per frame) and each frame's max radius."""
    import flow_vis

    return (np.stack([flow_vis.flow_to_color(f) for f in flows]),
            np.linalg.norm(flows, axis=-1).max(axis=(1, 2)))


@pytest.mark.parametrize("h264", [False, True])
def test_flow_vis_decodes_within_the_stated_bounds_and_up_to_its_scale(tmp_path, h264):
    flows = smooth_flows(height=64, width=128)
    images, max_radius = flow_vis_video(flows)
    if h264:
        images = read_frames(write_video(tmp_path / "flowvis.mp4", images))
    error = end_point_error(decode_flow_vis(images, max_radius), flows)
    mean, p95 = (0.5, 1.0) if h264 else (0.1, 0.3)  # measured: 0.23 / 0.47 px after H.264; 0.02 / 0.04 exact
    assert error.mean() < mean and np.percentile(error, 95) < p95
    # without the scale: the flow in units of each frame's largest displacement, same bound / r_max
    relative = end_point_error(decode_flow_vis(images), flows / max_radius[:, None, None, None])
    assert relative.mean() < mean / max_radius.max()


@pytest.mark.parametrize("encoding", ["released", "released-rgb", "flowvis"])
def test_each_encoding_decodes_back_given_its_name(encoding):
    flows = smooth_flows()
    if encoding == "flowvis":
        images, scale = flow_vis_video(flows)
        expected, bound = flows / scale[:, None, None, None], 0.1 / scale.min()  # 0.1 px, in r_max units
    else:
        images, expected, bound = encode_flow(flows, bgr=encoding == "released"), flows, 0.1
    decoded, note = decode_flow_video(images, encoding)
    assert note == {"encoding": encoding, "chosen": "given",
                    "magnitude": "relative" if encoding == "flowvis" else "pixels"}
    assert end_point_error(decoded, expected).mean() < bound


@pytest.mark.parametrize("h264", [False, True])
def test_auto_tells_released_from_flow_vis(tmp_path, h264):
    from dvd360.data.synthetic import make_scene, render_clip

    flow = render_clip(make_scene(0), 64, 128, 6).flow  # a synthetic world: still sky, moving objects
    for encoding, images in (("released", encode_flow(flow)), ("flowvis", flow_vis_video(flow)[0])):
        if h264:
            images = read_frames(write_video(tmp_path / f"{encoding}.mp4", images))
        decoded, note = decode_flow_video(images, "auto")
        assert note["encoding"] == encoding and note["chosen"] == "auto"
        assert detect_encoding(images) == encoding


def test_auto_refuses_what_fits_neither_encoding():
    from dvd360.data.synthetic import make_scene, render_clip

    grey = np.full((4, 32, 64, 3), 128, np.uint8)
    with pytest.raises(ValueError, match=r"clip\.mp4: cannot tell the flow encoding"):
        decode_flow_video(grey, "auto", source="clip.mp4")
    with pytest.raises(ValueError, match="cannot tell"):
        detect_encoding(render_clip(make_scene(0), 32, 64, 2).frames)  # a photo, not a flow video
    # all still: black is the released encoding, white the flow_vis one
    assert detect_encoding(np.zeros((1, 8, 16, 3), np.uint8)) == "released"
    assert detect_encoding(np.full((1, 8, 16, 3), 255, np.uint8)) == "flowvis"
    with pytest.raises(ValueError, match="unknown flow encoding"):
        decode_flow_video(grey, "middlebury")


def test_fast_wheel_decoding_equals_hsv_and_interpolation_over_the_wheel():
    """`_wheel_decode` against the direct computation: matplotlib's HSV hue of the renormalised
    colour, then np.interp over the wheel entries' hues (float32 rounding apart)."""
    from flow_vis import make_colorwheel
    from matplotlib.colors import rgb_to_hsv

    from dvd360.data.flow_encoding import _wheel_decode

    image = np.random.default_rng(0).integers(0, 256, size=(64, 128, 3), dtype=np.uint8)
    image[0, :4] = [[0, 0, 0], [255, 255, 255], [7, 7, 7], [255, 0, 0]]  # greys and a pure colour
    s = np.maximum(image.astype(np.float32) - 0.5, 0.0) / 255.0
    low, high = s.min(axis=-1, keepdims=True), s.max(axis=-1, keepdims=True)
    hue = rgb_to_hsv(np.clip((high - s) / np.maximum(high - low, 1e-6), 0, 1))[..., 0]
    wheel = make_colorwheel() / 255.0
    angles = (np.arange(len(wheel)) / (len(wheel) - 1) * 2 - 1) * np.pi + np.pi
    expected = np.interp(hue, rgb_to_hsv(wheel)[:, 0], angles)
    saturated = (low[..., 0] > 0.125) & (high[..., 0] > 0.9)
    rho, angle = _wheel_decode(image)
    np.testing.assert_array_equal(rho, np.where(saturated, 1.0, high[..., 0]))
    np.testing.assert_allclose(angle, expected, atol=5e-6)


@pytest.mark.parametrize("kind", ["world", "small objects", "half still"])
def test_auto_reads_compressed_flow_videos_as_published(tmp_path, kind):
    """The kinds `benchmarks.flow_encodings` measures, at its hardest settings (crf 35, quarter size):
    flow_vis colours per frame and with 20% of the pixels beyond a whole-clip scale; the released encoding."""
    import cv2

    from dvd360.benchmarks.flow_encodings import encodings, flows

    videos = encodings(flows(64, 128, 4)[kind])
    for name, expected in (("flowvis", "flowvis"), ("flowvis 20% saturated", "flowvis"), ("released", "released")):
        small = np.stack([cv2.resize(image, (64, 32), interpolation=cv2.INTER_AREA) for image in videos[name]])
        decoded = read_frames(write_video(tmp_path / "flow.mp4", small, crf=35))
        assert detect_encoding(decoded) == expected, name


def test_auto_refuses_photos_and_truly_ambiguous_flow_videos_saying_which_fit_best():
    import skimage.data

    from dvd360.benchmarks.flow_encodings import encodings, flows

    for photo in (skimage.data.astronaut(), skimage.data.coffee(), skimage.data.rocket()):
        with pytest.raises(ValueError, match="cannot tell"):
            detect_encoding(photo)
    ambiguous = encodings(flows(64, 128, 4)["camera"])["flowvis 40% saturated"]  # fits both in part
    with pytest.raises(ValueError, match=r"flow\.mp4: cannot tell the flow encoding: the released encoding \(black = "
                                         r"still\) fits best, \d+% of the pixels, \d+% more than the flow_vis"):
        detect_encoding(ambiguous, "flow.mp4")
