"""The fast path of Panorama360Pipeline: same videos as the eager path within measured tolerances
(A, C, D; tiny models, fp32), the LoRA fused for C, and a compiled D run that compiles each
graph variant once, with no graph break, and nothing more on the next video."""

from __future__ import annotations

import pytest
import torch

from dvd360.benchmarks.sampler import parse_options, psnr_db
from dvd360.methods import load_methods
from dvd360.models.adapter import load_adapter
from dvd360.models.materialize import load_components
from dvd360.sampling.fast_path import (PACKED, BackendProcessor, FastPath, PackedSequenceAttention,
                                       compile_kwargs, set_temporal_attention)
from dvd360.sampling.guidance_prefix import SHARED_LAYERS, GuidancePrefix
from dvd360.sampling.pipeline import Panorama360Pipeline

PROMPT = "a panoramic view of a harbour at dawn"
# 256 wide: the smallest width whose adapter features rotate by 90 degrees
SIZE = dict(height=64, width=256, num_frames=2)
# Measured on the tiny models in fp32 (fused LoRA and QKV, channels_last; 3 steps, 2 CPU cores):
# largest latent difference 6.2e-5 (D), 6.8e-5 (A, C); decoded frames PSNR 88-90 dB; compiled with
# inductor (D, 5 steps; 880 s of compilation on 2 cores, too slow for CI): 1.1e-4, 89.6 dB. The
# bounds leave room for other CPUs' kernels (another summation order).
LATENT_TOLERANCE = 5e-4
PSNR_MIN_DB = 60.0


def _pipeline(models, method):
    components = load_components(models)
    pipe = Panorama360Pipeline.from_components(components)
    pipe.set_progress_bar_config(disable=True)
    if method.lora_weight is not None:
        pipe.set_panorama_lora(components.lora_path, method.lora_weight)
    adapter = load_adapter(components.adapter_init_path) if method.adapter else None
    return pipe, adapter


def _generate(pipe, method, adapter, seed=0, steps=3):
    condition = None
    if adapter is not None:
        condition = torch.rand(SIZE["num_frames"], 3, SIZE["height"], SIZE["width"],
                               generator=torch.Generator().manual_seed(1)) * 2 - 1
    return pipe(PROMPT, seed=seed, steps=steps, adapter=adapter, condition=condition,
                latent_rotation=method.latent_rotation, circular_padding=method.circular_padding, **SIZE)


@pytest.mark.parametrize("method_id", ["A", "C", "D"])
def test_fast_path_matches_the_eager_path(tiny_models, method_id):
    method = load_methods()[method_id]
    eager_pipe, eager_adapter = _pipeline(tiny_models, method)
    eager = _generate(eager_pipe, method, eager_adapter)
    pipe, adapter = _pipeline(tiny_models, method)
    record = pipe.enable_fast_path(FastPath(compile=False))
    fast = _generate(pipe, method, adapter)
    gap = float((fast.latents - eager.latents).abs().max())
    quality = psnr_db(fast.frames, eager.frames)
    print(f"{method_id}: largest latent difference {gap:.2e}, PSNR {quality:.1f} dB")
    assert gap < LATENT_TOLERANCE and quality > PSNR_MIN_DB
    assert record["lora_fused"] == (method.lora_weight is not None)
    assert fast.record["fast_path"]["fuse_qkv"] and fast.record["graphs_compiled"] == 0
    assert eager.record["fast_path"] is None
    if method.lora_weight is not None:
        assert fast.record["lora"] == {**eager.record["lora"], "fused": True}
        assert not any("lora" in name for name, _ in pipe.unet.named_modules())  # plain Linears
        pipe.set_panorama_lora(eager.record["lora"]["path"], method.lora_weight)  # unchanged: fine
        with pytest.raises(ValueError, match="fused into the weights"):
            pipe.set_panorama_lora(None)


@pytest.mark.slow
def test_compiled_D_compiles_each_variant_once_without_graph_breaks(tiny_models):
    """5 steps: features at steps 0-3, circular padding from step 2, so steps with (features,
    zeros), (features, circular) and (none, circular): two UNet graphs (the hooks add zeros after
    the adapter's schedule, no variant of their own) and one VAE-decoder graph; the second video
    compiles none.
    Dynamo's own backend ("eager"): the same graph capture and guards as inductor, without
    inductor's C++ code generation (minutes on 2 CPU cores); `fullgraph=True` makes any graph
    break an error, and the counters must show none."""
    from torch._dynamo.utils import counters

    method = load_methods()["D"]
    eager_pipe, adapter = _pipeline(tiny_models, method)
    eager = _generate(eager_pipe, method, adapter, seed=1, steps=5)
    pipe, adapter = _pipeline(tiny_models, method)
    torch._dynamo.reset()
    counters.clear()
    try:
        # the motion modules' attention that compiled CUDA runs use (FlexAttention), traced too
        record = pipe.enable_fast_path(FastPath(backend="eager", temporal_attention=PACKED))
        assert record["temporal_attention"] == PACKED and record["share_guidance_prefix"]
        first = _generate(pipe, method, adapter, seed=0, steps=5)
        second = _generate(pipe, method, adapter, seed=1, steps=5)
        assert first.record["graphs_compiled"] == 3
        assert second.record["graphs_compiled"] == 0
        assert sum(counters["graph_break"].values()) == 0 and not counters["recompiles"]
    finally:
        torch._dynamo.reset()
    assert float((second.latents - eager.latents).abs().max()) < LATENT_TOLERANCE
    assert psnr_db(second.frames, eager.frames) > PSNR_MIN_DB


def test_guidance_prefix_runs_the_shared_layers_once_and_changes_nothing(tiny_models):
    """On the CFG batch [x, x] the layers before the first cross-attention run on one half
    (their inputs have N rows, not 2N) and the UNet's output is the same as without."""
    unet = load_components(tiny_models).unet
    frames = 2
    x = torch.randn(1, 4, frames, 8, 16).repeat(2, 1, 1, 1, 1)
    text = torch.randn(2 * frames, 77, unet.config.cross_attention_dim)
    prefix = GuidancePrefix(unet)  # halves = 1: unchanged
    rows = {}
    modules = dict(unet.named_modules())
    for name in SHARED_LAYERS:
        modules[name].register_forward_pre_hook(
            lambda m, args, kwargs, name=name: rows.__setitem__(
                name, next(v for v in (*args, *kwargs.values()) if torch.is_tensor(v)).shape[0]),
            with_kwargs=True)
    with torch.no_grad():
        plain = unet(x, 500, encoder_hidden_states=text).sample
        assert set(rows.values()) == {2 * frames}
        prefix.halves = 2
        shared = unet(x, 500, encoder_hidden_states=text).sample
        assert set(rows.values()) == {frames}
        with pytest.raises(ValueError, match="does not split into 3"):
            prefix.halves = 3
            unet(x, 500, encoder_hidden_states=text)
        prefix.close()
    # the same arithmetic on half the rows; CPU kernels block by row count: fp32 rounding
    assert torch.allclose(shared, plain, rtol=0, atol=1e-5)


def test_guidance_prefix_refuses_another_layout():
    with pytest.raises(ValueError, match="no conv_in"):
        GuidancePrefix(torch.nn.Sequential(torch.nn.Linear(2, 2)))


@pytest.mark.parametrize("choice, processor", [("math", BackendProcessor), (PACKED, PackedSequenceAttention)])
def test_temporal_attention_changes_the_motion_modules_only(tiny_models, choice, processor):
    unet = load_components(tiny_models).unet
    unet.fuse_qkv_projections()
    x = torch.randn(2, 4, 2, 8, 16)
    text = torch.randn(4, 77, unet.config.cross_attention_dim)
    with torch.no_grad():
        before = unet(x, 500, encoder_hidden_states=text).sample
        count = set_temporal_attention(unet, choice)
        after = unet(x, 500, encoder_hidden_states=text).sample
    changed = {name for name, p in unet.attn_processors.items() if isinstance(p, processor)}
    assert count == len(changed) > 0 and all("motion_modules" in name for name in changed)
    assert len(changed) < len(unet.attn_processors)
    assert torch.allclose(after, before, rtol=0, atol=1e-5)


@pytest.mark.parametrize("sequences", [64, 12, 7])  # packs of 8, of 4 (12 = 4 x 3), none (7 is prime)
def test_packed_sequence_attention_is_attention_per_sequence(sequences):
    """Packing sequences end to end with a block-diagonal mask = attention over each sequence
    alone, against an independent float64 softmax(q k^T / sqrt(d)) v per sequence."""
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    attn = Attention(query_dim=32, heads=4, dim_head=8).eval()
    attn.set_processor(PackedSequenceAttention(tile=128))
    x = torch.randn(sequences, 16, 32)
    with torch.no_grad():
        got = attn(x)
        q, k, v = (proj(x).double().unflatten(-1, (4, 8)).transpose(1, 2) for proj in (attn.to_q, attn.to_k, attn.to_v))
        expected = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, dim=-1) @ v
        expected = attn.to_out[0](expected.transpose(1, 2).flatten(2).float())
    assert torch.allclose(got, expected, rtol=0, atol=1e-5)


def test_packed_sequence_attention_refuses_what_it_does_not_implement():
    from diffusers.models.attention_processor import Attention

    with pytest.raises(ValueError, match="cross-attention"):
        PackedSequenceAttention.check(Attention(query_dim=32, cross_attention_dim=16, heads=4, dim_head=8))
    with pytest.raises(ValueError, match="residual_connection"):
        PackedSequenceAttention.check(Attention(query_dim=32, heads=4, dim_head=8, residual_connection=True))
    with pytest.raises(ValueError, match="temporal_attention 'sparse'"):
        FastPath(temporal_attention="sparse")


def test_inductor_options_reach_torch_compile_for_both_modules_and_the_record(tiny_models, monkeypatch):
    """FastPath.inductor_options -> torch.compile(options=...) of the UNet and the VAE decoder
    (torch.compile recorded, not run: inductor on 2 CPU cores takes minutes), and the record."""
    calls = []

    def recording_compile(fn, **kwargs):
        calls.append((getattr(fn, "__self__", None), kwargs))
        return fn

    monkeypatch.setattr(torch, "compile", recording_compile)
    pipe, _ = _pipeline(tiny_models, load_methods()["D"])
    options = {"coordinate_descent_tuning": True, "conv_1x1_as_mm": True}
    record = pipe.enable_fast_path(FastPath(inductor_options=options))
    assert [module for module, _ in calls] == [pipe.unet, pipe.vae.decoder]
    assert all(kwargs == dict(backend="inductor", mode=None, fullgraph=True, options=options) for _, kwargs in calls)
    assert record["inductor_options"] == options
    assert "options" not in compile_kwargs(FastPath())  # none by default: inductor's own configuration


def test_inductor_options_are_checked_before_anything_compiles():
    with pytest.raises(ValueError, match=r"unknown inductor option\(s\) \['freezeing'\]"):
        FastPath(inductor_options={"freezeing": True})
    with pytest.raises(ValueError, match="mode 'max-autotune' and inductor_options"):
        FastPath(mode="max-autotune", inductor_options={"conv_1x1_as_mm": True})
    with pytest.raises(ValueError, match="backend 'inductor'"):
        FastPath(backend="eager", inductor_options={"conv_1x1_as_mm": True})
    # dynamo would freeze the injection hooks' adapter features too: a recompilation every step
    with pytest.raises(ValueError, match="'freezing' is not supported"):
        FastPath(inductor_options={"freezing": True})
    FastPath(inductor_options={"freezing": False})  # off is what it is without it


def test_benchmark_parses_inductor_options_as_python_literals():
    assert parse_options(["freezing=True", "triton.max_tiles=2", "cpp.simdlen=None", "compile_threads=x"]) == {
        "freezing": True, "triton.max_tiles": 2, "cpp.simdlen": None, "compile_threads": "x"}
    with pytest.raises(SystemExit, match="expected KEY=VALUE"):
        parse_options(["freezing"])
