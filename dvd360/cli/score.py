"""`dvd360-eval score`: score any ERP videos (ours or another method's) with every metric."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dvd360.metrics.registry import SET_METRIC_NAMES, help_text

if TYPE_CHECKING:
    from dvd360.cli.score_inputs import Item

# The `models` stage's folders and the paper CLIP spec (`dvd360-eval audit`'s defaults; `score` finds
# its models through --models, by default the model store).
DEFAULT_CLIP_DIR = Path("data/models/clip")
DEFAULT_FEATURES_DIR = Path("data/models/features")
PAPER_CLIP = "ViT-L-14-quickgelu/openai"



def _load_item(item: Item, flow_kind: str, flow_method: str, keep_repeats: bool = False,
               flow_encoding: str = "auto", protocol=None):
    """An item's frames as the scoring `protocol` reads them (repeats dropped unless
    `keep_repeats`), prompt, reference flow (between the frames scored, at their size) and input
    detections (run ahead, in a worker; errors name the file)."""
    from dvd360.data.protocol import ScoringProtocol, read_video
    from dvd360.metrics.scoring import VideoInput, read_reference_flow

    scored = read_video(item.path, protocol or ScoringProtocol(), keep_repeats)
    reference, detections = None, scored.detections
    if item.flow is not None:
        try:
            reference, detections["flow_encoding"] = read_reference_flow(
                item.flow, flow_kind, indices=scored.indices, flow_method=flow_method, encoding=flow_encoding,
                size=scored.frames.shape[1:3])
        except (ValueError, OSError) as error:
            raise ValueError(f"reference flow {item.flow}: {error}") from error
    return VideoInput(scored.frames, item.prompt, reference, detections)


@click.command("score", epilog="Metrics (name (better): scale): " + help_text())
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--prompts", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Prompt of each video: JSON {name: prompt} or [{video, prompt}], or CSV with columns "
                   "videoid,name (WEB360) or video,prompt; name = file stem or frame-folder name. Every video "
                   "must have one. Without it, `{stem}.json` (key \"prompt\") or `{stem}.txt` beside a video "
                   "is used; videos without a prompt get no CLIP similarity.")
@click.option("--flows", type=click.Path(path_type=Path), default=None,
              help="Reference flow: one file (single video) or a folder with {name}.npz (array 'flow', "
                   "(F, H, W, 2) pixels, dx, dy from frame t to t+1) or {name}.mp4 (a flow video in the "
                   "released 360DVD encoding or the flow_vis one: --flow-encoding). Videos without one get no "
                   "flow metrics.")
@click.option("--flow-encoding", type=click.Choice(["auto", "released", "released-rgb", "flowvis"]), default="auto",
              show_default=True,
              help="Colour encoding of flow videos: the released 360DVD one (inverted, black = still; BGR as "
                   "released, or released-rgb), the standard flow_vis one (white = still; speed known only up "
                   "to a scale, so flow_epe_deg is left out against it), or auto: decided from the colours "
                   "(refused when they fit neither). The decision is recorded per video.")
@click.option("--flow-kind", type=click.Choice(["auto", "numeric", "encoded", "source"]), default="auto",
              show_default=True, help="How to read --flows files: auto (.npz numeric, videos encoded), or "
                                      "'source': they are source videos whose flow is re-estimated.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the JSON result here (atomically). Otherwise it goes to stdout.")
@click.option("--models", "models", default="store", show_default=True, metavar="store|tiny|DIR",
              help="Where the scoring models come from. store: the real models (CLIP ViT-L/14, MUSIQ-SPAQ, the LAION "
                   "head, and with --reference the FVD I3D and FID Inception) by registry name from the per-user "
                   "model store ($DVD360_HOME), fetched and checked on demand (`dvd360-eval models list`); offline "
                   "with one missing, nothing is scored and the message names every missing model and the command "
                   "that gets it. tiny: random-weight stand-ins (numbers that say nothing about quality; the output "
                   "says so at the top). DIR: a models folder of the `models` stage (DIR/clip, DIR/features).")
@click.option("--offline", is_flag=True, default=False,
              help="Never download (as HF_HUB_OFFLINE=1): models missing from the store stop the run.")
@click.option("--skip-missing", is_flag=True, default=False,
              help="With models missing from the store: score the metrics that do not need them, and list what "
                   "was skipped (the JSON's \"skipped\" and stderr).")
@click.option("--model", default=None,
              help="CLIP: a CLIP folder or an open_clip spec ARCH/TAG, instead of the one --models gives.")
@click.option("--flow-method", type=click.Choice(["dis", "ilk", "tvl1"]), default="dis", show_default=True,
              help="Flow estimator used wrap-aware on the scored videos: OpenCV DIS (preset medium) or "
                   "scikit-image iLK / TV-L1.")
@click.option("--device", default="auto", show_default=True,
              help="torch device for CLIP: auto (CUDA when there is one), cpu, cuda, cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="auto", show_default=True,
              help="CLIP precision: auto is fp16 on CUDA, fp32 on the CPU.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="CLIP images per forward pass (frames and views of several videos).")
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True,
              help="CPU processes decoding videos and estimating flow ahead of CLIP (0: one per core; "
                   "1: one thread). Under torchrun, per process.")
@click.option("--frames", "num_frames", default="16", show_default=True, metavar="N|all",
              help="Scoring protocol: frames scored per video (16: the paper's videos and FVD's clip; all: every "
                   "frame). Recorded in every record (detections.protocol) and in metrics_info.")
@click.option("--sample", default="first", show_default=True, metavar="first|uniform|stride:K",
              help="Which distinct frames (repeats dropped first): first: the first N (the default: the paper's and "
                   "FVD's clip, consecutive frames keep the temporal metrics at the source's frame step, and reading "
                   "stops after them); uniform: N spread over the whole video; stride:K: every K-th.")
@click.option("--size", "working_size", default="512x1024", show_default=True, metavar="HxW",
              help="Working size: larger frames are resized to it once as decoded (OpenCV INTER_AREA, antialiased "
                   "area averaging); smaller ones are scored at their own size. Metrics with a published input "
                   "size (CLIP, I3D at 224, Inception 299, MUSIQ's longer side) resample from these frames.")
@click.option("--keep-repeats", is_flag=True, default=False,
              help="Score every frame. By default runs of repeated frames (web frame-rate upsampling: "
                   "consecutive frames that differ by less than half of a 1-px pan) are scored once, and a "
                   "reference flow's one-step flows are summed between the frames kept.")
@click.option("--reference", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"A folder of real ERP panorama videos (or frame folders): the reference set of the set "
                   f"metrics ({', '.join(SET_METRIC_NAMES)}; see below), computed for the whole set of INPUTS (at "
                   "least 2 videos) with n, a bootstrap 95% CI over videos (Frechet distances) or the subset std "
                   "(KID).")
@click.option("--features", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder with the I3D and Inception feature nets and the MUSIQ and LAION quality models (a `models` "
                   "stage's features folder), instead of the ones --models gives.")
@click.option("--quality/--no-quality", default=None,
              help="The quality metrics: imaging_quality_erp/_views (MUSIQ-SPAQ / 100, VBench's imaging "
                   "quality on the ERP frame exactly, and on 4 horizontal views per frame) and "
                   "aesthetic_quality_erp/_views (LAION head on CLIP ViT-L/14 / 10, VBench's aesthetic quality "
                   "on its centre crop exactly, and on the views). Default: on (with --features: when it holds "
                   "musiq/ and aesthetic/).")
@click.option("--feature-cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache set-metric features here (per video content, model and preprocessing).")
def score(inputs, prompts, flows, flow_kind, out, model, flow_method, device, precision, batch_size, workers,
          keep_repeats, flow_encoding, reference, features, feature_cache, quality, models, offline, skip_missing,
          num_frames, sample, working_size):
    """Score ERP videos (mp4, gif, ... or folders of PNG/JPG frames; folders of videos too).

    Every input is checked first (readable, 2:1 ERP, at least 2 frames, a prompt when --prompts
    is given) and all problems are listed before any scoring.

    Output JSON: "videos": one record per video with its path, prompt, size and a "metrics"
    object keyed by the metric names (listed below); a metric that cannot be computed (no
    prompt, no flow) is absent, never 0. "metrics_info" gives each metric's scale, better
    direction or target, the published definition it equals (if any), model or flow estimator,
    and the estimator's own error on a synthetic rigid rotation at the scored size. "detections" (also one line per video
    on stderr) says what was found in each input before scoring: its size, repeated frames,
    which were dropped and which frames the protocol scored at what size; "absent" says why a
    metric that could have been computed was not. With --reference DIR, "set_metrics" holds the
    set metrics of the whole set of inputs against that folder ({value, ci_low, ci_high or std,
    n, n_reference, warnings, ...}) and "set_metrics_info" the model, preprocessing and how each
    compares with published numbers.

    Data parallel: `torchrun --nproc_per_node N -m dvd360.cli score ...` (or accelerate launch)
    shards the videos over the processes (video i to rank i % N, one GPU each) and rank 0
    writes exactly the output of one process.
    """
    from functools import partial

    from dvd360.atomic import write_json
    from dvd360.cli.score_inputs import check_score_inputs, problem_report
    from dvd360.cli.score_models import resolve_score_models
    from dvd360.data.detections import detection_line
    from dvd360.data.protocol import parse_protocol
    from dvd360.distributed import world
    from dvd360.metrics.engine import JobError
    from dvd360.metrics.flow_agreement import FLOW_FACTORS
    from dvd360.metrics.reference_set import videos_in_folder
    from dvd360.metrics.scorers import ReferenceSet, Scorers, ScorerSetupError, ScoringSettings
    from dvd360.provenance import versions

    try:
        protocol = parse_protocol(num_frames, sample, working_size)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    items, problems = check_score_inputs(inputs, prompts, flows, min_frames=2)
    if problems:
        raise click.ClickException(problem_report(items, problems))
    try:
        chosen = resolve_score_models(models, model, features, quality, reference is not None, offline, skip_missing,
                                      echo=lambda line: click.echo(line, err=True))
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    settings = ScoringSettings(
        clip=chosen.clip, features=chosen.features,
        feature_cache=None if feature_cache is None else str(feature_cache), device=device, precision=precision,
        batch_size=batch_size, workers=workers, flow_method=flow_method, keep_repeats=keep_repeats,
        quality=chosen.quality, protocol=protocol)
    try:
        reference_set = None
        if reference is not None and chosen.reference:
            if len(items) < 2:
                raise ScorerSetupError(f"--reference: set metrics need at least 2 input videos, got {len(items)}")
            reference_set = ReferenceSet(videos_in_folder(reference), source=str(reference))
        scorers = Scorers.build(settings, reference_set, on_skip=lambda line: click.echo(line, err=True))
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    if scorers.note() is not None:
        click.echo(f"note: {scorers.note()}", err=True)
    load = partial(_load_item, flow_kind=flow_kind, flow_method=flow_method, keep_repeats=keep_repeats,
                   flow_encoding=flow_encoding, protocol=protocol)
    try:
        scored = scorers.run(items, load, set_paths=[item.path for item in items])
    except JobError as failure:
        raise click.ClickException(f"{failure.job.path}: {failure.error}") from failure
    if scored is None:
        return  # not rank 0: rank 0 writes every rank's records
    records = []
    for item, (frames, height, width), result in scored:
        records.append({"path": str(item.path), "prompt": item.prompt, "prompt_truncated": result["prompt_truncated"],
                        "frames": frames, "height": height, "width": width,
                        "reference_flow": None if item.flow is None else {
                            "path": str(item.flow), "kind": flow_kind, **result["detections"].get("flow_encoding", {}),
                            **{factor: result[factor] for factor in FLOW_FACTORS if factor in result}},
                        "detections": result["detections"], "metrics": result["metrics"], "absent": result["absent"]})
        click.echo(detection_line(str(item.path), result["detections"]), err=True)
    if world()[1] > 1:
        click.echo(f"scored on {world()[1]} processes", err=True)
    info = scorers.describe()
    result = {"note": scorers.note(), "models": info["models"], "skipped": chosen.skipped,
              "metrics_info": info["metrics_info"], "videos": records, "versions": versions()}
    if scorers.sets is not None:
        result["set_metrics"] = scorers.score_set([item.path for item, _, _ in scored])
        result["set_metrics_info"] = info["set_metrics_info"]
    if out is not None:
        write_json(out, result)
        click.echo(f"{len(records)} video(s) scored -> {out}", err=True)
    else:
        click.echo(json.dumps(result, indent=2))
