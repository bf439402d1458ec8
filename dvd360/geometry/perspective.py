"""ERP -> perspective (pinhole) views, and where a direction lands in such a view.

A view at (lon, lat) looks along the direction of that longitude/latitude with the camera
orientation ``rotation_matrix(yaw=lon, pitch=lat)`` (no in-plane roll): image right is the
direction of growing longitude, image up the north side. ``fov_deg`` is the horizontal field of
view; the vertical one follows from the size with square pixels, tan(v/2) = tan(fov/2) * h / w.
View pixel (r, c) is the ray (1, u, v) in view-camera axes (forward, right, down) with
u = (2 (c + 0.5) / w - 1) tan(fov/2), v = (2 (r + 0.5) / h - 1) tan(vfov/2) (pixel centres).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from dvd360.geometry.erp import lonlat_to_pixel, pixel_directions, xyz_to_lonlat
from dvd360.geometry.rotation import rotation_matrix


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h <= 0 or w <= 0:
        raise ValueError(f"view size must be positive, got {size}")
    return int(h), int(w)


def _half_extents(fov_deg: float, h: int, w: int) -> tuple[float, float]:
    if not 0 < fov_deg < 180:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    tan_h = math.tan(math.radians(fov_deg) / 2)
    return tan_h, tan_h * h / w


def perspective_rays(
    lon_deg: float,
    lat_deg: float,
    fov_deg: float,
    size: int | Sequence[int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """World directions (h, w, 3) (not unit length) of the view's pixel centres."""
    h, w = _size(size)
    tan_h, tan_v = _half_extents(fov_deg, h, w)
    u = (2 * (torch.arange(w, device=device, dtype=torch.float64) + 0.5) / w - 1) * tan_h
    v = (2 * (torch.arange(h, device=device, dtype=torch.float64) + 0.5) / h - 1) * tan_v
    ones = torch.ones(h, w, dtype=torch.float64, device=device)
    rays = torch.stack(torch.broadcast_tensors(ones, u[None, :], v[:, None]), dim=-1)
    R = rotation_matrix(lon_deg, lat_deg, 0.0, device=device, dtype=torch.float64)
    return (rays @ R.T).to(dtype)


def view_coordinates(
    directions: torch.Tensor, lon_deg: float, lat_deg: float, fov_deg: float, size: int | Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where world directions (..., 3) appear in a view: continuous (col, row) pixel coordinates
    (pixel centre (r, c) at (c, r)) and ``inside`` (in front of the camera and within the image
    rectangle [-0.5, w - 0.5) x [-0.5, h - 0.5)). Same geometry as ``erp_to_perspective``."""
    h, w = _size(size)
    tan_h, tan_v = _half_extents(fov_deg, h, w)
    R = rotation_matrix(lon_deg, lat_deg, 0.0, device=directions.device, dtype=torch.float64)
    cam = directions.to(torch.float64) @ R  # R^T d, as row vectors
    fwd = cam[..., 0]
    safe = torch.where(fwd > 0, fwd, torch.ones_like(fwd))
    col = (cam[..., 1] / safe / tan_h + 1) * w / 2 - 0.5
    row = (cam[..., 2] / safe / tan_v + 1) * h / 2 - 0.5
    inside = (fwd > 0) & (col >= -0.5) & (col < w - 0.5) & (row >= -0.5) & (row < h - 0.5)
    return col, row, inside


def _pad_sphere(erp: torch.Tensor) -> torch.Tensor:
    """Pad (N, C, H, W) by one pixel on each side with its neighbours on the sphere: the row above
    row 0 is row 0 seen across the pole (rolled by W/2), likewise at the bottom; columns wrap."""
    w = erp.shape[-1]
    top = torch.roll(erp[..., :1, :], w // 2, dims=-1)
    bottom = torch.roll(erp[..., -1:, :], w // 2, dims=-1)
    padded = torch.cat((top, erp, bottom), dim=-2)
    return torch.cat((padded[..., -1:], padded, padded[..., :1]), dim=-1)


def _sample(erp: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
    """Bilinear samples (..., C, h, w') of erp (..., C, H, W) along world rays (h, w', 3)."""
    if erp.dim() < 3:
        raise ValueError(f"erp must be (..., C, H, W), got shape {tuple(erp.shape)}")
    *lead, c, H, W = erp.shape
    # Sample in float32 at least: half-precision grid coordinates would be off by up to W / 2048 px.
    work = erp if erp.dtype in (torch.float32, torch.float64) else erp.to(torch.float32)
    lon, lat = xyz_to_lonlat(rays)
    x, y = lonlat_to_pixel(lon, lat, H, W)
    # Normalised coordinates in the padded image (align_corners=False): p -> 2 (p + 1.5) / (n + 2) - 1.
    grid = torch.stack((2 * (x + 1.5) / (W + 2) - 1, 2 * (y + 1.5) / (H + 2) - 1), dim=-1).to(work.dtype)
    flat = _pad_sphere(work.reshape(-1, c, H, W))
    grid = grid.to(flat.device).expand(flat.shape[0], *grid.shape)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out.reshape(*lead, c, *rays.shape[:2])
    if erp.is_floating_point():
        return out.to(erp.dtype)
    if erp.dtype == torch.bool:
        return out >= 0.5
    info = torch.iinfo(erp.dtype)
    return out.round().clamp(info.min, info.max).to(erp.dtype)


def erp_to_perspective(
    erp: torch.Tensor, lon_deg: float, lat_deg: float, fov_deg: float, size: int | Sequence[int]
) -> torch.Tensor:
    """Perspective view (..., C, h, w) of ERP images (..., C, H, W) looking at (lon_deg, lat_deg).

    Bilinear ``grid_sample`` (align_corners=False) on the ERP padded by one pixel with its
    neighbours on the sphere: the columns wrap circularly (so views straddling lon +-180 are
    seamless) and the row beyond each pole is the first/last row rolled by W/2. Works on any
    device; float32/float64 inputs are sampled in their dtype, half/bfloat16 and integer inputs in
    float32 and cast (integers rounded) back. ``size`` is an int (square) or (h, w); ``fov_deg`` is
    the horizontal field of view.
    """
    rays = perspective_rays(lon_deg, lat_deg, fov_deg, size, device=erp.device)
    return _sample(erp, rays)


def rotate_erp(erp: torch.Tensor, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> torch.Tensor:
    """ERP images (..., C, H, W) of the sphere seen by a camera turned by
    ``R = rotation_matrix(yaw, pitch, roll)``: output pixel direction d shows the input at R d (same
    sampling as ``erp_to_perspective``). yaw alone is a longitude roll by -yaw; pitch 90 puts the
    north pole at (lon 0, lat 0)."""
    h, w = erp.shape[-2:]
    R = rotation_matrix(yaw, pitch, roll, device=erp.device, dtype=torch.float64)
    return _sample(erp, pixel_directions(h, w, device=erp.device, dtype=torch.float64) @ R.T)


def horizontal_views(
    erp: torch.Tensor,
    size: int | Sequence[int],
    fov_deg: float = 90.0,
    lons: Sequence[float] = (0.0, 90.0, 180.0, 270.0),
    lat_deg: float = 0.0,
) -> torch.Tensor:
    """Views (..., V, C, h, w) at the given longitudes (degrees), latitude ``lat_deg``, one
    ``grid_sample`` call. View k looks at lons[k]: with the defaults view 1 is centred on lon 90."""
    h, w = _size(size)
    rays = [perspective_rays(lon, lat_deg, fov_deg, (h, w), device=erp.device) for lon in lons]
    rays = torch.cat(rays, dim=1)
    out = _sample(erp, rays)  # (..., C, h, V*w)
    out = out.unflatten(-1, (len(lons), w))  # (..., C, h, V, w)
    return out.movedim(-2, -4)
