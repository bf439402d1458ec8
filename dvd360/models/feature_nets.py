"""Frame networks of the set metrics (FVD, FID/KID) and the quality metrics, one folder each, both profiles.

Contracts (what every caller relies on; the tiny stand-ins keep them):
- video features (`i3d/`): float (B, 3, 16, 224, 224) in [-1, 1] -> (B, 400). Paper profile: the
  Kinetics-400 I3D of PanFlow / TATS / cd-fvd (`i3d_pretrained_400.pt`, a state dict of
  `cdfvd`'s `InceptionI3d(400)`), its 400 logits averaged over time, as cd-fvd's FVD.
- image features (`inception/`): uint8 (N, 3, H, W) -> (N, 2048). Paper profile: torch-fidelity's
  FID Inception-v3 (`pt_inception-2015-12-05-6726825d.pth`) through torchmetrics'
  `NoTrainInceptionV3(features_list=["2048"])`: exactly what `FrechetInceptionDistance(feature=2048)`
  uses (TF1-style bilinear resize to 299, (x - 128) / 128, pool3 features).
- imaging quality (`musiq/`): float (N, 3, H, W) in [0, 1] -> (N, 1) mean opinion score. Paper
  profile: pyiqa's `MUSIQ` with the SPAQ-trained weights VBench loads (`musiq_spaq_ckpt-358bb6af.pth`,
  scores 0..100).
- aesthetic quality (`aesthetic/`): unit CLIP image embeddings (N, D) -> (N, 1). Paper profile: the
  LAION aesthetic predictor (`sa_0_4_vit_l_14_linear.pth`, `nn.Linear(768, 1)` on ViT-L/14
  embeddings, scores about 1..10), as VBench loads it.
- tiny profile: small random-weight nets with the same input and output contract, from configs in
  `configs/tiny/{kind}.json` with a fixed seed: conv stand-ins for I3D and Inception
  (`TinyVideoFeatures`, `TinyImageFeatures`; the real architectures cost seconds per clip on a
  CPU, which would make the tiny `dvc repro` take tens of minutes: docs/performance.md),
  pyiqa's MUSIQ itself at a small width and depth, and the LAION head's
  `nn.Linear` at the tiny CLIP's embedding size.

A folder holds `features.json` ({"kind", "architecture", "weights", "random_weights", "config",
"source"}) and the weights file; `load_feature_net(folder)` returns the eval-mode module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dvd360.atomic import atomic_path, write_json
from dvd360.models.registry import load_registry
from dvd360.models.tiny_configs import tiny_config

SET_KINDS = ("i3d", "inception")  # features of the set metrics
QUALITY_KINDS = ("musiq", "aesthetic")  # scorers of the per-video quality metrics
KINDS = SET_KINDS + QUALITY_KINDS
ROLES = {"i3d": "video features of the set metrics (FVD)", "inception": "image features of the set metrics (FID/KID)",
         "musiq": "imaging quality scorer (MUSIQ)", "aesthetic": "aesthetic quality head (LAION)"}
INFO_FILE = "features.json"
TINY_WEIGHTS = "model.safetensors"
# The real file of each kind: the registry's scorer of that kind (dvd360/models/registry.yaml)
PAPER_FILES = {kind: load_registry().scorer(kind).files[0].path for kind in KINDS}
PAPER_ARCHITECTURES = {"i3d": "cdfvd.third_party.i3d.pytorch_i3d.InceptionI3d(400)",
                       "inception": "torchmetrics NoTrainInceptionV3('inception-v3-compat', ['2048'])",
                       "musiq": "pyiqa.archs.musiq_arch.MUSIQ(num_class=1) (SPAQ weights)",
                       "aesthetic": "LAION aesthetic predictor nn.Linear(768, 1)"}
LAION_EMBED_DIM = 768  # CLIP ViT-L/14's image embedding


def _conv_stack(conv: type[nn.Module], channels: list[int]) -> nn.Sequential:
    """conv(c_in, c_out, 3, stride 2, pad 1) + ReLU per level, from 3 input channels; He-normal
    weights (activations keep their scale through the stack, so features are O(1) like Inception's)."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip([3] + channels[:-1], channels):
        layer = conv(c_in, c_out, 3, stride=2, padding=1)
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        layers += [layer, nn.ReLU()]
    return nn.Sequential(*layers)


def _head(c_in: int, features: int) -> nn.Linear:
    """Linear head with unit-gain normal weights (std 1/sqrt(c_in)) and zero bias."""
    head = nn.Linear(c_in, features)
    nn.init.normal_(head.weight, std=c_in ** -0.5)
    nn.init.zeros_(head.bias)
    return head


class TinyVideoFeatures(nn.Module):
    """I3D's contract at a tiny cost: (B, 3, T, 224, 224) in [-1, 1] -> average-pool by `downsample`
    in space, Conv3d stack (`channels`, stride 2), global mean over (T, H, W), Linear -> `features`."""

    def __init__(self, channels: list[int], features: int, downsample: int, **_: Any):
        super().__init__()
        self.downsample = int(downsample)
        self.body = _conv_stack(nn.Conv3d, list(channels))
        self.head = _head(channels[-1], features)

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool3d(videos, (1, self.downsample, self.downsample))
        return self.head(self.body(x).mean(dim=(2, 3, 4)))


class TinyImageFeatures(nn.Module):
    """The FID Inception's contract at a tiny cost: uint8 (N, 3, H, W) -> bilinear resize to
    `input_size`, (x - 128) / 128, average-pool by `downsample`, Conv2d stack, global mean, Linear."""

    def __init__(self, channels: list[int], features: int, downsample: int, input_size: int):
        super().__init__()
        self.input_size, self.downsample = int(input_size), int(downsample)
        self.body = _conv_stack(nn.Conv2d, list(channels))
        self.head = _head(channels[-1], features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expects uint8 (N, 3, H, W) images, got {images.dtype} {tuple(images.shape)}")
        x = F.interpolate(images.float(), size=(self.input_size,) * 2, mode="bilinear", align_corners=False)
        x = F.avg_pool2d((x - 128) / 128, self.downsample)
        return self.head(self.body(x).mean(dim=(2, 3)))


def musiq(**config: Any) -> nn.Module:
    """pyiqa's MUSIQ (the class VBench's imaging quality loads), without pretrained weights."""
    from pyiqa.archs.musiq_arch import MUSIQ

    return MUSIQ(pretrained=False, **config)


def aesthetic_head(features: int) -> nn.Module:
    """The LAION aesthetic predictor's layout: one nn.Linear(features, 1) (keys weight, bias)."""
    return nn.Linear(features, 1)


TINY_NETS = {"i3d": TinyVideoFeatures, "inception": TinyImageFeatures, "musiq": musiq, "aesthetic": aesthetic_head}


def build_tiny_feature_net(folder: str | Path, kind: str, seed: int) -> dict:
    """Write the tiny random-weight `kind` net (seeded; byte-identical per seed) into `folder`."""
    from safetensors.torch import save_file

    config = tiny_config(kind)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TINY_NETS[kind](**{k: v for k, v in config.items() if k != "clip_frames"})
    folder = Path(folder)
    with atomic_path(folder / TINY_WEIGHTS) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    architecture = {"musiq": "pyiqa MUSIQ", "aesthetic": "nn.Linear (LAION head layout)"}.get(
        kind, TINY_NETS[kind].__name__)
    info = {"kind": kind, "architecture": architecture, "weights": TINY_WEIGHTS,
            "random_weights": True, "config": config, "seed": seed,
            "source": f"random init from dvd360/models/configs/tiny/{kind}.json (seed {seed})"}
    write_json(folder / INFO_FILE, info)
    return info


def write_paper_feature_net(folder: str | Path, kind: str, weights: str | Path, identity: dict | None = None) -> dict:
    """Copy a real `kind` weights file (`PAPER_FILES`) into `folder`, after loading it once; the
    folder names the file by registry name and sha256 (`identity`, default `registry_identity`),
    never by its path."""
    import shutil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _load_paper(kind, Path(weights))  # fails here, naming the file, if it does not fit
    shutil.copyfile(weights, folder / PAPER_FILES[kind])
    identity = identity or registry_identity(kind, folder / PAPER_FILES[kind])
    info = {"kind": kind, "architecture": PAPER_ARCHITECTURES[kind], "weights": PAPER_FILES[kind],
            "random_weights": False, "config": None, "source": identity["registry"] or "unregistered file",
            **identity}
    write_json(folder / INFO_FILE, info)
    return info


def _load_paper(kind: str, path: Path) -> nn.Module:
    if kind in QUALITY_KINDS:
        return _load_quality_paper(kind, path)
    if kind == "i3d":
        from cdfvd.third_party.i3d.pytorch_i3d import InceptionI3d

        net = InceptionI3d(400, in_channels=3)
        try:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except (RuntimeError, OSError, ValueError) as error:
            raise ValueError(f"{path}: not a Kinetics-400 InceptionI3d state dict ({error})") from error
        return net
    from torchmetrics.image.fid import NoTrainInceptionV3

    try:
        return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                  feature_extractor_weights_path=str(path))
    except (RuntimeError, OSError, ValueError) as error:
        raise ValueError(f"{path}: not torch-fidelity's FID Inception-v3 weights ({error})") from error


def _load_quality_paper(kind: str, path: Path) -> nn.Module:
    """MUSIQ-SPAQ or the LAION head from its released file, strictly (weights_only: no pickled code;
    pyiqa's own loader unpickles anything)."""
    from pyiqa.archs.arch_util import clean_state_dict

    net = musiq(num_class=1) if kind == "musiq" else aesthetic_head(LAION_EMBED_DIM)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(clean_state_dict(state.get("params", state)))
    except (RuntimeError, OSError, ValueError, AttributeError) as error:
        what = "pyiqa MUSIQ state dict" if kind == "musiq" else "LAION aesthetic head (Linear 768 -> 1) state dict"
        raise ValueError(f"{path}: not a {what} ({error})") from error
    return net


def random_paper_state(kind: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights (fp16: half the file) in the layout of the real `kind` file: cd-fvd's
    InceptionI3d(400), torchvision's Inception-v3 with 1008 classes and no aux head (whose keys
    are torch-fidelity's), MUSIQ at its full size, or the LAION head. For tests and full-size
    benchmarks without the real files."""
    import torchvision
    from cdfvd.third_party.i3d.pytorch_i3d import InceptionI3d

    builders = {"i3d": lambda: InceptionI3d(400),
                "inception": lambda: torchvision.models.inception_v3(weights=None, aux_logits=False,
                                                                     init_weights=True, num_classes=1008),
                "musiq": lambda: musiq(num_class=1), "aesthetic": lambda: aesthetic_head(LAION_EMBED_DIM)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = builders[kind]()
    return {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}


def build_stand_in_feature_nets(root: str | Path, kinds: tuple[str, ...], tiny: bool, seed: int = 0) -> Path:
    """Folders root/<kind> of random-weight nets for benchmarks: the tiny ones, or the real
    architectures at full size in the real files' layout (`random_paper_state`). Returns root."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        if tiny:
            build_tiny_feature_net(root / kind, kind, seed=seed)
        else:
            weights = root / f"{kind}{Path(PAPER_FILES[kind]).suffix}"
            torch.save(random_paper_state(kind, seed=seed), weights)
            write_paper_feature_net(root / kind, kind, weights)
    return root


def registry_identity(kind: str, path: str | Path) -> dict:
    """{"registry": the registry's `kind` scorer when the file passes its published check (else None),
    "sha256": the file's sha256}: how outputs name a real weights file."""
    from dvd360.models.download import digests
    from dvd360.models.store import HashMismatchError, check_file

    entry = load_registry().scorer(kind)
    sha256, blob = digests(path)
    try:
        check_file(entry.files[0], sha256, blob, Path(path).stat().st_size)
        name = entry.name if entry.files[0].check not in ("unverified", "hub_published") else None
    except HashMismatchError:
        name = None
    return {"registry": name, "sha256": sha256}


def feature_net_identity(folder: str | Path) -> dict:
    """What a score record says of a feature-net folder: {"name", "sha256", "random_weights"}
    (the registry name, or "tiny stand-in" / "unregistered file"; never its path)."""
    info = feature_net_info(folder)
    sha256 = info.get("sha256")
    if sha256 is None:
        from dvd360.provenance import sha256_of

        sha256 = sha256_of(Path(folder) / info["weights"])
    name = info.get("registry") or ("tiny stand-in" if info["random_weights"] else "unregistered file")
    return {"name": name, "sha256": sha256, "random_weights": bool(info["random_weights"])}


def feature_net_info(folder: str | Path) -> dict:
    """The folder's `features.json`; a clear error when the folder is not a feature-net folder."""
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the `models` stage (dvc repro models) first")
    info = json.loads(path.read_text(encoding="utf-8"))
    if info.get("kind") not in KINDS:
        raise ValueError(f"{path}: kind {info.get('kind')!r} is not one of {', '.join(KINDS)}")
    return info


def load_feature_net(folder: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The eval-mode, gradient-free feature net of a folder (tiny stand-in or real weights)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    info = feature_net_info(folder)
    if info["random_weights"]:
        config = {k: v for k, v in info["config"].items() if k != "clip_frames"}
        net = TINY_NETS[info["kind"]](**config)
        net.load_state_dict(load_file(str(folder / info["weights"])))
    else:
        net = _load_paper(info["kind"], folder / info["weights"])
    return net.to(device).eval().requires_grad_(False)
