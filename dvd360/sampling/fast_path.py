"""The fast path of `Panorama360Pipeline`: the same sampler, prepared once to run at hardware speed.

`pipe.enable_fast_path(FastPath())` (`FastPath.apply`; the pipeline module does not import this one)
changes the pipeline's modules in place, in this order:

1. LoRA fused into the weights (B, C): diffusers' `fuse_lora` computes W' = W + s * up @ down once,
   then `unload_lora_weights` removes the PEFT wrappers, so each step runs plain Linears;
2. fused QKV projections (diffusers' `fuse_qkv_projections`, UNet and VAE): one (3d x d) matmul
   for self-attention instead of three, one (2d x d) for the cross-attention keys and values;
3. channels_last memory format for the UNet and the VAE (NHWC convolutions);
4. the motion modules' attention (16-frame sequences, 16,384 of them per call at 64x128, 8 heads)
   on its own choice (`temporal_attention`; default when compiling on CUDA: eight sequences
   packed into one 128-token FlexAttention tile, `PackedSequenceAttention`, the fastest option
   measured: docs/performance.md), every other attention on `attention`;
5. every width-padded Conv2d of the UNet and VAE decoder made switchable (circular padding)
   *before* compiling, so the compiled graphs see the final module classes;
6. every up block's nearest-2x upsampling + 3x3 conv (3 in the UNet, 3 in the VAE decoder) in
   the sub-pixel form (`subpixel_upsample`: four 2x2 convs on the input instead of one 3x3 conv
   on the upsampled input, 0.45x the multiply-adds; `dvd360.sampling.subpixel_upsample`);
7. `torch.compile` of the UNet and the VAE decoder (`fullgraph=True`: a graph break is an error,
   not a silent slowdown). The circular-padding switch is a plain Python attribute that dynamo
   guards on, and the injection hooks add zeros once the adapter's schedule ends
   (`FeatureInjection(one_graph=True)`), so a 25-step D run compiles exactly two UNet graphs
   (padding off, padding on) and one decoder graph, then only selects cached graphs: no
   recompilation, no graph break (tests/test_fast_path.py counts them with
   `torch._dynamo.utils.counters`).

Two sets of hooks are installed once for the pipeline's lifetime (a fresh hook per call would
change what dynamo guards on and recompile every video): the pipeline's feature injection and, with
`share_guidance_prefix`, the guidance halves' common prefix computed once (`AppliedFastPath`,
`dvd360.sampling.guidance_prefix`). SDPA attention
runs under the chosen backend (`torch.nn.attention.sdpa_kernel`; "auto" leaves torch's own choice).

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
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from dvd360.models.circular_padding import make_width_circular
from dvd360.sampling.guidance_prefix import GuidancePrefix
from dvd360.sampling.subpixel_upsample import make_subpixel_upsampling

ATTENTION_BACKENDS = {"auto": None, "flash": SDPBackend.FLASH_ATTENTION,
                      "cudnn": SDPBackend.CUDNN_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                      "math": SDPBackend.MATH}
# The motion modules' choices: an SDPA backend, or PACKED (PackedSequenceAttention).
PACKED = "packed-flex"
TEMPORAL_ATTENTION = (*ATTENTION_BACKENDS, PACKED)


@dataclass(frozen=True)
class FastPath:
    """Fast-path settings; the defaults are the stage's (params.yaml `generate.paper.fast_path`).

    `backend`/`mode` are `torch.compile`'s; `attention` one of ATTENTION_BACKENDS ("auto": torch's
    own choice, cuDNN on the GPUs measured, the fastest there; figures in docs/performance.md).

    `temporal_attention` is the motion modules' choice, one of TEMPORAL_ATTENTION; None: PACKED
    when compiling on CUDA, "efficient" on CUDA without compiling (the packed attention's eager
    path materialises its scores), "auto" elsewhere (the efficient and cuDNN kernels are CUDA's).

    `inductor_options`: inductor configuration for both compiled modules (`torch.compile(options=)`;
    keys as in `torch._inductor.config`); none by default. "freezing" is refused: through
    `options=` it froze nothing (dynamo decides at trace time, from inductor's global setting,
    whether module tensors become constants), and in force globally it makes the adapter
    features held by the injection hooks constants too, so a D run recompiles at every step
    (their roll makes new tensors) and fails under fullgraph. Measured options and their
    compile times: docs/performance.md.

    `subpixel_upsample`: every up block's nearest-2x + 3x3 conv as four 2x2 convs on its input
    (`dvd360.sampling.subpixel_upsample`).
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
    subpixel_upsample: bool = True
    inductor_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.attention not in ATTENTION_BACKENDS:
            raise ValueError(f"fast path attention {self.attention!r}: known {sorted(ATTENTION_BACKENDS)}")
        if self.temporal_attention is not None and self.temporal_attention not in TEMPORAL_ATTENTION:
            raise ValueError(f"fast path temporal_attention {self.temporal_attention!r}: known {sorted(TEMPORAL_ATTENTION)}")
        if self.inductor_options:
            if not self.compile or self.backend != "inductor":
                raise ValueError("fast path inductor_options need compile=True with backend 'inductor'")
            if self.mode is not None:
                raise ValueError(f"fast path: mode {self.mode!r} and inductor_options both given; torch.compile takes one")
            import torch._inductor.config as inductor_config

            unknown = sorted(set(self.inductor_options) - set(inductor_config.get_config_copy()))
            if unknown:
                raise ValueError(f"fast path inductor_options: unknown inductor option(s) {unknown}")
            if self.inductor_options.get("freezing"):
                raise ValueError("fast path inductor_options: 'freezing' is not supported: it would make the "
                                 "adapter features held by the injection hooks constants of the graph (a "
                                 "recompilation at every step); through torch.compile(options=) it freezes nothing")

    def apply(self, pipe, lora_name: str | None) -> AppliedFastPath:
        """Apply these settings to `pipe` in place (`enable_fast_path`) and install the guidance-prefix
        hooks; what `Panorama360Pipeline.enable_fast_path` calls."""
        record = enable_fast_path(pipe, self, lora_name)
        return AppliedFastPath(record, GuidancePrefix(pipe.unet) if self.share_guidance_prefix else None)


def compile_kwargs(fast: FastPath) -> dict[str, Any]:
    """`torch.compile`'s arguments for `fast`: always fullgraph; its mode or its inductor options."""
    kwargs: dict[str, Any] = dict(backend=fast.backend, mode=fast.mode, fullgraph=True)
    if fast.inductor_options:
        kwargs["options"] = dict(fast.inductor_options)
    return kwargs


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


class PackedSequenceAttention:
    """Self-attention over short sequences (the motion modules' 16 frames) through PyTorch's
    FlexAttention, with pack = tile // L sequences of L tokens (halved until it divides the batch)
    laid end to end in one sequence of pack*L and a block-diagonal score mask (token i sees token
    j iff i // L == j // L):

        o_i = sum_{j: j//L = i//L} softmax_j(scale * q_i . k_j) v_j,

    the same attention as SDPA's, on full 128-token tiles where SDPA's kernels tile 64 or more
    query rows of a 16-token sequence (three quarters padding). The packing is a view (B
    sequences of L contiguous tokens are B/pack sequences of pack*L); FlexAttention has no
    packed-sequence mode of its own. Compiled it is one fused kernel; eager it materialises the
    scores (a reference path). Same definition as diffusers' processors (no mask, no norms).
    """

    def __init__(self, tile: int = 128):
        self.tile = tile

    @staticmethod
    def check(attn) -> None:
        """Refuse an Attention this processor does not reproduce exactly."""
        unsupported = [name for name, value in (
            ("cross-attention", attn.is_cross_attention), ("spatial_norm", attn.spatial_norm is not None),
            ("group_norm", attn.group_norm is not None), ("norm_q", attn.norm_q is not None),
            ("norm_k", attn.norm_k is not None), ("residual_connection", attn.residual_connection),
            ("rescale_output_factor", attn.rescale_output_factor != 1.0)) if value]
        if unsupported:
            raise ValueError(f"packed-sequence attention does not implement {', '.join(unsupported)}")

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        from torch.nn.attention.flex_attention import flex_attention

        if encoder_hidden_states is not None or attention_mask is not None or hidden_states.ndim != 3:
            raise ValueError("packed-sequence attention takes (batch, length, channels) self-attention without a mask")
        batch, length, channels = hidden_states.shape
        if attn.fused_projections:
            query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        pack = max(1, self.tile // length)
        while batch % pack:
            pack //= 2
        q, k, v = (x.reshape(batch // pack, pack * length, attn.heads, -1).transpose(1, 2) for x in (query, key, value))

        def same_sequence(score, b, h, q_index, kv_index):
            return torch.where(q_index // length == kv_index // length, score, -float("inf"))

        out = flex_attention(q, k, v, score_mod=same_sequence, scale=attn.scale)
        out = out.transpose(1, 2).reshape(batch, length, channels)
        return attn.to_out[1](attn.to_out[0](out))


def set_temporal_attention(unet: torch.nn.Module, choice: str) -> int:
    """Run every motion-module attention of `unet` under `choice` (TEMPORAL_ATTENTION); returns how many."""
    from diffusers.models.attention_processor import Attention

    count = 0
    for name, module in unet.named_modules():
        if ".motion_modules." in f".{name}." and isinstance(module, Attention):
            if choice == PACKED:
                PackedSequenceAttention.check(module)
                module.set_processor(PackedSequenceAttention())
            else:
                module.set_processor(BackendProcessor(module.processor, choice))
            count += 1
    return count


def graphs_compiled() -> int:
    """Graphs dynamo has compiled in this process so far (its `unique_graphs` counter)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@dataclass
class AppliedFastPath:
    """A fast path applied to a pipeline (`FastPath.apply`): its record, and the guidance-prefix hooks
    (installed once for the pipeline's lifetime) and attention backend its calls run under."""

    record: dict[str, Any]
    guidance_prefix: GuidancePrefix | None

    @contextlib.contextmanager
    def running(self, halves: int):
        """A phase of a pipeline call whose UNet batch is `halves` identical guidance halves: the
        shared prefix computed once, SDPA under the chosen backend."""
        if self.guidance_prefix is not None:
            self.guidance_prefix.halves = halves
        try:
            with attention_backend(self.record["attention"]):
                yield
        finally:
            if self.guidance_prefix is not None:
                self.guidance_prefix.halves = 1

    @staticmethod
    def graphs_compiled() -> int:
        """`graphs_compiled()`: a call's compiled graphs are the difference across it."""
        return graphs_compiled()


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
    cuda = pipe.unet.device.type == "cuda"
    temporal = fast.temporal_attention or (PACKED if cuda and fast.compile else "efficient" if cuda else "auto")
    if temporal != "auto":
        set_temporal_attention(pipe.unet, temporal)
    if fast.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    make_width_circular(pipe.unet)
    make_width_circular(pipe.vae.decoder)
    if fast.subpixel_upsample:
        make_subpixel_upsampling(pipe.unet)
        make_subpixel_upsampling(pipe.vae.decoder)
    if fast.compile:
        kwargs = compile_kwargs(fast)
        pipe.unet.compile(**kwargs)
        if fast.compile_vae_decoder:
            pipe.vae.decoder.compile(**kwargs)
    return {**asdict(fast), "temporal_attention": temporal, "lora_fused": lora_fused}
