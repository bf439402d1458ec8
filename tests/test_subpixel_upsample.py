"""The sub-pixel form of nearest-2x upsampling + 3x3 conv: the same function as diffusers'
Upsample2D (zero and width-circular padding, float64), an independent computation of the
phase kernels, the whole tiny UNet and VAE decoder unchanged, and what is left alone."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.upsampling import Upsample2D

from dvd360.models.circular_padding import make_width_circular, set_width_circular
from dvd360.models.materialize import load_components
from dvd360.sampling.subpixel_upsample import (SubpixelUpsample2D, make_subpixel_upsampling, subpixel_upsample_conv,
                                               subpixel_weight)


def _block(channels=6, out_channels=5, seed=0):
    torch.manual_seed(seed)
    return Upsample2D(channels, use_conv=True, out_channels=out_channels).double()


@pytest.mark.parametrize("circular", [False, True])
@pytest.mark.parametrize("height, width", [(5, 8), (1, 3), (4, 4)])
def test_subpixel_form_is_upsample_then_conv(circular, height, width):
    """float64: the same function up to float64 rounding, with the conv's padding either way."""
    block = _block()
    make_width_circular(block)
    set_width_circular(block, circular)
    x = torch.randn(3, 6, height, width, dtype=torch.float64)
    with torch.no_grad():
        expected = block(x)
        assert make_subpixel_upsampling(block) == 1 and type(block) is SubpixelUpsample2D
        got = block(x)
        sized = block(x, output_size=(2 * height, 2 * width))
    assert got.shape == expected.shape == (3, 5, 2 * height, 2 * width)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12) and torch.equal(sized, got)


def test_circular_subpixel_upsampling_commutes_with_a_roll():
    """With width-circular padding, rolling the input by s columns rolls the output by 2s."""
    block = _block()
    make_width_circular(block)
    set_width_circular(block, True)
    make_subpixel_upsampling(block)
    x = torch.randn(2, 6, 4, 8, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(block(torch.roll(x, 3, dims=-1)), torch.roll(block(x), 6, dims=-1), rtol=0, atol=1e-12)


def test_phase_kernels_sum_the_taps_each_phase_sees():
    """Independent check of W'_ab, entry by entry: for output pixel (2i+a, 2j+b) the 3x3 taps
    (r, c) land on input pixel (i + floor((a+r-1)/2), j + floor((b+c-1)/2)); the phase kernel's
    tap (p, q) reads input offset (p + a - 1, q + b - 1) from (i, j), so it sums the taps with
    p = floor((a+r-1)/2) - a + 1 and q likewise."""
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    phases = subpixel_weight(weight).view(2, 2, 3, 2, 2, 2)
    for a in (0, 1):
        for b in (0, 1):
            expected = torch.zeros(3, 2, 2, 2, dtype=torch.float64)
            for r in range(3):
                for c in range(3):
                    p, q = (a + r - 1) // 2 - a + 1, (b + c - 1) // 2 - b + 1
                    expected[:, :, p, q] += weight[:, :, r, c]
            assert torch.allclose(phases[a, b], expected, rtol=0, atol=1e-12)


def test_bfloat16_rounding_is_that_of_the_weights():
    """In bf16 the phase kernels are rounded once; the output stays within bf16 rounding of the
    float64 function (the upsample+conv path's own error is of the same size)."""
    block = _block(channels=32, out_channels=32)
    x = torch.randn(2, 32, 6, 10, dtype=torch.float64)
    with torch.no_grad():
        reference = block(x)
        plain = block.to(torch.bfloat16)(x.to(torch.bfloat16)).double()
        got = subpixel_upsample_conv(x.to(torch.bfloat16), block.conv.weight, block.conv.bias).double()
    scale = reference.abs().max()
    plain_error = float((plain - reference).abs().max() / scale)
    error = float((got - reference).abs().max() / scale)
    assert error < 3 * plain_error + 2 ** -8, (error, plain_error)


def test_tiny_unet_and_vae_decoder_unchanged(tiny_models):
    """Every upsampler of the tiny UNet and VAE decoder switches; outputs equal within fp32 rounding."""
    components = load_components(tiny_models)
    unet, decoder = components.unet, components.vae.decoder
    torch.manual_seed(0)
    x = torch.randn(1, 4, 2, 16, 32)
    text = torch.randn(2, 77, unet.config.cross_attention_dim)
    latent = torch.randn(2, components.vae.config.latent_channels, 16, 32)
    upsamplers = [m for module in (unet, decoder) for m in module.modules() if isinstance(m, Upsample2D)]
    with torch.no_grad():
        before = unet(x, 500, encoder_hidden_states=text).sample, decoder(latent)
        assert make_subpixel_upsampling(unet) + make_subpixel_upsampling(decoder) == len(upsamplers) > 0
        assert make_subpixel_upsampling(unet) == sum(isinstance(m, Upsample2D) for m in unet.modules())  # idempotent
        after = unet(x, 500, encoder_hidden_states=text).sample, decoder(latent)
    assert all(type(m) is SubpixelUpsample2D for m in upsamplers)
    for b, a in zip(before, after):
        assert torch.allclose(a, b, rtol=0, atol=1e-5 * float(b.abs().max()))


def test_other_upsamplers_are_left_alone():
    transposed = Upsample2D(4, use_conv_transpose=True)
    no_conv = Upsample2D(4, use_conv=False)
    normed = Upsample2D(4, use_conv=True, norm_type="ln_norm", eps=1e-5, elementwise_affine=True)
    wide = Upsample2D(4, use_conv=True, kernel_size=5, padding=2)
    for block in (transposed, no_conv, normed, wide):
        assert make_subpixel_upsampling(block) == 0 and type(block) is Upsample2D


def test_odd_output_size_takes_the_original_path():
    """The UNet asks for an explicit size when the latent does not halve evenly: not 2x, so
    diffusers' own interpolation runs."""
    block = _block()
    x = torch.randn(1, 6, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        expected = block(x, output_size=(9, 11))
        make_subpixel_upsampling(block)
        got = block(x, output_size=(9, 11))
    assert type(block) is SubpixelUpsample2D and got.shape[-2:] == (9, 11) and torch.equal(got, expected)


def test_upsample_benchmark_runs_on_the_cpu():
    """The benchmark's CPU check (dynamo's eager backend): both forms timed, both within float32
    rounding of the float64 reference."""
    from dvd360.benchmarks.upsample import main

    rows = main(["--tiny", "--repeats", "1", "--compile-backend", "eager"])
    assert [row["shape"] for row in rows] == ["tiny 8x16", "tiny 16x32"]
    for row in rows:
        assert row["upsample+conv"] > 0 and row["sub-pixel"] > 0
        assert row["upsample+conv error"] < 1e-5 and row["sub-pixel error"] < 1e-5
