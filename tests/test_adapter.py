"""Adapter360: released architecture, shapes, key layout, strict checkpoint loading, safetensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dvd360.models.adapter import (Adapter360, AdapterCheckpointError, config_path, load_adapter,
                                   load_released_checkpoint, save_adapter)

TINY = (32, 64, 64, 64)


def _tiny(temporal=True, seed=0):
    torch.manual_seed(seed)
    return Adapter360(TINY, temporal=temporal).eval()


def _released_layout(adapter: Adapter360) -> dict:
    """The authors' layout: {"state_dict": {"module.<key>": tensor}} (DDP-wrapped model)."""
    return {"state_dict": {f"module.{k}": v.clone() for k, v in adapter.state_dict().items()}}


def test_full_size_shapes_keys_and_parameter_count():
    # Weights and parameter count on the meta device (instant); the 512x1024 feature sizes with
    # a real forward of a narrow adapter (the meta forward costs ~10 s of one-off dispatch set-up).
    narrow = Adapter360((4, 8, 16, 16)).eval()
    with torch.no_grad():
        features = narrow(torch.zeros(1, 2, 3, 512, 1024))
    assert [tuple(f.shape) for f in features] == [(2, 4, 32, 64), (2, 8, 16, 32), (2, 16, 8, 16), (2, 16, 8, 16)]
    with torch.device("meta"):
        adapter = Adapter360()
    out_channels = [adapter.state_dict()[f"body.{i}.block1.weight"].shape[0] for i in range(4)]
    assert [(c, *f.shape[-2:]) for c, f in zip(out_channels, features)] == [
        (320, 32, 64), (640, 16, 32), (1280, 8, 16), (1280, 8, 16)]
    assert sum(p.numel() for p in adapter.parameters()) == pytest.approx(47e6, rel=0.01)
    expected = {"conv_in.weight", "conv_in.bias"}
    for i in range(4):
        expected |= {f"body.{i}.block{j}.{p}" for j in (1, 2) for p in ("weight", "bias")}
    expected |= {f"body.{i}.in_conv.{p}" for i in (1, 2) for p in ("weight", "bias")}
    assert set(adapter.state_dict()) == expected
    state = adapter.state_dict()
    assert tuple(state["conv_in.weight"].shape) == (320, 192, 3, 3)
    assert tuple(state["body.1.in_conv.weight"].shape) == (640, 320, 1, 1)
    assert tuple(state["body.0.block1.weight"].shape) == (320, 320, 1, 3, 3)
    assert tuple(state["body.0.block2.weight"].shape) == (320, 320, 3, 1, 1)


def _reference_forward(state: dict, condition: torch.Tensor, temporal: bool) -> list[torch.Tensor]:
    """REFERENCE.md's formulas written out with functional ops, independently of the module."""
    b, f = condition.shape[:2]
    x = F.pixel_unshuffle(condition.reshape(b * f, *condition.shape[2:]), 8)
    x = F.conv2d(x, state["conv_in.weight"], state["conv_in.bias"], padding=1)
    out = []
    for i in range(4):
        if i < 3:
            x = F.avg_pool2d(x, 2)
        if f"body.{i}.in_conv.weight" in state:
            x = F.conv2d(x, state[f"body.{i}.in_conv.weight"], state[f"body.{i}.in_conv.bias"])
        v = x.reshape(b, f, *x.shape[1:]).permute(0, 2, 1, 3, 4)
        h = F.relu(F.conv3d(v, state[f"body.{i}.block1.weight"], state[f"body.{i}.block1.bias"], padding=(0, 1, 1)))
        if temporal:
            h = F.conv3d(h, state[f"body.{i}.block2.weight"], state[f"body.{i}.block2.bias"], padding=(1, 0, 0))
        x = (v + h).permute(0, 2, 1, 3, 4).reshape(b * f, *x.shape[1:])
        out.append(x)
    return out


@pytest.mark.parametrize("temporal", [True, False])
def test_tiny_forward_matches_reference_formulas(temporal):
    adapter = _tiny(temporal)
    condition = torch.rand(1, 3, 3, 64, 128) * 2 - 1
    with torch.no_grad():
        features = adapter(condition)
    assert [tuple(f.shape) for f in features] == [(3, 32, 4, 8), (3, 64, 2, 4), (3, 64, 1, 2), (3, 64, 1, 2)]
    for got, want in zip(features, _reference_forward(adapter.state_dict(), condition, temporal)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_no_pseudo3d_ablation_processes_frames_independently():
    assert not any("block2" in k for k in _tiny(temporal=False).state_dict())
    condition = torch.rand(1, 3, 3, 64, 128) * 2 - 1
    changed = condition.clone()
    changed[:, 1] = -changed[:, 1]
    for temporal, frame0_changes in ((True, True), (False, False)):
        adapter = _tiny(temporal)
        with torch.no_grad():
            a, b = adapter(condition)[-1], adapter(changed)[-1]
        assert (not torch.equal(a[0], b[0])) == frame0_changes


def test_released_checkpoint_loads_strictly(tmp_path):
    source = _tiny()
    path = tmp_path / "360Adapter_flow_v1.ckpt"
    torch.save(_released_layout(source), path)
    loaded = load_released_checkpoint(path, channels=TINY)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_mismatched_checkpoint_names_file_and_every_problem(tmp_path):
    layout = _released_layout(_tiny())
    state = layout["state_dict"]
    del state["module.body.3.block2.weight"]
    state["module.body.9.extra"] = torch.zeros(1)
    state["module.conv_in.bias"] = torch.zeros(7)
    path = tmp_path / "broken.ckpt"
    torch.save(layout, path)
    with pytest.raises(AdapterCheckpointError) as error:
        load_released_checkpoint(path, channels=TINY)
    message = str(error.value)
    assert str(path) in message
    assert "body.3.block2.weight" in message and "missing" in message
    assert "body.9.extra" in message and "unexpected" in message
    assert "conv_in.bias: checkpoint (7,) vs model (32,)" in message


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "truncated.ckpt"
    torch.save(_released_layout(_tiny()), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AdapterCheckpointError, match="truncated.ckpt"):
        load_released_checkpoint(path, channels=TINY)


def test_ablation_adapter_refuses_a_temporal_checkpoint(tmp_path):
    path = tmp_path / "full.ckpt"
    torch.save(_released_layout(_tiny()), path)
    with pytest.raises(AdapterCheckpointError, match="unexpected keys"):
        load_released_checkpoint(path, channels=TINY, temporal=False)


def test_safetensors_round_trip(tmp_path):
    adapter = _tiny(temporal=False, seed=3)
    path = save_adapter(adapter, tmp_path / "adapter.safetensors")
    assert config_path(path).is_file()
    loaded = load_adapter(path)
    assert loaded.channels == TINY and loaded.temporal is False
    for key, value in adapter.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    config_path(path).unlink()
    with pytest.raises(FileNotFoundError, match="adapter.json"):
        load_adapter(path)
