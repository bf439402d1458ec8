"""Comparing ERP flows on the sphere: end-point angle and direction agreement.

Flows are (..., H, W, 2) in ERP pixels, (dx, dy) from frame t to t+1 (torch tensors or numpy
arrays; results are torch tensors in the flow's floating dtype, at least float32).
"""

from __future__ import annotations

import math

import torch

from dvd360.geometry.erp import lonlat_to_xyz, pixel_lonlat, pixel_to_lonlat


def _as_flow(flow) -> torch.Tensor:
    flow = torch.as_tensor(flow)
    if flow.dim() < 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be (..., H, W, 2), got shape {tuple(flow.shape)}")
    return flow if flow.dtype in (torch.float32, torch.float64) else flow.to(torch.float32)


def flow_endpoints(flow) -> torch.Tensor:
    """Unit directions (..., H, W, 3) where the flow sends each pixel centre (j, i) -> (j + dx, i + dy).

    Longitude wraps naturally; a latitude pushed past a pole is clamped to the pole.
    """
    flow = _as_flow(flow)
    h, w = flow.shape[-3:-1]
    cols = torch.arange(w, device=flow.device, dtype=flow.dtype)
    rows = torch.arange(h, device=flow.device, dtype=flow.dtype)[:, None]
    lon, lat = pixel_to_lonlat(cols + flow[..., 0], rows + flow[..., 1], h, w)
    return lonlat_to_xyz(lon, lat)


def endpoint_angle_deg(flow_a, flow_b) -> torch.Tensor:
    """Great-circle angle (..., H, W) in degrees between the end points of two flows per pixel centre.

    angle = atan2(|e_a x e_b|, e_a . e_b) for the unit end points e_a, e_b (``flow_endpoints``);
    0 where the flows agree, at most 180. Pixel-unit end-point error is not used because a pixel
    near a pole spans far less of the sphere than one at the equator.
    """
    a, b = _as_flow(flow_a), _as_flow(flow_b)
    if a.shape != b.shape:
        raise ValueError(f"flow shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return angle_between_deg(flow_endpoints(a), flow_endpoints(b))


def angle_between_deg(ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
    """atan2(|e_a x e_b|, e_a . e_b) in degrees between unit directions (..., 3) (``endpoint_angle_deg``
    on end points already computed, e.g. one reference's against several flows)."""
    cross = torch.linalg.vector_norm(torch.cross(ea, eb, dim=-1), dim=-1)
    dot = (ea * eb).sum(-1)
    return torch.rad2deg(torch.atan2(cross, dot))


def tangent_components(flow) -> torch.Tensor:
    """Local (east, north) displacement (..., H, W, 2) in radians of arc:
    east = dx * (2 pi / W) * cos(lat), north = -dy * (pi / H), lat of the pixel-centre row."""
    flow = _as_flow(flow)
    h, w = flow.shape[-3:-1]
    _, lat = pixel_lonlat(h, w, device=flow.device, dtype=flow.dtype)
    east = flow[..., 0] * (2 * math.pi / w) * torch.cos(lat)[:, None]
    north = -flow[..., 1] * (math.pi / h)
    return torch.stack((east, north), dim=-1)


def direction_cosine(flow_a, flow_b, min_norm_px: float = 1e-3) -> torch.Tensor:
    """Cosine (..., H, W) between the two displacement directions in the local tangent plane.

    cos = (t_a . t_b) / (|t_a| |t_b|) with t = ``tangent_components`` (east scaled by cos lat).
    In [-1, 1]; NaN where either displacement is shorter than ``min_norm_px`` equatorial pixels
    (direction undefined), so callers average with ``nanmean`` or a mask of moving pixels.
    """
    a, b = _as_flow(flow_a), _as_flow(flow_b)
    if a.shape != b.shape:
        raise ValueError(f"flow shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    ta, tb = tangent_components(a), tangent_components(b)
    na, nb = torch.linalg.vector_norm(ta, dim=-1), torch.linalg.vector_norm(tb, dim=-1)
    threshold = min_norm_px * math.pi / a.shape[-3]
    cos = (ta * tb).sum(-1) / (na * nb).clamp_min(torch.finfo(ta.dtype).tiny)
    cos = cos.clamp(-1.0, 1.0)
    return torch.where((na < threshold) | (nb < threshold), torch.full_like(cos, float("nan")), cos)
