"""`dvd360-eval score`: score any ERP videos (ours or another method's) with every metric."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from dvd360.cli.score_inputs import Item

DEFAULT_CLIP_DIR = Path("data/models/clip")
PAPER_CLIP = "ViT-L-14-quickgelu/openai"


@click.command("score")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--prompts", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Prompt of each video: JSON {name: prompt} or [{video, prompt}], or CSV with columns "
                   "videoid,name (WEB360) or video,prompt; name = file stem or frame-folder name. Every video "
                   "must have one. Without it, `{stem}.json` (key \"prompt\") or `{stem}.txt` beside a video "
                   "is used; videos without a prompt get no CLIP similarity.")
@click.option("--flows", type=click.Path(path_type=Path), default=None,
              help="Reference flow: one file (single video) or a folder with {name}.npz (array 'flow', "
                   "(F, H, W, 2) pixels, dx, dy from frame t to t+1) or {name}.mp4 (a flow video in the "
                   "released 360DVD encoding). Videos without one get no flow metrics.")
@click.option("--flow-kind", type=click.Choice(["auto", "numeric", "encoded", "source"]), default="auto",
              show_default=True, help="How to read --flows files: auto (.npz numeric, videos encoded), or "
                                      "'source': they are source videos whose flow is re-estimated.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the JSON result here (atomically). Otherwise it goes to stdout.")
@click.option("--model", default=None,
              help=f"CLIP: a CLIP folder (default {DEFAULT_CLIP_DIR} when it exists) or an open_clip spec "
                   f"ARCH/TAG (default {PAPER_CLIP}; weights from the local open_clip cache or the hub).")
@click.option("--flow-method", type=click.Choice(["ilk", "tvl1"]), default="ilk", show_default=True,
              help="scikit-image flow estimator used wrap-aware on the scored videos.")
@click.option("--device", default="cpu", show_default=True, help="torch device for CLIP (cpu, cuda).")
def score(inputs, prompts, flows, flow_kind, out, model, flow_method, device):
    """Score ERP videos (mp4, gif, ... or folders of PNG/JPG frames; folders of videos too).

    Every input is checked first (readable, 2:1 ERP, at least 2 frames, a prompt when --prompts
    is given) and all problems are listed before any scoring.

    Output JSON: "videos": one record per video with its path, prompt, size and a "metrics"
    object keyed by the metric names (clip_similarity_erp/_views, frame_consistency_erp/_views,
    end_continuity, seam_ratio, their _coslat variants, flow_epe_deg, flow_direction_agreement);
    a metric that cannot be computed (no prompt, no flow) is absent, never 0. "metrics_info"
    gives each metric's scale, better direction, model or flow estimator, and the estimator's own
    error on a synthetic rigid rotation at the scored size.
    """
    from dvd360.atomic import write_json
    from dvd360.data.video import read_frames
    from dvd360.metrics.clip_model import ClipSpecError, load_clip
    from dvd360.metrics.generations import TINY_NOTE
    from dvd360.metrics.scoring import VideoScorer, load_reference_flow
    from dvd360.provenance import versions

    from dvd360.cli.score_inputs import check_score_inputs, problem_report

    items, problems = check_score_inputs(inputs, prompts, flows, min_frames=2)
    spec = model or (str(DEFAULT_CLIP_DIR) if DEFAULT_CLIP_DIR.is_dir() else PAPER_CLIP)
    if problems:
        raise click.ClickException(problem_report(items, problems))
    try:
        clip = load_clip(spec, device=device)
    except (ClipSpecError, OSError, RuntimeError) as error:
        raise click.ClickException(f"CLIP model {spec}: {error}") from error
    scorer = VideoScorer(clip, flow_method)
    records = []
    with click.progressbar(items, label="scoring", file=sys.stderr) as bar:
        for item in bar:
            frames = read_frames(item.path)
            reference = None
            if item.flow is not None:
                try:
                    reference = load_reference_flow(item.flow, flow_kind, flow_method=flow_method)
                except (ValueError, OSError) as error:
                    raise click.ClickException(f"{item.flow}: {error}") from error
            try:
                result = scorer.score(frames, item.prompt, reference)
            except ValueError as error:
                raise click.ClickException(f"{item.path}: {error}") from error
            records.append({"path": str(item.path), "prompt": item.prompt, "prompt_truncated": result["prompt_truncated"],
                            "frames": int(frames.shape[0]), "height": int(frames.shape[1]),
                            "width": int(frames.shape[2]),
                            "reference_flow": None if item.flow is None else {"path": str(item.flow), "kind": flow_kind},
                            "metrics": result["metrics"]})
    result = {"note": TINY_NOTE if clip.random_weights else None, "metrics_info": scorer.describe(),
              "videos": records, "versions": versions()}
    if out is not None:
        write_json(out, result)
        click.echo(f"{len(records)} video(s) scored -> {out}", err=True)
    else:
        click.echo(json.dumps(result, indent=2))
