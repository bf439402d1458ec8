"""Flow visualisations: the released one (the 360-Adapter's condition), the standard flow_vis
one, their approximate inverses, and telling them apart.

Encoding, as the 360DVD release made its flow videos (PanoFlow's `better_flow_to_image`
with alpha 0.1, max_flow 25, then 255 - image, written through OpenCV):

    r = |f|,  u' = (r / 25)^0.1 * u / (25 + 1e-5),  v' likewise      (f = (u, v) in pixels)
    image = 255 - flow_vis.flow_uv_to_colors(u', v')                   (Middlebury wheel)

so |f'| = (r / 25)^1.1 up to the epsilon: the wheel's saturation, i.e. the brightness of the
inverted image, grows with r and saturates at r = 25 px (beyond that the wheel darkens its
colour by 0.75 and the magnitude is lost). No motion is black. The release passed this RGB
image to OpenCV, which writes BGR, so the model saw channel-reversed colours: `bgr=True`
reproduces that (the array returned is what the release's mp4 decodes to as RGB).

The standard flow_vis encoding (`flow_vis.flow_to_color`, the Middlebury wheel as published
flow videos usually are) is not inverted (no motion is white) and not power-scaled, but it is
normalised per image by its largest displacement: rho = r / (r_max + 1e-5). Its decoded
direction is exact; its magnitude is known only in units of each frame's r_max unless r_max is
given (`decode_flow_vis(max_radius=...)`). Without it the speed is relative, so only
scale-free agreement figures (direction, `flow_epe_deg_scaled`) are meaningful against it.

Encodings by name (`ENCODINGS`): "released" (inverted, BGR as the release's mp4s), "released-rgb"
(inverted, RGB) and "flowvis" (RGB, white = still); `detect_encoding` tells the released from
the flow_vis encoding by the colour of its pixels. Conditions are always written "released".
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
FLOW_VIS_EPSILON = 1e-5     # flow_to_color's epsilon: rho = r / (r_max + 1e-5)
ENCODINGS = ("released", "released-rgb", "flowvis")
# detect_encoding: a wheel colour has a channel at 0 and one at 1 (times the magnitude), so every
# in-range pixel of a released image has min channel ~ 0 and of a flow_vis image max channel ~ 255.
# CHANNEL_TOLERANCE allows codec noise; the chosen encoding must explain AGREEMENT of the pixels.
CHANNEL_TOLERANCE = 40
AGREEMENT = 0.9


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


def _wheel_decode(inverted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rho, flow angle) of an inverted wheel image s = 255 * rho * (1 - wheel(theta)), uint8
    (..., 3) RGB; saturated pixels (the wheel's out-of-range colours) get rho = 1. See `decode_flow`."""
    # 255 - floor(255 c) = ceil(255 (1 - c)): take the middle of each quantisation step
    s = np.maximum(inverted.astype(np.float32) - 0.5, 0.0) / 255.0
    low, high = s.min(axis=-1, keepdims=True), s.max(axis=-1, keepdims=True)
    spread = np.maximum(high - low, 1e-6)
    saturated = (low[..., 0] > (1 - SATURATED_DARKENING) / 2) & (high[..., 0] > 0.9)
    rho = np.where(saturated, 1.0, high[..., 0])
    # wheel colour: (high - s) / spread in both cases (in range: 1 - s / rho; saturated:
    # (1 - s) / 0.75), renormalised so that its channels span [0, 1]
    hue = rgb_to_hsv(np.clip((high - s) / spread, 0.0, 1.0))[..., 0]
    hues, angles = _wheel_hues()
    return rho, np.interp(hue, hues, angles)


def _polar_flow(radius: np.ndarray, angle: np.ndarray) -> np.ndarray:
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1).astype(np.float32)


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.shape[-1] != 3 or image.ndim < 3:
        raise ValueError(f"image must be (..., H, W, 3), got shape {image.shape}")
    return image


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
    image = _check_image(image)
    rho, angle = _wheel_decode(image[..., ::-1] if bgr else image)
    return _polar_flow(MAX_FLOW * np.power(rho, 1 / (1 + ALPHA)), angle)


def decode_flow_vis(image: np.ndarray, max_radius=None) -> np.ndarray:
    """Inverse of `flow_vis.flow_to_color` per frame: uint8 RGB (..., H, W, 3) -> float32 (..., H, W, 2).

    flow_vis writes c = 1 - rho (1 - wheel(theta)) with rho = r / (r_max + 1e-5), so 255 - image
    is the inverted wheel image that `decode_flow` reads, without the power scaling: the
    direction is exact up to quantisation, r = rho * (r_max + 1e-5). `max_radius`: r_max in
    pixels (a number, or one per frame, shape (...,)); None gives the flow in units of each
    frame's r_max (the true speed is unknown; module doc).
    """
    image = _check_image(image)
    rho, angle = _wheel_decode(255 - image)
    if max_radius is not None:
        rho = rho * (np.asarray(max_radius, dtype=np.float32)[..., None, None] + FLOW_VIS_EPSILON)
    return _polar_flow(rho, angle)


def detect_encoding(image: np.ndarray, source: str = "flow image") -> str:
    """"released" or "flowvis" from the pixels of a flow image or video (uint8 (..., H, W, 3)).

    Every in-range wheel colour has one channel at 0 and one at 255 (scaled by the magnitude):
    a released pixel (inverted: black = still) has min channel <= CHANNEL_TOLERANCE, a flow_vis
    pixel (white = still) max channel >= 255 - CHANNEL_TOLERANCE. Pixels that fit both (strongly
    saturated colours) do not vote; the encoding that fits at least AGREEMENT of all pixels and of
    the voting ones wins. Anything else (e.g. a constant grey image, a photo) is refused with a
    ValueError naming `source`. Which channel order a released video has cannot be told from
    its colours: "released" means the release's BGR order (give "released-rgb" explicitly).
    """
    image = _check_image(image)
    if image.dtype != np.uint8:
        raise ValueError(f"{source}: a flow image must be uint8, got {image.dtype}")
    low, high = image.min(axis=-1), image.max(axis=-1)
    released, flowvis = low <= CHANNEL_TOLERANCE, high >= 255 - CHANNEL_TOLERANCE
    voting = released ^ flowvis
    fits = {"released": float(released.mean()), "flowvis": float(flowvis.mean())}
    votes = {name: float((fit & voting).sum() / max(int(voting.sum()), 1))
             for name, fit in (("released", released), ("flowvis", flowvis))}
    for name in fits:
        if fits[name] >= AGREEMENT and votes[name] >= AGREEMENT:
            return name
    raise ValueError(
        f"{source}: cannot tell the flow encoding: {fits['released']:.0%} of the pixels fit the released "
        f"encoding (black = still) and {fits['flowvis']:.0%} the flow_vis encoding (white = still), "
        f"{AGREEMENT:.0%} needed; give the encoding explicitly (--flow-encoding "
        f"{'|'.join(ENCODINGS)}) if this is a flow video")


def decode_flow_video(image: np.ndarray, encoding: str = "auto", source: str = "flow video",
                      max_radius=None) -> tuple[np.ndarray, dict]:
    """(flow (..., H, W, 2), note) of a flow image/video in `encoding` (one of ENCODINGS or "auto").

    The note records the decision: {"encoding", "chosen": "auto" | "given", "magnitude"}, where
    magnitude is "pixels" or "relative" (a flow_vis video without `max_radius`: each frame in
    units of its largest displacement, so only scale-free figures hold against it).
    """
    if encoding not in ("auto", *ENCODINGS):
        raise ValueError(f"unknown flow encoding {encoding!r}; known: auto, {', '.join(ENCODINGS)}")
    chosen = detect_encoding(image, source) if encoding == "auto" else encoding
    if chosen == "flowvis":
        flow = decode_flow_vis(image, max_radius)
        magnitude = "relative" if max_radius is None else "pixels"
    else:
        flow, magnitude = decode_flow(image, bgr=chosen == "released"), "pixels"
    return flow, {"encoding": chosen, "chosen": "auto" if encoding == "auto" else "given",
                  "magnitude": magnitude}
