"""The 360-Adapter: motion-condition video -> one feature map per UNet down block.

Architecture of the released `360Adapter_flow_v1.ckpt` (REFERENCE.md), for a condition of
shape (B, F, 3, H, W) in [-1, 1]:

    x = PixelUnshuffle(8)(condition)                  (B*F, 192, H/8, W/8)
    x = conv_in(x)                                    Conv2d 192 -> C0, 3x3, pad 1
    for level i in 0..3:
        x = AvgPool2d(2)(x)        if i < 3           (levels 0-2 halve H and W)
        x = in_conv(x)             if C_{i-1} != C_i  (Conv2d 1x1; levels 1, 2 at SD size)
        x = x + block2(relu(block1(x)))               block1 Conv3d (1,3,3) pad (0,1,1),
                                                      block2 Conv3d (3,1,1) pad (1,0,0),
                                                      over (B, C, F, h, w)
        features[i] = x                               (B*F, C_i, H/2^(4+min(i,2)), W/...)

At 512x1024 with channels (320, 640, 1280, 1280): 320@32x64, 640@16x32, 1280@8x16, 1280@8x16,
about 47M parameters. No normalisation and no zero initialisation (as released).

`temporal=False` is the ablation without pseudo-3D convolutions: each block drops its
temporal (3,1,1) conv `block2` and keeps `x + relu(block1(x))`, so frames are processed
independently; its state dict has no `body.{i}.block2.*` keys.

Checkpoints: `load_released_checkpoint` reads the authors' layout (`state_dict`, DDP `module.`
prefix) strictly; `save_adapter`/`load_adapter` use safetensors plus a JSON config beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from dvd360.atomic import atomic_path, write_json

RELEASED_CHANNELS = (320, 640, 1280, 1280)
UNSHUFFLE = 8
CONFIG_FORMAT = "dvd360.Adapter360/1"


class AdapterCheckpointError(ValueError):
    """A checkpoint that does not match the adapter it is loaded into (the message names the file)."""


class PseudoConv3dBlock(nn.Module):
    """Optional 1x1 channel change, then x + block2(relu(block1(x))) over (B, C, F, h, w)."""

    def __init__(self, in_channels: int, channels: int, downsample: bool, temporal: bool):
        super().__init__()
        self.down = nn.AvgPool2d(2) if downsample else None
        self.in_conv = nn.Conv2d(in_channels, channels, 1) if in_channels != channels else None
        self.block1 = nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1))
        self.act = nn.ReLU()
        self.block2 = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)) if temporal else None

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        if self.down is not None:
            x = self.down(x)
        if self.in_conv is not None:
            x = self.in_conv(x)
        x = x.unflatten(0, (-1, frames)).transpose(1, 2)  # (b f) c h w -> b c f h w
        h = self.act(self.block1(x))
        if self.block2 is not None:
            h = self.block2(h)
        return (x + h).transpose(1, 2).flatten(0, 1)


class Adapter360(nn.Module):
    """The 360-Adapter; `forward(condition (B, F, 3, H, W)) -> [(B*F, C_i, h_i, w_i)] * 4`."""

    def __init__(self, channels: Sequence[int] = RELEASED_CHANNELS, temporal: bool = True):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) != 4:
            raise ValueError(f"Adapter360 has 4 levels (one per UNet down block), got channels={channels}")
        self.channels = channels
        self.temporal = bool(temporal)
        self.unshuffle = nn.PixelUnshuffle(UNSHUFFLE)
        self.conv_in = nn.Conv2d(3 * UNSHUFFLE**2, channels[0], 3, padding=1)
        previous = (channels[0],) + channels[:-1]
        self.body = nn.ModuleList(
            PseudoConv3dBlock(previous[i], channels[i], downsample=i < 3, temporal=temporal)
            for i in range(4)
        )

    @property
    def config(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, "channels": list(self.channels), "temporal": self.temporal}

    def forward(self, condition: torch.Tensor) -> list[torch.Tensor]:
        if condition.ndim != 5 or condition.shape[2] != 3:
            raise ValueError(f"condition must be (B, F, 3, H, W), got {tuple(condition.shape)}")
        height, width = condition.shape[-2:]
        if height % 64 or width % 64:
            raise ValueError(f"condition height and width must be multiples of 64, got {height}x{width}")
        frames = condition.shape[1]
        x = self.conv_in(self.unshuffle(condition.flatten(0, 1)))
        features = []
        for block in self.body:
            x = block(x, frames)
            features.append(x)
        return features


def _check_state_dict(adapter: Adapter360, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Raise one AdapterCheckpointError listing missing keys, unexpected keys and shape mismatches."""
    expected = adapter.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in set(expected) & set(state) if tuple(state[key].shape) != tuple(expected[key].shape)
    )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {', '.join(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {', '.join(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {'; '.join(mismatched)}")
    if problems:
        raise AdapterCheckpointError(
            f"{path}: does not match Adapter360(channels={list(adapter.channels)}, "
            f"temporal={adapter.temporal}):\n  " + "\n  ".join(problems))


def load_released_checkpoint(path: str | Path, channels: Sequence[int] = RELEASED_CHANNELS,
                             temporal: bool = True) -> Adapter360:
    """Build an Adapter360 and load the authors' checkpoint strictly.

    Accepts `{"state_dict": {...}}` or a bare state dict, with or without the DDP `module.`
    prefix; any missing key, unexpected key or shape mismatch raises AdapterCheckpointError.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such adapter checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated/foreign files
        raise AdapterCheckpointError(f"{path}: cannot be read as a torch checkpoint ({error})") from error
    if not isinstance(checkpoint, Mapping):
        raise AdapterCheckpointError(f"{path}: expected a dict, found {type(checkpoint).__name__}")
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AdapterCheckpointError(f"{path}: `state_dict` is not a mapping of names to tensors")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    adapter = Adapter360(channels, temporal)
    _check_state_dict(adapter, state, path)
    adapter.load_state_dict(state, strict=True)
    return adapter


def config_path(path: str | Path) -> Path:
    """The JSON config beside an adapter's safetensors file: `adapter.safetensors` -> `adapter.json`."""
    return Path(path).with_suffix(".json")


def save_adapter(adapter: Adapter360, path: str | Path) -> Path:
    """Write the weights (safetensors) and `config_path(path)` (JSON), each atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {key: value.detach().to("cpu").contiguous() for key, value in adapter.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": CONFIG_FORMAT})
    write_json(config_path(path), adapter.config)
    return path


def load_adapter(path: str | Path, device: str | torch.device = "cpu") -> Adapter360:
    """Read an adapter written by `save_adapter` (strict: any mismatch raises AdapterCheckpointError)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    config_file = config_path(path)
    for needed in (path, config_file):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed}: missing (an adapter is a .safetensors file plus its .json config)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        channels, temporal = config["channels"], config["temporal"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise AdapterCheckpointError(f"{config_file}: not an Adapter360 config ({error!r})") from error
    if config.get("format") != CONFIG_FORMAT:
        raise AdapterCheckpointError(f"{config_file}: format {config.get('format')!r}, expected {CONFIG_FORMAT!r}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise AdapterCheckpointError(f"{path}: cannot be read as safetensors ({error})") from error
    adapter = Adapter360(channels, temporal)
    _check_state_dict(adapter, state, path)
    adapter.load_state_dict(state, strict=True)
    return adapter.to(device)
