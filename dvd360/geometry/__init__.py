"""ERP (equirectangular) geometry: pixel grids, cos-latitude weights, rotations, perspective views,
sphere flow.

Conventions (shared by the whole project):
- ERP frames are (..., H, W) with W = 2H; column j has longitude ((j + 0.5) / W) * 360 - 180 degrees
  (longitude 0 is the edge between columns W/2 - 1 and W/2), row i has latitude 90 - ((i + 0.5) / H) * 180 degrees (row 0 is
  the north).
- World/camera axes (aerospace NED, right-handed): x points at (lon 0, lat 0), y at (lon 90,
  lat 0), z down (lat -90). So a unit direction is (cos lat cos lon, cos lat sin lon, -sin lat).
- Flow is (..., H, W, 2) in ERP pixels, (dx, dy) from frame t to t+1, dx wrapped into [-W/2, W/2).
"""

from dvd360.geometry.erp import (
    latent_row_weights,
    lonlat_to_pixel,
    lonlat_to_xyz,
    pixel_directions,
    pixel_lonlat,
    pixel_row_weights,
    pixel_to_lonlat,
    xyz_to_lonlat,
)
from dvd360.geometry.perspective import (
    erp_to_perspective,
    horizontal_views,
    perspective_rays,
    view_coordinates,
)
from dvd360.geometry.rotation import (
    direction_flow,
    roll_longitude,
    rotation_flow,
    rotation_matrix,
    wrap_dx,
)
from dvd360.geometry.sphere_flow import (
    direction_cosine,
    endpoint_angle_deg,
    flow_endpoints,
    tangent_components,
)

__all__ = [
    "direction_cosine",
    "direction_flow",
    "endpoint_angle_deg",
    "erp_to_perspective",
    "flow_endpoints",
    "horizontal_views",
    "latent_row_weights",
    "lonlat_to_pixel",
    "lonlat_to_xyz",
    "pixel_directions",
    "pixel_lonlat",
    "pixel_row_weights",
    "pixel_to_lonlat",
    "perspective_rays",
    "roll_longitude",
    "rotation_flow",
    "rotation_matrix",
    "tangent_components",
    "view_coordinates",
    "wrap_dx",
    "xyz_to_lonlat",
]
