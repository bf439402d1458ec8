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
# CHANNEL_TOLERANCE allows codec noise; the chosen encoding must fit at least MIN_FIT of the pixels
# and MIN_LEAD more than the other (`choose_encoding`; measured: `benchmarks.flow_encodings`).
CHANNEL_TOLERANCE = 40
MIN_FIT = 0.75
MIN_LEAD = 0.25


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


LEVELS = np.maximum(np.arange(256, dtype=np.float32) - 0.5, 0.0) / 255.0  # s of each uint8 level
HUE_STEPS = 6 * 255  # every wheel entry's hue is a multiple of 1 / HUE_STEPS (see `_hue_to_angle`)


@lru_cache(maxsize=1)
def _hue_to_angle() -> tuple[np.ndarray, np.ndarray]:
    """The flow angle at hues k / HUE_STEPS (k = 0 .. HUE_STEPS) and its step to the next, float32.

    Within a wheel segment one channel varies linearly while the others sit at 0 and 1, so the
    hexagonal HSV hue of entry i is (segment + c_i / 255) / 6 with c_i an integer: every entry lies
    on the grid k / HUE_STEPS and the flow angle is linear between entries (flow_vis:
    fk = (atan2(-v, -u) / pi + 1) / 2 * (ncols - 1), so atan2(v, u) = a * pi + pi). Interpolating
    this table linearly is `np.interp` over the wheel entries, without its per-pixel search.
    """
    wheel = make_colorwheel() / 255.0
    hues = rgb_to_hsv(wheel)[:, 0]
    a = np.arange(len(wheel)) / (len(wheel) - 1) * 2 - 1
    table = np.interp(np.arange(HUE_STEPS + 1) / HUE_STEPS, hues, a * np.pi + np.pi).astype(np.float32)
    return table, np.diff(table)


def _wheel_decode(inverted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rho, flow angle), float32, of an inverted wheel image s = 255 * rho * (1 - wheel(theta)),
    uint8 (..., 3) RGB; saturated pixels (the wheel's out-of-range colours) get rho = 1. See `decode_flow`.

    Per pixel, from its uint8 levels: s = max(x - 0.5, 0) / 255 (the middle of each quantisation
    step: 255 - floor(255 c) = ceil(255 (1 - c))), rho = max(s); the wheel colour (max(s) - s) /
    (max(s) - min(s)) has the hexagonal HSV hue h = (sector + (s_a - s_b) / (max(s) - min(s))) / 6
    (sector 0, 2, 4 where red, green, blue is its largest channel, i.e. the smallest of s; ties as
    matplotlib's rgb_to_hsv), 0 for grey; the angle is the wheel's at h (`_hue_to_angle`).
    """
    x = np.asarray(inverted)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    hi, lo = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    sr, sg, sb, high, low = LEVELS[r], LEVELS[g], LEVELS[b], LEVELS[hi], LEVELS[lo]
    delta = high - low
    inverse = np.divide(np.float32(1), delta, out=np.zeros_like(delta), where=delta > 0)
    sector = np.where(b == lo, (sg - sr) * inverse + 4, np.where(g == lo, (sr - sb) * inverse + 2, (sb - sg) * inverse))
    sector[delta == 0] = 0
    steps = sector * np.float32(HUE_STEPS / 6)
    steps[steps < 0] += HUE_STEPS
    floor = np.minimum(np.floor(steps), np.float32(HUE_STEPS - 1))
    table, step = _hue_to_angle()
    index = floor.astype(np.int32)
    angle = table[index] + (steps - floor) * step[index]
    saturated = (low > (1 - SATURATED_DARKENING) / 2) & (high > 0.9)
    return np.where(saturated, np.float32(1), high), angle


def _polar_flow(radius: np.ndarray, angle: np.ndarray) -> np.ndarray:
    flow = np.empty((*angle.shape, 2), dtype=np.float32)
    np.multiply(radius, np.cos(angle), out=flow[..., 0])
    np.multiply(radius, np.sin(angle), out=flow[..., 1])
    return flow


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


def encoding_votes(image: np.ndarray, source: str = "flow image") -> np.ndarray:
    """Pixel counts of a flow image or video (uint8 (..., H, W, 3)) that `choose_encoding` decides
    on: [all, fit the released test, fit the flow_vis test]; counts of several frames add up."""
    image = _check_image(image)
    if image.dtype != np.uint8:
        raise ValueError(f"{source}: a flow image must be uint8, got {image.dtype}")
    low, high = image.min(axis=-1), image.max(axis=-1)
    return np.array([low.size, (low <= CHANNEL_TOLERANCE).sum(), (high >= 255 - CHANNEL_TOLERANCE).sum()],
                    dtype=np.int64)


def choose_encoding(votes: np.ndarray, source: str = "flow image") -> str:
    """"released" or "flowvis" from `encoding_votes` counts (`detect_encoding`): the encoding that
    fits more pixels, when it fits at least MIN_FIT of them and MIN_LEAD more than the other;
    else a ValueError naming `source`, the encoding that fit best and by how much."""
    total = max(int(votes[0]), 1)
    fits = {"released": int(votes[1]) / total, "flowvis": int(votes[2]) / total}
    best, other = sorted(fits, key=fits.get, reverse=True)
    lead = fits[best] - fits[other]
    if fits[best] >= MIN_FIT and lead >= MIN_LEAD:
        return best
    names = {"released": "the released encoding (black = still)", "flowvis": "the flow_vis encoding (white = still)"}
    raise ValueError(
        f"{source}: cannot tell the flow encoding: {names[best]} fits best, {fits[best]:.0%} of the pixels, "
        f"{lead:.0%} more than {names[other]} ({fits[other]:.0%}); {MIN_FIT:.0%} and a lead of {MIN_LEAD:.0%} "
        f"are needed. Give the encoding explicitly (--flow-encoding {'|'.join(ENCODINGS)}) if this is a flow video")


def detect_encoding(image: np.ndarray, source: str = "flow image") -> str:
    """"released" or "flowvis" from the pixels of a flow image or video (uint8 (..., H, W, 3)).

    Every in-range wheel colour has one channel at 0 and one at 255 (scaled by the magnitude):
    a released pixel (inverted: black = still) has min channel <= CHANNEL_TOLERANCE, a flow_vis
    pixel (white = still) max channel >= 255 - CHANNEL_TOLERANCE. The encoding that fits at least
    MIN_FIT of the pixels and MIN_LEAD more than the other wins: flow_vis colours beyond their scale
    (darkened by 0.75) fit the released test, so a flow_vis video normalised once for a whole
    clip fits both in part (`benchmarks.flow_encodings` measures the cases). Anything else (e.g. a
    constant grey image, a photo) is refused with a ValueError naming `source`. Which channel order a released video has cannot be told from
    its colours: "released" means the release's BGR order (give "released-rgb" explicitly).
    """
    return choose_encoding(encoding_votes(image, source), source)


def decode_encoded(image: np.ndarray, encoding: str, max_radius=None) -> np.ndarray:
    """Flow (..., H, W, 2) of a flow image/video in a named encoding (one of ENCODINGS)."""
    if encoding == "flowvis":
        return decode_flow_vis(image, max_radius)
    return decode_flow(image, bgr=encoding == "released")


def flow_note(encoding: str, auto: bool, max_radius=None) -> dict:
    """How a flow video was read: {"encoding", "chosen": "auto" | "given", "magnitude"}, where
    magnitude is "pixels" or "relative" (a flow_vis video without `max_radius`: each frame in
    units of its largest displacement, so only scale-free figures hold against it)."""
    relative = encoding == "flowvis" and max_radius is None
    return {"encoding": encoding, "chosen": "auto" if auto else "given", "magnitude": "relative" if relative else "pixels"}


def decode_flow_video(image: np.ndarray, encoding: str = "auto", source: str = "flow video",
                      max_radius=None) -> tuple[np.ndarray, dict]:
    """(flow (..., H, W, 2), `flow_note`) of a flow image/video in `encoding` (one of ENCODINGS or "auto")."""
    if encoding not in ("auto", *ENCODINGS):
        raise ValueError(f"unknown flow encoding {encoding!r}; known: auto, {', '.join(ENCODINGS)}")
    chosen = detect_encoding(image, source) if encoding == "auto" else encoding
    return decode_encoded(image, chosen, max_radius), flow_note(chosen, encoding == "auto", max_radius)
