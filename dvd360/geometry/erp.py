"""ERP pixel grids: longitude/latitude of pixel centres, unit directions, cos-latitude row weights.

Angles are radians unless a name ends in ``_deg``. Pixel coordinates are continuous with pixel
centre (row i, column j) at (x, y) = (j, i); x grows with longitude, y grows southwards.
"""

from __future__ import annotations

import math

import torch


def _dtype(dtype: torch.dtype | None) -> torch.dtype:
    return torch.get_default_dtype() if dtype is None else dtype


def pixel_lonlat(
    h: int, w: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Longitude (w,) and latitude (h,) of ERP pixel centres, in radians.

    lon_j = ((j + 0.5) / w) * 2 pi - pi  (in (-pi, pi); lon 0 is the left edge of column w/2),
    lat_i = pi / 2 - ((i + 0.5) / h) * pi (row 0 is the north).
    """
    if h <= 0 or w <= 0:
        raise ValueError(f"ERP size must be positive, got h={h}, w={w}")
    j = torch.arange(w, device=device, dtype=torch.float64)
    i = torch.arange(h, device=device, dtype=torch.float64)
    lon = (j + 0.5) / w * (2 * math.pi) - math.pi
    lat = math.pi / 2 - (i + 0.5) / h * math.pi
    return lon.to(_dtype(dtype)), lat.to(_dtype(dtype))


def pixel_row_weights(
    h: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """cos(lat_i) for the h pixel rows (h,): the area of an ERP pixel row relative to the equator.

    Numerically equal to ``latent_row_weights(h)``, since ((2i - h + 1) / (2h)) pi = -lat_i.
    """
    _, lat = pixel_lonlat(h, 1, device=device, dtype=torch.float64)
    return torch.cos(lat).to(_dtype(dtype))


def latent_row_weights(
    h: int,
    normalised: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Latitude-aware loss weights of the released 360DVD code for h latent rows (h,).

    w_i = |cos(((2i - h + 1) / (2h)) pi)|, i = 0..h-1 (mean about 2/pi = 0.637 for large h);
    ``normalised=True`` divides by the mean so the weights average to 1.
    """
    if h <= 0:
        raise ValueError(f"number of latent rows must be positive, got {h}")
    i = torch.arange(h, device=device, dtype=torch.float64)
    weights = torch.cos((2 * i - h + 1) / (2 * h) * math.pi).abs()
    if normalised:
        weights = weights / weights.mean()
    return weights.to(_dtype(dtype))


def lonlat_to_xyz(lon: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
    """Unit direction (..., 3) of (lon, lat) radians, broadcast: (cos lat cos lon, cos lat sin lon, -sin lat).

    Axes: x at (lon 0, lat 0), y at (lon 90, lat 0), z down (NED).
    """
    lon, lat = torch.broadcast_tensors(lon, lat)
    cos_lat = torch.cos(lat)
    return torch.stack((cos_lat * torch.cos(lon), cos_lat * torch.sin(lon), -torch.sin(lat)), dim=-1)


def xyz_to_lonlat(xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(lon, lat) in radians of directions (..., 3), not necessarily unit length:
    lon in [-pi, pi], lat in [-pi/2, pi/2]."""
    x, y, z = xyz.unbind(-1)
    lon = torch.atan2(y, x)
    lat = torch.atan2(-z, torch.hypot(x, y))
    return lon, lat


def pixel_directions(
    h: int, w: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Unit directions (h, w, 3) of the ERP pixel centres (see ``lonlat_to_xyz`` for the axes)."""
    lon, lat = pixel_lonlat(h, w, device=device, dtype=torch.float64)
    return lonlat_to_xyz(lon[None, :], lat[:, None]).to(_dtype(dtype))


def lonlat_to_pixel(
    lon: torch.Tensor, lat: torch.Tensor, h: int, w: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous pixel coordinates (x, y) of (lon, lat) radians: x = (lon / 2pi + 1/2) w - 1/2,
    y = (1/2 - lat / pi) h - 1/2, with x wrapped into [-1/2, w - 1/2)."""
    x = torch.remainder((lon / (2 * math.pi) + 0.5) * w, w) - 0.5
    y = (0.5 - lat / math.pi) * h - 0.5
    return x, y


def pixel_to_lonlat(
    x: torch.Tensor, y: torch.Tensor, h: int, w: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(lon, lat) radians of continuous pixel coordinates (x, y); inverse of ``lonlat_to_pixel``.

    lon is not wrapped (directions built from it are periodic anyway); lat is clamped to
    [-pi/2, pi/2], so a point pushed past a pole stops at the pole.
    """
    lon = ((x + 0.5) / w - 0.5) * (2 * math.pi)
    lat = (0.5 - (y + 0.5) / h) * math.pi
    return lon, lat.clamp(-math.pi / 2, math.pi / 2)
