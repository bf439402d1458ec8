"""The four perspective views of 360 Text Fusion: FoV 90 degrees, longitudes 0/90/180/270, latitude 0.

View k looks at longitude 90*k degrees (k = 0 front, 1 right, 2 back, 3 left, with longitude
increasing to the right of the ERP, column W/2 facing longitude 0). The projection itself is
the geometry module's `horizontal_views`.
"""

from __future__ import annotations

import numpy as np
import torch

from dvd360.geometry.perspective import horizontal_views

VIEW_LONGITUDES = (0, 90, 180, 270)
VIEW_FOV_DEG = 90.0


def first_frame_views(frame: np.ndarray, size: int = 384, fov_deg: float = VIEW_FOV_DEG,
                      lons: tuple[float, ...] = VIEW_LONGITUDES) -> list[np.ndarray]:
    """Perspective views of one ERP frame, uint8 (H, W, 3) in, `len(lons)` uint8 (size, size, 3) out."""
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"expected one RGB frame (H, W, 3), got shape {frame.shape}")
    erp = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float() / 255.0
    views = horizontal_views(erp, size, fov_deg=fov_deg, lons=tuple(lons))  # (V, 3, size, size)
    return [(view.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy() for view in views]
