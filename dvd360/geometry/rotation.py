"""Rotations of the sphere and the ERP displacement fields they cause.

Camera orientation convention (aerospace Tait-Bryan, intrinsic z-y'-x'', in the NED axes of
``dvd360.geometry.erp``: x at (lon 0, lat 0), y at (lon 90, lat 0), z down):
``rotation_matrix(yaw, pitch, roll) = Rz(yaw) @ Ry(pitch) @ Rx(roll)`` maps camera-frame vectors
to world vectors. Positive yaw turns the view to the right (towards larger longitude), positive
pitch raises it (towards the north), positive roll lowers its right side.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dvd360.geometry.erp import lonlat_to_pixel, pixel_directions, xyz_to_lonlat


def rotation_matrix(
    yaw: float | torch.Tensor,
    pitch: float | torch.Tensor = 0.0,
    roll: float | torch.Tensor = 0.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) = Rz(yaw) Ry(pitch) Rx(roll), angles in degrees (broadcast).

    Rz(a) = [[c, -s, 0], [s, c, 0], [0, 0, 1]], Ry(b) = [[c, 0, s], [0, 1, 0], [-s, 0, c]],
    Rx(g) = [[1, 0, 0], [0, c, -s], [0, s, c]]. See the module docstring for the meaning.
    """
    angles = [torch.as_tensor(a, dtype=torch.float64, device=device) for a in (yaw, pitch, roll)]
    yaw_r, pitch_r, roll_r = (torch.deg2rad(a) for a in torch.broadcast_tensors(*angles))
    one, zero = torch.ones_like(yaw_r), torch.zeros_like(yaw_r)

    def mat(rows):
        return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)

    cz, sz = torch.cos(yaw_r), torch.sin(yaw_r)
    cy, sy = torch.cos(pitch_r), torch.sin(pitch_r)
    cx, sx = torch.cos(roll_r), torch.sin(roll_r)
    rz = mat([[cz, -sz, zero], [sz, cz, zero], [zero, zero, one]])
    ry = mat([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    rx = mat([[one, zero, zero], [zero, cx, -sx], [zero, sx, cx]])
    out = rz @ ry @ rx
    return out.to(torch.get_default_dtype() if dtype is None else dtype)


def wrap_dx(dx, width: int):
    """Wrap horizontal displacements (pixels) into [-width/2, width/2): ((dx + W/2) mod W) - W/2.

    Works on torch tensors and numpy arrays.
    """
    half = width / 2
    if isinstance(dx, np.ndarray):
        return np.mod(dx + half, width) - half
    return torch.remainder(dx + half, width) - half


def roll_longitude(x, degrees: float, dim: int = -1):
    """Rotate ERP content by ``degrees`` of longitude along ``dim`` (the width axis), circularly.

    Content at longitude L moves to L + degrees (positive = to the right). The shift in columns is
    s = degrees / 360 * W. A whole-column shift is exactly ``torch.roll(x, s, dim)``. A fractional
    shift s = k + f (k = floor(s), 0 < f < 1) is circular linear interpolation between the two
    neighbouring rolls, (1 - f) roll(x, k) + f roll(x, k + 1); integer inputs are interpolated in
    float32 and rounded back to their dtype. Accepts torch tensors and numpy arrays; flows rolled
    this way keep their (dx, dy) values, which is right for a pure longitude rotation.
    """
    if isinstance(x, np.ndarray):
        return roll_longitude(torch.from_numpy(np.ascontiguousarray(x)), degrees, dim).numpy()
    width = x.shape[dim]
    shift = float(degrees) / 360.0 * width
    k = math.floor(shift)
    frac = shift - k
    if abs(frac) < 1e-9 or abs(frac - 1) < 1e-9:
        return torch.roll(x, int(round(shift)) % width, dims=dim)
    work = x if x.is_floating_point() else x.to(torch.float32)
    left, right = torch.roll(work, k % width, dims=dim), torch.roll(work, (k + 1) % width, dims=dim)
    out = (1 - frac) * left + frac * right
    if x.is_floating_point():
        return out.to(x.dtype)
    info = torch.iinfo(x.dtype)
    return out.round().clamp(info.min, info.max).to(x.dtype)


def direction_flow(new_directions: torch.Tensor) -> torch.Tensor:
    """ERP flow (..., h, w, 2) that sends each pixel centre to the given direction (..., h, w, 3).

    ``new_directions[..., i, j, :]`` is where the point seen at pixel centre (i, j) in frame t is seen
    in frame t+1 (camera frame, any length). flow = pixel(new) - (j, i), with dx wrapped into
    [-w/2, w/2). The dtype follows the input.
    """
    h, w = new_directions.shape[-3:-1]
    lon, lat = xyz_to_lonlat(new_directions)
    x, y = lonlat_to_pixel(lon, lat, h, w)
    cols = torch.arange(w, device=x.device, dtype=x.dtype)
    rows = torch.arange(h, device=x.device, dtype=x.dtype)[:, None]
    return torch.stack((wrap_dx(x - cols, w), y - rows), dim=-1)


def rotation_flow(h: int, w: int, R) -> torch.Tensor:
    """Analytic ERP displacement (..., h, w, 2) of a rigid camera rotation R (..., 3, 3).

    R is the camera's rotation from frame t to frame t+1 in the frame-t camera axes, i.e.
    R = R_t^T R_{t+1} for camera orientations R_t = ``rotation_matrix(...)``. A static point seen at
    pixel-centre direction d in frame t is seen at d' = R^T d in frame t+1; the flow is
    pixel(d') - pixel(d) in pixels, dx wrapped into [-w/2, w/2). Computed in float64, returned in
    R's floating dtype (float32 for integer input). Example: ``rotation_matrix(yaw=10)`` (camera
    turns right by 10 degrees) gives dx = -10 / 360 * w everywhere, dy = 0.
    """
    R = torch.as_tensor(R)
    out_dtype = R.dtype if R.is_floating_point() else torch.float32
    dirs = pixel_directions(h, w, device=R.device, dtype=torch.float64)
    Rd = R.to(torch.float64)[..., None, None, :, :]
    new = (dirs[..., None, :] @ Rd).squeeze(-2)  # row vector d^T R = (R^T d)^T
    return direction_flow(new).to(out_dtype)
