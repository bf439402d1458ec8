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
from functools import partial

from dvd360.config import load_params
from dvd360.methods import load_variants
from dvd360.params_schema import validated_stage_params
from dvd360.sampling.validation import validation_video
from dvd360.stage_process import begin_stage
from dvd360.training.config import TrainConfig, TrainSettings
from dvd360.training.trainer import make_accelerator, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, choices=sorted(load_variants()))
    args = parser.parse_args(argv)
    begin_stage(tracks=False)  # the main process's stage_run below starts MLflow, before the models load
    params = load_params()
    paths = params["paths"]
    config = TrainConfig.for_variant(
        args.variant, validated_stage_params("train", params, TrainSettings),
        out_dir=f"{paths['adapters']}/{args.variant}", checkpoint_dir=f"{paths['checkpoints']}/train-{args.variant}",
        report_dir=f"{paths['train_reports']}/{args.variant}")
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
        result = train(config, accelerator=accelerator, on_log=on_log, on_artifact=on_artifact,
                       validate=partial(validation_video, config.validation.model_dump()))
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
