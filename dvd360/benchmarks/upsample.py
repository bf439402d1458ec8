"""Benchmark: diffusers' `Upsample2D` (nearest 2x + conv 3x3) against its sub-pixel form
(`dvd360.sampling.subpixel_upsample`), per up block of the fast path, compiled, side by side.

    python -m dvd360.benchmarks.upsample            # GPU, bf16, channels_last, inductor
    python -m dvd360.benchmarks.upsample --tiny     # CPU, float32, small shapes, a quick check

Shapes (GPU): the UNet's three upsamplers on the CFG batch of a 16-frame 512x1024 video
(32 frames of 1280@8x16, 1280@16x32, 640@32x64) and the VAE decoder's three on one frame
(512@64x128, 512@128x256, 256@256x512). For each: ms per call (median of `--repeats`, after
warm-up, both compiled the same way), the ratio, and the largest difference from a float64
reference relative to the reference's largest magnitude, for both forms (random weights and
inputs, seed 0).
"""

from __future__ import annotations

import argparse

import torch

from dvd360.benchmarks.timing import Clock
from dvd360.sampling.subpixel_upsample import make_subpixel_upsampling

GPU_SHAPES = (("unet 8x16", 32, 1280, 8, 16), ("unet 16x32", 32, 1280, 16, 32), ("unet 32x64", 32, 640, 32, 64),
              ("vae 64x128", 1, 512, 64, 128), ("vae 128x256", 1, 512, 128, 256), ("vae 256x512", 1, 256, 256, 512))
TINY_SHAPES = (("tiny 8x16", 4, 32, 8, 16), ("tiny 16x32", 2, 16, 16, 32))


def _time_ms(fn, x: torch.Tensor, repeats: int) -> float:
    """Median milliseconds per call of fn(x), after two warm-up calls."""
    clock = Clock(x.device)
    fn(x), fn(x)
    times = sorted(clock(fn, x)[0] for _ in range(repeats))
    return times[len(times) // 2] * 1000


def main(argv: list[str] | None = None) -> list[dict]:
    from diffusers.models.upsampling import Upsample2D

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, float32, small shapes")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--compile-backend", default="inductor")
    args = parser.parse_args(argv)
    if args.tiny:
        device, dtype, shapes = torch.device("cpu"), torch.float32, TINY_SHAPES
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run on a GPU, or pass --tiny")
        device, dtype, shapes = torch.device("cuda"), torch.bfloat16, GPU_SHAPES
    rows = []
    with torch.no_grad():
        for name, batch, channels, height, width in shapes:
            torch.manual_seed(0)
            block = Upsample2D(channels, use_conv=True, out_channels=channels)
            x = torch.randn(batch, channels, height, width)
            reference = block.double()(x.double())
            block = block.to(device, dtype).to(memory_format=torch.channels_last)
            x = x.to(device, dtype).contiguous(memory_format=torch.channels_last)
            row = {"shape": name}
            for form in ("upsample+conv", "sub-pixel"):
                if form == "sub-pixel":
                    make_subpixel_upsampling(block)
                compiled = torch.compile(block.forward, backend=args.compile_backend, fullgraph=True)
                row[form] = _time_ms(compiled, x, args.repeats)
                error = (compiled(x).double().cpu() - reference).abs().max() / reference.abs().max()
                row[f"{form} error"] = float(error)
            rows.append(row)
            print(f"{name:12s} upsample+conv {row['upsample+conv']:8.3f} ms  sub-pixel {row['sub-pixel']:8.3f} ms  "
                  f"ratio {row['sub-pixel'] / row['upsample+conv']:.3f}x  relative error "
                  f"{row['upsample+conv error']:.2e} / {row['sub-pixel error']:.2e}", flush=True)
    return rows


if __name__ == "__main__":
    main()
