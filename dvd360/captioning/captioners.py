"""Image captioners behind one interface: `caption(images, clip_id) -> one caption per image`.

- `BlipCaptioner` (paper profile): BLIP through transformers
  (`Salesforce/blip-image-captioning-large`, unconditional captioning, beam search).
- `LandmarkCaptioner` (tiny profile): the synthetic scene's metadata as vocabulary and the image
  as evidence: it names the landmarks whose colour covers enough of the image. Because it looks
  at the pixels, its captions follow what each perspective view really shows.
"""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence

import numpy as np

BLIP_MODEL = "Salesforce/blip-image-captioning-large"


class Captioner(Protocol):
    """Captions a list of uint8 (H, W, 3) RGB images of one clip."""

    name: str

    def caption(self, images: Sequence[np.ndarray], clip_id: str) -> list[str]: ...


class BlipCaptioner:
    """BLIP image captioning (the paper's captioner), batched over the images of one clip."""

    def __init__(self, model: str = BLIP_MODEL, device: str = "cpu", max_new_tokens: int = 40,
                 num_beams: int = 3):
        import torch
        from transformers import BlipForConditionalGeneration, BlipProcessor

        self.name = f"blip:{model}"
        self.device = device
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        self.processor = BlipProcessor.from_pretrained(model)
        self.model = BlipForConditionalGeneration.from_pretrained(model, dtype=dtype).to(device).eval()
        self.generate_kwargs = {"max_new_tokens": max_new_tokens, "num_beams": num_beams, "do_sample": False}

    def caption(self, images: Sequence[np.ndarray], clip_id: str) -> list[str]:
        import torch
        from PIL import Image

        inputs = self.processor(images=[Image.fromarray(image) for image in images], return_tensors="pt")
        inputs = {key: value.to(self.device, self.model.dtype if value.is_floating_point() else value.dtype)
                  for key, value in inputs.items()}
        with torch.inference_mode():
            tokens = self.model.generate(**inputs, **self.generate_kwargs)
        return [text.strip() for text in self.processor.batch_decode(tokens, skip_special_tokens=True)]


class LandmarkCaptioner:
    """Names the landmarks (from scene metadata) whose colour covers >= `min_fraction` of an image.

    `landmarks[clip_id]` lists dicts with `name` and `colour` (RGB 0..255). A pixel counts for a
    landmark when every channel is within `tolerance` of its colour.
    """

    name = "landmarks"

    def __init__(self, landmarks: Mapping[str, Sequence[Mapping]], min_fraction: float = 0.002,
                 tolerance: int = 12, empty: str = "an empty landscape"):
        self.landmarks = landmarks
        self.min_fraction = min_fraction
        self.tolerance = tolerance
        self.empty = empty

    def visible(self, image: np.ndarray, clip_id: str) -> list[str]:
        """Names of the clip's landmarks seen in `image`, largest area first."""
        if clip_id not in self.landmarks:
            raise KeyError(f"no scene metadata for clip {clip_id!r}")
        pixels = image.reshape(-1, 3).astype(np.int16)
        found = []
        for landmark in self.landmarks[clip_id]:
            colour = np.asarray(landmark["colour"], dtype=np.int16)[:3]
            share = float((np.abs(pixels - colour).max(axis=1) <= self.tolerance).mean())
            if share >= self.min_fraction:
                found.append((share, landmark["name"]))
        return [name for _, name in sorted(found, key=lambda item: -item[0])]

    def caption(self, images: Sequence[np.ndarray], clip_id: str) -> list[str]:
        captions = []
        for image in images:
            names = self.visible(image, clip_id)
            captions.append(" and ".join(f"a {name}" for name in names) if names else self.empty)
        return captions
