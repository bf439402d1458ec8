"""Adding 360-Adapter features to diffusers' `UNetMotionModel` after each down block.

A forward hook on down block i replaces its output `(hs, res)` by

    hs' = hs + scale * f_i,      res' = res[:-1] + (hs',)

so the sample entering the next block *and* the block's last skip connection (the same
tensor in diffusers) both carry the features, as in the released model (REFERENCE.md).
Nothing is added to the mid or up blocks. diffusers' own T2I path
(`down_intrablock_additional_residuals`) adds before the downsampler and is not accepted by
`UNetMotionModel`, hence hooks rather than a copy of diffusers' forward.

Features are (N, C_i, h_i, w_i) with N = B*F frames of one guidance half; the UNet's batch is
k*N (k = 2 with classifier-free guidance, uncond then cond). The hook adds them to every
half by broadcasting over a (k, N, ...) view: the same features for both halves, no copy
and no second adapter pass.

Adapter schedule (the release): features for denoising steps i <= T//4*3 (steps 0..18 of
25), nothing after (`adapter_active(i, T)`).

`one_graph=True` (the compiled fast path): with `active = False` the hooks add zeros instead of
returning early, so what they run does not depend on the schedule and torch.compile needs one
graph for both adapter phases rather than two (x + 0 = x exactly: the same output).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def adapter_active(step: int, total_steps: int) -> bool:
    """True when step i (0-based) of T uses the adapter's features: i <= T//4*3."""
    return step <= total_steps // 4 * 3


class FeatureInjection:
    """Hooks on the 4 down blocks of a UNetMotionModel; features set per step, removed on `close`.

    Use as a context manager::

        with FeatureInjection(unet) as injection:
            injection.set_features(adapter(condition), scale=1.0)
            ...unet(...)...              # features added
            injection.active = False     # UNet runs unchanged (also after set_features(None))
    """

    def __init__(self, unet: nn.Module, *, one_graph: bool = False):
        blocks = list(unet.down_blocks)
        if len(blocks) != 4:
            raise ValueError(f"expected a UNet with 4 down blocks, found {len(blocks)}")
        self.one_graph = one_graph
        self._features: list[torch.Tensor] | None = None
        self._zeros: list[torch.Tensor] | None = None
        self._active = True
        self._added: list[torch.Tensor] | None = None  # what the hooks add now (None: nothing)
        self._handles = [block.register_forward_hook(self._hook(i)) for i, block in enumerate(blocks)]

    @property
    def active(self) -> bool:
        """Whether the features are added at this step (the adapter schedule)."""
        return self._active

    @active.setter
    def active(self, value: bool) -> None:
        self._active = bool(value)
        self._update()

    def _update(self) -> None:
        if self._features is None:
            self._added = None
        elif self._active:
            self._added = self._features
        else:
            self._added = self._zeros if self.one_graph else None

    def set_features(self, features: Sequence[torch.Tensor] | None, scale: float = 1.0) -> None:
        """Features to add from now on (multiplied by `scale` once, here), or None for none."""
        if features is None:
            self._features = self._zeros = None
            self._update()
            return
        if len(features) != len(self._handles):
            raise ValueError(f"expected {len(self._handles)} feature maps, got {len(features)}")
        self._features = [f * scale for f in features] if scale != 1.0 else list(features)
        self._zeros = [torch.zeros_like(f) for f in self._features] if self.one_graph else None
        self._update()

    @property
    def features(self) -> list[torch.Tensor] | None:
        """The (scaled) features currently added, one (N, C_i, h_i, w_i) tensor per down block."""
        return self._features

    def roll_features(self, degrees: int) -> None:
        """Roll every feature map in longitude: w_i * degrees / 360 columns (whole columns only)."""
        if self._features is None:
            return
        rolled = []
        for f in self._features:
            width = f.shape[-1]
            if (width * degrees) % 360:
                raise ValueError(f"a feature map {width} columns wide cannot be rolled by "
                                 f"{degrees} degrees in whole columns")
            rolled.append(torch.roll(f, width * degrees // 360, dims=-1))
        self._features = rolled
        self._update()

    def _hook(self, index: int):
        def add_features(module, args, output):
            if self._added is None:
                return output
            hidden, residuals = output
            feature = self._added[index]
            if hidden.shape[1:] != feature.shape[1:] or hidden.shape[0] % feature.shape[0]:
                raise ValueError(f"down block {index} output {tuple(hidden.shape)} does not fit "
                                 f"adapter feature {tuple(feature.shape)}")
            halves = hidden.shape[0] // feature.shape[0]
            hidden = (hidden.unflatten(0, (halves, -1)) + feature.to(hidden.dtype)).flatten(0, 1)
            return hidden, residuals[:-1] + (hidden,)
        return add_features

    def close(self) -> None:
        """Remove the hooks; the UNet is as before."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.set_features(None)

    def __enter__(self) -> "FeatureInjection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
