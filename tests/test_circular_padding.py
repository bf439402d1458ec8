"""Width-circular padding: independent reference, roll equivariance (conv, VAE decoder, UNet), compile."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dvd360.models.circular_padding import WidthCircularConv2d, make_width_circular, set_width_circular
from dvd360.models.materialize import load_components


def _conv(stride=1, seed=0):
    torch.manual_seed(seed)
    conv = nn.Conv2d(3, 5, 3, stride=stride, padding=1)
    assert make_width_circular(conv) == 1 and isinstance(conv, WidthCircularConv2d)
    return conv


def test_matches_tiled_reference_and_is_plain_conv_when_off():
    conv = _conv()
    x = torch.randn(2, 3, 6, 10)
    plain = F.conv2d(x, conv.weight, conv.bias, padding=1)
    assert torch.equal(conv(x), plain)
    # Independent reference: tile three copies side by side, zero-pad the height, valid conv, crop.
    tiled = F.pad(torch.cat([x, x, x], dim=-1), (0, 0, 1, 1))
    reference = F.conv2d(tiled, conv.weight, conv.bias)[..., 10 - 1:20 - 1]
    set_width_circular(conv, True)
    torch.testing.assert_close(conv(x), reference)
    assert not torch.allclose(conv(x), plain)


@pytest.mark.parametrize("stride, shift", [(1, 3), (2, 4), (2, 6)])
def test_conv_commutes_with_horizontal_roll(stride, shift):
    conv = _conv(stride)
    x = torch.randn(1, 3, 8, 16)
    set_width_circular(conv, True)
    rolled_first = conv(torch.roll(x, shift, dims=-1))
    rolled_after = torch.roll(conv(x), shift // stride, dims=-1)
    assert (rolled_first - rolled_after).abs().max() < 1e-5
    set_width_circular(conv, False)  # zero padding breaks the symmetry at the seam
    assert (conv(torch.roll(x, shift, dims=-1)) - torch.roll(conv(x), shift // stride, dims=-1)).abs().max() > 1e-3


def test_rejects_convs_it_cannot_wrap():
    with pytest.raises(ValueError, match="padding='same'"):
        make_width_circular(nn.Sequential(nn.Conv2d(1, 1, 3, padding="same")))
    one_by_one = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 3, padding=1))
    assert make_width_circular(one_by_one) == 1 and make_width_circular(one_by_one) == 1
    assert type(one_by_one[0]) is nn.Conv2d


@pytest.fixture(scope="module")
def components(tiny_models):
    return load_components(tiny_models)


def test_vae_decoder_and_unet_commute_with_roll(components):
    vae, unet = components.vae, components.unet
    assert make_width_circular(vae.decoder) > 0 and make_width_circular(unet) > 0
    torch.manual_seed(0)
    latent = torch.randn(1, 4, 8, 16)
    shift = 8  # a multiple of the UNet's total downsampling (2^3); the VAE only upsamples
    set_width_circular(vae.decoder, True)
    set_width_circular(unet, True)
    try:
        with torch.no_grad():
            a = vae.decode(torch.roll(latent, shift, dims=-1)).sample
            b = torch.roll(vae.decode(latent).sample, shift * 8, dims=-1)
            assert (a - b).abs().max() < 1e-4
            sample = latent[:, :, None].repeat(1, 1, 2, 1, 1)  # (B, C, F, h, w)
            text = torch.randn(2, 77, unet.config.cross_attention_dim)
            c = unet(torch.roll(sample, shift, dims=-1), 500, encoder_hidden_states=text).sample
            d = torch.roll(unet(sample, 500, encoder_hidden_states=text).sample, shift, dims=-1)
            assert (c - d).abs().max() < 1e-4
    finally:
        set_width_circular(vae.decoder, False)
        set_width_circular(unet, False)


def test_compile_two_variants_without_graph_breaks():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1))
    make_width_circular(model)
    compiled = torch.compile(model, backend="eager")
    x = torch.randn(1, 3, 8, 16)
    for i in range(6):
        set_width_circular(model, i % 2 == 1)
        assert torch.equal(compiled(x), model(x))
    assert counters["stats"]["unique_graphs"] == 2
    assert sum(counters["graph_break"].values()) == 0
    torch._dynamo.reset()
