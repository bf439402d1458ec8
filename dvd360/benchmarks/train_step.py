"""Benchmark: one 360-Adapter training step at the paper's size, with random weights.

    python -m dvd360.benchmarks.train_step            # GPU: full-size architectures, 512x1024x16, bf16
    python -m dvd360.benchmarks.train_step --tiny     # CPU: the tiny profile's models at 64x128x4

Full size: SD 1.5 UNet + motion module v1.4, SD VAE, CLIP ViT-L/14 text encoder (frozen, in
the autocast dtype) and the released 360-Adapter architecture (trainable, float32), all built
from their configs with random weights (no download; the builders of `benchmarks.sampler`).
The step is the trainer's own (`training_loss`: VAE encode, text encode, adapter, UNet with
injected features, latitude-aware loss), then backward, gradient clipping and AdamW, under
accelerate's autocast. Each setting (UNet gradient checkpointing off / on) gets `--warmup`
untimed steps, then `--steps` timed ones. Prints seconds per step and peak GiB (CUDA max
allocated; on CPU the process's peak RSS). A setting that runs out of memory is reported as such.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def time_steps(components, config, accelerator, steps: int, warmup: int, checkpointing: bool) -> dict:
    """Seconds per optimiser step and peak memory for one setting."""
    from dvd360.models.adapter import Adapter360
    from dvd360.models.injection import FeatureInjection
    from dvd360.training.trainer import training_loss

    device = accelerator.device
    components.unet.disable_gradient_checkpointing()
    if checkpointing:
        components.unet.enable_gradient_checkpointing()
    torch.manual_seed(0)
    adapter = Adapter360(channels=tuple(components.unet.config.block_out_channels)).to(device)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=config.lr, betas=config.betas,
                                  weight_decay=config.weight_decay)
    adapter, optimizer = accelerator.prepare(adapter, optimizer)
    shape = (config.batch_size, config.frames, 3, config.height, config.width)
    generator = torch.Generator().manual_seed(0)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    try:
        with FeatureInjection(components.unet) as injection:
            for step in range(warmup + steps):
                batch = {"video": torch.rand(shape, generator=generator) * 2 - 1,
                         "condition": torch.rand(shape, generator=generator) * 2 - 1,
                         "caption": ["a car driving down a street next to a forest"] * config.batch_size,
                         "sample": list(range(step * config.batch_size, (step + 1) * config.batch_size))}
                _sync(device)
                start = time.perf_counter()
                loss = training_loss(batch, components, adapter, injection, config, accelerator)
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(adapter.parameters(), config.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                _sync(device)
                if step >= warmup:
                    times.append(time.perf_counter() - start)
    except torch.OutOfMemoryError as error:
        return {"gradient_checkpointing": checkpointing, "status": "out of memory", "error": str(error)[:200]}
    finally:
        accelerator.free_memory()  # drops accelerate's references to this setting's adapter/optimiser
    return {"gradient_checkpointing": checkpointing, "status": "ok", "loss": float(loss),
            "seconds_per_step": round(sum(times) / len(times), 4), "seconds_min": round(min(times), 4),
            "peak_gib": round(_peak_gib(device), 2)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny profile's models on CPU at 64x128x4")
    parser.add_argument("--mixed-precision", default="bf16", choices=("bf16", "fp16"))
    parser.add_argument("--checkpointing", default="both", choices=("off", "on", "both"),
                        help="UNet gradient checkpointing")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)

    from accelerate import Accelerator

    from dvd360.benchmarks.sampler import build_full_size, build_tiny
    from dvd360.models.adapter import Adapter360
    from dvd360.provenance import device_name, versions
    from dvd360.training.config import TrainConfig

    cuda = torch.cuda.is_available() and not args.tiny
    if not cuda and not args.tiny:
        parser.error("no GPU visible: use --tiny for the CPU check")
    accelerator = Accelerator(mixed_precision=args.mixed_precision if cuda else "no", cpu=not cuda)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.mixed_precision] if cuda else torch.float32
    size = dict(height=64, width=128, frames=4) if args.tiny else dict(height=512, width=1024, frames=16)
    with tempfile.TemporaryDirectory() as workdir:
        config = TrainConfig(**size, batch_size=1, condition_dropout=0.0, text_dropout=0.0, latitude_loss=True,
                             mixed_precision=args.mixed_precision if cuda else "no", variant="full",
                             out_dir=workdir, checkpoint_dir=workdir)
        started = time.perf_counter()
        parts, built_adapter = (build_tiny(Path(workdir)) if args.tiny
                                else build_full_size(accelerator.device, dtype, Path(workdir)))
        del built_adapter  # frozen and in the autocast dtype: each setting trains its own float32 one
        components = SimpleNamespace(**parts)
        build_seconds = time.perf_counter() - started
        settings = {"off": [False], "on": [True], "both": [False, True]}[args.checkpointing]
        results = [time_steps(components, config, accelerator, args.steps, args.warmup, on) for on in settings]
    adapter = Adapter360(channels=tuple(components.unet.config.block_out_channels))
    header = {"benchmark": "train_step", "device": device_name(), "size": size, "batch": 1,
              "mixed_precision": accelerator.mixed_precision, "frozen_dtype": str(dtype).removeprefix("torch."),
              "adapter_params_m": round(sum(p.numel() for p in adapter.parameters()) / 1e6, 2),
              "build_seconds": round(build_seconds, 1), "versions": versions()}
    print(json.dumps(header))
    for result in results:
        print(json.dumps(result))
        if result["status"] == "ok":
            print(f"train step {size['height']}x{size['width']}x{size['frames']}, gradient checkpointing "
                  f"{'on' if result['gradient_checkpointing'] else 'off'}: {result['seconds_per_step']:.3f} s/step, "
                  f"peak {result['peak_gib']:.2f} GiB")
        else:
            print(f"train step, gradient checkpointing {'on' if result['gradient_checkpointing'] else 'off'}: "
                  f"{result['status']}")
    return results


if __name__ == "__main__":
    main()
