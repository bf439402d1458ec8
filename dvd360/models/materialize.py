"""Materialise every model of a profile into one local folder, and load it back.

Layout of a models folder (both profiles; everything downstream loads it with `load_components`):

    manifest.json                  what each piece is, its source, its sha256, its seed
    sd/{unet,vae,text_encoder,tokenizer,scheduler}/   diffusers Stable Diffusion 1.5 pieces
    motion_adapter/                diffusers MotionAdapter (AnimateDiff motion module)
    lora/panorama_lora.safetensors Kohya/A1111 LoRA (LatentLabs360 or its tiny stand-in)
    adapter_init/adapter.safetensors (+ adapter.json)  360-Adapter initialisation (B1's format)
    adapter_released/...           the authors' 360-Adapter, when given (paper profile)
    personalised/{name}/{unet,vae} personalised checkpoints (paper profile)
    clip/                          open_clip model for scoring (helper C's folder format)
    features/{i3d,inception}/      feature nets of the set metrics (`dvd360.models.feature_nets`)
    features/{musiq,aesthetic}/    scorers of the quality metrics (same module)

`tiny` builds random-weight models from the JSON configs in `configs/tiny/` with fixed seeds;
`paper` takes the released weights (hub ids or local files) and writes the same layout.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from pydantic import Field

from dvd360.atomic import write_json
from dvd360.hub import folder_or_hub, hub_folder
from dvd360.models import feature_nets, kohya_lora
from dvd360.models.registry import load_registry
from dvd360.models.tiny_configs import CONFIG_DIR, MAX_TOKENS, ddim_config, tiny_config, write_tiny_tokenizer
from dvd360.params_schema import StageSettings
from dvd360.provenance import MODEL_FILE_PACKAGES, sha256_of, versions

LORA_FILE = "lora/panorama_lora.safetensors"
ADAPTER_INIT_FILE = "adapter_init/adapter.safetensors"
ADAPTER_RELEASED_FILE = "adapter_released/adapter.safetensors"
SD_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
# Offsets added to the profile seed so every random piece has its own stream.
PIECE_SEEDS = {"unet": 0, "vae": 1, "text_encoder": 2, "motion_adapter": 3, "lora": 4,
               "adapter_init": 5, "clip": 6, "i3d": 7, "inception": 8, "musiq": 9,
               "aesthetic": 10}


class TinyModelsSettings(StageSettings):
    """params.yaml `models.tiny`: the seed of every random piece (`build_tiny`)."""

    seed: int


class PaperModelsSettings(StageSettings):
    """params.yaml `models.paper`: hub ids or local paths of every piece (`materialize_paper`);
    a piece the registry knows is taken from the model store when params name nothing there
    (`dvd360-eval models fetch`); the feature nets' files default to the store's copies."""

    sd15: str = Field(min_length=1)
    motion_adapter: str = Field(min_length=1)
    motion_adapter_config: str | None = None   # for an original .ckpt (None: v1.4's)
    lora: str = Field(min_length=1)
    personalised: dict[str, str] | None = None
    adapter_checkpoint: str | None = None
    clip: str = Field(min_length=1)
    i3d: str | None = None             # one per feature_nets.KINDS
    inception: str | None = None
    musiq: str | None = None
    aesthetic: str | None = None
    seed: int = 0                      # of the 360-Adapter initialisation


ModelsSettings = {"tiny": TinyModelsSettings, "paper": PaperModelsSettings}


@dataclass
class Components:
    """Everything a sampler or trainer needs, loaded from one models folder.

    `unet` is `UNetMotionModel.from_unet2d(unet, motion_adapter)`; all modules are in eval mode
    with gradients off. `clip_dir` is the open_clip folder for scoring (what
    `dvd360.models.clip_model.load_clip` takes), None when the folder has none.
    """

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    lora_path: Path | None
    adapter_init_path: Path | None
    clip_dir: Path | None
    manifest: dict[str, Any] = field(default_factory=dict)


class MissingPiecesError(FileNotFoundError):
    """Some weights of the paper profile are not available; the message lists all of them."""


def _piece(out_dir: Path, relative: str, kind: str, fmt: str, source: str, seed: int | None = None) -> dict:
    entry = {"path": relative, "kind": kind, "format": fmt, "source": source,
             "sha256": sha256_of(out_dir / relative)}
    if seed is not None:
        entry["seed"] = seed
    return entry


def _write_manifest(out_dir: Path, profile: str, seed: int | None, pieces: dict[str, dict]) -> dict:
    # Only the versions that shape the files: the folder's bytes do not follow unrelated packages.
    manifest = {"profile": profile, "seed": seed, "pieces": pieces,
                "versions": versions(MODEL_FILE_PACKAGES, python=False)}
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def _seeded(seed: int, build):
    """Run `build()` with torch's global RNG seeded (and restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _save_scheduler(folder: Path) -> None:
    from diffusers import DDIMScheduler

    DDIMScheduler.from_config(ddim_config()).save_pretrained(folder)


def build_tiny(out_dir: str | Path, seed: int = 0) -> dict[str, Any]:
    """Build the tiny profile's models with random weights into `out_dir`; return the manifest.

    Deterministic: the same seed gives byte-identical files (the manifest's sha256s match).
    """
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from dvd360.models.clip_model import build_tiny_clip
    from dvd360.models.adapter import Adapter360, save_adapter

    out_dir = Path(out_dir)
    sd = out_dir / "sd"
    seeds = {name: seed * 100 + offset for name, offset in PIECE_SEEDS.items()}
    source = f"random init from dvd360/models/configs/tiny/{{}}.json (seed {seed})"
    pieces: dict[str, dict] = {}

    tokenizer = CLIPTokenizer.from_pretrained(write_tiny_tokenizer(sd / "tokenizer"), model_max_length=MAX_TOKENS)
    pieces["tokenizer"] = _piece(out_dir, "sd/tokenizer", "CLIPTokenizer", "transformers",
                                 "vocab from dvd360/models/configs/tiny/tokenizer_words.txt")
    text_config = CLIPTextConfig(**tiny_config("text_encoder"), vocab_size=len(tokenizer),
                                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                 pad_token_id=tokenizer.pad_token_id)
    models = {
        "unet": _seeded(seeds["unet"], lambda: UNet2DConditionModel(**tiny_config("unet"))),
        "vae": _seeded(seeds["vae"], lambda: AutoencoderKL(**tiny_config("vae"))),
        "text_encoder": _seeded(seeds["text_encoder"], lambda: CLIPTextModel(text_config)),
    }
    for name, model in models.items():
        model.save_pretrained(sd / name)
        pieces[name] = _piece(out_dir, f"sd/{name}", type(model).__name__, "diffusers" if name != "text_encoder"
                              else "transformers", source.format(name), seeds[name])
    _save_scheduler(sd / "scheduler")
    pieces["scheduler"] = _piece(out_dir, "sd/scheduler", "DDIMScheduler", "diffusers",
                                 "dvd360/models/configs/ddim.json")

    motion = _seeded(seeds["motion_adapter"], lambda: MotionAdapter(**tiny_config("motion_adapter")))
    motion.save_pretrained(out_dir / "motion_adapter")
    pieces["motion_adapter"] = _piece(out_dir, "motion_adapter", "MotionAdapter", "diffusers",
                                      source.format("motion_adapter"), seeds["motion_adapter"])

    lora = tiny_config("lora")
    tensors = kohya_lora.random_kohya_lora(
        {"unet": models["unet"], "text_encoder": models["text_encoder"]},
        {"unet": lora["unet_targets"], "text_encoder": lora["text_encoder_targets"]},
        rank=lora["rank"], alpha=lora["alpha"], up_std=lora["up_std"], seed=seeds["lora"])
    kohya_lora.save_kohya_lora(out_dir / LORA_FILE, tensors)
    pieces["lora"] = _piece(out_dir, LORA_FILE, "panorama LoRA (stand-in for LatentLabs360)",
                            "kohya-safetensors", source.format("lora"), seeds["lora"])

    channels = tuple(tiny_config("unet")["block_out_channels"])
    adapter = _seeded(seeds["adapter_init"], lambda: Adapter360(channels=channels))
    save_adapter(adapter, out_dir / ADAPTER_INIT_FILE)
    pieces["adapter_init"] = _piece(out_dir, "adapter_init", "Adapter360 initialisation", "dvd360-adapter",
                                    f"random init Adapter360(channels={list(channels)}) (seed {seed})",
                                    seeds["adapter_init"])

    # build_tiny_clip seeds torch's global RNG itself; _seeded restores it afterwards
    _seeded(seeds["clip"], lambda: build_tiny_clip(out_dir / "clip", seed=seeds["clip"]))
    pieces["clip"] = _piece(out_dir, "clip", "open_clip model for scoring", "open_clip",
                            "dvd360.models.clip_model.build_tiny_clip", seeds["clip"])
    for kind in feature_nets.KINDS:
        info = feature_nets.build_tiny_feature_net(out_dir / "features" / kind, kind, seeds[kind])
        pieces[kind] = _piece(out_dir, f"features/{kind}", f"{feature_nets.ROLES[kind]} (tiny stand-in)",
                              "dvd360-feature-net", info["source"], seeds[kind])
    return _write_manifest(out_dir, "tiny", seed, pieces)


def load_components(models_dir: str | Path, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32, personalised: str | None = None) -> Components:
    """Load a models folder: UNetMotionModel (SD UNet + motion adapter), VAE, text encoder,
    tokenizer, DDIM scheduler, and the paths of the LoRA, adapter init and CLIP model.

    `personalised` names a checkpoint under `personalised/` whose UNet and VAE replace SD 1.5's
    (the text encoder stays SD 1.5's).
    """
    from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    models_dir = Path(models_dir)
    manifest_file = models_dir / "manifest.json"
    if not manifest_file.is_file():
        raise FileNotFoundError(f"{manifest_file}: missing; run the `models` stage (dvc repro models) first")
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    sd = models_dir / "sd"
    unet_dir, vae_dir = sd / "unet", sd / "vae"
    if personalised is not None:
        known = sorted(p.name for p in (models_dir / "personalised").glob("*") if p.is_dir())
        if personalised not in known:
            raise KeyError(f"{models_dir}: no personalised checkpoint {personalised!r}; "
                           f"available: {', '.join(known) or 'none'}")
        unet_dir, vae_dir = (models_dir / "personalised" / personalised / part for part in ("unet", "vae"))
    unet = UNetMotionModel.from_unet2d(UNet2DConditionModel.from_pretrained(unet_dir),
                                       MotionAdapter.from_pretrained(models_dir / "motion_adapter"))
    modules = {"unet": unet, "vae": AutoencoderKL.from_pretrained(vae_dir),
               "text_encoder": CLIPTextModel.from_pretrained(sd / "text_encoder")}
    for module in modules.values():
        module.to(device=device).eval().requires_grad_(False)
        if dtype != next(module.parameters()).dtype:
            module.to(dtype=dtype)
    clip = manifest.get("pieces", {}).get("clip")
    lora, adapter_init = models_dir / LORA_FILE, models_dir / ADAPTER_INIT_FILE
    return Components(
        **modules,
        tokenizer=CLIPTokenizer.from_pretrained(sd / "tokenizer", model_max_length=MAX_TOKENS),
        scheduler=DDIMScheduler.from_pretrained(sd / "scheduler"),
        lora_path=lora if lora.is_file() else None,
        adapter_init_path=adapter_init if adapter_init.is_file() else None,
        clip_dir=models_dir / clip["path"] if clip else None, manifest=manifest)


# -- paper profile ----------------------------------------------------------------------------
MOTION_V14_CONFIG = CONFIG_DIR / "motion_adapter_v1_4.json"
CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _files(piece: str, required: bool = True) -> tuple[str, ...]:
    """The registry's files of a piece's model (the required ones, or all of them)."""
    entry = load_registry().by_piece(piece)
    return tuple(f.path for f in (entry.required_files if required else entry.files))


SD_FILES, SD_PATTERNS = _files("sd15"), _files("sd15", required=False)
MOTION_FILES = _files("motion_adapter")


def where(piece: str, path: str | Path | None = None) -> str:
    """How to get a piece, from the registry: the fetch command (or the manual way) and where to
    save a local copy instead."""
    from dvd360.models.store import fetch_command

    entry = load_registry().by_piece(piece)
    if entry is None:  # a personalised checkpoint the registry does not know
        return f"a single-file SD 1.5 checkpoint; save it at {path}, or drop it from models.paper.{piece}"
    first = entry.required_files[0]
    how = (f"`{fetch_command([entry.name])}` (the model store; from {entry.source_text()})" if entry.automatic
           else f"{first.manual}, then `dvd360-eval models import DIR`")
    local = f"or save it at {path}" if path is not None else f"or set models.paper.{piece} to a local copy"
    return f"{entry.title}: {how}; {local}"


def _stored(piece: str, value: str | None) -> Path | None:
    """The model store's copy of a piece the registry knows (its folder for a diffusers model, else
    its file), when the store holds it; a hub model only when params name the registry's repo."""
    from dvd360.models.store import Store

    entry = load_registry().by_piece(piece)
    if entry is None or (entry.hub_repo is not None and value != entry.hub_repo):
        return None
    store = Store()
    if not store.present(entry.name):
        return None
    return store.model_dir(entry.name) if entry.kind == "diffusers" else store.path(entry.name)


def check_paper_sources(settings: PaperModelsSettings) -> dict[str, Any]:
    """Find every piece `models.paper` names, before anything is loaded.

    Returns {"sd15": folder, "motion_adapter": folder or checkpoint file, "lora": file,
    "personalised": {name: file}, "adapter_checkpoint": file or None, "clip": folder or spec,
    "i3d": file, "inception": file, "musiq": file, "aesthetic": file}.
    Raises MissingPiecesError listing every missing piece, where it comes from and where to put it.
    """
    from dvd360.models.clip_model import parse_spec

    found: dict[str, Any] = {"personalised": {}}
    problems: list[str] = []

    def missing(name: str, problem: str, path: str | Path | None = None) -> None:
        problems.append(f"- {name}: {problem}\n    get it: {where(name, path)}")

    def stored_file(piece: str, value: str | None) -> Path | None:
        """A local file a piece names, else the model store's copy, else None."""
        if value is not None and Path(value).is_file():
            return Path(value)
        return _stored(piece, value)

    found["sd15"] = _stored("sd15", settings.sd15)
    if found["sd15"] is None:
        found["sd15"], problem = folder_or_hub(settings.sd15, SD_PATTERNS, SD_FILES)
        if problem:
            missing("sd15", problem)
    motion = settings.motion_adapter
    found["motion_adapter"] = Path(motion) if Path(motion).is_file() else _stored("motion_adapter", motion)
    if found["motion_adapter"] is None:
        found["motion_adapter"], problem = folder_or_hub(motion, MOTION_FILES, MOTION_FILES)
        if problem:
            missing("motion_adapter", problem)
    lora = stored_file("lora", settings.lora) or Path(settings.lora)
    try:
        kohya_lora.check_kohya_lora(lora)
        found["lora"] = lora
    except kohya_lora.KohyaLoraError as error:
        missing("lora", str(error), path=settings.lora)
    for name, path in (settings.personalised or {}).items():
        found["personalised"][name] = stored_file(f"personalised.{name}", path)
        if found["personalised"][name] is None:
            missing(f"personalised.{name}", f"{path}: no such file", path=path)
    checkpoint = settings.adapter_checkpoint
    found["adapter_checkpoint"] = stored_file("adapter_checkpoint", checkpoint) if checkpoint else None
    if checkpoint and found["adapter_checkpoint"] is None:
        missing("adapter_checkpoint", f"{checkpoint}: no such file", path=checkpoint)
    for kind in feature_nets.KINDS:
        found[kind] = stored_file(kind, getattr(settings, kind))
        if found[kind] is None:
            given = getattr(settings, kind)
            missing(kind, f"{given}: no such file" if given else "not in the model store", path=given)
    clip = settings.clip
    stored_clip = _stored("clip", clip) if clip == load_registry().by_piece("clip").open_clip else None
    if Path(clip).is_dir():
        found["clip"] = Path(clip)
    elif stored_clip is not None:
        from dvd360.models.scoring_models import convert
        from dvd360.models.store import Store

        found["clip"] = convert(Store(), load_registry().by_piece("clip"))
    else:
        import open_clip

        arch, tag = parse_spec(clip)
        repo = (open_clip.get_pretrained_cfg(arch, tag).get("hf_hub") or "").rstrip("/")
        folder, problem = hub_folder(repo, CLIP_FILES[:1], CLIP_FILES[:1]) if repo else (None, f"{clip}: no hub weights")
        found["clip"] = clip
        if folder is None:
            missing("clip", problem)
    if problems:
        raise MissingPiecesError(f"the paper profile is missing {len(problems)} piece(s):\n" + "\n".join(problems))
    return found


def motion_adapter_from_original(path: str | Path, config: Mapping[str, Any]):
    """A MotionAdapter from an original AnimateDiff checkpoint (`mm_sd_v14.ckpt` layout:
    `down_blocks.0.motion_modules.0.temporal_transformer...attention_blocks.0...`), renamed by
    diffusers' own converter and loaded strictly: any missing or unexpected key raises, except the
    position tables `pos_embed.pe`, which the original keeps under other names and diffusers computes)."""
    from diffusers import MotionAdapter
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    adapter = MotionAdapter(**config)
    converted = convert_animatediff_checkpoint_to_diffusers(state)
    result = adapter.load_state_dict(converted, strict=False)
    # The original stores its sinusoidal position tables as `...attention_blocks.{0,1}.pos_encoder.pe`,
    # which the converter drops; MotionAdapter builds the same table (`pos_embed.pe` buffer) itself.
    missing = [key for key in result.missing_keys if not key.endswith(".pos_embed.pe")]
    if missing or result.unexpected_keys:
        raise ValueError(f"{path}: does not match MotionAdapter({dict(config)}): "
                         f"missing {missing[:5]}, unexpected {result.unexpected_keys[:5]} "
                         f"({len(missing)} missing, {len(result.unexpected_keys)} unexpected)")
    return adapter


def materialize_paper(out_dir: str | Path, settings: PaperModelsSettings) -> dict[str, Any]:
    """Write the paper profile's models into `out_dir` (layout of the module docstring); return
    the manifest. Sources are checked first (`check_paper_sources`); no hub lookups after that."""
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from dvd360.models.clip_model import save_pretrained_clip
    from dvd360.models.adapter import Adapter360, load_released_checkpoint, save_adapter

    sources = check_paper_sources(settings)
    out_dir = Path(out_dir)
    sd, seed = out_dir / "sd", settings.seed
    pieces: dict[str, dict] = {}
    loaders = {"unet": UNet2DConditionModel, "vae": AutoencoderKL, "text_encoder": CLIPTextModel}
    for name, cls in loaders.items():
        cls.from_pretrained(sources["sd15"] / name).save_pretrained(sd / name)
        pieces[name] = _piece(out_dir, f"sd/{name}", cls.__name__, "diffusers" if name != "text_encoder"
                              else "transformers", f"{settings.sd15}/{name}")
    CLIPTokenizer.from_pretrained(sources["sd15"] / "tokenizer", model_max_length=MAX_TOKENS).save_pretrained(sd / "tokenizer")
    pieces["tokenizer"] = _piece(out_dir, "sd/tokenizer", "CLIPTokenizer", "transformers", f"{settings.sd15}/tokenizer")
    _save_scheduler(sd / "scheduler")
    pieces["scheduler"] = _piece(out_dir, "sd/scheduler", "DDIMScheduler", "diffusers", "dvd360/models/configs/ddim.json")

    if sources["motion_adapter"].is_file():
        config_file = Path(settings.motion_adapter_config or MOTION_V14_CONFIG)
        motion = motion_adapter_from_original(sources["motion_adapter"], json.loads(config_file.read_text()))
    else:
        motion = MotionAdapter.from_pretrained(sources["motion_adapter"])
    motion.save_pretrained(out_dir / "motion_adapter")
    pieces["motion_adapter"] = _piece(out_dir, "motion_adapter", "MotionAdapter", "diffusers",
                                      settings.motion_adapter)

    (out_dir / LORA_FILE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sources["lora"], out_dir / LORA_FILE)
    pieces["lora"] = _piece(out_dir, LORA_FILE, "panorama LoRA (LatentLabs360)", "kohya-safetensors",
                            settings.lora)

    for name, path in sources["personalised"].items():
        folder = out_dir / "personalised" / name
        for part, cls in (("unet", UNet2DConditionModel), ("vae", AutoencoderKL)):
            cls.from_single_file(str(path), config=str(sd), subfolder=part,
                                 local_files_only=True).save_pretrained(folder / part)
        pieces[f"personalised.{name}"] = _piece(out_dir, f"personalised/{name}", "personalised UNet + VAE",
                                                "diffusers", str(path))

    channels = tuple(UNet2DConditionModel.load_config(sd / "unet")["block_out_channels"])
    save_adapter(_seeded(seed, lambda: Adapter360(channels=channels)), out_dir / ADAPTER_INIT_FILE)
    pieces["adapter_init"] = _piece(out_dir, "adapter_init", "Adapter360 initialisation", "dvd360-adapter",
                                    f"random init Adapter360(channels={list(channels)}) (seed {seed})", seed)
    if sources["adapter_checkpoint"] is not None:
        save_adapter(load_released_checkpoint(sources["adapter_checkpoint"], channels=channels),
                     out_dir / ADAPTER_RELEASED_FILE)
        pieces["adapter_released"] = _piece(out_dir, "adapter_released", "released 360-Adapter",
                                            "dvd360-adapter", str(sources["adapter_checkpoint"]))

    if isinstance(sources["clip"], Path):
        shutil.copytree(sources["clip"], out_dir / "clip")
    else:
        save_pretrained_clip(sources["clip"], out_dir / "clip")
    pieces["clip"] = _piece(out_dir, "clip", "open_clip model for scoring", "open_clip", settings.clip)
    for kind in feature_nets.KINDS:
        feature_nets.write_paper_feature_net(out_dir / "features" / kind, kind, sources[kind])
        pieces[kind] = _piece(out_dir, f"features/{kind}", feature_nets.ROLES[kind], "dvd360-feature-net",
                              str(sources[kind]))
    return _write_manifest(out_dir, "paper", seed, pieces)
