"""Training settings: `TrainSettings` (params.yaml `train`) and `TrainConfig` (one run: the
settings, a variant's changes and the run's folders). The trained variants of the paper's ablation
(Fig. 8) and what each changes are listed in eval/methods.yaml (`dvd360.methods.load_variants`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from dvd360.methods import CAPTION_SOURCES, load_variants
from dvd360.params_schema import StageSettings, StrictModel, problems

MIXED_PRECISIONS = ("no", "fp16", "bf16")  # autocast on a GPU; the CPU runs in fp32

# Settings that change neither the result of a step nor the data order: a checkpoint written
# under other values of these may be resumed.
RESUME_IRRELEVANT = ("steps", "checkpoint_every", "keep_checkpoints", "validation_every",
                     "log_every", "validation", "num_workers", "out_dir", "checkpoint_dir", "report_dir",
                     "max_dropped_fraction")

Positive = Annotated[int, Field(gt=0)]
Side = Annotated[int, Field(gt=0, multiple_of=64)]  # the UNet's and the adapter's
Probability = Annotated[float, Field(ge=0, le=1)]


class ValidationVideo(StrictModel):
    """The sample video written every `validation_every` steps (360DVD's sampler)."""

    prompt: str
    steps: Positive
    guidance: float = Field(ge=0)
    height: Side
    width: Side
    frames: Positive
    seed: int


class TrainSettings(StageSettings):
    """params.yaml `train`: everything that determines a training run but the variant and the
    run's folders. Paper values in comments (REFERENCE.md)."""

    models_dir: str = "data/models"
    data_dir: str = "data/web360"                 # the prepare stage's output
    captions: Literal[CAPTION_SOURCES] = "fused"  # fused | erp | dataset (the index's own captions)
    captions_dir: str = "data/captions"           # where `{captions}.csv` lives
    conditions: str | None = "data/flows/index.json"  # the flow stage's index (None: the prepared flows)
    clip_ids: list[str] | None = None             # train on these clips only (None: all)
    hold_out_reference: bool = False              # skip the set metrics' held-out reference split
    height: Side = 512
    width: Side = 1024
    frames: Positive = 16
    stride: Positive = 4
    augment: bool = True                          # the data layer's joint roll + flip
    steps: Positive = 100_000
    batch_size: Positive = 1                      # per process
    lr: float = Field(1e-5, gt=0)
    betas: list[Annotated[float, Field(ge=0, lt=1)]] = Field([0.9, 0.999], min_length=2, max_length=2)
    weight_decay: float = Field(1e-2, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    mixed_precision: Literal[MIXED_PRECISIONS] = "fp16"  # GPU only; the CPU runs in fp32
    gradient_checkpointing: bool = False          # recompute UNet activations in backward
    condition_dropout: Probability = 0.2          # condition -> zeros (normalised space)
    text_dropout: Probability = 0.1               # caption -> ""
    latitude_loss: bool = True
    temporal: bool = True                         # pseudo-3D convolutions in the adapter
    seed: int = 0
    checkpoint_every: int = Field(1000, ge=0)     # 0: no checkpoints
    keep_checkpoints: Positive = 2
    log_every: Positive = 10
    validation_every: int = Field(5000, ge=0)     # 0: no validation videos
    validation: ValidationVideo = Field(default_factory=lambda: ValidationVideo(
        prompt="a car driving down a street next to a forest", steps=25, guidance=7.5,
        height=256, width=512, frames=16, seed=0))
    num_workers: int = Field(0, ge=0)
    cpu_threads: Positive | None = None           # torch threads when on CPU (None: torch's default)
    overfit_batches: int = Field(0, ge=0)         # > 0: repeat the first k batches (a fit check)
    max_dropped_fraction: Probability = 0.05      # clips without a caption or a condition: more fails the run


class TrainConfig(TrainSettings):
    """One training run: its settings, its variant (eval/methods.yaml) and where it writes."""

    variant: str
    out_dir: str                                  # adapter.safetensors, training.json, validation videos
    checkpoint_dir: str
    report_dir: str | None = None                 # loss.tsv for DVC plots

    @field_validator("variant")
    @classmethod
    def _known_variant(cls, variant: str) -> str:
        known = list(load_variants())
        if variant not in known:
            raise PydanticCustomError("variant", "Input should be a variant of eval/methods.yaml: {known}",
                                      {"known": ", ".join(known)})
        return variant

    @classmethod
    def for_variant(cls, variant: str, settings: TrainSettings, *, out_dir: str, checkpoint_dir: str,
                    report_dir: str | None = None) -> TrainConfig:
        """`settings`, then what `variant` changes (eval/methods.yaml), then the run's folders; a
        ValueError names every bad setting."""
        values = {**settings.model_dump(), **load_variants().get(variant, {}), "variant": variant,
                  "out_dir": out_dir, "checkpoint_dir": checkpoint_dir, "report_dir": report_dir}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise ValueError(f"training variant {variant!r}: invalid settings:\n  "
                             + "\n  ".join(problems(error, "train", cls))) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def shaping_settings(self) -> dict[str, Any]:
        """The settings that shape the trained weights (not run length, logging, paths); the
        settings part of the resume fingerprint (`trainer.resume_fingerprint`)."""
        return {k: v for k, v in self.to_dict().items() if k not in RESUME_IRRELEVANT}
