"""Image captioners behind one interface: `caption(images, clip_id) -> one caption per image`.

- `BlipCaptioner` (paper profile): BLIP through transformers
  (`Salesforce/blip-image-captioning-large`, unconditional captioning, beam search), loaded
  from a local folder or the model's Hugging Face cache snapshot; `weights_sha256` is that
  folder's content, so captions are keyed on the weights that made them, not on the name.
- `LandmarkCaptioner` (tiny profile): the synthetic scene's metadata as vocabulary and the image
  as evidence: it names the objects whose colour covers enough of the image. Because it looks
  at the pixels, its captions follow what each perspective view really shows (and, like BLIP,
  it can miss what is small or blurred).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Protocol, Sequence

import numpy as np

CAPTIONERS = ("landmarks", "blip")  # params.yaml caption.captioner: LandmarkCaptioner (tiny), BlipCaptioner

BLIP_MODEL = "Salesforce/blip-image-captioning-large"
BLIP_FILES = ("*.json", "*.txt", "model.safetensors")  # what a hub download fetches: configs, tokenizer, weights


class Captioner(Protocol):
    """Captions a list of uint8 (H, W, 3) RGB images of one clip. `weights_sha256`: the content of
    the weights it runs (None without weights); with `name` it keys the captions."""

    name: str
    weights_sha256: str | None

    def caption(self, images: Sequence[np.ndarray], clip_id: str) -> list[str]: ...


def model_folder(model: str) -> Path:
    """The folder a transformers model loads from: `model` when it is a folder, else the hub
    model's Hugging Face cache snapshot (downloaded first unless HF_HUB_OFFLINE is set)."""
    from dvd360.hub import folder_or_hub

    folder, problem = folder_or_hub(model, BLIP_FILES, ("config.json",))
    if folder is None:
        raise FileNotFoundError(f"{model}: {problem}")
    return folder


class BlipCaptioner:
    """BLIP image captioning (the paper's captioner), batched over the images of one clip."""

    def __init__(self, model: str = BLIP_MODEL, device: str = "cpu", max_new_tokens: int = 40,
                 num_beams: int = 3):
        import torch
        from transformers import BlipForConditionalGeneration, BlipProcessor

        from dvd360.provenance import sha256_of

        self.name = f"blip:{model}"
        self.device = device
        self.weights = model_folder(model)
        self.weights_sha256 = sha256_of(self.weights)  # configs, tokenizer and weights: what is loaded below
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        self.processor = BlipProcessor.from_pretrained(self.weights)
        self.model = BlipForConditionalGeneration.from_pretrained(self.weights, dtype=dtype).to(device).eval()
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


def _article(phrase: str) -> str:
    return f"{'an' if phrase[:1] in 'aeiou' else 'a'} {phrase}"


class LandmarkCaptioner:
    """Tiny-profile captioner: names the scene's landmarks and moving objects seen in an image.

    `scenes[clip_id]` holds `objects`: (name, RGB in [0, 1]) pairs, and `setting` (e.g. "a grassy
    meadow under a night sky"). An object is seen when at least `min_fraction` of the pixels
    match its colour: |pixel - s * colour| <= `tolerance` in every channel for the best shade
    s in [0.7, 1.05] (the renderer shades objects by 0.8-1.0; the rest absorbs video coding).
    Caption: "a view of a red tower and a blue ball on a grassy meadow under a night sky".
    """

    name = "landmarks"
    weights_sha256 = None  # no weights: its input, the scene metadata, keys each clip's captions

    def __init__(self, scenes: Mapping[str, Mapping], min_fraction: float = 0.002, tolerance: float = 0.08):
        self.scenes = scenes
        self.min_fraction = min_fraction
        self.tolerance = tolerance

    @classmethod
    def from_metadata(cls, path: str | Path, **kwargs) -> "LandmarkCaptioner":
        """From the synthetic dataset's `metadata.json` (per clip: the renderer's scene record)."""
        from dvd360.data.synthetic import COLOURS

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no scene metadata (the tiny captioner needs the synthetic set's)")
        clips = json.loads(path.read_text(encoding="utf-8")).get("clips", {})
        scenes = {}
        for clip_id, record in clips.items():
            scene = record["scene"]
            objects = [(thing["name"], COLOURS[thing["colour"]]) for thing in scene["landmarks"] + scene["movers"]]
            scenes[clip_id] = {"objects": objects,
                               "setting": f"{_article(scene['ground'])} under {_article(scene['sky'])}"}
        return cls(scenes, **kwargs)

    def visible(self, image: np.ndarray, clip_id: str) -> list[str]:
        """Names of the clip's objects seen in `image` (uint8 (H, W, 3)), largest area first."""
        if clip_id not in self.scenes:
            raise KeyError(f"no scene metadata for clip {clip_id!r}")
        pixels = image.reshape(-1, 3).astype(np.float64) / 255.0
        found = []
        for name, colour in self.scenes[clip_id]["objects"]:
            colour = np.asarray(colour, dtype=np.float64)
            shade = np.clip(pixels @ colour / (colour @ colour), 0.7, 1.05)
            share = float((np.abs(pixels - shade[:, None] * colour).max(axis=1) <= self.tolerance).mean())
            if share >= self.min_fraction:
                found.append((share, name))
        return [name for _, name in sorted(found, key=lambda item: -item[0])]

    def caption(self, images: Sequence[np.ndarray], clip_id: str) -> list[str]:
        setting = self.scenes.get(clip_id, {}).get("setting", "")
        captions = []
        for image in images:
            names = [_article(name) for name in self.visible(image, clip_id)]
            things = (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names))
            captions.append(f"a view of {things} on {setting}" if things else f"a view of {setting}")
        return captions
