"""CLIP similarity between a video and its prompt, on the whole ERP and on perspective views.

``clip_similarity = 100 * mean_k max(cos(e_k, t), 0)`` over image embeddings e_k and the prompt's
text embedding t (both unit norm), so 0..100:
- ``clip_similarity_erp``: e_k = each frame, the whole ERP resized to the model's square input
  without cropping (`ClipModel.preprocess`);
- ``clip_similarity_views``: e_k = each of the 4 horizontal perspective views of each frame
  (FoV 90 degrees, latitude 0, longitudes 0/90/180/270; `geometry.perspective.horizontal_views`)
  rendered directly at the model's input size.

`ClipImages` is the CLIP image tower as a feature extractor of the batched scoring loop
(`metrics.engine`): one video -> its F resized ERP frames then its 4F views, (5F, 3, S, S).
"""

from __future__ import annotations

import numpy as np
import torch

from dvd360.device import frames_to_tensor
from dvd360.geometry.perspective import horizontal_views
from dvd360.models.clip_model import ClipModel

VIEW_LONS = (0.0, 90.0, 180.0, 270.0)
VIEW_FOV_DEG = 90.0


def erp_inputs(clip: ClipModel, frames: np.ndarray) -> torch.Tensor:
    """The whole ERP frames resized to the model's input, (F, 3, S, S) in [0, 1] on its device."""
    return clip.resize(frames_to_tensor(frames, clip.device))


def view_inputs(clip: ClipModel, frames: np.ndarray) -> torch.Tensor:
    """The 4 horizontal views of each frame at the model's input, (F, 4, 3, S, S) in [0, 1]."""
    erp = frames_to_tensor(frames, clip.device)
    return horizontal_views(erp, clip.image_size, fov_deg=VIEW_FOV_DEG, lons=VIEW_LONS).clamp(0.0, 1.0)


def erp_embeddings(clip: ClipModel, frames: np.ndarray) -> torch.Tensor:
    """Unit embeddings (F, D) of the whole ERP frames."""
    return clip.encode_images(erp_inputs(clip, frames))


def view_embeddings(clip: ClipModel, frames: np.ndarray) -> torch.Tensor:
    """Unit embeddings (F, 4, D) of the 4 horizontal views of each frame."""
    views = view_inputs(clip, frames)
    return clip.encode_images(views.flatten(0, 1)).unflatten(0, views.shape[:2])


class ClipImages:
    """CLIP image embeddings of a video's ERP frames and views, for the batched loop (engine)."""

    name = "clip_image"

    def __init__(self, clip: ClipModel):
        self.clip = clip
        self.batch_size = clip.batch_size

    def content_key(self) -> dict:
        return {"clip": self.clip.name, "device": self.clip.device.type, "precision": self.clip.precision,
                "batch": self.clip.batch_size}

    def inputs(self, frames: np.ndarray) -> torch.Tensor:
        """(5F, 3, S, S): the F resized ERP frames, then the views frame by frame (F x 4)."""
        return torch.cat([erp_inputs(self.clip, frames), view_inputs(self.clip, frames).flatten(0, 1)])

    def extract(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_images(inputs)

    @staticmethod
    def split(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A video's (5F, D) features -> ERP embeddings (F, D) and view embeddings (F, 4, D)."""
        frames = features.shape[0] // (1 + len(VIEW_LONS))
        return features[:frames], features[frames:].unflatten(0, (frames, len(VIEW_LONS)))


def clip_similarity(image_embeddings: torch.Tensor, text_embedding: torch.Tensor) -> float:
    """100 * mean of max(cos, 0) between every image embedding (..., D) and the text embedding (D,)."""
    images = torch.nn.functional.normalize(image_embeddings.double(), dim=-1)
    text = torch.nn.functional.normalize(text_embedding.double().reshape(-1), dim=-1)
    return float(100.0 * (images @ text).clamp_min(0.0).mean())
