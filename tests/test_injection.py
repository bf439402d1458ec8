"""Feature injection after each UNetMotionModel down block: iff non-zero, CFG halves, scale, schedule."""

from __future__ import annotations

import pytest
import torch

from dvd360.models.injection import FeatureInjection, adapter_active
from dvd360.models.materialize import load_components

FRAMES, H, W = 2, 8, 16  # latent size (64x128 pixels)


@pytest.fixture(scope="module")
def unet(tiny_models):
    return load_components(tiny_models).unet


def _features(unet, frames, seed=0, zero=False):
    """One feature map per down block, shaped like that block's output, for `frames` frames."""
    generator = torch.Generator().manual_seed(seed)
    channels = unet.config.block_out_channels
    sizes = [(H // 2, W // 2), (H // 4, W // 4), (H // 8, W // 8), (H // 8, W // 8)]
    make = torch.zeros if zero else (lambda *s: torch.randn(*s, generator=generator))
    return [make(frames, c, h, w) for c, (h, w) in zip(channels, sizes)]


def _run(unet, sample, text):
    with torch.no_grad():
        return unet(sample, 500, encoder_hidden_states=text).sample


@pytest.mark.parametrize("one_graph", [False, True])  # True: inactive hooks add zeros (compiled fast path)
def test_changes_output_iff_features_nonzero(unet, one_graph):
    torch.manual_seed(0)
    sample = torch.randn(1, 4, FRAMES, H, W)
    text = torch.randn(FRAMES, 77, unet.config.cross_attention_dim)
    base = _run(unet, sample, text)
    with FeatureInjection(unet, one_graph=one_graph) as injection:
        injection.set_features(_features(unet, FRAMES, zero=True))
        assert torch.equal(_run(unet, sample, text), base)
        injection.set_features(_features(unet, FRAMES), scale=0.0)
        assert torch.equal(_run(unet, sample, text), base)
        injection.set_features(_features(unet, FRAMES))
        assert (_run(unet, sample, text) - base).abs().max() > 1e-3
        injection.active = False
        assert torch.equal(_run(unet, sample, text), base)
        injection.roll_features(180)
        injection.active = True
        assert (_run(unet, sample, text) - base).abs().max() > 1e-3
    assert torch.equal(_run(unet, sample, text), base)  # hooks removed


def test_adds_scaled_features_to_sample_and_last_skip_of_both_cfg_halves(unet):
    torch.manual_seed(1)
    sample = torch.randn(1, 4, FRAMES, H, W).repeat(2, 1, 1, 1, 1)  # CFG: the same latent twice
    text = torch.randn(2 * FRAMES, 77, unet.config.cross_attention_dim)
    features = _features(unet, FRAMES, seed=1)
    seen = {}

    def record(name, i):
        def hook(module, args, output):
            seen[name, i] = (output[0].clone(), tuple(r.clone() for r in output[1]))
        return hook

    blocks = list(unet.down_blocks)
    handles = [b.register_forward_hook(record("before", i)) for i, b in enumerate(blocks)]
    with FeatureInjection(unet) as injection:
        handles += [b.register_forward_hook(record("after", i)) for i, b in enumerate(blocks)]
        injection.set_features(features, scale=2.0)
        _run(unet, sample, text)
    for handle in handles:
        handle.remove()
    for i, feature in enumerate(features):
        (hs, res), (new_hs, new_res) = seen["before", i], seen["after", i]
        expected = hs + 2.0 * torch.cat([feature, feature])  # uncond frames, then cond frames
        torch.testing.assert_close(new_hs, expected)
        assert new_res[-1] is not None and torch.equal(new_res[-1], new_hs)
        assert all(torch.equal(a, b) for a, b in zip(res[:-1], new_res[:-1]))
        assert len(new_res) == len(res)


def test_wrong_feature_shape_is_refused(unet):
    sample = torch.randn(1, 4, FRAMES, H, W)
    text = torch.randn(FRAMES, 77, unet.config.cross_attention_dim)
    with FeatureInjection(unet) as injection:
        injection.set_features([f[:, :1] for f in _features(unet, FRAMES)])
        with pytest.raises(ValueError, match="down block 0"):
            _run(unet, sample, text)


def test_roll_features_by_quarter_turns(unet):
    with FeatureInjection(unet) as injection:
        injection.set_features([torch.arange(w, dtype=torch.float32).reshape(1, 1, 1, w) for w in (8, 4, 4, 4)])
        injection.roll_features(90)
        assert injection.features[0].flatten().tolist() == [6, 7, 0, 1, 2, 3, 4, 5]
        assert injection.features[1].flatten().tolist() == [3, 0, 1, 2]
        injection.set_features([torch.zeros(1, 1, 1, 2)] * 4)
        with pytest.raises(ValueError, match="whole columns"):
            injection.roll_features(90)


def test_adapter_schedule_matches_release():
    assert [i for i in range(25) if adapter_active(i, 25)] == list(range(19))
    assert [i for i in range(10) if adapter_active(i, 10)] == list(range(7))
