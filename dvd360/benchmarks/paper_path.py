"""The `paper` profile's loading code, end to end, at full size with random weights.

    python -m dvd360.benchmarks.paper_path [--workdir DIR] [--dtype bfloat16] [--steps N]   # GPU
    python -m dvd360.benchmarks.paper_path --tiny [--workdir DIR]                           # CPU

What a user with the real downloads runs, on stand-ins in the same formats and sizes:

1. Sources (`WORKDIR/sources`, random weights, seed 0, fp16 on disk at full size), built by
   `dvd360.benchmarks.sampler.build_full_size` (`--tiny`: its `build_tiny`):
   - `sd15/`: a diffusers Stable Diffusion 1.5 folder (unet, vae, text_encoder = CLIP ViT-L/14's
     text tower, 768 wide, 12 layers; tokenizer = the tiny offline vocabulary; scheduler);
   - `mm_sd_v14.ckpt`: the motion module in AnimateDiff's original layout (a pickled dict,
     `...motion_modules.{j}.temporal_transformer.transformer_blocks.{k}.attention_blocks.{0,1}...`
     with `pos_encoder.pe`);
   - `LatentLabs360.safetensors`: a Kohya LoRA (UNet attention and feed-forward Linears, the
     1x1-conv `proj_in`/`proj_out`, text-encoder attention and MLP);
   - `personalised.safetensors`: an A1111 single file (`model.diffusion_model.*`,
     `first_stage_model.*`, `cond_stage_model.transformer.*`) of SD 1.5 with every weight moved
     by N(0, 0.01^2), a stand-in fine-tune;
   - `360Adapter_flow_v1.ckpt`: `{"state_dict": {"module.<key>": fp32 tensor}}` (DDP prefix);
   - `clip/`: the tiny open_clip folder (scoring is not part of this run).
2. `check_paper_sources` and `materialize_paper` with `models.paper` settings pointing at them,
   into `WORKDIR/models`.
3. The generate stage's loader (`dvd360.generate._load`: `load_components`, LoRA, adapter) and
   `Panorama360Pipeline` with params.yaml `generate.paper` (512x1024, 16 frames, 25 DDIM steps,
   CFG 7.5, dtype float16 unless `--dtype`): method D with the released adapter (condition:
   uniform noise in [-1, 1], seed 0), method C (LoRA weight 1), and method D on the personalised
   UNet + VAE. Frames stay in memory: no mp4 is written, so `av` is not needed.
4. Checks: frames (F, H, W, 3) uint8 and finite latents for each video; the loaded UNet, VAE,
   text encoder, motion module and adapter equal the written weights (the personalised run: its
   UNet and VAE, SD 1.5's text encoder); the released checkpoint loaded strictly; the LoRA at
   weight 1 changes the sample against weight 0 (same seed, 64x128, 2 frames, 2 steps).

Prints seconds per phase, per video and per denoising step, and peak GiB (CUDA max allocated,
reset per video; CPU: process peak RSS). Exit status 1 when a check fails. Random weights: the
figures measure cost, not quality. The default work folder is temporary (removed at the end);
`--workdir` keeps everything (full size: about 5 GB of sources and 10 GB of models).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

SEED = 0
PROMPT = "a panoramic view of hot-air balloons over a green field under a cloudy blue sky"
PERSONALISED = "random_finetune"
PERSONALISED_STD = 0.01  # absolute N(0, std^2) moved onto every weight of the stand-in fine-tune
# Kohya's LoRA for SD 1.x (networks/lora.py) targets the Linears of every Transformer2DModel and
# its 1x1-conv proj_in/proj_out, and the text encoder's attention and MLP Linears.
LORA_LINEARS = ["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k",
                "attn2.to_v", "attn2.to_out.0", "ff.net.0.proj", "ff.net.2"]
LORA_CONVS = ["proj_in", "proj_out"]
LORA_TEXT = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
             "mlp.fc1", "mlp.fc2"]
LORA_FULL = {"rank": 32, "alpha": 16.0, "up_std": 0.05}
LORA_TINY = {"rank": 4, "alpha": 4.0, "up_std": 0.05}
LORA_CHECK = {"height": 64, "width": 128, "frames": 2, "steps": 2, "decode_chunk_size": 2}
TINY_VIDEO = {"height": 64, "width": 256, "frames": 4, "steps": 3, "decode_chunk_size": 4}


# -- diffusers -> original layouts -------------------------------------------------------------
# diffusers only converts original checkpoints *to* its layout (single_file_utils); the inverse
# below is hand-written so the stand-ins can be saved in the layouts users download.
RESNET_LDM = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
              ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
VAE_ATTENTION_LDM = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."),
                     ("to_out.0.", "proj_out.")]


def _ldm_unet_prefixes(config: dict) -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) pairs of SD's original UNet (`model.diffusion_model.`):
    input block n = 1 + (L+1) i + j holds down block i's layer j (`.0` resnet, `.1` attention),
    (L+1)(i+1) its downsampler; output block (L+1) i + j holds up block i's layer j, and its last
    layer the upsampler (at `.2` after an attention, else `.1`)."""
    layers, blocks = config["layers_per_block"], len(config["block_out_channels"])
    pairs = [("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
             ("conv_in.", "input_blocks.0.0."), ("conv_norm_out.", "out.0."), ("conv_out.", "out.2."),
             ("mid_block.attentions.0.", "middle_block.1."), ("mid_block.resnets.0.", "middle_block.0."),
             ("mid_block.resnets.1.", "middle_block.2.")]
    for i in range(blocks):
        for j in range(layers):
            pairs += [(f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{(layers + 1) * i + j + 1}.0."),
                      (f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{(layers + 1) * i + j + 1}.1.")]
        pairs.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(layers + 1) * (i + 1)}.0.op."))
        attention = "CrossAttn" in config["up_block_types"][i]
        for j in range(layers + 1):
            pairs += [(f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{(layers + 1) * i + j}.0."),
                      (f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{(layers + 1) * i + j}.1.")]
        upsampler = f"output_blocks.{(layers + 1) * i + layers}.{2 if attention else 1}."
        pairs.append((f"up_blocks.{i}.upsamplers.0.", upsampler))
    return pairs


def ldm_unet_state(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """A diffusers UNet2DConditionModel state dict in SD's original names (`model.diffusion_model.*`)."""
    pairs = _ldm_unet_prefixes(config)
    out = {}
    for key, value in state.items():
        matches = [p for p in pairs if key.startswith(p[0])]
        if not matches:
            raise KeyError(f"UNet key {key!r} has no original SD name")
        ours, theirs = max(matches, key=lambda p: len(p[0]))
        rest = key[len(ours):]
        if ".resnets." in ours:
            rest = next((rest.replace(a, b, 1) for a, b in RESNET_LDM if rest.startswith(a + ".")), rest)
        out[f"model.diffusion_model.{theirs}{rest}"] = value
    return out


def ldm_vae_state(state: dict[str, torch.Tensor], blocks: int) -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL state dict in SD's original names (`first_stage_model.*`; decoder
    up blocks in reverse order, mid attention as 1x1 convs)."""
    out = {}
    for key, value in state.items():
        new = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        new = new.replace("mid_block.attentions.0.", "mid.attn_1.")
        new = new.replace("mid_block.resnets.0.", "mid.block_1.").replace("mid_block.resnets.1.", "mid.block_2.")
        for i in range(blocks):
            new = new.replace(f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block.")
            new = new.replace(f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.")
            new = new.replace(f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{blocks - 1 - i}.block.")
            new = new.replace(f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{blocks - 1 - i}.upsample.")
        if ".attn_1." in new:
            new = next(new.replace(a, b) for a, b in VAE_ATTENTION_LDM if a in new)
            value = value[..., None, None] if value.ndim == 2 else value
        out[f"first_stage_model.{new}"] = value
    return out


def ldm_text_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers CLIPTextModel state dict in SD's names (`cond_stage_model.transformer.text_model.*`;
    transformers 5 drops the `text_model.` level, SD files have it)."""
    return {f"cond_stage_model.transformer.{k if k.startswith('text_model.') else 'text_model.' + k}": v
            for k, v in state.items()}


def original_motion_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers MotionAdapter keys -> AnimateDiff's `mm_sd_v14.ckpt` names. The sinusoidal table
    diffusers keeps once per transformer block (`pos_embed.pe`, (1, max_len, dim)) is stored by
    the original in each of its two attention blocks (`attention_blocks.{0,1}.pos_encoder.pe`)."""
    out = {}
    for key, value in state.items():
        head, _, rest = key.partition(".motion_modules.")
        index, _, inner = rest.partition(".")
        stem = f"{head}.motion_modules.{index}.temporal_transformer."
        if inner.endswith(".pos_embed.pe"):
            block = inner.removesuffix("pos_embed.pe")
            for attention in (0, 1):
                out[f"{stem}{block}attention_blocks.{attention}.pos_encoder.pe"] = value.clone()
            continue
        inner = (inner.replace(".attn1.", ".attention_blocks.0.").replace(".attn2.", ".attention_blocks.1.")
                 .replace(".norm1.", ".norms.0.").replace(".norm2.", ".norms.1.").replace(".norm3.", ".ff_norm."))
        out[stem + inner] = value
    return out


# -- writing the sources -----------------------------------------------------------------------
def split_unet(unet_motion, unet_config: dict):
    """A UNetMotionModel -> (its UNet2DConditionModel, its MotionAdapter state dict): the motion
    modules are the `*.motion_modules.*` keys, every other key is SD's UNet under the same name."""
    from diffusers import UNet2DConditionModel

    state = unet_motion.state_dict()
    motion = {k: v for k, v in state.items() if ".motion_modules." in k}
    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_config)
    unet.load_state_dict({k: v for k, v in state.items() if k not in motion}, strict=True, assign=True)
    return unet, motion


def conv1x1_lora(model: torch.nn.Module, targets: list[str], *, rank: int, alpha: float, up_std: float,
                 seed: int) -> dict[str, torch.Tensor]:
    """Kohya LoRA tensors for the 1x1 Conv2d modules of the UNet named `*{target}`: down
    (rank, in, 1, 1) ~ N(0, 1/in), up (out, rank, 1, 1) ~ N(0, up_std^2) (as
    `kohya_lora.random_kohya_lora` does for Linears, which is all it covers)."""
    from dvd360.models.kohya_lora import PREFIXES, kohya_key

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, conv in model.named_modules():
        if isinstance(conv, torch.nn.Conv2d) and conv.kernel_size == (1, 1) and any(name.endswith(t) for t in targets):
            key = kohya_key(PREFIXES["unet"], name)
            down = torch.randn(rank, conv.in_channels, 1, 1, generator=generator) / conv.in_channels ** 0.5
            tensors[f"{key}.lora_down.weight"] = down
            tensors[f"{key}.lora_up.weight"] = torch.randn(conv.out_channels, rank, 1, 1, generator=generator) * up_std
            tensors[f"{key}.alpha"] = torch.tensor(float(alpha))
    return tensors


def perturbed(state: dict[str, torch.Tensor], std: float, seed: int,
              device: torch.device = torch.device("cpu")) -> dict[str, torch.Tensor]:
    """Every tensor plus N(0, std^2) noise from one seeded generator on `device` (key order), same
    dtype, returned on the CPU."""
    generator = torch.Generator(device).manual_seed(seed)
    return {k: (v.to(device, torch.float32) + torch.randn(v.shape, generator=generator, device=device) * std)
            .to(v.dtype).cpu() for k, v in state.items()}


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def write_sources(parts: dict, adapter, out: Path, *, unet_config: dict, motion_config: Path | None,
                  lora: dict) -> tuple[Any, dict[str, dict[str, torch.Tensor]]]:
    """Write the sources (module docstring) from built components; return (`models.paper`
    settings pointing at them, the state dicts written: what loading must give back)."""
    from safetensors.torch import save_file

    from dvd360.models.materialize import PaperModelsSettings

    from dvd360.models.clip_model import build_tiny_clip
    from dvd360.models import kohya_lora
    from dvd360.models.tiny_configs import write_tiny_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    sd = out / "sd15"
    unet, motion = split_unet(parts["unet"], unet_config)
    unet.save_pretrained(sd / "unet")
    for name in ("vae", "text_encoder", "scheduler"):
        parts[name].save_pretrained(sd / name)
    # vocab.json + merges.txt as in the hub's SD 1.5 folder (transformers 5's save_pretrained
    # writes only tokenizer.json); the same vocabulary as the built tokenizer
    write_tiny_tokenizer(sd / "tokenizer")
    expected = {"unet": _cpu(unet.state_dict()), "motion": _cpu(motion), "vae": _cpu(parts["vae"].state_dict()),
                "text_encoder": _cpu(parts["text_encoder"].state_dict())}

    torch.save(original_motion_state(expected["motion"]), out / "mm_sd_v14.ckpt")

    tensors = kohya_lora.random_kohya_lora(
        {"unet": unet, "text_encoder": parts["text_encoder"]}, {"unet": LORA_LINEARS, "text_encoder": LORA_TEXT},
        seed=SEED + 4, **lora)
    tensors.update(conv1x1_lora(unet, LORA_CONVS, seed=SEED + 5, **lora))
    kohya_lora.save_kohya_lora(out / "LatentLabs360.safetensors", tensors)

    for offset, name in enumerate(("unet", "vae", "text_encoder")):
        expected[f"personalised_{name}"] = perturbed(expected[name], PERSONALISED_STD, SEED + 10 + offset,
                                                     next(parts["unet"].parameters()).device)
    single = {**ldm_unet_state(expected["personalised_unet"], dict(unet.config)),
              **ldm_vae_state(expected["personalised_vae"], len(parts["vae"].config.block_out_channels)),
              **ldm_text_state(expected["personalised_text_encoder"])}
    save_file(single, str(out / "personalised.safetensors"))

    expected["adapter"] = {k: v.float() for k, v in _cpu(adapter.state_dict()).items()}
    torch.save({"state_dict": {f"module.{k}": v for k, v in expected["adapter"].items()}},
               out / "360Adapter_flow_v1.ckpt")
    build_tiny_clip(out / "clip", seed=SEED)
    from dvd360.models.feature_nets import PAPER_FILES, random_paper_state

    for kind, name in PAPER_FILES.items():  # the set metrics' nets, in the real files' layout
        torch.save(random_paper_state(kind, seed=SEED), out / name)
    settings = PaperModelsSettings(
        sd15=str(sd), motion_adapter=str(out / "mm_sd_v14.ckpt"),
        motion_adapter_config=None if motion_config is None else str(motion_config),
        lora=str(out / "LatentLabs360.safetensors"), personalised={PERSONALISED: str(out / "personalised.safetensors")},
        adapter_checkpoint=str(out / "360Adapter_flow_v1.ckpt"), clip=str(out / "clip"),
        **{kind: str(out / name) for kind, name in PAPER_FILES.items()}, seed=SEED)
    return settings, expected


# -- loading, generating, checking -------------------------------------------------------------
@contextmanager
def _phase(timings: dict[str, float], name: str, device: torch.device):
    from dvd360.benchmarks.sampler import _sync

    _sync(device)
    start = time.perf_counter()
    yield
    _sync(device)
    timings[name] = round(time.perf_counter() - start, 3)


def _mismatches(module: torch.nn.Module, expected: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensors of `expected` that differ from the module's tensor of that name, in
    the module's dtype (under a LoRA, PEFT keeps the original weight as `<module>.base_layer.<name>`)."""
    state = module.state_dict()

    def found(key: str) -> torch.Tensor:
        parent, _, leaf = key.rpartition(".")
        return state[key] if key in state else state[f"{parent}.base_layer.{leaf}"]

    return [k for k, v in expected.items() if not torch.equal(found(k), v.to(found(k).device, found(k).dtype))]


def _video(pipe, adapter, method, settings, condition) -> Any:
    return pipe(PROMPT, seed=SEED, steps=settings.steps, guidance=settings.guidance, height=settings.height,
                width=settings.width, num_frames=settings.frames, negative_prompt=settings.negative_prompt,
                condition=condition if method.condition == "clip" else None, adapter=adapter,
                latent_rotation=method.latent_rotation, circular_padding=method.circular_padding,
                decode_chunk_size=settings.decode_chunk_size)


def run_videos(models_dir: Path, settings, device: torch.device, dtype: str,
               expected: dict[str, dict[str, torch.Tensor]]) -> tuple[dict, dict, dict]:
    """Method D (released adapter), C (LoRA 1) and D on the personalised model, each loaded by the
    generate stage's loader; returns (per-video figures, checks, details)."""
    from dvd360.generate import DTYPES, _load
    from dvd360.methods import get_method
    from dvd360.models.materialize import ADAPTER_RELEASED_FILE, LORA_FILE

    condition = torch.rand(settings.frames, 3, settings.height, settings.width,
                           generator=torch.Generator().manual_seed(SEED)) * 2 - 1
    released = models_dir / ADAPTER_RELEASED_FILE
    runs = {"D": (get_method("D"), None), "C": (get_method("C"), None),
            f"D+{PERSONALISED}": (get_method("D"), PERSONALISED)}
    videos, checks, details = {}, {}, {}
    for name, (method, personalised) in runs.items():
        timings: dict[str, float] = {}
        with _phase(timings, "load", device):
            pipe, adapter = _load(models_dir, str(device), DTYPES[dtype], personalised, method,
                                  released if method.adapter else None, fast_path=False)  # loading is checked, not speed
        with _phase(timings, "video", device):
            result = _video(pipe, adapter, method, settings, condition)
        record = result.record
        denoising = record["timings_s"]["denoising"]
        videos[name] = {**timings, "s_per_step": round(denoising / settings.steps, 4),
                        "phases_s": record["timings_s"], "peak_gib": record["peak_memory"]["gib"]}
        checks[f"{name}: frames shape"] = result.frames.shape == (settings.frames, settings.height, settings.width, 3)
        checks[f"{name}: frames uint8, latents finite"] = (str(result.frames.dtype) == "uint8"
                                                           and bool(torch.isfinite(result.latents).all()))
        # The motion module's sinusoidal `pos_embed.pe` is not in mm_sd_v14.ckpt: diffusers
        # recomputes it (on CPU here, on the GPU in the written model: not bit-equal), so skip it.
        motion = {k: v for k, v in expected["motion"].items() if not k.endswith("pos_embed.pe")}
        prefix = "personalised_" if personalised else ""
        differing = (_mismatches(pipe.unet, expected[f"{prefix}unet"]) + _mismatches(pipe.unet, motion)
                     + _mismatches(pipe.vae, expected[f"{prefix}vae"])
                     + _mismatches(pipe.text_encoder, expected["text_encoder"]))
        checks[f"{name}: UNet, VAE, text encoder, motion module as written"] = not differing
        if differing:
            details[f"{name}: {len(differing)} tensors differ, e.g."] = differing[:5]
        if adapter is not None:
            checks[f"{name}: released adapter loaded strictly"] = (
                set(adapter.state_dict()) == set(expected["adapter"])
                and not _mismatches(adapter, expected["adapter"]))
        if method.lora_weight is not None:
            lora = str(models_dir / LORA_FILE)  # what `_load` gave set_panorama_lora
            with_lora = _video(pipe, None, method, settings.model_copy(update=LORA_CHECK), None).latents
            pipe.set_panorama_lora(lora, 0.0)
            without = _video(pipe, None, method, settings.model_copy(update=LORA_CHECK), None).latents
            difference = float((with_lora - without).abs().max())
            details["lora max |latent difference| (weight 1 vs 0)"] = difference
            checks[f"{name}: LoRA changes the sample"] = difference > 1e-3
        del pipe, adapter, result
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return videos, checks, details


def _generate_settings(tiny: bool, steps: int | None):
    from dvd360.config import load_params
    from dvd360.generate import GenerateSettings
    from dvd360.params_schema import validated_stage_params

    params = {**load_params(), "profile": "tiny" if tiny else "paper"}
    settings = validated_stage_params("generate", params, GenerateSettings)
    if tiny:
        settings = settings.model_copy(update=TINY_VIDEO)
    if steps is not None:
        settings = settings.model_copy(update={"steps": steps})
    return settings


def _size_gb(folder: Path) -> float:
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e9, 3)


def run(workdir: Path, tiny: bool, dtype: str | None = None, steps: int | None = None) -> dict[str, Any]:
    """Steps 1-4 of the module docstring in `workdir`; returns {"timings", "videos", "checks", "details"}."""
    from dvd360.benchmarks import sampler
    from dvd360.models.materialize import check_paper_sources, materialize_paper
    from dvd360.models.tiny_configs import TINY_DIR, tiny_config
    from dvd360.provenance import device_name, versions

    settings = _generate_settings(tiny, steps)
    dtype = dtype or settings.dtype
    if tiny:
        device, source_dtype = torch.device("cpu"), torch.float32
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run on a GPU, or pass --tiny for the CPU check")
        device, source_dtype = torch.device("cuda"), torch.float16
    print(f"device {device_name()}  run dtype {dtype}  {settings.height}x{settings.width}x{settings.frames}, "
          f"{settings.steps} steps, CFG {settings.guidance}  workdir {workdir}")
    print({k: versions().get(k) for k in ("torch", "diffusers", "transformers", "peft")})

    timings: dict[str, float] = {}
    with _phase(timings, "build random components", device):
        if tiny:
            parts, adapter = sampler.build_tiny(workdir / "build")
        else:
            parts, adapter = sampler.build_full_size(device, source_dtype, workdir / "build")
    with _phase(timings, "write sources", device):
        source_settings, expected = write_sources(
            parts, adapter, workdir / "sources", unet_config=tiny_config("unet") if tiny else sampler.SD15_UNET,
            motion_config=TINY_DIR / "motion_adapter.json" if tiny else None, lora=LORA_TINY if tiny else LORA_FULL)
    del parts, adapter
    if device.type == "cuda":
        torch.cuda.empty_cache()
    print(f"sources: {_size_gb(workdir / 'sources')} GB in {workdir / 'sources'}")
    with _phase(timings, "check_paper_sources", device):
        check_paper_sources(source_settings)
    with _phase(timings, "materialize_paper", device):
        manifest = materialize_paper(workdir / "models", source_settings)
    print(f"models: {_size_gb(workdir / 'models')} GB, pieces {sorted(manifest['pieces'])}")
    for name, seconds in timings.items():
        print(f"  {name:24s} {seconds:8.2f} s")

    videos, checks, details = run_videos(workdir / "models", settings, device, dtype, expected)
    for name, video in videos.items():
        phases = "  ".join(f"{k} {v:.2f}" for k, v in video["phases_s"].items())
        print(f"video {name:20s} load {video['load']:7.2f} s  video {video['video']:7.2f} s  "
              f"{video['s_per_step']:.3f} s/step  peak {video['peak_gib']:.2f} GiB  phases (s): {phases}")
    for name, value in details.items():
        print(f"  {name}: {value:.4g}")
    print("checks:")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return {"timings": timings, "videos": videos, "checks": checks, "details": details,
            "settings": {"height": settings.height, "width": settings.width, "frames": settings.frames,
                         "steps": settings.steps, "dtype": dtype}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny configs and sizes, on the CPU")
    parser.add_argument("--workdir", type=Path, help="work folder, kept (default: a temporary one, removed)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"),
                        help="run dtype (default: params.yaml generate.<profile>.dtype)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: params.yaml generate.<profile>)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every source is local: never wait on the hub

    start = time.perf_counter()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="paper_path-"))
    try:
        report = run(workdir, args.tiny, args.dtype, args.steps)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report["total_s"] = round(time.perf_counter() - start, 1)
    failed = [name for name, ok in report["checks"].items() if not ok]
    print(f"total {report['total_s']:.1f} s; {len(report['checks']) - len(failed)}/{len(report['checks'])} checks pass")
    return report


if __name__ == "__main__":
    raise SystemExit(1 if not all(main()["checks"].values()) else 0)
