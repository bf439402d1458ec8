"""Computing the guidance halves' common prefix once (the fast path, classifier-free guidance).

With CFG the UNet runs on the batch [x, x] (uncond frames, then cond frames) with two text
embeddings. Every layer before the first cross-attention sees the same input in both halves:
`conv_in`, the first ResNet block (same timestep embedding) and the first transformer
block's self-attention. On the 64x128 latent of a 512x1024 video these are the costliest
layers of the UNet per call (8,192-token self-attention), so computing them on one half and
repeating the result,

    y = layer(x[:N]).repeat(k, 1, ...)        (N = B*F frames per half, k = 2 halves),

gives the same output (the same arithmetic on fewer rows) for less work. Nothing after the
first cross-attention can be shared: the halves differ from there on.

Implemented as forward pre-hooks (slice every batch-sized tensor argument) and forward hooks
(repeat the output) on the named layers, switched by a plain Python int `halves` that dynamo
guards on; diffusers has no switch for it.
"""

from __future__ import annotations

import torch
from torch import nn

# The layers of a diffusers UNetMotionModel (SD 1.5 layout) before the first cross-attention.
SHARED_LAYERS = ("conv_in", "down_blocks.0.resnets.0",
                 "down_blocks.0.attentions.0.transformer_blocks.0.attn1")


class GuidancePrefix:
    """Hooks that run SHARED_LAYERS on one of `halves` identical batch halves.

    `halves = 1` (the default) runs the UNet unchanged; the caller sets `halves = 2` only for
    calls whose batch is [x, x] along dim 0 (the pipeline's CFG batch).
    """

    def __init__(self, unet: nn.Module):
        modules = dict(unet.named_modules())
        missing = [name for name in SHARED_LAYERS if name not in modules]
        if missing:
            raise ValueError(f"{type(unet).__name__} has no {', '.join(missing)}: "
                             "not the SD 1.5 UNet layout the guidance prefix is defined for")
        self.halves = 1
        self._handles = []
        for name in SHARED_LAYERS:
            self._handles.append(modules[name].register_forward_pre_hook(self._one_half, with_kwargs=True))
            self._handles.append(modules[name].register_forward_hook(self._repeat))

    def _one_half(self, module, args, kwargs):
        if self.halves == 1:
            return None
        rows = next(v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)).shape[0]
        if rows % self.halves:
            raise ValueError(f"batch of {rows} does not split into {self.halves} guidance halves")
        keep = rows // self.halves

        def half(value):
            return value[:keep] if isinstance(value, torch.Tensor) and value.shape[:1] == (rows,) else value

        return tuple(half(a) for a in args), {key: half(v) for key, v in kwargs.items()}

    def _repeat(self, module, args, output):
        if self.halves == 1:
            return None
        return output.repeat(self.halves, *([1] * (output.dim() - 1)))

    def close(self) -> None:
        """Remove the hooks; the UNet is as before."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
