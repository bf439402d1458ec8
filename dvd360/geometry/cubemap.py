"""Cubemap faces of ERP images: six 90 degree perspective views (square, FoV 90).

Faces, in this order (`CUBE_FACES`), as (longitude, latitude) of the view centre in degrees:
front (0, 0), right (90, 0), back (180, 0), left (270, 0), top (0, 90), bottom (0, -90). The four
side faces are exactly `horizontal_views(erp, size)` (same rays, same sampling); top and bottom
look at the poles with the view's "up" pointing towards longitude 180 / 0 respectively
(`rotation_matrix(yaw=0, pitch=+-90)`). Sampling is `geometry.perspective`'s bilinear,
sphere-padded `grid_sample`: a face straddling lon +-180 is seamless.
"""

from __future__ import annotations

import torch

from dvd360.geometry.perspective import horizontal_views

CUBE_FACES = ("front", "right", "back", "left", "top", "bottom")
SIDE_LONS = (0.0, 90.0, 180.0, 270.0)
FACE_FOV_DEG = 90.0


def cubemap_faces(erp: torch.Tensor, size: int) -> torch.Tensor:
    """Faces (..., 6, C, size, size) of ERP images (..., C, H, W), in `CUBE_FACES` order."""
    sides = horizontal_views(erp, size, FACE_FOV_DEG, SIDE_LONS, 0.0)
    top = horizontal_views(erp, size, FACE_FOV_DEG, (0.0,), 90.0)
    bottom = horizontal_views(erp, size, FACE_FOV_DEG, (0.0,), -90.0)
    return torch.cat((sides, top, bottom), dim=-4)
