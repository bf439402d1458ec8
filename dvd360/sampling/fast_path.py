"""The fast path of `Panorama360Pipeline`: the same sampler, prepared once to run at hardware speed.

`enable_fast_path(pipe, FastPath())` changes the pipeline's modules in place, in this order:

1. LoRA fused into the weights (B, C): diffusers' `fuse_lora` computes W' = W + s * up @ down once,
   then `unload_lora_weights` removes the PEFT wrappers, so each step runs plain Linears;
2. fused QKV projections (diffusers' `fuse_qkv_projections`, UNet and VAE): one (3d x d) matmul
   for self-attention instead of three, one (2d x d) for the cross-attention keys and values;
3. channels_last memory format for the UNet and the VAE (NHWC convolutions);
4. the motion modules' attention (16-frame sequences, 131,072 of them per call) on its own SDPA
   backend (`temporal_attention`; default on CUDA: the efficient kernel, 1.40 ms per call against
   cuDNN's 2.10 ms on one H200), every other attention on `attention`;
5. every width-padded Conv2d of the UNet and VAE decoder made switchable (circular padding)
   *before* compiling, so the compiled graphs see the final module classes;
6. `torch.compile` of the UNet and the VAE decoder (`fullgraph=True`: a graph break is an error,
   not a silent slowdown). The circular-padding switch is a plain Python attribute that dynamo
   guards on, and the injection hooks add zeros once the adapter's schedule ends
   (`FeatureInjection(one_graph=True)`), so a 25-step D run compiles exactly two UNet graphs
   (padding off, padding on) and one decoder graph, then only selects cached graphs: no
   recompilation, no graph break (tests/test_fast_path.py counts them with
   `torch._dynamo.utils.counters`).

The pipeline adds two sets of hooks, installed once for its lifetime (a fresh hook per call would
change what dynamo guards on and recompile every video): the feature injection and, with
`share_guidance_prefix`, the guidance halves' common prefix computed once
(`dvd360.sampling.guidance_prefix`; H200, compiled forward: 239.3 -> 231.6 ms, and 226.1 ms with
the efficient kernel for the motion modules). SDPA attention runs under the
chosen backend (`torch.nn.attention.sdpa_kernel`; "auto" leaves torch's own choice).

Compiled artefacts are cached on disk by torch (inductor's FX-graph and autotuning caches, in
`TORCHINDUCTOR_CACHE_DIR`, default /tmp/torchinductor_$USER), so a later process on the same
machine skips code generation; dynamo's tracing is redone per process. The first video of a
process therefore carries the warm-up; records say how many graphs each call compiled.

Numerics: the fused and compiled kernels sum in other orders, so videos differ from the eager
path by rounding (tolerances measured in tests/test_fast_path.py and by
`python -m dvd360.benchmarks.sampler`).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from dvd360.models.circular_padding import make_width_circular

ATTENTION_BACKENDS = {"auto": None, "flash": SDPBackend.FLASH_ATTENTION,
                      "cudnn": SDPBackend.CUDNN_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                      "math": SDPBackend.MATH}


@dataclass(frozen=True)
class FastPath:
    """Fast-path settings; the defaults are the stage's (params.yaml `generate.paper.fast_path`).

    `backend`/`mode` are `torch.compile`'s; `attention` one of ATTENTION_BACKENDS. Measured on one
    H200 (torch 2.11, bf16, one SD 1.5 + motion-module forward at 512x1024x16 with CFG): "auto"
    picks cuDNN, the fastest (325.8 ms; flash 373.6 ms, efficient 455.2 ms, math out of memory).

    `temporal_attention` is the motion modules' backend; None: "efficient" on CUDA, "auto" elsewhere
    (the efficient and cuDNN kernels are CUDA's).
    """

    compile: bool = True
    backend: str = "inductor"
    mode: str | None = None
    compile_vae_decoder: bool = True
    channels_last: bool = True
    attention: str = "auto"
    temporal_attention: str | None = None
    fuse_qkv: bool = True
    fuse_lora: bool = True
    share_guidance_prefix: bool = True

    def __post_init__(self):
        for name in ("attention", "temporal_attention"):
            value = getattr(self, name)
            if value is not None and value not in ATTENTION_BACKENDS:
                raise ValueError(f"fast path {name} {value!r}: known {sorted(ATTENTION_BACKENDS)}")


def attention_backend(name: str) -> contextlib.AbstractContextManager:
    """`sdpa_kernel([backend])` for a named SDPA backend; "auto" (torch's choice) changes nothing."""
    backend = ATTENTION_BACKENDS[name]
    return contextlib.nullcontext() if backend is None else sdpa_kernel([backend])


class BackendProcessor:
    """An attention processor running `inner` under one SDPA backend (a per-layer choice; diffusers
    has only the global one). Traced by dynamo like the processor it wraps."""

    def __init__(self, inner, backend: str):
        self.inner, self.backend = inner, backend

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        with attention_backend(self.backend):
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)


def set_temporal_attention(unet: torch.nn.Module, backend: str) -> int:
    """Run every motion-module attention of `unet` under `backend`; returns how many."""
    from diffusers.models.attention_processor import Attention

    count = 0
    for name, module in unet.named_modules():
        if ".motion_modules." in f".{name}." and isinstance(module, Attention):
            module.set_processor(BackendProcessor(module.processor, backend))
            count += 1
    return count


def graphs_compiled() -> int:
    """Graphs dynamo has compiled in this process so far (its `unique_graphs` counter)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def enable_fast_path(pipe, fast: FastPath, lora_name: str | None) -> dict[str, Any]:
    """Apply `fast` to `pipe` in place (irreversible) and return its record.

    `lora_name` is the adapter name under which the pipeline loaded its LoRA (None: no LoRA).
    """
    lora_fused = False
    if fast.fuse_lora and lora_name is not None:
        # The adapter's weight (set_adapters) is already in PEFT's scaling; lora_scale multiplies it.
        pipe.fuse_lora(components=["unet", "text_encoder"], lora_scale=1.0, adapter_names=[lora_name])
        pipe.unload_lora_weights()
        lora_fused = True
    if fast.fuse_qkv:
        pipe.unet.fuse_qkv_projections()
        pipe.vae.fuse_qkv_projections()
    temporal = fast.temporal_attention or ("efficient" if pipe.unet.device.type == "cuda" else "auto")
    if temporal != "auto":
        set_temporal_attention(pipe.unet, temporal)
    if fast.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    make_width_circular(pipe.unet)
    make_width_circular(pipe.vae.decoder)
    if fast.compile:
        options = dict(backend=fast.backend, mode=fast.mode, fullgraph=True)
        pipe.unet.compile(**options)
        if fast.compile_vae_decoder:
            pipe.vae.decoder.compile(**options)
    return {**asdict(fast), "temporal_attention": temporal, "lora_fused": lora_fused}
