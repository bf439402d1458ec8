"""Benchmark: method D (360DVD) against plain AnimateDiff, same models, same setting.

    python -m dvd360.benchmarks.sampler            # GPU: full-size architectures, random weights
    python -m dvd360.benchmarks.sampler --tiny     # CPU: the tiny profile's models, a tiny size

Full size: SD 1.5 UNet (+ motion module v1.4: max sequence length 24, no mid block), SD VAE,
CLIP ViT-L/14 text encoder and the released 360-Adapter architecture, all built from their
configs with random weights (seed 0; no download), in bf16; 512x1024, 16 frames, 25 DDIM
steps, CFG 7.5. Method D = adapter (random condition) + latent rotation (condition rotated)
+ circular padding. The same UNet/VAE/text encoder then run diffusers' `AnimateDiffPipeline`.
Each pipeline gets one short warm-up run first; then one timed run each. Prints seconds per
video, peak GiB (CUDA max allocated; CPU: process peak RSS, not per pipeline), their ratios,
and the time per phase. Random weights: the figures measure cost, not quality.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

# Published configs of the full-size pieces (diffusers/transformers argument names).
SD15_UNET = dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                 block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
MOTION_V14 = dict(block_out_channels=(320, 640, 1280, 1280), motion_layers_per_block=2,
                  motion_num_attention_heads=8, motion_norm_num_groups=32,
                  motion_max_seq_length=24, use_motion_mid_block=False)
SD_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
              down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
              sample_size=512, scaling_factor=0.18215)
CLIP_L14_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, max_position_embeddings=77, projection_dim=768,
                     hidden_act="quick_gelu")
PROMPT = "a panoramic view of hot-air balloons over a green field under a cloudy blue sky"


@dataclass
class Setting:
    height: int
    width: int
    frames: int
    steps: int
    guidance: float = 7.5


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_full_size(device: torch.device, dtype: torch.dtype, workdir: Path):
    """Full-size random-weight components (seed 0) and a random full-size Adapter360."""
    from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from dvd360.models.adapter import Adapter360
    from dvd360.models.tiny_configs import MAX_TOKENS, ddim_config, write_tiny_tokenizer

    torch.manual_seed(0)
    # An offline tokenizer (the tiny vocabulary; its ids fit CLIP's 49408): text encoding cost
    # does not depend on the vocabulary.
    tokenizer = CLIPTokenizer.from_pretrained(write_tiny_tokenizer(workdir / "tokenizer"), model_max_length=MAX_TOKENS)
    with torch.device(device):
        unet = UNetMotionModel.from_unet2d(UNet2DConditionModel(**SD15_UNET), MotionAdapter(**MOTION_V14))
        vae = AutoencoderKL(**SD_VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_L14_TEXT, bos_token_id=tokenizer.bos_token_id,
                                                    eos_token_id=tokenizer.eos_token_id,
                                                    pad_token_id=tokenizer.pad_token_id))
        adapter = Adapter360()
    modules = dict(unet=unet, vae=vae, text_encoder=text_encoder)
    for module in (*modules.values(), adapter):
        module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return (dict(modules, tokenizer=tokenizer, scheduler=DDIMScheduler.from_config(ddim_config())), adapter)


def build_tiny(workdir: Path):
    """The tiny profile's components (helper B2's `build_tiny`) and its adapter initialisation."""
    from dvd360.models.adapter import load_adapter
    from dvd360.models.materialize import build_tiny as materialize_tiny, load_components

    materialize_tiny(workdir / "models", seed=0)
    components = load_components(workdir / "models")
    parts = {name: getattr(components, name) for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}
    return parts, load_adapter(components.adapter_init_path)


def _timed_method(owner, name: str, phases: dict[str, float], device: torch.device) -> None:
    """Wrap `owner.name` so each call adds its synchronised wall time to phases[name]."""
    method = getattr(owner, name)

    def timed(*args, **kwargs):
        _sync(device)
        start = time.perf_counter()
        result = method(*args, **kwargs)
        _sync(device)
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - start
        return result

    setattr(owner, name, timed)


def run_plain(parts: dict, setting: Setting, device: torch.device, decode_chunk: int, steps: int):
    """One AnimateDiffPipeline video: (seconds, peak GiB, phases)."""
    from diffusers import AnimateDiffPipeline

    pipe = AnimateDiffPipeline(motion_adapter=None, **parts)
    pipe.set_progress_bar_config(disable=True)
    phases: dict[str, float] = {}
    _timed_method(pipe, "encode_prompt", phases, device)
    _timed_method(pipe, "decode_latents", phases, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    start = time.perf_counter()
    pipe(PROMPT, num_frames=setting.frames, height=setting.height, width=setting.width,
         num_inference_steps=steps, guidance_scale=setting.guidance, negative_prompt="",
         generator=torch.Generator("cpu").manual_seed(0), output_type="pt", decode_chunk_size=decode_chunk)
    _sync(device)
    total = time.perf_counter() - start
    phases = {"text_encoding": phases.get("encode_prompt", 0.0), "decoding": phases.get("decode_latents", 0.0)}
    phases["denoising"] = total - phases["text_encoding"] - phases["decoding"]
    return total, _peak_gib(device), phases


def run_360(parts: dict, adapter, setting: Setting, device: torch.device, decode_chunk: int, steps: int):
    """One method-D video: (seconds, peak GiB, phases from the pipeline's record)."""
    from dvd360.sampling.pipeline import Panorama360Pipeline

    pipe = Panorama360Pipeline(motion_adapter=None, **parts)
    pipe.set_progress_bar_config(disable=True)
    condition = torch.rand(setting.frames, 3, setting.height, setting.width,
                           generator=torch.Generator().manual_seed(0)) * 2 - 1
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    start = time.perf_counter()
    result = pipe(PROMPT, seed=0, steps=steps, guidance=setting.guidance, height=setting.height,
                  width=setting.width, num_frames=setting.frames, condition=condition, adapter=adapter,
                  latent_rotation=True, circular_padding=True, rotate_condition=True,
                  decode_chunk_size=decode_chunk)
    _sync(device)
    total = time.perf_counter() - start
    phases = {k: v for k, v in result.record["timings_s"].items() if k != "total"}
    return total, _peak_gib(device), phases


def _peak_gib(device: torch.device) -> float:
    from dvd360.sampling.pipeline import peak_memory

    return peak_memory(device)["gib"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models and size, on the CPU")
    parser.add_argument("--decode-chunk", type=int, default=1,
                        help="frames per VAE decode call, the same for both pipelines (1: VAE slicing)")
    args = parser.parse_args(argv)

    from dvd360.provenance import device_name, versions

    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            device, dtype = torch.device("cpu"), torch.float32
            setting = Setting(height=64, width=256, frames=4, steps=5)
            parts, adapter = build_tiny(Path(tmp))
        else:
            if not torch.cuda.is_available():
                raise SystemExit("no CUDA device: run on a GPU, or pass --tiny for the CPU check")
            device, dtype = torch.device("cuda"), torch.bfloat16
            setting = Setting(height=512, width=1024, frames=16, steps=25)
            parts, adapter = build_full_size(device, dtype, Path(tmp))
        print(f"device {device_name()}  dtype {dtype}  {setting}  decode chunk {args.decode_chunk}")
        print({k: versions().get(k) for k in ("torch", "diffusers", "transformers")})

        results = {}
        for name, run in (("AnimateDiff", lambda s: run_plain(parts, setting, device, args.decode_chunk, s)),
                          ("360DVD (D)", lambda s: run_360(parts, adapter, setting, device, args.decode_chunk, s))):
            run(2)  # warm-up: kernels, allocator, autotuning
            results[name] = run(setting.steps)
            seconds, gib, phases = results[name]
            print(f"{name:12s} {seconds:8.2f} s/video  peak {gib:7.2f} GiB  phases (s): "
                  + "  ".join(f"{k} {v:.2f}" for k, v in phases.items()))
        (plain_s, plain_gib, _), (ours_s, ours_gib, _) = results.values()
        print(f"ratio 360DVD/AnimateDiff: time {ours_s / plain_s:.3f}x  peak memory {ours_gib / plain_gib:.3f}x")
    return results


if __name__ == "__main__":
    main()
