"""DVC stage `train@{variant}`: train one 360-Adapter variant (full, no_360tf, no_pseudo3d, no_latloss).

Single process (CPU or one GPU):   python pipelines/train.py --variant full
Data parallel over 8 GPUs:         accelerate launch --multi_gpu --num_processes 8 pipelines/train.py --variant full

Writes `data/adapters/{variant}/adapter.safetensors` (+ adapter.json, training.json and its .run.json, validation
videos) and `reports/train/{variant}/loss.tsv`; checkpoints go to
`data/checkpoints/train-{variant}/` and an interrupted run resumes from the newest one.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from dvd360.config import load_params
from dvd360.methods import CAPTION_SOURCES, load_variants
from dvd360.params_schema import StageSettings, StrictModel, validated_stage_params
from dvd360.stage_process import begin_stage
from dvd360.training.config import MIXED_PRECISIONS, TrainConfig
from dvd360.training.trainer import make_accelerator, train

Positive = Annotated[int, Field(gt=0)]
Side = Annotated[int, Field(gt=0, multiple_of=64)]  # the UNet's and the adapter's
Probability = Annotated[float, Field(ge=0, le=1)]


class ValidationVideo(StrictModel):
    prompt: str
    steps: Positive
    guidance: float = Field(ge=0)
    height: Side
    width: Side
    frames: Positive
    seed: int


class TrainSettings(StageSettings):
    """params.yaml `train`: TrainConfig fields (the stage sets variant and the output folders).
    An absent key keeps TrainConfig's default (pydantic does not check defaults)."""

    model_config = ConfigDict(extra="forbid")
    models_dir: str = None
    data_dir: str = None
    captions: Literal[CAPTION_SOURCES] = None
    captions_dir: str = None
    conditions: str | None = None
    clip_ids: list[str] | None = None
    hold_out_reference: bool = None
    height: Side = None
    width: Side = None
    frames: Positive = None
    stride: Positive = None
    augment: bool = None
    steps: Positive = None
    batch_size: Positive = None
    lr: float = Field(default=None, gt=0)
    betas: list[Annotated[float, Field(ge=0, lt=1)]] = Field(default=None, min_length=2, max_length=2)
    weight_decay: float = Field(default=None, ge=0)
    grad_clip: float = Field(default=None, gt=0)
    mixed_precision: Literal[MIXED_PRECISIONS] = None
    gradient_checkpointing: bool = None
    condition_dropout: Probability = None
    text_dropout: Probability = None
    latitude_loss: bool = None
    temporal: bool = None
    seed: int = None
    checkpoint_every: Positive = None
    keep_checkpoints: Positive = None
    log_every: Positive = None
    validation_every: int = Field(default=None, ge=0)  # 0: no validation videos
    validation: ValidationVideo = None
    num_workers: int = Field(default=None, ge=0)
    cpu_threads: Positive | None = None
    overfit_batches: int = Field(default=None, ge=0)
    max_dropped_fraction: Probability = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, choices=sorted(load_variants()))
    args = parser.parse_args(argv)
    begin_stage(tracks=False)  # the main process's stage_run below starts MLflow, before the models load
    params = load_params()
    paths = params["paths"]
    config = TrainConfig.for_variant(args.variant, {
        **validated_stage_params("train", params, TrainSettings), "out_dir": f"{paths['adapters']}/{args.variant}",
        "checkpoint_dir": f"{paths['checkpoints']}/train-{args.variant}",
        "report_dir": f"{paths['train_reports']}/{args.variant}"})
    accelerator = make_accelerator(config)
    on_log = on_artifact = None
    run = nullcontext()
    if accelerator.is_main_process:
        from dvd360.tracking import log_artifact, log_metrics, stage_run

        run = stage_run("train", profile=params["profile"], params=config.to_dict(),
                        run_name=f"train-{args.variant}", tags={"dvd360.variant": args.variant})
        on_log = lambda step, metrics: log_metrics(metrics, step=step)  # noqa: E731
        on_artifact = lambda path: log_artifact(path, "validation")  # noqa: E731
    with run:
        result = train(config, accelerator=accelerator, on_log=on_log, on_artifact=on_artifact)
        if accelerator.is_main_process:
            log_metrics({"clips_dropped_fraction": result.dropped["fraction"]})
            log_artifact(result.adapter_path, "adapter")
            log_artifact(result.adapter_path.parent / "training.json", "adapter")
            log_artifact(result.adapter_path.parent / "training.run.json", "adapter")
    if accelerator.is_main_process:
        print(f"train {args.variant}: {result.step} steps in {result.seconds:.1f} s, final loss "
              f"{result.losses[-1][1] if result.losses else float('nan'):.4f}, {result.dropped['count']} of "
              f"{result.dropped['total']} clips dropped -> {result.adapter_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
