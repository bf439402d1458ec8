"""Benchmark: method D (360DVD), eager and on the fast path, against plain AnimateDiff, eager and
with its UNet compiled; same models, same setting, one run.

    python -m dvd360.benchmarks.sampler            # GPU: full-size architectures, random weights
    python -m dvd360.benchmarks.sampler --tiny     # CPU: the tiny profile's models, a tiny size

Full size: SD 1.5 UNet (+ motion module v1.4: max sequence length 24, no mid block), SD VAE,
CLIP ViT-L/14 text encoder and the released 360-Adapter architecture, all built from their
configs with random weights (seed 0; no download), in bf16; 512x1024, 16 frames, 25 DDIM
steps, CFG 7.5. Method D = adapter (random condition) + latent rotation (condition rotated)
+ circular padding. Configurations, each on freshly built components:

- plain eager:     diffusers' `AnimateDiffPipeline`;
- plain compiled:  the same with `unet.compile()` (inductor, default mode);
- D eager:         `Panorama360Pipeline`;
- D fast path:     `Panorama360Pipeline.enable_fast_path` (dvd360.sampling.fast_path).

Each makes one warm-up video (its time, compilation included, is printed as `warm-up`), then
`--repeats` timed videos: seconds per video at steady state (mean), peak GiB over those (CUDA max
allocated; CPU: process peak RSS, not per configuration), phases, and ratios to plain eager.
Faithfulness: the compiled/fast video against its eager twin (same seed): PSNR of the uint8
frames and the largest latent difference. First, an SDPA sweep times one UNet forward (the CFG
batch) per attention backend, and with two videos in one batch (seeds batched). Random
weights: the figures measure cost, not quality.
"""

from __future__ import annotations

import argparse
import ast
import gc
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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
CONFIGURATIONS = ("plain eager", "plain compiled", "D eager", "D fast path")


@dataclass
class Setting:
    height: int
    width: int
    frames: int
    steps: int
    guidance: float = 7.5


@dataclass
class Video:
    """One timed video: seconds, frames uint8 (F, H, W, 3), final latent (float32, CPU), phases (s)."""

    seconds: float
    frames: np.ndarray
    latents: torch.Tensor
    phases: dict[str, float]


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
    """The tiny profile's components (materialised once into `workdir`) and its adapter initialisation."""
    from dvd360.models.adapter import load_adapter
    from dvd360.models.materialize import build_tiny as materialize_tiny, load_components

    if not (workdir / "models" / "manifest.json").is_file():
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


def plain_runner(parts: dict, setting: Setting, device: torch.device, decode_chunk: int, compiled: bool,
                 compile_backend: str):
    """A function making one AnimateDiffPipeline video (seed 0) -> Video."""
    from diffusers import AnimateDiffPipeline

    pipe = AnimateDiffPipeline(motion_adapter=None, **parts)
    pipe.set_progress_bar_config(disable=True)
    if compiled:
        pipe.unet.compile(backend=compile_backend)

    def run() -> Video:
        phases: dict[str, float] = {}
        _timed_method(pipe, "encode_prompt", phases, device)
        _timed_method(pipe, "decode_latents", phases, device)
        final = {}

        def keep_latents(_pipe, _step, _t, tensors):
            final["latents"] = tensors["latents"]
            return {}

        _sync(device)
        start = time.perf_counter()
        video = pipe(PROMPT, num_frames=setting.frames, height=setting.height, width=setting.width,
                     num_inference_steps=setting.steps, guidance_scale=setting.guidance, negative_prompt="",
                     generator=torch.Generator("cpu").manual_seed(0), output_type="pt",
                     decode_chunk_size=decode_chunk, callback_on_step_end=keep_latents).frames
        _sync(device)
        total = time.perf_counter() - start
        del pipe.encode_prompt, pipe.decode_latents  # drop the timing wrappers (instance attributes)
        phases = {"text_encoding": phases.get("encode_prompt", 0.0), "decoding": phases.get("decode_latents", 0.0)}
        phases["denoising"] = total - phases["text_encoding"] - phases["decoding"]
        frames = (video[0].permute(0, 2, 3, 1).float() * 255).round().to(torch.uint8).cpu().numpy()
        return Video(total, frames, final["latents"].float().cpu(), phases)

    return run


def panorama_runner(parts: dict, adapter, setting: Setting, device: torch.device, decode_chunk: int,
                    fast_path=None):
    """A function making one method-D video (seed 0) -> Video; `fast_path`: a FastPath or None."""
    from dvd360.sampling.pipeline import Panorama360Pipeline

    pipe = Panorama360Pipeline(motion_adapter=None, **parts)
    pipe.set_progress_bar_config(disable=True)
    if fast_path is not None:
        pipe.enable_fast_path(fast_path)
    condition = torch.rand(setting.frames, 3, setting.height, setting.width,
                           generator=torch.Generator().manual_seed(0)) * 2 - 1

    def run() -> Video:
        _sync(device)
        start = time.perf_counter()
        result = pipe(PROMPT, seed=0, steps=setting.steps, guidance=setting.guidance, height=setting.height,
                      width=setting.width, num_frames=setting.frames, condition=condition, adapter=adapter,
                      latent_rotation=True, circular_padding=True, rotate_condition=True,
                      decode_chunk_size=decode_chunk)
        _sync(device)
        phases = {k: v for k, v in result.record["timings_s"].items() if k != "total"}
        return Video(time.perf_counter() - start, result.frames, result.latents, phases)

    return run


def attention_sweep(unet, setting: Setting, device: torch.device, dtype: torch.dtype, repeats: int = 3) -> None:
    """Print ms per UNet forward (one CFG batch of one video) per SDPA backend, and per video with
    two videos batched in one forward."""
    from dvd360.sampling.fast_path import ATTENTION_BACKENDS, attention_backend

    shape = (2, unet.config.in_channels, setting.frames, setting.height // 8, setting.width // 8)
    text = torch.randn(2 * setting.frames, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    t = torch.tensor(500, device=device)
    with torch.no_grad():
        for name in ATTENTION_BACKENDS:
            for videos in (1, 2):
                sample = torch.randn(shape[0] * videos, *shape[1:], device=device, dtype=dtype)
                context = text.repeat(videos, 1, 1)
                try:
                    with attention_backend(name):
                        unet(sample, t, encoder_hidden_states=context)  # warm-up
                        _sync(device)
                        start = time.perf_counter()
                        for _ in range(repeats):
                            unet(sample, t, encoder_hidden_states=context)
                        _sync(device)
                except RuntimeError as error:  # a backend this device or shape does not support
                    print(f"  attention {name:9s} {videos} video(s)/forward: unavailable ({str(error).splitlines()[0][:80]})")
                    break
                per_video = (time.perf_counter() - start) / repeats / videos * 1000
                print(f"  attention {name:9s} {videos} video(s)/forward: {per_video:8.1f} ms per video-forward")


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR = 10 log10(255^2 / MSE) of two uint8 videos (scikit-image's); inf when identical."""
    from skimage.metrics import peak_signal_noise_ratio

    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(a, b, data_range=255))


def parse_options(pairs: list[str]) -> dict[str, object]:
    """["conv_1x1_as_mm=True", "triton.max_tiles=2"] -> {"conv_1x1_as_mm": True, "triton.max_tiles": 2}
    (values as Python literals; anything else stays a string); --inductor-option's and --fast-path's."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options


def _peak_gib(device: torch.device) -> float:
    from dvd360.sampling.pipeline import peak_memory

    return peak_memory(device)["gib"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models and size, on the CPU")
    parser.add_argument("--decode-chunk", type=int, default=1,
                        help="frames per VAE decode call, the same for all (1: VAE slicing, the release's)")
    parser.add_argument("--repeats", type=int, default=1, help="timed videos per configuration after the warm-up")
    parser.add_argument("--attention", default="auto", help="SDPA backend of the D fast path")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend of the compiled configurations ('eager': a quick CPU check)")
    parser.add_argument("--inductor-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an inductor option of the D fast path (FastPath.inductor_options), e.g. conv_1x1_as_mm=True; repeatable")
    parser.add_argument("--fast-path", action="append", default=[], metavar="KEY=VALUE",
                        help="a FastPath setting of the D fast path, e.g. subpixel_upsample=False; repeatable")
    parser.add_argument("--only", default=",".join(CONFIGURATIONS), help="comma-separated configurations, in the order to run them")
    parser.add_argument("--no-sweep", action="store_true", help="skip the SDPA backend sweep")
    args = parser.parse_args(argv)

    from dvd360.provenance import device_name, versions
    from dvd360.sampling.fast_path import FastPath

    inductor_options = parse_options(args.inductor_option)
    fast_settings = parse_options(args.fast_path)
    try:  # checked before anything is built
        d_fast = FastPath(**{"backend": args.compile_backend, "attention": args.attention,
                             "inductor_options": inductor_options, **fast_settings})
    except TypeError as error:
        raise SystemExit(f"--fast-path: {error}") from error
    chosen = args.only.split(",")
    unknown = sorted(set(chosen) - set(CONFIGURATIONS))
    if unknown:
        raise SystemExit(f"--only: unknown configuration(s) {unknown}; known: {', '.join(CONFIGURATIONS)}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            device, dtype = torch.device("cpu"), torch.float32
            setting = Setting(height=64, width=256, frames=4, steps=5)
            build = lambda: build_tiny(Path(tmp))  # noqa: E731
        else:
            if not torch.cuda.is_available():
                raise SystemExit("no CUDA device: run on a GPU, or pass --tiny for the CPU check")
            device, dtype = torch.device("cuda"), torch.bfloat16
            setting = Setting(height=512, width=1024, frames=16, steps=25)
            build = lambda: build_full_size(device, dtype, Path(tmp))  # noqa: E731
        print(f"device {device_name()}  dtype {dtype}  {setting}  decode chunk {args.decode_chunk}  "
              f"repeats {args.repeats}  compile backend {args.compile_backend}  D fast attention {args.attention}  "
              f"D fast inductor options {inductor_options}  D fast settings {fast_settings}")
        print({k: versions().get(k) for k in ("torch", "diffusers", "transformers")}, flush=True)

        results: dict[str, dict] = {}
        videos: dict[str, Video] = {}
        for name in chosen:
            parts, adapter = build()
            if name == "D eager" and not args.no_sweep:
                attention_sweep(parts["unet"], setting, device, dtype)
            run = {"plain eager": lambda: plain_runner(parts, setting, device, args.decode_chunk, False, ""),
                   "plain compiled": lambda: plain_runner(parts, setting, device, args.decode_chunk, True,
                                                          args.compile_backend),
                   "D eager": lambda: panorama_runner(parts, adapter, setting, device, args.decode_chunk),
                   "D fast path": lambda: panorama_runner(
                       parts, adapter, setting, device, args.decode_chunk, d_fast)}[name]
            make = None
            try:
                make = run()
                warmup = make()
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                timed = [make() for _ in range(args.repeats)]
            except Exception as error:  # report and go on: one failing configuration keeps the others
                print(f"{name:15s} FAILED: {type(error).__name__}: {str(error)[:300]}", flush=True)
                continue
            finally:
                del parts, adapter, make  # free this configuration's models before the next
            videos[name] = timed[-1]
            results[name] = {"warmup_s": warmup.seconds, "seconds": float(np.mean([v.seconds for v in timed])),
                             "peak_gib": _peak_gib(device), "phases": timed[-1].phases}
            r = results[name]
            print(f"{name:15s} {r['seconds']:8.2f} s/video  warm-up {r['warmup_s']:8.2f} s  peak {r['peak_gib']:7.2f} GiB"
                  "  phases (s): " + "  ".join(f"{k} {v:.2f}" for k, v in r["phases"].items()), flush=True)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()

        base = results.get("plain eager")
        if base:
            for name, r in results.items():
                print(f"ratio {name} / plain eager: time {r['seconds'] / base['seconds']:.3f}x  "
                      f"peak memory {r['peak_gib'] / base['peak_gib']:.3f}x")
        for fast, eager in (("plain compiled", "plain eager"), ("D fast path", "D eager")):
            if fast in videos and eager in videos:
                gap = float((videos[fast].latents - videos[eager].latents).abs().max())
                print(f"faithfulness {fast} vs {eager}: frames PSNR {psnr_db(videos[fast].frames, videos[eager].frames):.1f} dB"
                      f"  largest latent difference {gap:.3g}")
    return results


if __name__ == "__main__":
    main()
