"""Fixed sets of perspective view centres on the sphere, and their rendering from ERP frames.

Centres are (lon, lat) in degrees; a view at (lon, lat) is `geometry.perspective`'s (camera
``rotation_matrix(yaw=lon, pitch=lat)``, image up towards the north; at a pole, up towards
lon 180 (north) / lon 0 (south), as the cubemap's top and bottom faces).

- `SPHERE_CENTRES`: 14 directions, the vertices of a rhombic dodecahedron: the 6 cube-face centres
  in `geometry.cubemap`'s order (front (0, 0), right (90, 0), back (180, 0), left (270, 0), top
  (0, 90), bottom (0, -90): the same rays as its faces), then the 8 cube corners, lat
  +-atan(1/sqrt 2) = +-35.264 at lon 45, 135, 225, 315 (north first). Every direction of the sphere
  lies within `SPHERE_COVERING_DEG` = acos(1 / sqrt(5 - 2 sqrt 3)) = 36.206 deg of a centre (the
  deepest holes lie between a face centre and two corners), less than the 45 deg half-FoV of a
  FoV-90 view, so FoV-90 views at these centres see the whole sphere; their Voronoi cells have
  equal areas within 6 %. Chosen over the 12 icosahedron vertices (37.377 deg) because a longitude
  roll by a multiple of 90 deg maps the set onto itself: the 12 non-pole views of a rolled
  panorama are the same views in another order, and only the 2 pole views turn in the image plane.
- `SEAM_CENTRES`: lon 180 (the ERP's left/right edge, where a generator's seam is) at lat 45, 0,
  -45; the lat-0 view is the cubemap's back face.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import groupby

import torch

from dvd360.geometry.cubemap import SIDE_LONS
from dvd360.geometry.perspective import horizontal_views

_CORNER_LAT = math.degrees(math.atan(1 / math.sqrt(2)))
SPHERE_CENTRES: tuple[tuple[float, float], ...] = (
    tuple((lon, 0.0) for lon in SIDE_LONS) + ((0.0, 90.0), (0.0, -90.0))
    + tuple((45.0 + 90.0 * k, lat) for lat in (_CORNER_LAT, -_CORNER_LAT) for k in range(4)))
SPHERE_COVERING_DEG = math.degrees(math.acos(1 / math.sqrt(5 - 2 * math.sqrt(3))))
SEAM_CENTRES: tuple[tuple[float, float], ...] = ((180.0, 45.0), (180.0, 0.0), (180.0, -45.0))


def centre_directions(centres: Sequence[tuple[float, float]]) -> torch.Tensor:
    """Unit directions (V, 3) of (lon, lat) centres in degrees, in `geometry.erp`'s NED axes
    (x at lon 0 lat 0, y at lon 90 lat 0, z down)."""
    lon, lat = torch.tensor(centres, dtype=torch.float64).deg2rad().unbind(-1)
    return torch.stack((lat.cos() * lon.cos(), lat.cos() * lon.sin(), -lat.sin()), dim=-1)


def views_at(erp: torch.Tensor, centres: Sequence[tuple[float, float]], size: int,
             fov_deg: float = 90.0) -> torch.Tensor:
    """Square views (..., V, C, size, size) of ERP images (..., C, H, W) at `centres`, in their
    order: one `horizontal_views` call (same rays, same sampling) per run of consecutive centres
    at one latitude."""
    runs = [(lat, [lon for lon, _ in run]) for lat, run in groupby(centres, key=lambda c: c[1])]
    return torch.cat([horizontal_views(erp, size, fov_deg, lons, lat) for lat, lons in runs], dim=-4)
