"""An independent ERP -> perspective view: py360convert's e2p with our conventions."""

from __future__ import annotations

import math

import py360convert
import torch


def py360_view(erp_chw: torch.Tensor, lon: float, lat: float, fov: float, out_hw: tuple[int, int]):
    """py360convert's e2p with our conventions: u_deg = lon, v_deg = lat (checked: other signs
    give errors near 1). Its view grid is linspace(-tan, tan, n) (edge pixels on the FoV border),
    ours puts pixel centres inside the FoV, so its FoV is narrowed to match: tan' = tan (n-1)/n.
    With OpenCV installed, py360convert samples through cv2.remap's fixed-point maps (1/32 pixel,
    errors near 2e-2); its exact scipy path is forced here."""
    import py360convert.utils

    py360convert.utils.cv2 = None
    h, w = out_hw
    tan_h = math.tan(math.radians(fov) / 2)
    tan_v = tan_h * h / w
    fov_pair = (
        2 * math.degrees(math.atan(tan_h * (w - 1) / w)),
        2 * math.degrees(math.atan(tan_v * (h - 1) / h)),
    )
    return py360convert.e2p(erp_chw.permute(1, 2, 0).numpy(), fov_pair, lon, lat, out_hw)
