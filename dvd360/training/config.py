"""Training settings (one dataclass); the trained variants of the paper's ablation (Fig. 8) and
what each changes are listed in eval/methods.yaml (`dvd360.methods.load_variants`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from dvd360.methods import CAPTION_SOURCES, load_variants

MIXED_PRECISIONS = ("no", "fp16", "bf16")  # autocast on a GPU; the CPU runs in fp32

# Settings that change neither the result of a step nor the data order: a checkpoint written
# under other values of these may be resumed.
RESUME_IRRELEVANT = ("steps", "checkpoint_every", "keep_checkpoints", "validation_every",
                     "log_every", "validation", "num_workers", "out_dir", "checkpoint_dir", "report_dir",
                     "max_dropped_fraction")


@dataclass
class TrainConfig:
    """Everything that determines a training run. Paper values in comments (REFERENCE.md)."""

    variant: str = "full"
    models_dir: str = "data/models"
    data_dir: str = "data/web360"                 # the prepare stage's output
    captions: str = "fused"                       # fused | erp | dataset (the index's own captions)
    captions_dir: str = "data/captions"           # where `{captions}.csv` lives
    conditions: str | None = "data/flows/index.json"  # the flow stage's index (None: the prepared flows)
    clip_ids: list[str] | None = None             # train on these clips only (None: all)
    hold_out_reference: bool = False              # skip the set metrics' held-out reference split
    out_dir: str = "data/adapters/full"
    checkpoint_dir: str = "data/checkpoints/train-full"
    report_dir: str | None = "reports/train/full"  # loss.tsv for DVC plots
    height: int = 512
    width: int = 1024
    frames: int = 16
    stride: int = 4
    augment: bool = True                          # the data layer's joint roll + flip
    steps: int = 100_000
    batch_size: int = 1                           # per process
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    mixed_precision: str = "fp16"                 # no | fp16 | bf16 (GPU only; CPU runs in fp32)
    gradient_checkpointing: bool = False          # recompute UNet activations in backward
    condition_dropout: float = 0.2                # condition -> zeros (normalised space)
    text_dropout: float = 0.1                     # caption -> ""
    latitude_loss: bool = True
    temporal: bool = True                         # pseudo-3D convolutions in the adapter
    seed: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    validation_every: int = 5000                  # 0: no validation videos
    validation: dict[str, Any] = field(default_factory=lambda: {
        "prompt": "a car driving down a street next to a forest", "steps": 25, "guidance": 7.5,
        "height": 256, "width": 512, "frames": 16, "seed": 0})
    num_workers: int = 0
    cpu_threads: int | None = None                # torch threads when on CPU (None: torch's default)
    overfit_batches: int = 0                      # > 0: repeat the first k batches (a fit check)
    max_dropped_fraction: float = 0.05            # clips without a caption or a condition: more fails the run

    def __post_init__(self):
        variants = load_variants()
        if self.variant not in variants:
            raise ValueError(f"unknown variant {self.variant!r}; known: {', '.join(variants)}")
        if self.captions not in CAPTION_SOURCES:
            raise ValueError(f"captions must be one of {', '.join(CAPTION_SOURCES)}, got {self.captions!r}")
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {', '.join(MIXED_PRECISIONS)}, "
                             f"got {self.mixed_precision!r}")
        if self.height % 64 or self.width % 64:
            raise ValueError(f"height and width must be multiples of 64, got {self.height}x{self.width}")
        for name in ("condition_dropout", "text_dropout", "max_dropped_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")
        self.betas = tuple(self.betas)

    @classmethod
    def for_variant(cls, variant: str, settings: Mapping[str, Any]) -> "TrainConfig":
        """Stage settings, then the variant's changes, then per-variant output folders."""
        variants = load_variants()
        if variant not in variants:
            raise ValueError(f"unknown variant {variant!r}; known: {', '.join(variants)}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(unknown)}")
        values = {"out_dir": f"data/adapters/{variant}", "checkpoint_dir": f"data/checkpoints/train-{variant}",
                  "report_dir": f"reports/train/{variant}", **settings, **variants[variant], "variant": variant}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def shaping_settings(self) -> dict[str, Any]:
        """The settings that shape the trained weights (not run length, logging, paths); the
        settings part of the resume fingerprint (`trainer.resume_fingerprint`)."""
        return {k: v for k, v in self.to_dict().items() if k not in RESUME_IRRELEVANT}
