"""`Panorama360Pipeline`: AnimateDiff sampling plus the 360-Adapter and the 360 Enhancement Techniques.

One call, top to bottom (settings of REFERENCE.md):

1. encode the prompt and the negative prompt (classifier-free guidance, scale `guidance`);
2. DDIM timesteps ("leading", steps_offset 1: 961, 921, ..., 1 for 25 steps);
3. initial noise from `torch.Generator("cpu").manual_seed(seed)` (same noise on every device);
4. 360-Adapter features, once, from the motion condition (zeros in [-1, 1] when none given);
5. denoise: for step i of T,
   - circular padding in width on every UNet Conv2d when `circular_padding` and i >= T//2,
   - adapter features added after each UNet down block when i <= T//4*3 (both guidance halves),
   - eps = eps_u + guidance * (eps_c - eps_u); DDIM step,
   - `latent_rotation`: roll the latent by W_lat/4 columns (90 degrees of longitude) and, with
     `rotate_condition`, the adapter features by w_i/4 of their own widths, so they stay aligned.
     The release never rolls back: after T steps the latent is rolled by T*90 mod 360 degrees
     (90 for 25 steps), i.e. the output video is the un-rotated sample turned by that angle in
     longitude (for DDIM, whose update is per element, and an exactly roll-equivariant UNet);
     `rotate_condition=False` reproduces the release, whose features stay fixed while the
     latent turns;
6. decode frame by frame (VAE slicing), the VAE decoder also circular when `circular_padding`;
   uint8 frames (F, H, W, 3).

Schedulers with history (multistep solvers) would mix rolled and un-rolled samples, so with
`latent_rotation` only schedulers whose step depends on the current sample alone are allowed.
Prompt encoding, VAE decoding and LoRA loading are diffusers' own (`AnimateDiffPipeline`, which
this class extends); `AnimateDiffPipeline.__call__` stays available for the plain method.
`enable_fast_path(FastPath())` prepares the same sampler for speed (fused LoRA and QKV, channels_last,
torch.compile, an SDPA backend: `dvd360.sampling.fast_path`, which the generation code imports and
this module does not); every record says whether it ran.
"""

from __future__ import annotations

import resource
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from diffusers import (AnimateDiffPipeline, DDIMScheduler, DDPMScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler)
from diffusers.utils.torch_utils import randn_tensor

from dvd360.config import repo_relative
from dvd360.models.adapter import Adapter360
from dvd360.models.circular_padding import make_width_circular, set_width_circular
from dvd360.models.injection import FeatureInjection, adapter_active
from dvd360.provenance import device_name, versions

# Schedulers whose step uses only the current sample and the step index: rolling the latent
# between steps is exact for them. Multistep solvers (DPM-Solver++, UniPC, PNDM, LMS, ...) keep
# earlier model outputs that would need rolling too; they are refused with rotation.
ROLL_SAFE_SCHEDULERS = (DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler,
                        EulerAncestralDiscreteScheduler)
ROTATION_DEGREES = 90
PANORAMA_LORA = "panorama"


def net_rotation_degrees(steps: int) -> int:
    """Longitude the release's latent rotation leaves the result turned by: steps * 90 mod 360."""
    return (steps * ROTATION_DEGREES) % 360


@dataclass
class GenerationResult:
    """Frames uint8 (F, H, W, 3) RGB; record: settings, timings (s), peak memory (GiB), versions.

    `latents` is the final latent (1, C, F, h, w) in float32 on the CPU, before decoding.
    """

    frames: np.ndarray
    record: dict[str, Any]
    latents: torch.Tensor | None = field(default=None, repr=False)


class _PhaseTimer:
    """Wall-clock seconds per phase, synchronising CUDA so GPU work is counted where it runs."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Phase:
            def __enter__(self):
                if timer.cuda:
                    torch.cuda.synchronize()
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                if timer.cuda:
                    torch.cuda.synchronize()
                timer.seconds[name] = round(time.perf_counter() - self.start, 4)

        return _Phase()


def peak_memory(device: torch.device) -> dict[str, Any]:
    """CUDA: max allocated since the last reset; CPU: the process's peak resident set (lifetime)."""
    if device.type == "cuda":
        return {"kind": "cuda_max_allocated", "gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 3)}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return {"kind": "cpu_peak_rss_process", "gib": round(peak * scale / 2**30, 3)}


class Panorama360Pipeline(AnimateDiffPipeline):
    """AnimateDiff (a `UNetMotionModel`) with the 360-Adapter, latent rotation and circular padding."""

    @classmethod
    def from_components(cls, components: Any) -> "Panorama360Pipeline":
        """Build from an object with `vae, text_encoder, tokenizer, unet, scheduler` (B2's Components)."""
        return cls(vae=components.vae, text_encoder=components.text_encoder,
                   tokenizer=components.tokenizer, unet=components.unet, motion_adapter=None,
                   scheduler=components.scheduler)

    # -- LoRA ---------------------------------------------------------------------------------
    def set_panorama_lora(self, path: str | None, weight: float = 1.0) -> None:
        """Load a Kohya/A1111 LoRA (diffusers' `load_lora_weights`) at `weight`, or unload with None.
        Records name it by its repository-relative path (`repo_relative`: a moved clone's are the same)."""
        loaded = getattr(self, "_panorama_lora", None)
        fused = getattr(self, "_fast_path", None) and self._fast_path.record["lora_fused"]
        name = None if path is None else repo_relative(path)
        if fused and {"path": name, "weight": float(weight)} != {k: loaded[k] for k in ("path", "weight")}:
            raise ValueError(f"the LoRA {loaded['path']} is fused into the weights (fast path) at weight "
                             f"{loaded['weight']}; build a new pipeline to change it")
        if fused:
            return
        if path is None:
            if loaded is not None:
                self.unload_lora_weights()
            self._panorama_lora = None
            return
        if loaded is None or loaded["path"] != name:
            if loaded is not None:
                self.unload_lora_weights()
            self.load_lora_weights(str(path), adapter_name=PANORAMA_LORA)
        self.set_adapters([PANORAMA_LORA], adapter_weights=[float(weight)])
        self._panorama_lora = {"path": name, "weight": float(weight)}

    # -- fast path ----------------------------------------------------------------------------
    def enable_fast_path(self, fast) -> dict[str, Any]:
        """Prepare the modules for speed with `fast`, a `dvd360.sampling.fast_path.FastPath`, once;
        returns its record.

        Load the LoRA first: it is fused into the weights and cannot be changed afterwards.
        """
        if getattr(self, "_fast_path", None) is not None:
            raise RuntimeError("the fast path is already enabled on this pipeline")
        lora = getattr(self, "_panorama_lora", None)
        self._fast_path = fast.apply(self, PANORAMA_LORA if lora else None)
        if lora is not None:
            self._panorama_lora = {**lora, "fused": self._fast_path.record["lora_fused"]}
        # One set of hooks for the pipeline's lifetime (compiled graphs guard on them), adding
        # zeros after the adapter's last step rather than switching off (one graph fewer).
        self._injection = FeatureInjection(self.unet, one_graph=True)
        return self._fast_path.record

    # -- checks -------------------------------------------------------------------------------
    def _check_call(self, height, width, num_frames, steps, condition, adapter, latent_rotation,
                    rotate_condition) -> None:
        factor = self.vae_scale_factor
        if height % (8 * factor) or width % (8 * factor):
            raise ValueError(f"height and width must be multiples of {8 * factor} "
                             f"(VAE factor {factor} x UNet factor 8), got {height}x{width}")
        if steps < 1 or num_frames < 1:
            raise ValueError(f"steps and num_frames must be positive, got {steps}, {num_frames}")
        latent_width = width // factor
        if latent_rotation:
            if not isinstance(self.scheduler, ROLL_SAFE_SCHEDULERS):
                raise ValueError(
                    f"latent_rotation with {type(self.scheduler).__name__}: this scheduler keeps "
                    "earlier samples or model outputs that would not be rolled with the latent; "
                    f"use one of {[s.__name__ for s in ROLL_SAFE_SCHEDULERS]}")
            if latent_width % 4:
                raise ValueError(f"latent_rotation needs a latent width divisible by 4, got {latent_width}")
            if adapter is not None and rotate_condition and latent_width % 32:
                raise ValueError(
                    f"rotating the condition's features by 90 degrees needs the smallest feature "
                    f"map (latent width / 8 = {latent_width / 8:g}) divisible by 4: use a width "
                    f"multiple of {32 * factor}, or rotate_condition=False")
        if adapter is not None and tuple(adapter.channels) != tuple(self.unet.config.block_out_channels):
            raise ValueError(f"adapter channels {list(adapter.channels)} do not match the UNet's down "
                             f"blocks {list(self.unet.config.block_out_channels)}")
        if condition is not None:
            if adapter is None:
                raise ValueError("a motion condition was given but no adapter")
            expected = (num_frames, 3, height, width)
            if tuple(condition.shape) != expected:
                raise ValueError(f"condition must be (F, 3, H, W) = {expected}, got {tuple(condition.shape)}")
            low, high = float(condition.min()), float(condition.max())
            if low < -1.001 or high > 1.001:
                raise ValueError(f"condition must lie in [-1, 1], found [{low:.3g}, {high:.3g}]")

    # -- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, prompt: str, *, seed: int, steps: int = 25, guidance: float = 7.5,
                 height: int = 512, width: int = 1024, num_frames: int = 16,
                 negative_prompt: str = "", condition: torch.Tensor | None = None,
                 adapter: Adapter360 | None = None, adapter_scale: float = 1.0,
                 latent_rotation: bool = False, circular_padding: bool = False,
                 rotate_condition: bool = True, circular_padding_start: int | None = None,
                 decode_chunk_size: int = 1) -> GenerationResult:
        """Generate one panorama video; see the module docstring for the order of operations.

        `circular_padding_start` (default T//2) is the first step with circular padding;
        `decode_chunk_size` frames are decoded at a time (1: the release's per-frame decoding).
        """
        self._check_call(height, width, num_frames, steps, condition, adapter, latent_rotation,
                         rotate_condition)
        device, dtype = self._execution_device, self.unet.dtype
        timer = _PhaseTimer(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        circular_start = steps // 2 if circular_padding_start is None else circular_padding_start
        guided = guidance > 1.0
        halves = 2 if guided else 1

        with timer("total"):
            # 1. text: (halves * F, seq, dim), uncond first, each prompt repeated per frame
            with timer("text_encoding"):
                cond, uncond = self.encode_prompt(prompt, device, 1, guided, negative_prompt)
                text = torch.cat([uncond, cond]) if guided else cond
                text = text.repeat_interleave(num_frames, dim=0)

            # 2-3. timesteps and initial noise
            # The scheduler steps on CPU timesteps, as its tables are on the CPU (a CUDA timestep
            # indexing them would make the host wait for the GPU at every step); the UNet gets a
            # device copy, so the host queues the next step while the GPU runs this one.
            self.scheduler.set_timesteps(steps)
            timesteps = self.scheduler.timesteps
            unet_timesteps = timesteps.to(device)
            shape = (1, self.unet.config.in_channels, num_frames,
                     height // self.vae_scale_factor, width // self.vae_scale_factor)
            generator = torch.Generator("cpu").manual_seed(int(seed))
            latents = randn_tensor(shape, generator=generator, device=torch.device("cpu"),
                                   dtype=torch.float32).to(device, dtype)
            latents = latents * self.scheduler.init_noise_sigma

            # 4. adapter features, once: [(F, C_i, h_i, w_i)] for one guidance half
            features = None
            condition_kind = "zero" if condition is None else "given"
            if adapter is not None:
                with timer("adapter"):
                    if condition is None:
                        condition = torch.zeros(num_frames, 3, height, width)
                    adapter_param = next(adapter.parameters())
                    features = adapter(condition.to(adapter_param.device, adapter_param.dtype)[None])
                    features = [f.to(device, dtype) for f in features]

            # 5. denoising loop
            if circular_padding:
                make_width_circular(self.unet)
                make_width_circular(self.vae.decoder)
            fast = getattr(self, "_fast_path", None)
            graphs_before = fast.graphs_compiled() if fast else None
            injection = self._injection if fast else FeatureInjection(self.unet)
            injection.set_features(features, adapter_scale)
            running = (lambda: fast.running(halves)) if fast else nullcontext  # the batch is [latents] * halves
            try:
                with running(), timer("denoising"), self.progress_bar(total=steps) as progress:
                    for i, t in enumerate(timesteps):
                        set_width_circular(self.unet, circular_padding and i >= circular_start)
                        injection.active = adapter_active(i, steps)
                        model_input = torch.cat([latents] * halves)
                        model_input = self.scheduler.scale_model_input(model_input, t)
                        eps = self.unet(model_input, unet_timesteps[i], encoder_hidden_states=text).sample
                        if guided:
                            eps_uncond, eps_text = eps.chunk(2)
                            eps = eps_uncond + guidance * (eps_text - eps_uncond)
                        latents = self.scheduler.step(eps, t, latents, generator=generator).prev_sample
                        if latent_rotation:
                            latents = torch.roll(latents, latents.shape[-1] * ROTATION_DEGREES // 360, dims=-1)
                            if rotate_condition:
                                injection.roll_features(ROTATION_DEGREES)
                        progress.update()

                # 6. decode (circular padding stays on in the VAE decoder when enabled)
                with running(), timer("decoding"):
                    set_width_circular(self.vae.decoder, circular_padding)
                    video = self.decode_latents(latents, decode_chunk_size=decode_chunk_size)
                    frames = (video[0].permute(1, 2, 3, 0) / 2 + 0.5).clamp(0, 1)
                    frames = (frames * 255).round().to(torch.uint8).cpu().numpy()
            finally:
                if fast:
                    injection.set_features(None)
                else:
                    injection.close()
                set_width_circular(self.unet, False)
                set_width_circular(self.vae.decoder, False)

        record = {
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "seed": int(seed),
            "steps": int(steps),
            "guidance": float(guidance),
            "height": int(height), "width": int(width), "num_frames": int(num_frames),
            "scheduler": {"class": type(self.scheduler).__name__, **dict(self.scheduler.config)},
            "timesteps": [int(t) for t in timesteps],
            "adapter": None if adapter is None else {
                **adapter.config, "scale": float(adapter_scale),
                "condition": condition_kind,
                "steps_with_features": sum(adapter_active(i, steps) for i in range(steps)),
            },
            "latent_rotation": bool(latent_rotation),
            "rotate_condition": bool(rotate_condition) if latent_rotation and adapter is not None else None,
            "latent_rotation_net_degrees": net_rotation_degrees(steps) if latent_rotation else 0,
            "circular_padding": bool(circular_padding),
            "circular_padding_from_step": int(circular_start) if circular_padding else None,
            "lora": getattr(self, "_panorama_lora", None),
            "fast_path": dict(fast.record) if fast else None,
            "graphs_compiled": fast.graphs_compiled() - graphs_before if fast else None,  # this call's (warm-up)
            "dtype": str(dtype).removeprefix("torch."),
            "device": device_name() if device.type == "cuda" else str(device),
            "timings_s": timer.seconds,
            "peak_memory": peak_memory(device),
            "versions": versions(),
        }
        return GenerationResult(frames=frames, record=record, latents=latents.float().cpu())
