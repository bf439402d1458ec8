"""params.yaml `caption`: which captioner captions the perspective views, at what size, and the
captioner it makes (`make_captioner`). Not imported by the package, so that the captions' key
(the code of `dvd360.captioning`) does not cover the settings' validation."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from dvd360.captioning.captioners import BLIP_MODEL, CAPTIONERS, BlipCaptioner, Captioner, LandmarkCaptioner
from dvd360.params_schema import Device, StageSettings


class CaptionSettings(StageSettings):
    captioner: Literal[CAPTIONERS]                           # landmarks (tiny) | blip (paper)
    view_size: int = Field(gt=0)                              # side of each perspective view, px
    model: str = Field(default=BLIP_MODEL, min_length=1)      # blip: a hub id or a local folder
    device: Device = "cpu"                                    # blip's


def make_captioner(settings: CaptionSettings, dataset_root: Path) -> Captioner:
    """The captioner `settings` name; the landmark captioner reads the synthetic dataset's metadata.json."""
    if settings.captioner == "landmarks":
        return LandmarkCaptioner.from_metadata(dataset_root / "metadata.json")
    from dvd360.device import resolve_device

    return BlipCaptioner(settings.model, device=str(resolve_device(settings.device)))
