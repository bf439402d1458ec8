"""ERP geometry against known answers and independent implementations (py360convert, scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from geometry_support import py360_view

from dvd360.geometry import (
    direction_cosine,
    endpoint_angle_deg,
    erp_to_perspective,
    flow_endpoints,
    horizontal_views,
    latent_row_weights,
    lonlat_to_xyz,
    pixel_directions,
    pixel_lonlat,
    pixel_row_weights,
    roll_longitude,
    rotation_flow,
    rotation_matrix,
    wrap_dx,
)

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on 2 shared, busy cores OpenMP's spin-waiting makes two threads slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Measured max |ours - py360convert.e2p| on random [0, 1] images: 7e-6 (py360convert computes its
# sampling coordinates in float32); the bound leaves a margin.
E2P_TOLERANCE = 2e-5


def test_pixel_lonlat_by_hand():
    lon, lat = pixel_lonlat(4, 8, dtype=torch.float64)
    expected_lon = [-157.5, -112.5, -67.5, -22.5, 22.5, 67.5, 112.5, 157.5]
    assert torch.allclose(torch.rad2deg(lon), torch.tensor(expected_lon, dtype=torch.float64))
    assert torch.allclose(torch.rad2deg(lat), torch.tensor([67.5, 22.5, -22.5, -67.5], dtype=torch.float64))
    assert pixel_lonlat(4, 8)[0].dtype == torch.get_default_dtype()


def test_row_weights_by_hand():
    # |cos(((2i - h + 1) / (2h)) pi)| for h = 4: angles -3pi/8, -pi/8, pi/8, 3pi/8.
    c1, c3 = math.cos(math.pi / 8), math.cos(3 * math.pi / 8)
    expected = torch.tensor([c3, c1, c1, c3], dtype=torch.float64)
    assert torch.allclose(latent_row_weights(4, dtype=torch.float64), expected)
    normalised = latent_row_weights(4, normalised=True, dtype=torch.float64)
    assert torch.allclose(normalised, expected / expected.mean())
    # h = 3: angles -pi/3, 0, pi/3.
    assert torch.allclose(latent_row_weights(3, dtype=torch.float64), torch.tensor([0.5, 1, 0.5], dtype=torch.float64))
    # Pixel rows: cos(lat) at latitudes 67.5, 22.5, -22.5, -67.5 degrees are the same numbers.
    assert torch.allclose(pixel_row_weights(4, dtype=torch.float64), expected)
    assert latent_row_weights(64, normalised=True).mean().item() == pytest.approx(1.0, abs=1e-6)
    assert latent_row_weights(64).mean().item() == pytest.approx(2 / math.pi, abs=1e-3)


def test_rotation_matrix_matches_scipy_intrinsic_zyx():
    rng = np.random.default_rng(0)
    for yaw, pitch, roll in rng.uniform(-180, 180, size=(5, 3)):
        ours = rotation_matrix(yaw, pitch, roll, dtype=torch.float64).numpy()
        ref = Rotation.from_euler("ZYX", [yaw, pitch, roll], degrees=True).as_matrix()
        assert np.allclose(ours, ref, atol=1e-12)
    batch = rotation_matrix(torch.tensor([0.0, 90.0]), 0.0, 0.0, dtype=torch.float64)
    assert batch.shape == (2, 3, 3)
    # Yaw +90 turns the forward axis (lon 0) to lon 90; pitch +90 turns it to the north (-z).
    forward, east = torch.tensor([1.0, 0, 0], dtype=torch.float64), torch.tensor([0.0, 1, 0], dtype=torch.float64)
    assert torch.allclose(batch[1] @ forward, east, atol=1e-12)
    up = rotation_matrix(0.0, 90.0, 0.0, dtype=torch.float64) @ forward
    assert torch.allclose(up, lonlat_to_xyz(torch.tensor(0.0), torch.tensor(math.pi / 2)).double(), atol=1e-7)


def test_wrap_dx_torch_and_numpy():
    values = [-64.0, -63.5, 63.9, 64.0, 100.0, -200.0]
    expected = [-64.0, -63.5, 63.9, -64.0, -28.0, 56.0]
    wrapped = wrap_dx(torch.tensor(values, dtype=torch.float64), 128)
    assert torch.allclose(wrapped, torch.tensor(expected, dtype=torch.float64))
    assert np.allclose(wrap_dx(np.array(values), 128), expected)


def test_roll_longitude_whole_and_fractional_columns():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).reshape(2, 3, 8)
    assert torch.equal(roll_longitude(x, 90.0), torch.roll(x, 2, dims=-1))  # 90 deg = 2 of 8 columns
    assert torch.equal(roll_longitude(x, -45.0), torch.roll(x, -1, dims=-1))
    assert torch.equal(roll_longitude(x, 360.0), x)
    assert np.array_equal(roll_longitude(x.numpy(), 90.0), torch.roll(x, 2, dims=-1).numpy())
    # Content at lon L moves to L + degrees: a sinusoid in longitude shifts its phase; fractional
    # shifts interpolate linearly, so the error is bounded by the interpolation error (h^2/8 max|f''|).
    lon, _ = pixel_lonlat(1, 256, dtype=torch.float64)
    shifted = roll_longitude(torch.sin(lon), 10.0)
    assert (shifted - torch.sin(lon - math.radians(10.0))).abs().max() < (2 * math.pi / 256) ** 2 / 8 + 1e-12
    half = roll_longitude(x, 360.0 / 8 / 2)  # half a column
    assert torch.allclose(half, 0.5 * x + 0.5 * torch.roll(x, 1, dims=-1))
    as_bytes = roll_longitude(torch.tensor([[0, 100, 200, 50]], dtype=torch.uint8), 45.0)
    assert as_bytes.dtype == torch.uint8 and as_bytes.tolist() == [[25, 50, 150, 125]]


def test_rotation_flow_pure_yaw_and_pitch():
    h, w = 32, 64
    flow = rotation_flow(h, w, rotation_matrix(22.5, 0.0, 0.0, dtype=torch.float64))
    assert flow.shape == (h, w, 2) and flow.dtype == torch.float64
    # Turning right moves the content left.
    assert torch.allclose(flow[..., 0], torch.full((h, w), -22.5 / 360 * w, dtype=torch.float64))
    assert torch.allclose(flow[..., 1], torch.zeros(h, w, dtype=torch.float64), atol=1e-9)
    # Pitch up by 9 deg: a point straight ahead (lon 0, lat 0) moves 9 deg south, one behind moves north.
    pitch = rotation_matrix(0.0, 9.0, 0.0, dtype=torch.float64)
    big = rotation_flow(180, 360, pitch)  # pixel centres at half-degree offsets
    assert big[89:91, 179:181, 1].mean().item() == pytest.approx(9.0 * 180 / 180, abs=0.01)
    assert big[89:91, [0, 359], 1].mean().item() == pytest.approx(-9.0, abs=0.01)
    # Batched R and float32 follow the input.
    batch = rotation_flow(8, 16, rotation_matrix(torch.tensor([1.0, 2.0, 3.0]), 1.0, 1.0))
    assert batch.shape == (3, 8, 16, 2) and batch.dtype == torch.float32


def test_rotation_flow_endpoints_match_scipy_rotation():
    h, w = 24, 48
    yaw, pitch, roll = 17.0, -8.0, 5.0
    flow = rotation_flow(h, w, rotation_matrix(yaw, pitch, roll, dtype=torch.float64))
    assert (flow[..., 0] >= -w / 2).all() and (flow[..., 0] < w / 2).all()
    # d' = R^T d, with R from scipy (an independent rotation implementation).
    ref_R = Rotation.from_euler("ZYX", [yaw, pitch, roll], degrees=True)
    expected = ref_R.inv().apply(pixel_directions(h, w, dtype=torch.float64).reshape(-1, 3).numpy())
    got = flow_endpoints(flow).reshape(-1, 3).numpy()
    angle = np.degrees(np.arccos(np.clip((got * expected).sum(-1), -1, 1)))
    assert angle.max() < 1e-5


@pytest.mark.parametrize(
    "lon, lat, fov, out_hw",
    [
        (0, 0, 90, (32, 32)),
        (90, 0, 90, (32, 32)),
        (180, 10, 90, (24, 24)),
        (-170, -35, 60, (20, 30)),
        (45, 80, 120, (32, 32)),
        (-120, -88, 90, (16, 16)),
    ],
)
def test_erp_to_perspective_matches_py360convert(lon, lat, fov, out_hw):
    erp = torch.rand(3, 64, 128, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = erp_to_perspective(erp, lon, lat, fov, out_hw)
    assert ours.shape == (3, *out_hw) and ours.dtype == torch.float64
    ref = py360_view(erp, lon, lat, fov, out_hw)
    assert np.abs(ours.permute(1, 2, 0).numpy() - ref).max() < E2P_TOLERANCE


def test_erp_to_perspective_batched_dtypes():
    erp = torch.rand(2, 5, 3, 16, 32, generator=torch.Generator().manual_seed(2))
    views = erp_to_perspective(erp, 30.0, 10.0, 90.0, 8)
    assert views.shape == (2, 5, 3, 8, 8) and views.dtype == torch.float32
    assert torch.allclose(views[1, 3], erp_to_perspective(erp[1, 3], 30.0, 10.0, 90.0, 8))
    quantised = (erp[0, 0] * 255).round()
    as_bytes = erp_to_perspective(quantised.to(torch.uint8), 30.0, 10.0, 90.0, 8)
    assert as_bytes.dtype == torch.uint8
    assert torch.equal(as_bytes, erp_to_perspective(quantised, 30.0, 10.0, 90.0, 8).round().to(torch.uint8))


def test_horizontal_views_order_and_equivalence():
    h, w = 32, 64
    lon, lat = pixel_lonlat(h, w, dtype=torch.float64)
    target = lonlat_to_xyz(torch.tensor(math.pi / 2), torch.tensor(0.0)).double()
    dots = pixel_directions(h, w, dtype=torch.float64) @ target
    erp = (dots > math.cos(math.radians(20))).to(torch.float32)[None]  # a bright cap around lon 90, lat 0
    views = horizontal_views(erp, 16)
    assert views.shape == (4, 1, 16, 16)
    brightness = views.sum(dim=(1, 2, 3))
    assert brightness.argmax().item() == 1 and brightness[[0, 2, 3]].max().item() == 0
    assert views[1, 0, 6:10, 6:10].min().item() > 0.99  # the cap sits in the middle of view 1
    for k, view_lon in enumerate((0, 90, 180, 270)):
        assert torch.allclose(views[k], erp_to_perspective(erp, view_lon, 0.0, 90.0, 16), atol=1e-6)


def test_endpoint_angle_known_answers():
    h, w = 16, 32
    zero = torch.zeros(h, w, 2, dtype=torch.float64)
    assert endpoint_angle_deg(zero, zero).abs().max() < 1e-9
    # Pure horizontal shift by k columns: angle between two points on one latitude circle,
    # cos(angle) = sin^2(lat) + cos^2(lat) cos(dlon).
    k = 3.0
    shift = zero.clone()
    shift[..., 0] = k
    _, lat = pixel_lonlat(h, w, dtype=torch.float64)
    dlon = math.radians(k * 360 / w)
    expected = torch.rad2deg(torch.arccos(torch.sin(lat) ** 2 + torch.cos(lat) ** 2 * math.cos(dlon)))
    assert torch.allclose(endpoint_angle_deg(zero, shift), expected[:, None].expand(h, w), atol=1e-6)
    # Vertical shift by one row is 180 / h degrees along a meridian (rows away from the poles).
    down = zero.clone()
    down[..., 1] = 1.0
    one_row = torch.full((h - 1, w), 180.0 / h, dtype=torch.float64)
    assert torch.allclose(endpoint_angle_deg(zero, down)[:-1], one_row)
    # dx = w - 1 and dx = -1 land on the same point of the sphere.
    a, b = zero.clone(), zero.clone()
    a[..., 0], b[..., 0] = w - 1.0, -1.0
    assert endpoint_angle_deg(a, b).max() < 1e-6


def test_direction_cosine_known_answers():
    h, w = 6, 12  # pixel rows at latitudes 75, 45, 15, -15, -45, -75
    east = torch.zeros(h, w, 2)
    east[..., 0] = 1.0
    north = torch.zeros(h, w, 2)
    north[..., 1] = -1.0
    assert torch.allclose(direction_cosine(east, east), torch.ones(h, w))
    assert torch.allclose(direction_cosine(east, -east), -torch.ones(h, w))
    assert direction_cosine(east, north).abs().max() < 1e-6
    assert torch.isnan(direction_cosine(east, torch.zeros(h, w, 2))).all()
    # East is scaled by cos(lat): at lat 45, dx = 1 and (dx, dy) = (1, -1) have tangent vectors
    # (cos 45, 0) and (cos 45, 1) (W = 2H, so one column and one row span the same angle).
    diagonal = east + north
    c = math.cos(math.radians(45))
    assert direction_cosine(east, diagonal)[1, 0].item() == pytest.approx(c / math.hypot(c, 1.0), abs=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_geometry_on_gpu_matches_cpu():
    erp = torch.rand(2, 3, 32, 64)
    R = rotation_matrix(torch.tensor([5.0, -7.0]), 3.0, 1.0, dtype=torch.float64)
    cpu_views, gpu_views = horizontal_views(erp, 16), horizontal_views(erp.cuda(), 16)
    assert gpu_views.device.type == "cuda" and torch.allclose(cpu_views, gpu_views.cpu(), atol=1e-5)
    assert torch.allclose(rotation_flow(32, 64, R), rotation_flow(32, 64, R.cuda()).cpu(), atol=1e-9)
    flow = rotation_flow(32, 64, R).float()
    on_gpu = endpoint_angle_deg(flow.cuda(), 0 * flow.cuda()).cpu()
    assert torch.allclose(endpoint_angle_deg(flow, 0 * flow), on_gpu, atol=1e-3)
