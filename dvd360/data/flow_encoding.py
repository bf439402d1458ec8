"""The released flow visualisation (the 360-Adapter's condition) and its approximate inverse.

Encoding, as the 360DVD release made its flow videos (PanoFlow's `better_flow_to_image`
with alpha 0.1, max_flow 25, then 255 - image, written through OpenCV):

    r = |f|,  u' = (r / 25)^0.1 * u / (25 + 1e-5),  v' likewise      (f = (u, v) in pixels)
    image = 255 - flow_vis.flow_uv_to_colors(u', v')                   (Middlebury wheel)

so |f'| = (r / 25)^1.1 up to the epsilon: the wheel's saturation, i.e. the brightness of the
inverted image, grows with r and saturates at r = 25 px (beyond that the wheel darkens its
colour by 0.75 and the magnitude is lost). No motion is black. The release passed this RGB
image to OpenCV, which writes BGR, so the model saw channel-reversed colours: `bgr=True`
reproduces that (the array returned is what the release's mp4 decodes to as RGB).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from flow_vis import flow_uv_to_colors, make_colorwheel
from matplotlib.colors import rgb_to_hsv

MAX_FLOW = 25.0  # pixels: the magnitude at which the released encoding saturates
ALPHA = 0.1      # power of the magnitude scaling
EPSILON = 1e-5   # the release's epsilon in the denominator
SATURATED_DARKENING = 0.75  # flow_vis scales out-of-range colours by this


def encode_flow(flow: np.ndarray, bgr: bool = True) -> np.ndarray:
    """Numeric flow (..., H, W, 2) in pixels -> the released visualisation, uint8 (..., H, W, 3).

    Computed in the flow's own float precision, as the release did (float32 flows).
    """
    flow = np.asarray(flow)
    if flow.shape[-1] != 2 or flow.ndim < 3:
        raise ValueError(f"flow must be (..., H, W, 2), got shape {flow.shape}")
    if not np.issubdtype(flow.dtype, np.floating):
        flow = flow.astype(np.float32)
    lead, width = flow.shape[:-2], flow.shape[-2]
    u = flow[..., 0].reshape(-1, width)
    v = flow[..., 1].reshape(-1, width)
    radius = np.sqrt(np.square(u) + np.square(v))
    scale = np.power(radius / MAX_FLOW, ALPHA)
    image = flow_uv_to_colors(scale * u / (MAX_FLOW + EPSILON), scale * v / (MAX_FLOW + EPSILON),
                              convert_to_bgr=bgr)
    return (255 - image).reshape(*lead, width, 3)


@lru_cache(maxsize=1)
def _wheel_hues() -> tuple[np.ndarray, np.ndarray]:
    """HSV hue of each colour-wheel entry (strictly increasing) and the flow angle it encodes.

    Within a wheel segment one channel varies linearly while the others sit at 0 and 1, so
    the hexagonal HSV hue is linear in flow_vis's wheel coordinate fk between entries and
    `np.interp` over the entries inverts the wheel exactly.
    """
    wheel = make_colorwheel() / 255.0
    hues = rgb_to_hsv(wheel)[:, 0]
    ncols = len(wheel)
    # flow_vis: fk = (atan2(-v, -u) / pi + 1) / 2 * (ncols - 1), so atan2(v, u) = a * pi + pi
    a = np.arange(ncols) / (ncols - 1) * 2 - 1
    return hues, a * np.pi + np.pi


def decode_flow(image: np.ndarray, bgr: bool = True) -> np.ndarray:
    """Approximate inverse of `encode_flow`: uint8 (..., H, W, 3) -> float32 flow (..., H, W, 2).

    The inverted image is s = 255 * (1 - colour) = 255 * rho * (1 - wheel(theta)) with
    rho = (r / 25)^1.1. Every wheel colour has a channel at 1 and one at 0, so rho = max(s)
    (max(s) - min(s) in theory; max(s) alone, carried mostly by luma, survives chroma
    subsampling better), and the renormalised colour's HSV hue gives the wheel position, hence
    the direction; r = 25 * rho^(1/1.1). Saturated pixels (r > 25 px: min(s) near 0.25 and
    max(s) = 1) decode to their direction at r = 25 px. Hand-written: no library inverts it.

    Measured end-point error on the 12 clips of `write_synthetic_web360(seed=0)` (64x128,
    |f| up to 19 px; tests/test_flow_encoding.py checks bounds on its own flows):
    exact images: mean 0.05 px, 99th percentile 0.17 px, max 0.24 px (8-bit quantisation);
    after H.264 of the flow video (crf 18, yuv420p): mean 0.25 px, 95th percentile 0.42 px,
    99th 1.2 px, max 6.4 px (chroma subsampling mixes colours across motion boundaries).
    On the smoother but denser test flows of tests/test_flow_encoding.py (64x128, |f| up to
    13 px, every direction): exact 0.05 px mean; after H.264 mean 0.35 px, 95th percentile
    0.72 px, max 2.0 px (at 32x64: 0.53 / 1.09 / 2.3 px; the error grows with the flow's
    spatial frequency).
    """
    image = np.asarray(image)
    if image.shape[-1] != 3:
        raise ValueError(f"image must be (..., H, W, 3), got shape {image.shape}")
    if bgr:
        image = image[..., ::-1]
    # 255 - floor(255 c) = ceil(255 (1 - c)): take the middle of each quantisation step
    s = np.maximum(image.astype(np.float32) - 0.5, 0.0) / 255.0
    low, high = s.min(axis=-1, keepdims=True), s.max(axis=-1, keepdims=True)
    spread = np.maximum(high - low, 1e-6)
    saturated = (low[..., 0] > (1 - SATURATED_DARKENING) / 2) & (high[..., 0] > 0.9)
    rho = np.where(saturated, 1.0, high[..., 0])
    # wheel colour: (high - s) / spread in both cases (in range: 1 - s / rho; saturated:
    # (1 - s) / 0.75), renormalised so that its channels span [0, 1]
    hue = rgb_to_hsv(np.clip((high - s) / spread, 0.0, 1.0))[..., 0]
    hues, angles = _wheel_hues()
    angle = np.interp(hue, hues, angles)
    radius = MAX_FLOW * np.power(rho, 1 / (1 + ALPHA))
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1).astype(np.float32)
