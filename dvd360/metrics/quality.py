"""Per-video quality metrics: VBench's imaging and aesthetic quality, on views and on the ERP.

VBench (Vchitect/VBench `imaging_quality.py`, `aesthetic_quality.py`) is the anchor:
- imaging quality = mean over frames of MUSIQ-SPAQ(frame) / 100, each frame resized (only when
  larger) so that its longer side is 512 (torchvision `Resize`, bilinear, antialias, on uint8),
  then divided by 255 (VBench's default `longer` mode);
- aesthetic quality = mean over frames of LAION(e) / 10, e = the unit CLIP ViT-L/14 embedding of the
  frame after CLIP's transform: shorter side resized to 224 (bicubic, antialias, on uint8), centre
  crop 224x224, / 255, CLIP's mean and std.

Our names (scale 0..1 as VBench reports; both higher is better):
- ``imaging_quality_erp``, ``aesthetic_quality_erp``: exactly VBench's definitions on the ERP frames,
  what a peer gets running VBench on a panorama video (DynamicScaler, Imagine360 report these).
  Not panorama-aware: MUSIQ judges the ERP's polar stretching as content, and the centre crop of
  a 2:1 frame keeps only the middle half of the longitudes (lon -90..90 about the centre).
  Reported for comparability with the published numbers, not as the panorama's quality.
- ``imaging_quality_views``: MUSIQ on the 4 horizontal perspective views of every frame (lat 0,
  lon 0/90/180/270, FoV 90, so together they cover every longitude), rendered directly at
  s = min(W / 4, 512) pixels: at the view centre one view pixel per ERP pixel (MUSIQ judges the
  generated detail, not an upsampling), capped at VBench's 512. Mean over frames and views / 100.
  Differs from VBench only in its input: undistorted views instead of the raw frame.
- ``aesthetic_quality_views``: the LAION head on the CLIP embeddings of the same 4 views per frame
  that ``clip_similarity_views`` uses (rendered at CLIP's input size, no crop), mean / 10.

The models come from `models.feature_nets` folders (`musiq/`, `aesthetic/`); MUSIQ runs in fp32
in fixed-shape batches (`dvd360.device.fixed_batches`: an image's score never depends on its batch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from dvd360.geometry.perspective import horizontal_views
from dvd360.models.clip_model import ClipModel
from dvd360.device import device_label, fixed_batches, frames_to_tensor, resolve_device
from dvd360.metrics.clip_similarity import VIEW_FOV_DEG, VIEW_LONS
from dvd360.models.feature_nets import feature_net_info, load_feature_net
from dvd360.provenance import sha256_of

VBENCH_LONGER_SIDE = 512  # VBench's imaging-quality `longer` mode
MUSIQ_SCALE = 100.0  # VBench divides MUSIQ's 0..100 by 100
AESTHETIC_SCALE = 10.0  # and the LAION score by 10
MUSIQ_BATCH = 16


def musiq_view_size(width: int) -> int:
    """Side of the MUSIQ views of an ERP `width` pixels wide: min(W / 4, 512)."""
    return max(1, min(width // len(VIEW_LONS), VBENCH_LONGER_SIDE))


def vbench_imaging_frames(frames: np.ndarray) -> torch.Tensor:
    """VBench's imaging-quality input: uint8 (F, H, W, 3) -> float (F, 3, h, w) in [0, 1], the
    longer side resized to 512 when larger (on uint8, on the CPU, as VBench)."""
    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    h, w = images.shape[-2:]
    if max(h, w) > VBENCH_LONGER_SIDE:
        scale = VBENCH_LONGER_SIDE / max(h, w)
        images = TF.resize(images, [int(scale * h), int(scale * w)], antialias=True)
    return images.float() / 255.0


def vbench_clip_frames(frames: np.ndarray, size: int) -> torch.Tensor:
    """VBench's CLIP transform before normalisation: uint8 (F, H, W, 3) -> (F, 3, size, size) in
    [0, 1]: shorter side to `size` (bicubic, antialias, uint8), centre crop."""
    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    images = TF.resize(images, size, interpolation=InterpolationMode.BICUBIC, antialias=True)
    return TF.center_crop(images, [size, size]).float() / 255.0


class MusiqImages:
    """MUSIQ as a feature extractor of the batched loop (`metrics.engine`); `on` picks its input:
    "views" (4F views at `musiq_view_size`) or "erp" (VBench's resized frames). Features (N, 1)."""

    def __init__(self, net: torch.nn.Module, on: str, device: torch.device, batch_size: int = MUSIQ_BATCH):
        if on not in ("views", "erp"):
            raise ValueError(f"MUSIQ input {on!r}: use views or erp")
        self.net, self.on, self.device, self.batch_size = net, on, device, int(batch_size)
        self.name = f"musiq_{on}"

    def content_key(self) -> dict:
        return {"model": "musiq", "input": self.on, "device": self.device.type, "batch": self.batch_size}

    def inputs(self, frames: np.ndarray) -> torch.Tensor:
        if self.on == "erp":
            return vbench_imaging_frames(frames).to(self.device)
        erp = frames_to_tensor(frames, self.device)
        size = musiq_view_size(erp.shape[-1])
        return horizontal_views(erp, size, VIEW_FOV_DEG, VIEW_LONS).clamp(0.0, 1.0).flatten(0, 1)

    @torch.inference_mode()
    def extract(self, inputs: torch.Tensor) -> torch.Tensor:
        return fixed_batches(lambda chunk: self.net(chunk.to(self.device)).float().reshape(-1, 1), inputs,
                             self.batch_size)


class ClipCentreCrops:
    """CLIP embeddings of VBench's centre crops of the ERP frames, (F, D) per video."""

    name = "clip_vbench_crops"

    def __init__(self, clip: ClipModel):
        self.clip, self.batch_size = clip, clip.batch_size

    def content_key(self) -> dict:
        return {"clip": self.clip.name, "input": "vbench centre crop", "device": self.clip.device.type,
                "precision": self.clip.precision, "batch": self.clip.batch_size}

    def inputs(self, frames: np.ndarray) -> torch.Tensor:
        return vbench_clip_frames(frames, self.clip.image_size).to(self.clip.device)

    def extract(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_images(inputs)


class QualityScorer:
    """The quality metrics of one video from its extracted features (see module doc).

    `musiq_dir` / `aesthetic_dir`: `models.feature_nets` folders; the aesthetic head needs the
    CLIP it was trained on (its input size must be the CLIP's embedding size).
    """

    def __init__(self, musiq_dir: str | Path, aesthetic_dir: str | Path, clip: ClipModel,
                 device: str | torch.device = "auto"):
        self.device = resolve_device(device)
        self.dirs = {"musiq": Path(musiq_dir), "aesthetic": Path(aesthetic_dir)}
        self.info = {kind: feature_net_info(folder) for kind, folder in self.dirs.items()}
        self.musiq = load_feature_net(self.dirs["musiq"], self.device)
        self.head = load_feature_net(self.dirs["aesthetic"], "cpu").double()
        embed_dim = clip.model.visual.output_dim
        if self.head.in_features != embed_dim:
            raise ValueError(f"{self.dirs['aesthetic']}: the aesthetic head takes {self.head.in_features}-d "
                             f"embeddings, the CLIP {clip.name!r} gives {embed_dim}-d ones (the LAION head "
                             "needs CLIP ViT-L/14)")
        self.extractors = [MusiqImages(self.musiq, "views", self.device), MusiqImages(self.musiq, "erp", self.device),
                           ClipCentreCrops(clip)]

    @property
    def random_weights(self) -> bool:
        return any(info["random_weights"] for info in self.info.values())

    def content_key(self) -> dict:
        """What the quality scores depend on besides the video: model contents and how they ran."""
        return {**{f"{kind}_sha256": sha256_of(folder) for kind, folder in self.dirs.items()},
                **{e.name: e.content_key() for e in self.extractors}}

    @torch.inference_mode()
    def aesthetic(self, embeddings: torch.Tensor) -> float:
        """Mean LAION score / 10 of unit CLIP embeddings (..., D)."""
        return float(self.head(embeddings.reshape(-1, embeddings.shape[-1]).double()).mean() / AESTHETIC_SCALE)

    def metrics(self, features: dict[str, torch.Tensor], view_embeddings: torch.Tensor) -> dict[str, float]:
        """{name: value} of one video from its extractor features and its CLIP view embeddings."""
        return {"imaging_quality_erp": float(features["musiq_erp"].double().mean() / MUSIQ_SCALE),
                "imaging_quality_views": float(features["musiq_views"].double().mean() / MUSIQ_SCALE),
                "aesthetic_quality_erp": self.aesthetic(features[ClipCentreCrops.name]),
                "aesthetic_quality_views": self.aesthetic(view_embeddings)}

    def describe(self) -> dict[str, dict]:
        """Per quality metric: model (and whether its weights are random), input, device."""
        def model(kind: str) -> str:
            info = self.info[kind]
            return f"{info['architecture']} ({'random weights' if info['random_weights'] else info['source']})"

        musiq = {"model": model("musiq"), "device": device_label(self.device), "precision": "fp32",
                 "batch": f"{MUSIQ_BATCH} images per forward (fixed shape)"}
        return {
            "imaging_quality_erp": {**musiq, "input": "VBench's: frames with the longer side resized to "
                                    f"{VBENCH_LONGER_SIDE} when larger", "definition": "equals VBench imaging_quality"},
            "imaging_quality_views": {**musiq, "input": f"{len(VIEW_LONS)} views at lon {VIEW_LONS}, lat 0, FoV "
                                      f"{VIEW_FOV_DEG:g} deg, side min(W/4, {VBENCH_LONGER_SIDE})",
                                      "definition": "VBench imaging_quality on views instead of the raw frame"},
            "aesthetic_quality_erp": {"model": model("aesthetic"), "input": "VBench's CLIP transform: shorter side "
                                      "to the CLIP input, centre crop (the middle half of the longitudes)",
                                      "definition": "equals VBench aesthetic_quality"},
            "aesthetic_quality_views": {"model": model("aesthetic"), "input": "the CLIP view embeddings of "
                                        "clip_similarity_views", "definition": "VBench aesthetic_quality on views"},
        }
