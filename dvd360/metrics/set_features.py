"""Per-video features of the set metrics (FVD, FID/KID), cached on disk.

Five feature sets per video, each computed once per (video content, model file, preprocessing,
code) and cached (`feature_cache.FeatureCache`):
- `i3d_erp` (1, 400): the standard FVD clip on the ERP frames (StyleGAN-V / cd-fvd / PanFlow):
  16 frames (the first 16; a shorter video is stretched to 16 by repeating frames,
  index floor(i * F / 16)), each whole ERP frame squashed to 224x224 by bilinear interpolation
  (align_corners=False, no crop, no antialias), values scaled to [-1, 1], the whole clip one I3D
  input (cd-fvd's `preprocess_i3d`); features = the 400 Kinetics logits averaged over time.
- `i3d_cube` (6, 400): the same clip per cubemap face (`geometry.cubemap`, FoV 90, faces rendered
  directly at 224x224 from the float frames, order front, right, back, left, top, bottom).
- `inception_views` (4F, 2048): every frame's 4 horizontal perspective views (lat 0, lon
  0/90/180/270, FoV 90, rendered directly at 299x299, the FID Inception's input size), turned
  into uint8 as torchmetrics does with `normalize=True` (`(x * 255).byte()`, truncating), then the
  2048-d pool3 features. Row order: frame-major, view-minor.
- `inception_sphere` (14F, 2048): the same per frame on 14 FoV-90 views spread over the sphere
  (`geometry.view_sets.SPHERE_CENTRES`: the 6 cube-face centres, then the 8 cube corners; poles
  included, every direction of the sphere within 36.2 deg of a view centre, so the views see the
  whole sphere). Views 0-5 are the cubemap's faces at 299x299 (OmniFID's input).
- `inception_seam` (3F, 2048): the same per frame on 3 FoV-90 views centred on the seam, lon 180
  at lat 45, 0, -45 (`geometry.view_sets.SEAM_CENTRES`). Row order of both: frame-major, view-minor.
A view of these sets that is one of `inception_views`' (lat 0, lon 0/90/180/270: sphere views 0-3,
the seam's lat-0 view) is the same image (same rays, same sampling): its features are taken from
`inception_views` instead of being computed again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from dvd360.data.protocol import ScoringProtocol, read_video
from dvd360.device import frames_to_tensor
from dvd360.fingerprint import code_sha256
from dvd360.geometry.cubemap import CUBE_FACES, FACE_FOV_DEG, SIDE_LONS, cubemap_faces
from dvd360.geometry.perspective import horizontal_views
from dvd360.geometry.view_sets import SEAM_CENTRES, SPHERE_CENTRES, views_at
from dvd360.metrics.feature_cache import FeatureCache
from dvd360.models.feature_nets import feature_net_info, load_feature_net
from dvd360.provenance import sha256_of

FVD_FRAMES = 16
FVD_SIZE = 224
VIEW_SIZE = 299
FEATURE_SETS = {"i3d_erp": "i3d", "i3d_cube": "i3d", "inception_views": "inception", "inception_sphere": "inception",
                "inception_seam": "inception"}
VIEW_SETS = {"inception_sphere": SPHERE_CENTRES, "inception_seam": SEAM_CENTRES}  # (lon, lat) per view
SIDE_CENTRES = {(lon, 0.0): k for k, lon in enumerate(SIDE_LONS)}  # inception_views' view k, by centre
PREPROCESSING = {
    "i3d_erp": {"frames": FVD_FRAMES, "frame_rule": "first 16, shorter: floor(i*F/16)",
                "resize": [FVD_SIZE, FVD_SIZE], "interpolation": "bilinear, align_corners=False, no crop",
                "range": "[-1, 1]", "input": "whole ERP frame"},
    "i3d_cube": {"frames": FVD_FRAMES, "frame_rule": "first 16, shorter: floor(i*F/16)",
                 "face_size": FVD_SIZE, "fov_deg": FACE_FOV_DEG, "faces": list(CUBE_FACES),
                 "range": "[-1, 1]", "input": "cubemap faces"},
    "inception_views": {"view_size": VIEW_SIZE, "fov_deg": FACE_FOV_DEG, "lons": list(SIDE_LONS), "lat": 0.0,
                        "uint8": "(x * 255).byte() as torchmetrics normalize=True", "input": "every frame"},
    **{name: {"view_size": VIEW_SIZE, "fov_deg": FACE_FOV_DEG, "centres_lon_lat": [list(c) for c in centres],
              "uint8": "(x * 255).byte() as torchmetrics normalize=True", "input": "every frame"}
       for name, centres in VIEW_SETS.items()},
}
# The code that computes the features (its transitive dvd360 imports count too: rendering, the
# networks, frame decoding): a change in any of it misses the cache.
FEATURE_CODE = ("dvd360.metrics.set_features",)


def fvd_frame_indices(num_frames: int) -> list[int]:
    """The 16 frames of the FVD clip: the first 16, or floor(i * F / 16) for a shorter video."""
    if num_frames < 1:
        raise ValueError("a video needs at least one frame")
    if num_frames >= FVD_FRAMES:
        return list(range(FVD_FRAMES))
    return [i * num_frames // FVD_FRAMES for i in range(FVD_FRAMES)]


def i3d_input(clip_255: np.ndarray) -> torch.Tensor:
    """(B, T, H, W, 3) values in [0, 255] -> (B, 3, T, 224, 224) in [-1, 1] (cd-fvd's preprocess_i3d)."""
    from cdfvd.third_party.i3d.utils import preprocess_i3d

    clip_255 = np.asarray(clip_255, dtype=np.float32)
    if clip_255.shape[2:4] == (FVD_SIZE, FVD_SIZE):
        # Cube faces are rendered at 224x224, where preprocess_i3d's bilinear resize to the same size
        # is an exact identity (weights 1 and 0) costing half its time: only its scaling, 2x/255 - 1,
        # is applied here, the same values (tests/test_set_metrics.py compares them).
        return (2. * torch.from_numpy(clip_255).permute(0, 4, 1, 2, 3) / 255. - 1).contiguous()
    return preprocess_i3d(clip_255, target_resolution=(FVD_SIZE, FVD_SIZE))


def erp_clip(frames: np.ndarray) -> np.ndarray:
    """The FVD clip (1, 16, H, W, 3) of a uint8 video (F, H, W, 3), values 0..255 as float32."""
    return np.asarray(frames)[fvd_frame_indices(len(frames))][None].astype(np.float32)


def cube_clips(frames: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
    """The FVD clip of every cubemap face: (6, 16, 224, 224, 3), values 0..255 as float32,
    rendered on `device` (a GPU renders them far faster than a CPU)."""
    indices = fvd_frame_indices(len(frames))
    used = sorted(set(indices))  # a short video repeats frames: render each frame's faces once
    faces = cubemap_faces(frames_to_tensor(np.asarray(frames)[used], device), FVD_SIZE)  # (U, 6, 3, s, s) in [0, 1]
    faces = faces[[used.index(i) for i in indices]]  # (16, 6, 3, s, s)
    return (faces.permute(1, 0, 3, 4, 2) * 255).cpu().numpy().astype(np.float32)


def view_images(frames: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 (4F, 3, 299, 299): each frame's 4 horizontal FoV-90 views, frame-major, rendered on `device`."""
    views = horizontal_views(frames_to_tensor(frames, device), VIEW_SIZE, FACE_FOV_DEG, SIDE_LONS, 0.0)
    return (views.clamp(0, 1) * 255).byte().flatten(0, 1)


def view_set_images(frames: np.ndarray, centres: Sequence[tuple[float, float]],
                    device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 (VF, 3, 299, 299): each frame's FoV-90 views at `centres` ((lon, lat) in degrees),
    frame-major, rendered on `device`."""
    views = views_at(frames_to_tensor(frames, device), centres, VIEW_SIZE, FACE_FOV_DEG)
    return views.clamp_(0, 1).mul_(255).byte().flatten(0, 1)


def content_key(frames: np.ndarray) -> str:
    """sha256 of a decoded video's shape and bytes (its content, whatever file it came from)."""
    frames = np.ascontiguousarray(frames)
    return hashlib.sha256(repr((frames.shape, str(frames.dtype))).encode() + frames.tobytes()).hexdigest()


class SetFeatureExtractor:
    """Computes (or reads from the cache) the `FEATURE_SETS` of videos.

    `i3d_dir` / `inception_dir`: folders of `models.feature_nets`; their content hash is part of
    every cache key. `cache=None` computes without storing. `batch`: network inputs per forward.
    """

    def __init__(self, i3d_dir: str | Path, inception_dir: str | Path, cache: FeatureCache | None = None,
                 device: str = "cpu", batch: int = 8):
        self.dirs = {"i3d": Path(i3d_dir), "inception": Path(inception_dir)}
        self.info = {kind: feature_net_info(folder) for kind, folder in self.dirs.items()}
        self.model_sha256 = {kind: sha256_of(folder) for kind, folder in self.dirs.items()}
        self.code_sha256 = code_sha256(FEATURE_CODE)
        self.cache, self.device, self.batch = cache, device, int(batch)
        self._nets: dict[str, torch.nn.Module] = {}
        self.computed = 0  # feature sets actually computed (not read from the cache)

    @property
    def random_weights(self) -> bool:
        return any(info["random_weights"] for info in self.info.values())

    def describe(self, feature_set: str) -> dict[str, Any]:
        kind = FEATURE_SETS[feature_set]
        info = self.info[kind]
        return {"model": f"{info['architecture']} ({'random weights' if info['random_weights'] else 'weights'}: "
                         f"{info['source']})", "model_sha256": self.model_sha256[kind],
                "preprocessing": PREPROCESSING[feature_set]}

    def _net(self, kind: str) -> torch.nn.Module:
        if kind not in self._nets:
            self._nets[kind] = load_feature_net(self.dirs[kind], self.device)
        return self._nets[kind]

    @torch.no_grad()
    def _run(self, kind: str, inputs: torch.Tensor) -> np.ndarray:
        net = self._net(kind)
        out = [net(inputs[i:i + self.batch].to(self.device)).double().cpu() for i in range(0, len(inputs), self.batch)]
        return torch.cat(out).reshape(len(inputs), -1).numpy()

    def _compute(self, feature_set: str, frames: np.ndarray, side_views: np.ndarray | None) -> np.ndarray:
        """`side_views`: the video's `inception_views` features (what a view set takes from them)."""
        self.computed += 1
        if feature_set == "i3d_erp":
            return self._run("i3d", i3d_input(erp_clip(frames)))
        if feature_set == "i3d_cube":
            return self._run("i3d", i3d_input(cube_clips(frames, self.device)))
        if feature_set in VIEW_SETS:
            return self._view_set(frames, VIEW_SETS[feature_set], side_views)
        return self._run("inception", view_images(frames, self.device))

    def _view_set(self, frames: np.ndarray, centres: Sequence[tuple[float, float]],
                  side_views: np.ndarray) -> np.ndarray:
        """(VF, d) features of the views at `centres`, those of `inception_views`' centres copied."""
        sides = side_views.reshape(len(frames), len(SIDE_LONS), -1)
        new = [k for k, centre in enumerate(centres) if centre not in SIDE_CENTRES]
        out = np.empty((len(frames), len(centres), sides.shape[-1]))
        out[:, new] = self._run("inception", view_set_images(frames, [centres[k] for k in new], self.device)
                                ).reshape(len(frames), len(new), -1)
        for k, centre in enumerate(centres):
            if centre in SIDE_CENTRES:
                out[:, k] = sides[:, SIDE_CENTRES[centre]]
        return out.reshape(len(frames) * len(centres), -1)

    def features(self, frames: np.ndarray, key: str | None = None) -> dict[str, np.ndarray]:
        """{feature set: array} of one uint8 video (F, H, W, 3); `key` is its content hash
        (default: `content_key(frames)`)."""
        frames = _checked(frames)
        return self._features(lambda: frames, key or content_key(frames))

    def features_of_file(self, path: str | Path, protocol: ScoringProtocol = ScoringProtocol()) -> dict[str, np.ndarray]:
        """Features of a video file's frames as `protocol` reads them (`data.protocol.read_video`,
        every frame kept: FVD's clip is consecutive frames), keyed by the file's sha256 and the
        protocol: a cache hit decodes nothing."""
        return self._features(lambda: _checked(read_video(path, protocol, keep_repeats=True).frames, path),
                              f"{sha256_of(path)}:{protocol.model_dump_json()}")

    def _features(self, load, key: str) -> dict[str, np.ndarray]:
        frames: list[np.ndarray] = []
        result: dict[str, np.ndarray] = {}

        def compute(name: str) -> np.ndarray:
            if not frames:
                frames.append(load())
            return self._compute(name, frames[0], result.get("inception_views"))

        for name, kind in FEATURE_SETS.items():  # inception_views before the view sets that copy from it
            parts = {"feature_set": name, "video": key, "model_sha256": self.model_sha256[kind],
                     "preprocessing": PREPROCESSING[name], "code_sha256": self.code_sha256,
                     "render_device": torch.device(self.device).type}  # GPU views differ in the last uint8 level
            result[name] = (compute(name) if self.cache is None
                            else self.cache.get_or_compute(parts, lambda name=name: compute(name)))
        return result


def _checked(frames: np.ndarray, path: str | Path | None = None) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        where = f"{path}: " if path is not None else ""
        raise ValueError(f"{where}a video must be uint8 (F, H, W, 3), got {frames.dtype} {frames.shape}")
    return frames
