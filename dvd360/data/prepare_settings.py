"""params.yaml `prepare`, per profile: a synthetic WEB360-layout dataset (`tiny`,
`synthetic_dataset.write_synthetic_web360`) or the real WEB360 download, indexed in place
(`paper`, `web360.index_web360`)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from dvd360.params_schema import StageSettings


class SyntheticSettings(StageSettings):
    """tiny: the synthetic dataset: 2:1 clips of even size."""

    clips: int = Field(gt=0)
    height: int = Field(gt=0, multiple_of=2)
    width: int = Field(gt=0, multiple_of=2)
    frames: int = Field(gt=1)
    fps: int = Field(gt=0)             # whole frames per second: metadata.json keeps it an int
    seed: int

    @model_validator(mode="after")
    def _two_to_one(self) -> SyntheticSettings:
        if self.width != 2 * self.height:
            raise PydanticCustomError("erp", "width must be 2 x height (got {height}x{width})",
                                      {"height": self.height, "width": self.width})
        return self


class Web360Settings(StageSettings):
    """paper: the real WEB360 download, indexed in place."""

    web360_dir: str = Field(min_length=1)
    csv: str | None = None             # the caption CSV (None: the folder's own)
    require_flows: bool = True
    lenient: bool = False              # skip (and list) bad clips instead of failing
    stats_clips: int | None = Field(default=None, gt=0)  # clips whose flows feed the mean-flow statistic
    fps: float = Field(default=8.0, gt=0)  # of the preview


PrepareSettings = {"tiny": SyntheticSettings, "paper": Web360Settings}
