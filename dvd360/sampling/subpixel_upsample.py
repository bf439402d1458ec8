"""Nearest-neighbour 2x upsampling followed by a 3x3 convolution, computed without the upsampling.

Every up block of the SD 1.5 UNet and of the SD VAE decoder ends in diffusers' `Upsample2D`:
x (N, C, H, W) -> nearest 2x -> conv 3x3 (padding 1) -> y (N, C_out, 2H, 2W). Each output pixel
(2i+a, 2j+b), phase a, b in {0, 1}, sees only 2x2 distinct input pixels, since the upsampled
image repeats each of them twice per axis: along one axis the kernel's taps (k0, k1, k2) fall on

    a = 0: rows i-1, i, i    ->  weights (k0, k1 + k2) on rows (i-1, i)
    a = 1: rows i, i, i+1    ->  weights (k0 + k1, k2) on rows (i, i+1)

So with R_0 = [[1,0,0],[0,1,1]], R_1 = [[1,1,0],[0,0,1]] and the input padded by one pixel P
(H+2, W+2; the same padding the conv would apply, since padding commutes with nearest
upsampling: zeros stay zeros, a wrapped column stays the wrapped column),

    W'_ab = R_a W R_b^T                      (C_out, C_in, 2, 2), four of them
    Z     = conv2d(P, [W'_00; W'_01; W'_10; W'_11], valid)        (N, 4 C_out, H+1, W+1)
    y[:, :, 2i+a, 2j+b] = Z_ab[:, :, i+a, j+b]

the sub-pixel form of Shi et al. (2016): 16 (H+1)(W+1) instead of 36 HW multiply-adds per
channel pair (0.45x at 64x128), and no upsampled tensor in memory. The same sums of the same
products in exact arithmetic; in floating point the combined weights (k1 + k2 and so on, summed
in float32) are rounded once to the weights' dtype, an error the size of one rounding of a
weight. The phase kernels are computed from the conv's weight in every call (tap sums: one
elementwise kernel once compiled), so they can never be stale.

Hand-written: diffusers and PyTorch have no such layer (PyTorch's `pixel_shuffle` is only the
final interleave, written here as a stack and reshape that inductor fuses into one copy).

Width-circular padding (`dvd360.models.circular_padding`) is honoured: when the block's conv
is switched to circular, P wraps in width exactly as the conv's own padding would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.upsampling import Upsample2D
from torch import nn


def _fold_taps(weight: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3 taps along `dim` folded onto 2 pixels for phase 0 (k0, k1 + k2) and 1 (k0 + k1, k2)."""
    k0, k1, k2 = weight.unbind(dim)
    return torch.stack([k0, k1 + k2], dim), torch.stack([k0 + k1, k2], dim)


def subpixel_weight(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, 3, 3) -> (4 C_out, C_in, 2, 2): the phase kernels W'_ab = R_a W R_b^T,
    phases in the order (a, b) = 00, 01, 10, 11; summed in float32 (float64 weights: float64),
    then rounded once to `weight`'s dtype. Written as tap sums, not an einsum: one elementwise
    kernel once compiled, and faster eager too (docs/performance.md)."""
    exact = weight.to(torch.promote_types(weight.dtype, torch.float32))
    phases = [kernel for rows in _fold_taps(exact, 2) for kernel in _fold_taps(rows, 3)]
    return torch.cat(phases).to(weight.dtype)


def subpixel_upsample_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                           circular_width: bool = False) -> torch.Tensor:
    """conv3x3(nearest_2x(x), padding 1) for x (N, C_in, H, W) -> (N, C_out, 2H, 2W), in the
    sub-pixel form (module docstring); `circular_width`: the padding wraps in width."""
    batch, _, height, width = x.shape
    out_channels = weight.shape[0]
    padded = F.pad(x, (1, 1, 0, 0), mode="circular" if circular_width else "constant")
    padded = F.pad(padded, (0, 0, 1, 1))
    z = F.conv2d(padded, subpixel_weight(weight), None if bias is None else bias.repeat(4))
    z = z.view(batch, 2, 2, out_channels, height + 1, width + 1)
    rows = [torch.stack([z[:, a, b, :, a:a + height, b:b + width] for b in (0, 1)], dim=-1) for a in (0, 1)]
    return torch.stack(rows, dim=-3).reshape(batch, out_channels, 2 * height, 2 * width)


def _convertible(block: Upsample2D) -> bool:
    """Exactly nearest 2x + conv 3x3 (stride 1, padding 1, no norm): what the sub-pixel form computes."""
    conv = getattr(block, "conv", None)
    return (block.use_conv and not block.use_conv_transpose and block.interpolate and block.norm is None
            and block.name == "conv" and isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3)
            and conv.stride == (1, 1) and conv.padding == (1, 1) and conv.dilation == (1, 1)
            and conv.groups == 1 and conv.padding_mode == "zeros")


class SubpixelUpsample2D(Upsample2D):
    """diffusers' `Upsample2D` (nearest 2x + conv 3x3) computed in the sub-pixel form; the same
    parameters, state-dict keys and conv (so its width-circular switch applies)."""

    def forward(self, hidden_states: torch.Tensor, output_size=None, *args, **kwargs) -> torch.Tensor:
        height, width = hidden_states.shape[-2:]
        if args or kwargs or (output_size is not None and tuple(output_size) != (2 * height, 2 * width)):
            return super().forward(hidden_states, output_size, *args, **kwargs)  # not a 2x upsampling
        return subpixel_upsample_conv(hidden_states, self.conv.weight, self.conv.bias,
                                      bool(getattr(self.conv, "circular", False)))


def make_subpixel_upsampling(module: nn.Module) -> int:
    """Switch (in place, idempotent) every convertible `Upsample2D` under `module` to
    `SubpixelUpsample2D` (a class change: nothing is copied). Returns how many blocks run that
    way; any other upsampler is left as it is."""
    count = 0
    for block in module.modules():
        if type(block) in (Upsample2D, SubpixelUpsample2D) and _convertible(block):
            block.__class__ = SubpixelUpsample2D
            count += 1
    return count
