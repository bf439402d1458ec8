"""DVC stage `generate@METHOD`: the videos of one method (eval/methods.yaml) for every prompt of
the profile's suite (eval/prompts.yaml) and every seed of params.yaml `generate`.

Writes `data/generations/{METHOD}/{prompt_id}-s{seed}.{mp4,json,npz,run.json}`; finished videos whose
settings are unchanged are kept (the stage resumes after an interruption). One MLflow run per
method, with its videos as artifacts.

    python pipelines/generate.py D
    torchrun --nproc_per_node 4 pipelines/generate.py D     # one GPU per process

Under torchrun, process r of N makes the videos i with i % N == r (prompt x seed order); each
video is the one a single process makes. After every process has finished (a gather over
gloo), rank 0 alone logs the stage to MLflow, with every process's videos.
"""

from __future__ import annotations

import argparse
import statistics

from dvd360.config import load_params
from dvd360.distributed import gather_ordered, init_distributed
from dvd360.generate import GenerateSettings, generate_method
from dvd360.methods import get_method, load_prompts
from dvd360.params_schema import validated_stage_params
from dvd360.stage_process import begin_stage
from dvd360.tracking import log_artifact, log_metrics, stage_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", help="a method id of eval/methods.yaml, e.g. A or D_no_latloss")
    args = parser.parse_args(argv)
    params = load_params()
    profile = params["profile"]
    settings = validated_stage_params("generate", params, GenerateSettings)
    method = get_method(args.method)
    prompts = load_prompts(settings.suite)
    rank, world_size = init_distributed()
    begin_stage(tracks=rank == 0)  # rank 0 logs the stage
    summaries = generate_method(method, prompts, settings, rank=rank, world_size=world_size)
    gathered = gather_ordered([(summary["index"], summary) for summary in summaries])
    if gathered is None:  # not rank 0: rank 0 logs everything
        return 0
    summaries = gathered[0]
    made = [s for s in summaries if s["status"] == "generated"]
    steady = [s["seconds"] for s in made if not s["first_in_process"]]
    with stage_run("generate", profile=profile, run_name=method.id,
                   params={**settings.model_dump(), "method": vars(method), "processes": world_size}):
        log_metrics({"videos": len(summaries), "videos_generated": len(made),
                     "seconds_per_video": statistics.mean(s["seconds"] for s in made) if made else float("nan"),
                     # without each process's first video, which carries the warm-up (compilation)
                     "seconds_per_video_steady": statistics.mean(steady) if steady else float("nan")})
        for summary in summaries:
            log_artifact(summary["paths"].mp4, artifact_path="videos")
            log_artifact(summary["paths"].json, artifact_path="records")
            if summary["paths"].run.is_file():  # absent after a `dvc checkout` (not in DVC's cache)
                log_artifact(summary["paths"].run, artifact_path="runs")
    print(f"generate {method.id}: {len(made)} generated, {len(summaries) - len(made)} kept"
          f"{f' by {world_size} processes' if world_size > 1 else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
