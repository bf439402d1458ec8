"""The training objective: epsilon-prediction MSE, optionally latitude-aware (360DVD Eq. 6).

Latitude-aware loss over latents of shape (B, C, F, h, w) (or any (..., h, w))::

    w[i] = |cos(((2i - h + 1) / (2h)) * pi)|      i = 0..h-1 latent rows (REFERENCE.md)
    loss = mean(w[i] * (pred - target)^2)          mean over every element, w not normalised

so the loss is about 0.637 times the plain MSE for errors spread evenly over rows.
The weights come from the geometry module (`latent_row_weights`).
"""

from __future__ import annotations

import torch

from dvd360.geometry.erp import latent_row_weights


def row_weights(height: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """The h latent-row weights of the latitude-aware loss, shape (h, 1) to broadcast over width."""
    weights = torch.as_tensor(latent_row_weights(height, normalised=False), dtype=dtype, device=device)
    return weights.reshape(height, 1)


def latitude_aware_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean(w[i] * (pred - target)^2) with the unnormalised latent-row weights (rows = dim -2)."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    error = (pred.float() - target.float()) ** 2
    return (error * row_weights(pred.shape[-2], device=pred.device)).mean()


def diffusion_loss(pred: torch.Tensor, target: torch.Tensor, *, latitude_aware: bool) -> torch.Tensor:
    """The latitude-aware loss, or plain MSE (the `no_latloss` ablation); computed in float32."""
    if latitude_aware:
        return latitude_aware_mse(pred, target)
    return torch.nn.functional.mse_loss(pred.float(), target.float())
