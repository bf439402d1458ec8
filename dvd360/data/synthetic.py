"""A procedural panorama world on the sphere, rendered to ERP videos with exact optical flow.

The scene is a function of the world direction (so the ERP is seamless across lon +-180 by
construction): a sky gradient with soft clouds above the horizon, a textured ground plane
below it, 3-6 named landmarks (shape + colour, e.g. "red tower") at fixed longitudes and
latitudes, and 1-2 moving objects that travel along great circles. A camera at the centre
turns (mostly yaw, plus small pitch/roll oscillations), starting at yaw = pitch = roll = 0, so
frame 0's ERP longitudes are world longitudes.

Axes and angles follow ``dvd360.geometry`` (NED axes, ``rotation_matrix`` camera orientation,
degrees). Frames are rendered with 2x2 supersampling; the flow of frame t is exact: a static
point seen at pixel centre d moves to R_{t+1}^T R_t d (``rotation_flow``), a point on a moving
object to R_{t+1}^T Q R_t d where Q is the object's one-frame rotation. The last flow frame
duplicates the previous one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from dvd360.geometry.erp import pixel_directions, xyz_to_lonlat
from dvd360.geometry.perspective import view_coordinates
from dvd360.geometry.rotation import direction_flow, rotation_flow, rotation_matrix

# Named colours (linear RGB in [0, 1]) for landmarks and moving objects.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.08, 0.08),
    "orange": (1.0, 0.5, 0.0),
    "yellow": (0.98, 0.9, 0.1),
    "green": (0.05, 0.75, 0.15),
    "cyan": (0.0, 0.85, 0.9),
    "blue": (0.08, 0.2, 0.95),
    "purple": (0.5, 0.1, 0.7),
    "magenta": (0.95, 0.1, 0.75),
    "white": (0.97, 0.97, 0.97),
    "black": (0.05, 0.05, 0.05),
}
# Shape -> nouns that name a landmark of that shape.
LANDMARK_NOUNS: dict[str, tuple[str, ...]] = {
    "disc": ("balloon", "orb", "moon"),
    "square": ("tower", "crate", "billboard"),
    "triangle": ("pyramid", "tent", "peak"),
    "star": ("star", "beacon"),
    "ring": ("ring", "portal", "wreath"),
}
MOVER_NOUNS: dict[str, tuple[str, ...]] = {"disc": ("ball", "drone"), "triangle": ("bird", "kite")}
# name -> (horizon colour, zenith colour, cloud colour, cloud amount)
SKIES: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...], float]] = {
    "clear blue sky": ((0.75, 0.85, 0.95), (0.2, 0.45, 0.85), (1.0, 1.0, 1.0), 0.5),
    "sunset sky": ((0.98, 0.62, 0.32), (0.3, 0.2, 0.5), (0.98, 0.8, 0.7), 0.6),
    "overcast sky": ((0.78, 0.78, 0.8), (0.55, 0.57, 0.62), (0.9, 0.9, 0.92), 0.9),
    "night sky": ((0.12, 0.14, 0.3), (0.02, 0.02, 0.1), (0.3, 0.3, 0.4), 0.4),
}
# name -> (base colour, texture colour)
GROUNDS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "grassy meadow": ((0.33, 0.5, 0.22), (0.22, 0.36, 0.14)),
    "sandy desert": ((0.82, 0.7, 0.48), (0.7, 0.56, 0.36)),
    "snowy field": ((0.88, 0.9, 0.94), (0.72, 0.76, 0.84)),
    "rocky plain": ((0.46, 0.42, 0.4), (0.3, 0.28, 0.27)),
}
VIEW_LONS = (0.0, 90.0, 180.0, 270.0)


@dataclass(frozen=True)
class SceneObject:
    """A named flat shape of angular radius ``radius_deg`` centred at (lon, lat) degrees."""

    name: str
    shape: str
    colour: str
    lon_deg: float
    lat_deg: float
    radius_deg: float


@dataclass(frozen=True)
class Landmark(SceneObject):
    """A static landmark."""

    spin_deg: float  # in-plane orientation of the shape


@dataclass(frozen=True)
class MovingObject(SceneObject):
    """A shape that starts at (lon, lat) and moves along a great circle by ``speed_deg`` per frame,
    heading ``heading_deg`` (0 = east, 90 = north) at its start."""

    heading_deg: float
    speed_deg: float


@dataclass(frozen=True)
class CameraMotion:
    """Camera orientation at frame t (degrees): yaw = yaw_rate * t,
    pitch = pitch_amp * sin(2 pi t / pitch_period), roll = roll_amp * sin(2 pi t / roll_period)."""

    yaw_rate_deg: float
    pitch_amp_deg: float
    pitch_period: float
    roll_amp_deg: float
    roll_period: float

    def angles(self, t: np.ndarray | float) -> tuple:
        """(yaw, pitch, roll) in degrees at frame(s) t."""
        t = np.asarray(t, dtype=np.float64)
        return (
            self.yaw_rate_deg * t,
            self.pitch_amp_deg * np.sin(2 * np.pi * t / self.pitch_period),
            self.roll_amp_deg * np.sin(2 * np.pi * t / self.roll_period),
        )

    def orientation(self, t: np.ndarray | float) -> torch.Tensor:
        """Camera-to-world rotation(s) (..., 3, 3), float64."""
        angles = (torch.from_numpy(np.asarray(a)) for a in self.angles(t))
        return rotation_matrix(*angles, dtype=torch.float64)


@dataclass(frozen=True)
class Scene:
    """Everything needed to render a clip; built by ``make_scene(seed)``."""

    seed: int
    sky: str
    ground: str
    landmarks: tuple[Landmark, ...]
    movers: tuple[MovingObject, ...]
    camera: CameraMotion
    cloud_waves: tuple[tuple[float, float, float, float, float], ...]  # (kx, ky, kz, frequency, phase)
    ground_tile: float  # texture period on the ground plane, in camera heights

    def to_dict(self) -> dict:
        """JSON-serialisable description (names, shapes, colours, positions in degrees, motion)."""
        return asdict(self)


@dataclass
class SyntheticClip:
    """frames uint8 (F, H, W, 3) RGB; flow float32 (F, H, W, 2) ERP pixels; metadata (JSON-able)."""

    frames: np.ndarray
    flow: np.ndarray
    metadata: dict


def _circular_gap(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def make_scene(seed: int) -> Scene:
    """Sample a scene deterministically from ``seed`` (numpy's PCG64 generator)."""
    rng = np.random.default_rng(seed)
    sky = str(rng.choice(list(SKIES)))
    ground = str(rng.choice(list(GROUNDS)))
    background = [np.array(SKIES[sky][0]), np.array(SKIES[sky][1]), np.array(GROUNDS[ground][0])]
    # Colours that stand out from the sky and the ground.
    palette = [
        name for name, rgb in COLOURS.items() if min(np.abs(np.array(rgb) - b).sum() for b in background) > 0.6
    ]

    n_movers = int(rng.integers(1, 3))
    n_landmarks = min(int(rng.integers(3, 7)), len(palette) - n_movers)  # every object its own colour
    colours = rng.permutation(palette)
    landmarks: list[Landmark] = []
    lons: list[float] = []
    while len(landmarks) < n_landmarks:
        lon = float(rng.uniform(-180.0, 180.0))
        if any(_circular_gap(lon, other) < 40.0 for other in lons):
            continue
        shape = str(rng.choice(list(LANDMARK_NOUNS)))
        colour = str(colours[len(landmarks)])
        noun = str(rng.choice(LANDMARK_NOUNS[shape]))
        lons.append(lon)
        landmarks.append(
            Landmark(
                name=f"{colour} {noun}",
                shape=shape,
                colour=colour,
                lon_deg=lon,
                lat_deg=float(rng.uniform(-10.0, 30.0)),
                radius_deg=float(rng.uniform(9.0, 14.0)),
                spin_deg=float(rng.uniform(-15.0, 15.0)) if shape != "triangle" else 0.0,
            )
        )

    movers: list[MovingObject] = []
    for k in range(n_movers):
        shape = str(rng.choice(list(MOVER_NOUNS)))
        colour = str(colours[n_landmarks + k])
        movers.append(
            MovingObject(
                name=f"{colour} {rng.choice(MOVER_NOUNS[shape])}",
                shape=shape,
                colour=colour,
                lon_deg=float(rng.uniform(-180.0, 180.0)),
                lat_deg=float(rng.uniform(0.0, 30.0)),
                radius_deg=float(rng.uniform(6.0, 9.0)),
                heading_deg=float(rng.choice([0.0, 180.0]) + rng.uniform(-30.0, 30.0)),
                speed_deg=float(rng.uniform(2.0, 5.0)),
            )
        )

    camera = CameraMotion(
        yaw_rate_deg=float(rng.choice([-1.0, 1.0]) * rng.uniform(1.5, 5.0)),
        pitch_amp_deg=float(rng.uniform(0.0, 6.0)) if rng.random() < 0.6 else 0.0,
        pitch_period=float(rng.uniform(16.0, 48.0)),
        roll_amp_deg=float(rng.uniform(0.0, 4.0)) if rng.random() < 0.4 else 0.0,
        roll_period=float(rng.uniform(16.0, 48.0)),
    )
    waves = []
    for _ in range(6):
        k = rng.normal(size=3)
        k /= np.linalg.norm(k)
        frequency, phase = float(rng.uniform(3.0, 9.0)), float(rng.uniform(0, 2 * np.pi))
        waves.append((float(k[0]), float(k[1]), float(k[2]), frequency, phase))
    return Scene(
        seed=int(seed),
        sky=sky,
        ground=ground,
        landmarks=tuple(landmarks),
        movers=tuple(movers),
        camera=camera,
        cloud_waves=tuple(waves),
        ground_tile=float(rng.uniform(1.0, 2.0)),
    )


def _tangent_frame(lon_deg: float, lat_deg: float) -> torch.Tensor:
    """Rows: centre c, east, north unit vectors at (lon, lat) (float64, (3, 3))."""
    lon, lat = math.radians(lon_deg), math.radians(lat_deg)
    centre = [math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), -math.sin(lat)]
    east = [-math.sin(lon), math.cos(lon), 0.0]
    north = [-math.sin(lat) * math.cos(lon), -math.sin(lat) * math.sin(lon), -math.cos(lat)]
    return torch.tensor([centre, east, north], dtype=torch.float64)


def _mover_step(mover: MovingObject) -> torch.Tensor:
    """World rotation Q (3, 3) that moves the object by one frame: ``speed_deg`` about the axis
    c x h (c its start centre, h its start heading), which turns c towards h."""
    c, east, north = _tangent_frame(mover.lon_deg, mover.lat_deg).numpy()
    heading = math.radians(mover.heading_deg)
    axis = np.cross(c, math.cos(heading) * east + math.sin(heading) * north)
    rotvec = axis / np.linalg.norm(axis) * math.radians(mover.speed_deg)
    return torch.from_numpy(Rotation.from_rotvec(rotvec).as_matrix())


def _mover_frames(mover: MovingObject, times) -> torch.Tensor:
    """Tangent frames (T, 3, 3) (rows: centre, east, north) of a moving object at the given frames."""
    base, step = _tangent_frame(mover.lon_deg, mover.lat_deg), _mover_step(mover)
    return torch.stack([base @ torch.linalg.matrix_power(step, int(t)).T for t in times])


def _near(
    dirs: torch.Tensor, frames: list[torch.Tensor], radii_deg: list[float]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each object (tangent frames (T, 3, 3), rows centre/east/north), the indices (t, n) of the
    directions dirs (T, N, 3) within 1.6 of its radii of its centre (every shape fits in that cap);
    one batched dot product for all objects."""
    centres = torch.stack([f[:, 0] for f in frames], dim=1).to(dirs.dtype)  # (T, K, 3)
    limits = torch.tensor([math.cos(math.radians(min(1.6 * r, 80.0))) for r in radii_deg], dtype=dirs.dtype)
    hits = (torch.einsum("tnc,tkc->tnk", dirs, centres) > limits).nonzero()
    return [(hits[hits[:, 2] == k, 0], hits[hits[:, 2] == k, 1]) for k in range(len(frames))]


def _coverage(dirs, frames, near, shape: str, radius_deg: float, spin_deg: float):
    """Where a shape with tangent frames (T, 3, 3) covers directions dirs (T, N, 3), tested at the
    candidate indices ``near`` = (t_idx, n_idx): the covered (t_idx, n_idx) and the local vertical
    coordinate v in [-1, 1] there.

    Gnomonic coordinates around the centre, (u, v) = (d.east, d.north) / (d.c) / tan(radius),
    rotated by ``spin_deg``; disc rho <= 1, square max(|u|, |v|) <= 0.8, upright equilateral
    triangle with circumradius 1, five-point star rho <= 0.55 + 0.45 cos(5 (phi - pi/2)),
    ring 0.6 <= rho <= 1.
    """
    t_idx, n_idx = near
    local = torch.einsum("mk,mjk->mj", dirs[t_idx, n_idx], frames.to(dirs.dtype)[t_idx])
    scale = local[:, 0] * math.tan(math.radians(radius_deg))
    s, c = math.sin(math.radians(spin_deg)), math.cos(math.radians(spin_deg))
    u0, v0 = local[:, 1] / scale, local[:, 2] / scale
    u, v = c * u0 + s * v0, -s * u0 + c * v0
    rho = torch.hypot(u, v)
    if shape == "disc":
        inside = rho <= 1.0
    elif shape == "square":
        inside = torch.maximum(u.abs(), v.abs()) <= 0.8
    elif shape == "triangle":
        inside = (v >= -0.5) & (math.sqrt(3.0) * u.abs() + v <= 1.0)
    elif shape == "star":
        inside = rho <= 0.55 + 0.45 * torch.cos(5 * (torch.atan2(v, u) - math.pi / 2))
    elif shape == "ring":
        inside = (rho <= 1.0) & (rho >= 0.6)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return t_idx[inside], n_idx[inside], v[inside].clamp(-1.0, 1.0)


def _background(scene: Scene, dirs: torch.Tensor) -> torch.Tensor:
    """Sky (gradient + clouds) above the horizon, textured ground plane with haze below: (..., 3)."""
    *sky_colours, cloud_amount = SKIES[scene.sky]
    horizon, zenith, cloud_rgb = (torch.tensor(x, dtype=dirs.dtype) for x in sky_colours)
    base, texture = (torch.tensor(x, dtype=dirs.dtype) for x in GROUNDS[scene.ground])
    waves = torch.tensor(scene.cloud_waves, dtype=dirs.dtype)
    rgb = torch.empty_like(dirs)
    is_sky = dirs[..., 2] < 0  # up = -z > 0

    sky_dirs = dirs[is_sky]
    up = -sky_dirs[:, 2:]
    noise = torch.sin(torch.addmm(waves[:, 4], sky_dirs, waves[:, :3].T * waves[:, 3])).mean(-1, keepdim=True)
    cloud = ((noise - 0.05) / 0.35).clamp_(0, 1) * (up * 8).clamp_(max=1) * cloud_amount
    rgb[is_sky] = torch.lerp(torch.lerp(horizon, zenith, up.sqrt()), cloud_rgb, cloud)

    ground_dirs = dirs[~is_sky]
    depth = ground_dirs[:, 2:].clamp(min=1e-3)
    plane = ground_dirs[:, :2] / (depth * scene.ground_tile)  # ground-plane point, camera height 1
    pattern = torch.sin(2 * math.pi * plane).prod(-1, keepdim=True)
    distance = torch.linalg.vector_norm(plane, dim=-1, keepdim=True)
    mix = ((0.5 + 0.5 * pattern) / (1 + distance / 4)).clamp_(0, 1)
    rgb[~is_sky] = torch.lerp(torch.lerp(base, texture, mix), horizon, torch.exp(-10 * depth))
    return rgb


def _shade(scene: Scene, dirs: torch.Tensor, times: range) -> torch.Tensor:
    """Colours (T, N, 3) of world directions dirs (T, N, 3) at the given frames; moving objects
    are drawn over landmarks, later objects over earlier ones."""
    rgb = _background(scene, dirs)
    objects = [
        (lm, _tangent_frame(lm.lon_deg, lm.lat_deg).expand(len(times), 3, 3), lm.spin_deg, 0.15)
        for lm in scene.landmarks
    ]
    objects += [(mover, _mover_frames(mover, times), 0.0, 0.2) for mover in scene.movers]
    candidates = _near(dirs, [frames for _, frames, _, _ in objects], [obj.radius_deg for obj, *_ in objects])
    for (obj, frames, spin, contrast), near in zip(objects, candidates):
        t_idx, n_idx, v = _coverage(dirs, frames, near, obj.shape, obj.radius_deg, spin)
        colour = torch.tensor(COLOURS[obj.colour], dtype=dirs.dtype)
        rgb[t_idx, n_idx] = colour * (1 - contrast + contrast * v[:, None])
    return rgb


def _flows(scene: Scene, height: int, width: int, orientations: torch.Tensor, times: range) -> torch.Tensor:
    """Exact flows (T, H, W, 2) float64 from frames t to t+1, t in ``times`` (module docstring)."""
    r_t, r_next = orientations[times.start : times.stop], orientations[times.start + 1 : times.stop + 1]
    flow = rotation_flow(height, width, r_t.transpose(-1, -2) @ r_next)
    if not scene.movers:
        return flow
    world = pixel_directions(height, width, dtype=torch.float64).reshape(1, -1, 3) @ r_t.transpose(-1, -2)
    flat = flow.view(len(times), -1, 2)
    frames = [_mover_frames(mover, times) for mover in scene.movers]
    candidates = _near(world, frames, [mover.radius_deg for mover in scene.movers])
    for mover, mover_frames, near in zip(scene.movers, frames, candidates):
        t_idx, n_idx, _ = _coverage(world, mover_frames, near, mover.shape, mover.radius_deg, 0.0)
        moved = world @ _mover_step(mover).T @ r_next  # camera-frame direction at t+1: R_{t+1}^T Q P
        mover_flow = direction_flow(moved.view(len(times), height, width, 3)).view(len(times), -1, 2)
        flat[t_idx, n_idx] = mover_flow[t_idx, n_idx]
    return flow


def render_clip(
    scene: Scene, height: int, width: int, frames: int, rays_per_chunk: int = 2**21
) -> SyntheticClip:
    """Render ``frames`` ERP frames (uint8 (F, H, W, 3), 2x2 supersampled) and their exact flow
    (float32 (F, H, W, 2), pixels, dx wrapped into [-W/2, W/2), last flow frame duplicated).

    Frames are processed in chunks of about ``rays_per_chunk`` sub-pixel rays (bounds memory).
    """
    if width != 2 * height:
        raise ValueError(f"ERP needs width = 2 * height, got {height}x{width}")
    if frames < 2:
        raise ValueError(f"a clip needs at least 2 frames, got {frames}")
    orientations = scene.camera.orientation(np.arange(frames))
    # The pixel centres of the 2x-finer ERP grid are the 2x2 sub-pixel centres of this one.
    sub = pixel_directions(2 * height, 2 * width, dtype=torch.float64).reshape(1, -1, 3)
    chunk = max(1, rays_per_chunk // sub.shape[1])
    images, flows = [], []
    for start in range(0, frames, chunk):
        times = range(start, min(start + chunk, frames))
        world = (sub @ orientations[times.start : times.stop].transpose(-1, -2)).to(torch.float32)
        rgb = _shade(scene, world, times).view(len(times), 2 * height, 2 * width, 3).permute(0, 3, 1, 2)
        rgb = F.avg_pool2d(rgb, 2).permute(0, 2, 3, 1)
        images.append((rgb.clamp(0, 1) * 255).round().to(torch.uint8))
        flow_times = range(times.start, min(times.stop, frames - 1))
        if len(flow_times):
            flows.append(_flows(scene, height, width, orientations, flow_times))
    flow = torch.cat(flows)
    flow = torch.cat((flow, flow[-1:])).to(torch.float32)
    yaw, pitch, roll = scene.camera.angles(np.arange(frames))
    metadata = {
        "seed": scene.seed,
        "height": height,
        "width": width,
        "frames": frames,
        "caption": scene_caption(scene),
        "view_captions": view_captions(scene, 0),
        "scene": scene.to_dict(),
        "camera_deg": {"yaw": yaw.tolist(), "pitch": pitch.tolist(), "roll": roll.tolist()},
        "tracks_deg": object_tracks(scene, frames),
        "flow": "ERP pixels (dx, dy) from frame t to t+1, exact from the scene; last frame duplicated",
    }
    return SyntheticClip(frames=torch.cat(images).numpy(), flow=flow.numpy(), metadata=metadata)


def _camera_directions(scene: Scene, frame: int) -> dict[str, torch.Tensor]:
    """Camera-frame direction (3,) of every landmark's and moving object's centre at ``frame``."""
    r_t = scene.camera.orientation(frame)
    out = {lm.name: _tangent_frame(lm.lon_deg, lm.lat_deg)[0] @ r_t for lm in scene.landmarks}
    out.update({mover.name: _mover_frames(mover, [frame])[0, 0] @ r_t for mover in scene.movers})
    return out


def object_tracks(scene: Scene, frames: int) -> dict[str, list[list[float]]]:
    """ERP (lon, lat) in degrees of each landmark's and moving object's centre, per frame."""
    tracks: dict[str, list[list[float]]] = {}
    for t in range(frames):
        for name, d in _camera_directions(scene, t).items():
            lon, lat = xyz_to_lonlat(d)
            tracks.setdefault(name, []).append([math.degrees(lon), math.degrees(lat)])
    return tracks


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _join(items: list[str]) -> str:
    items = [_article(x) for x in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def scene_caption(scene: Scene) -> str:
    """One sentence for the whole panorama, e.g. "a panoramic view of a grassy meadow under a
    clear blue sky with a red tower, a blue pyramid and a yellow star, as a white bird moves past"."""
    caption = f"a panoramic view of {_article(scene.ground)} under {_article(scene.sky)}"
    if scene.landmarks:
        caption += f" with {_join([lm.name for lm in scene.landmarks])}"
    if scene.movers:
        verb = "moves" if len(scene.movers) == 1 else "move"
        caption += f", as {_join([m.name for m in scene.movers])} {verb} past"
    return caption


def view_captions(scene: Scene, frame: int = 0) -> list[str]:
    """One caption per horizontal view of ERP frame ``frame`` (lon 0/90/180/270, lat 0, FoV 90,
    as ``horizontal_views``), naming the landmarks and moving objects whose centre lies in it."""
    names = list(_camera_directions(scene, frame).items())
    dirs = torch.stack([d for _, d in names]) if names else torch.zeros(0, 3, dtype=torch.float64)
    captions = []
    for lon in VIEW_LONS:
        _, _, inside = view_coordinates(dirs, lon, 0.0, 90.0, 2)
        visible = [name for (name, _), seen in zip(names, inside.tolist()) if seen]
        things = f"{_join(visible)} on " if visible else ""
        captions.append(f"a view of {things}{_article(scene.ground)} under {_article(scene.sky)}")
    return captions

