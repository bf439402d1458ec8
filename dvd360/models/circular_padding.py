"""Width-circular padding for every Conv2d of a module (UNet, VAE decoder), switched on and off.

An ERP frame wraps around in longitude, so a conv at column 0 should see column W-1. With
the switch on, each conv pads its input explicitly:

    x = F.pad(x, (pw, pw, 0, 0), mode="circular")   # width: wrap around
    x = F.pad(x, (0, 0, ph, ph))                    # height: zeros (the poles do not wrap)
    y = conv2d(x, padding=0)

which makes the conv commute with a horizontal roll by any multiple of its stride. With the
switch off the conv is exactly the original `nn.Conv2d.forward`.

Design (torch.compile): `make_width_circular` changes each affected conv's class in place to
`WidthCircularConv2d` (a subclass: same parameters, state-dict keys, hooks and PEFT wrappers)
whose `forward` branches on a plain Python bool attribute, `circular`. Dynamo specialises on
that attribute with a guard, so a compiled module has exactly two graph variants (off, on),
each compiled once; toggling between steps then only selects a cached graph: no graph break
and no recompilation after the first toggle (checked with the eager and inductor backends:
2 unique graphs over 6 alternating calls, 0 graph breaks; see
`tests/test_circular_padding.py::test_compile_two_variants_without_graph_breaks`). A tensor
flag with `torch.where` over both paddings would give one graph but pay both pads in every
conv at every step; rebinding `_conv_forward` per instance, as the release does, also gives
two graphs but leaves monkeypatched methods behind and has to be undone by hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WidthCircularConv2d(nn.Conv2d):
    """An nn.Conv2d whose padding wraps in width when `self.circular` is True (zeros in height)."""

    circular: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.circular:
            return super().forward(x)
        pad_h, pad_w = self.padding
        x = F.pad(x, (pad_w, pad_w, 0, 0), mode="circular")
        if pad_h:
            x = F.pad(x, (0, 0, pad_h, pad_h))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def make_width_circular(module: nn.Module) -> int:
    """Convert (in place, idempotent) every Conv2d under `module` that pads in width.

    Convs without width padding (1x1) are left alone: padding does not concern them. Returns
    the number of width-padded convs now switchable. A conv with string padding ('same') or a
    non-zero padding mode raises ValueError, since its wrap-around would be silently wrong.
    """
    count = 0
    for name, conv in module.named_modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError(f"{name}: Conv2d with padding={conv.padding!r}, padding_mode="
                             f"{conv.padding_mode!r} is not supported by width-circular padding")
        if conv.padding[1] == 0:
            continue
        if type(conv) is nn.Conv2d:
            conv.__class__ = WidthCircularConv2d
            conv.circular = False
        elif not isinstance(conv, WidthCircularConv2d):
            raise ValueError(f"{name}: {type(conv).__name__} is a Conv2d subclass we cannot switch")
        count += 1
    return count


def set_width_circular(module: nn.Module, enabled: bool) -> None:
    """Switch width-circular padding on or off for every converted conv under `module`."""
    for conv in module.modules():
        if isinstance(conv, WidthCircularConv2d):
            conv.circular = bool(enabled)
