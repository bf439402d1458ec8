"""CLIP similarity between a video and its prompt, on the whole ERP and on perspective views.

``clip_similarity = 100 * mean_k max(cos(e_k, t), 0)`` over image embeddings e_k and the prompt's
text embedding t (both unit norm), so 0..100:
- ``clip_similarity_erp``: e_k = each frame, the whole ERP resized to the model's square input
  without cropping (`ClipModel.preprocess`);
- ``clip_similarity_views``: e_k = each of the 4 horizontal perspective views of each frame
  (FoV 90 degrees, latitude 0, longitudes 0/90/180/270; `geometry.perspective.horizontal_views`)
  rendered directly at the model's input size.
"""

from __future__ import annotations

import numpy as np
import torch

from dvd360.geometry.perspective import horizontal_views
from dvd360.metrics.clip_model import ClipModel

VIEW_LONS = (0.0, 90.0, 180.0, 270.0)
VIEW_FOV_DEG = 90.0


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """RGB frames (F, H, W, 3), uint8 or float in [0, 1] -> float32 tensor (F, 3, H, W) in [0, 1]."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (F, H, W, 3), got shape {frames.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    return tensor.float() / 255.0 if frames.dtype == np.uint8 else tensor.float()


def erp_embeddings(clip: ClipModel, frames: np.ndarray) -> torch.Tensor:
    """Unit embeddings (F, D) of the whole ERP frames."""
    return clip.encode_images(frames_to_tensor(frames))


def view_embeddings(clip: ClipModel, frames: np.ndarray) -> torch.Tensor:
    """Unit embeddings (F, 4, D) of the 4 horizontal views of each frame."""
    erp = frames_to_tensor(frames).to(clip.device)
    views = horizontal_views(erp, clip.image_size, fov_deg=VIEW_FOV_DEG, lons=VIEW_LONS)  # (F, 4, 3, s, s)
    embeddings = clip.encode_images(views.flatten(0, 1).clamp(0.0, 1.0))
    return embeddings.unflatten(0, views.shape[:2])


def clip_similarity(image_embeddings: torch.Tensor, text_embedding: torch.Tensor) -> float:
    """100 * mean of max(cos, 0) between every image embedding (..., D) and the text embedding (D,)."""
    images = torch.nn.functional.normalize(image_embeddings.double(), dim=-1)
    text = torch.nn.functional.normalize(text_embedding.double().reshape(-1), dim=-1)
    return float(100.0 * (images @ text).clamp_min(0.0).mean())
