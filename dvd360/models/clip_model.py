"""The CLIP model behind the CLIP metrics: a folder in open_clip's `local-dir:` layout.

A CLIP folder holds `open_clip_config.json` (model and preprocessing config),
`open_clip_model.safetensors` and `dvd360_clip.json` (what it is: name, seed, provenance).
- `tiny` profile: `build_tiny_clip(out_dir, seed)` makes a small random-weight CLIP from a
  config registered with `open_clip.add_model_config` (numbers from it exercise the pipeline
  and say nothing about quality).
- `paper` profile: `save_pretrained_clip("ViT-L-14-quickgelu/openai", out_dir)` stores the
  OpenAI weights in the same layout. Plain `ViT-L-14` with `openai` weights is refused: open_clip
  builds it with GELU while the weights were trained with QuickGELU.

`load_clip` loads such a folder (or a spec "ARCH/TAG" straight from open_clip) and does its own
preprocessing: the whole image is resized to the model's square input WITHOUT cropping
(open_clip's default transform centre-crops, which drops half of a 2:1 ERP), bilinear with
antialiasing, then normalised with the model's mean and std.

Batching and precision: `encode_images` runs the model on chunks of exactly `batch_size`
images (the last chunk padded with black images whose embeddings are dropped), so an image's
embedding depends only on the image, never on which images share its forward pass or where it
sits in the chunk (measured bit-identical on CPU; cuBLAS and oneDNN pick kernels by shape, so
a fixed shape is what makes the results batch-invariant). `precision` "fp16"/"bf16" runs the
towers under `torch.autocast` (CUDA); "auto" is fp16 on CUDA (closer to fp32 than bf16;
`python -m dvd360.benchmarks.metrics` measures the difference, docs/performance.md) and fp32
elsewhere. Embeddings always come back as float32 on the CPU.

Prompt truncation: open_clip's tokenizer keeps the start token, the first
`context_length - 2` BPE tokens (75 for CLIP's 77) and puts the end token last; everything
after is dropped. `ClipModel.is_truncated(prompt)` says whether a prompt lost tokens.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from dvd360.atomic import atomic_dir, write_json

MANIFEST = "dvd360_clip.json"
TINY_NAME = "dvd360-tiny-clip"
# A small ViT CLIP: 64x64 input, 16 patches, 2 layers per tower. open_clip derives the number
# of vision heads as width // 64, so the vision width must be a multiple of 64.
TINY_CONFIG = {
    "embed_dim": 64,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
BATCH = 32
PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


class ClipSpecError(ValueError):
    """A CLIP spec or folder that cannot be used (names the spec and the problem)."""


@dataclass
class ClipModel:
    """An open_clip model with its tokenizer and our no-crop preprocessing (eval mode, fp32)."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    image_size: int
    context_length: int
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    random_weights: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    batch_size: int = BATCH

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ClipSpecError(f"precision {self.precision!r}: use one of {', '.join(PRECISIONS)} or auto")
        if self.batch_size < 1:
            raise ClipSpecError(f"batch_size must be >= 1, got {self.batch_size}")

    def describe(self) -> dict:
        """What every CLIP score records about its model, and where and how it ran."""
        from dvd360.device import device_label

        return {"model": self.name, "input": f"{self.image_size}x{self.image_size}, resized without crop",
                "random_weights": self.random_weights,
                "prompt_truncation": f"first {self.context_length - 2} BPE tokens kept",
                "device": device_label(self.device), "precision": self.precision,
                "batch": f"{self.batch_size} images per forward (fixed shape)"}

    def _autocast(self):
        dtype = PRECISIONS[self.precision]
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def resize(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, S, S) float32 on the model's device, whole image (no crop)."""
        images = images.to(self.device, torch.float32)
        size = (self.image_size, self.image_size)
        if images.shape[-2:] != size:
            images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)
        return images

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, S, S): whole image resized (no crop), normalised."""
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        return (self.resize(images) - mean) / std

    @torch.inference_mode()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm image embeddings (N, D), float32 on the CPU, of images (N, 3, H, W) in [0, 1],
        in fixed-shape chunks of `batch_size` (see module doc)."""
        from dvd360.device import fixed_batches

        def embed(chunk: torch.Tensor) -> torch.Tensor:
            with self._autocast():
                return self.model.encode_image(self.preprocess(chunk), normalize=True).float()

        return fixed_batches(embed, images, self.batch_size)

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Unit-norm text embeddings (N, D), float32 on the CPU (prompts truncated as above), one
        prompt per forward so that a prompt's embedding never depends on the others."""
        embeddings = []
        for text in texts:
            with self._autocast():
                tokens = self.tokenizer([text]).to(self.device)
                embeddings.append(self.model.encode_text(tokens, normalize=True).float().cpu())
        return torch.cat(embeddings)

    def is_truncated(self, text: str) -> bool:
        """True when the prompt has more BPE tokens than the context keeps."""
        return len(self.tokenizer.encode(text)) > self.context_length - 2


def _write_folder(model: torch.nn.Module, model_cfg: dict, out_dir: Path, manifest: dict) -> Path:
    from safetensors.torch import save_file

    config = {"model_cfg": model_cfg,
              "preprocess_cfg": {"mean": list(OPENAI_MEAN), "std": list(OPENAI_STD)}}
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "open_clip_config.json", config)
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "open_clip_model.safetensors"))
        write_json(tmp / MANIFEST, manifest)
    return out_dir


def build_tiny_clip(out_dir: str | Path, seed: int = 0) -> Path:
    """Write the tiny random-weight CLIP (TINY_CONFIG, weights from `seed`) to `out_dir`."""
    import open_clip

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as config_dir:  # add_model_config reads it into memory
        write_json(Path(config_dir) / f"{TINY_NAME}.json", TINY_CONFIG)
        open_clip.add_model_config(config_dir)
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_NAME, pretrained=None)
    manifest = {"name": f"{TINY_NAME} (random weights, seed {seed})", "architecture": TINY_NAME,
                "seed": seed, "random_weights": True, "open_clip": open_clip.__version__}
    return _write_folder(model, TINY_CONFIG, out_dir, manifest)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """'ARCH/TAG' -> (ARCH, TAG); 'ARCH/random' or 'ARCH' -> (ARCH, None). Refuses ViT-L-14/openai."""
    arch, _, tag = spec.partition("/")
    tag = tag or None
    if tag == "random":
        tag = None
    if arch == "ViT-L-14" and tag == "openai":
        raise ClipSpecError(f"{spec!r}: open_clip builds ViT-L-14 with GELU but the OpenAI weights use "
                            "QuickGELU; use 'ViT-L-14-quickgelu/openai'")
    return arch, tag


def save_pretrained_clip(spec: str, out_dir: str | Path) -> Path:
    """Store a pretrained open_clip model (e.g. 'ViT-L-14-quickgelu/openai') as a CLIP folder."""
    import open_clip

    arch, tag = parse_spec(spec)
    model = open_clip.create_model(arch, pretrained=tag)
    manifest = {"name": spec, "architecture": arch, "pretrained": tag, "random_weights": tag is None,
                "open_clip": open_clip.__version__}
    return _write_folder(model, open_clip.get_model_config(arch), Path(out_dir), manifest)


def convert_openai_clip(weights: str | Path, out_dir: str | Path, spec: str, identity: dict) -> Path:
    """Store OpenAI's released CLIP file (a TorchScript archive, e.g. ViT-L-14.pt, or its plain
    state dict) as a CLIP folder of open_clip architecture `spec`'s ARCH, loaded strictly;
    `identity` ({"registry", "sha256"} of the file) goes into the manifest."""
    import warnings

    import open_clip

    arch, tag = parse_spec(spec)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            state = torch.jit.load(str(weights), map_location="cpu").state_dict()
    except RuntimeError:  # not TorchScript: a state dict
        state = torch.load(weights, map_location="cpu", weights_only=True)
    for key in ("input_resolution", "context_length", "vocab_size"):  # OpenAI's JIT extras, not parameters
        state.pop(key, None)
    model = open_clip.create_model(arch, pretrained=None)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ClipSpecError(f"{weights}: not OpenAI {arch} weights ({str(error)[:300]})") from error
    manifest = {"name": spec, "architecture": arch, "pretrained": tag, "random_weights": False,
                "open_clip": open_clip.__version__, **identity}
    return _write_folder(model, open_clip.get_model_config(arch), Path(out_dir), manifest)


def clip_identity(spec_or_dir: str | Path) -> dict:
    """What a score record says of the CLIP model: {"name", "sha256", "random_weights"} (the
    registry name, or the folder's model name / the open_clip spec; never a path)."""
    folder = Path(spec_or_dir)
    if not (folder / MANIFEST).is_file():
        return {"name": str(spec_or_dir), "sha256": None, "random_weights": parse_spec(str(spec_or_dir))[1] is None,
                "note": "open_clip spec: weights from open_clip's cache or the hub, file not hashed"}
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    sha256 = manifest.get("sha256")
    if sha256 is None:
        from dvd360.provenance import sha256_of

        sha256 = sha256_of(folder / "open_clip_model.safetensors")
    return {"name": manifest.get("registry") or manifest["name"], "sha256": sha256,
            "random_weights": bool(manifest.get("random_weights", False))}


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> fp16 on CUDA, fp32 elsewhere; any other value is kept (checked by ClipModel)."""
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    return precision


def load_clip(spec_or_dir: str | Path, device: str | torch.device = "cpu", precision: str = "auto",
              batch_size: int = BATCH) -> ClipModel:
    """Load a CLIP folder (see module doc) or an open_clip spec 'ARCH/TAG' ('ARCH/random': random weights).

    `device` may be "auto" (CUDA when there is one; the process's own GPU under torchrun).
    """
    import open_clip

    from dvd360.device import resolve_device

    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    folder = Path(spec_or_dir)
    if folder.is_dir():
        if not (folder / "open_clip_config.json").is_file() or not (folder / MANIFEST).is_file():
            raise ClipSpecError(f"{folder}: not a CLIP folder (needs open_clip_config.json and {MANIFEST}; "
                                "make one with build_tiny_clip or save_pretrained_clip)")
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        model_name = f"local-dir:{folder.resolve()}"
        model = open_clip.create_model(model_name, device=device)
        tokenizer = open_clip.get_tokenizer(model_name)
        name, random_weights = manifest["name"], bool(manifest.get("random_weights", False))
    else:
        spec = str(spec_or_dir)
        arch, tag = parse_spec(spec)
        if open_clip.get_model_config(arch) is None:
            raise ClipSpecError(f"{spec!r}: neither a CLIP folder nor a known open_clip architecture")
        model = open_clip.create_model(arch, pretrained=tag, device=device)
        tokenizer = open_clip.get_tokenizer(arch)
        name, random_weights = (spec if tag else f"{arch} (random weights)"), tag is None
    model.eval()
    image_size = model.visual.image_size
    image_size = image_size[0] if isinstance(image_size, (tuple, list)) else int(image_size)
    preprocess = getattr(model.visual, "preprocess_cfg", {}) or {}
    return ClipModel(model=model, tokenizer=tokenizer, name=name, image_size=image_size,
                     context_length=tokenizer.context_length,
                     mean=tuple(preprocess.get("mean", OPENAI_MEAN)), std=tuple(preprocess.get("std", OPENAI_STD)),
                     random_weights=random_weights, device=device, precision=precision, batch_size=batch_size)
