"""`dvd360-eval score`: score any ERP videos (ours or another method's) with every metric."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from dvd360.data.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES

DEFAULT_CLIP_DIR = Path("data/models/clip")
PAPER_CLIP = "ViT-L-14-quickgelu/openai"
FLOW_SUFFIXES = (".npz",)


@dataclass
class Item:
    """One video to score: its path, the name used to find its prompt and flow, what was found."""

    path: Path
    name: str
    prompt: str | None = None
    flow: Path | None = None


def _collect(inputs: tuple[Path, ...], problems: list[str]) -> list[Item]:

    items = []
    for path in inputs:
        if path.is_file():
            if path.suffix.lower() in VIDEO_SUFFIXES:
                items.append(Item(path, path.stem))
            else:
                problems.append(f"{path}: not a video ({', '.join(VIDEO_SUFFIXES)}) or a folder")
        elif path.is_dir():
            entries = sorted(path.iterdir())
            if any(p.suffix.lower() in IMAGE_SUFFIXES for p in entries):
                items.append(Item(path, path.name))  # a folder of frames is one video
                continue
            found = [Item(p, p.stem) for p in entries if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
            found += [Item(p, p.name) for p in entries if p.is_dir()
                      and any(q.suffix.lower() in IMAGE_SUFFIXES for q in p.iterdir())]
            if not found:
                problems.append(f"{path}: folder holds no videos and no frames")
            items += found
        else:
            problems.append(f"{path}: no such file or folder")
    return items


def _read_prompts(path: Path, problems: list[str]) -> dict[str, str]:
    """{name: prompt} from JSON ({name: prompt} or [{video|name|id, prompt}]) or CSV (videoid,name or video,prompt)."""
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            for key, value in (("videoid", "name"), ("video", "prompt")):
                if rows and key in rows[0] and value in rows[0]:
                    return {Path(r[key]).stem: r[value] for r in rows}
            problems.append(f"{path}: CSV needs columns videoid,name or video,prompt")
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        problems.append(f"{path}: unreadable prompts file ({error})")
        return {}
    if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
        return {Path(k).stem: v for k, v in data.items()}
    if isinstance(data, list):
        out = {}
        for entry in data:
            key = next((entry.get(k) for k in ("video", "name", "id", "prompt_id") if entry.get(k)), None)
            if key is None or not isinstance(entry.get("prompt"), str):
                problems.append(f"{path}: entry {entry!r} needs a video/name/id and a prompt")
                continue
            out[Path(str(key)).stem] = entry["prompt"]
        return out
    problems.append(f"{path}: JSON must map names to prompts or list {{video, prompt}} objects")
    return {}


def _sidecar_prompt(item: Item) -> str | None:
    """A prompt stored beside the video: `{stem}.json` with a "prompt" key, or `{stem}.txt`."""
    base = item.path.with_suffix("") if item.path.is_file() else item.path
    record, text = base.with_name(base.name + ".json"), base.with_name(base.name + ".txt")
    if record.is_file():
        try:
            prompt = json.loads(record.read_text(encoding="utf-8")).get("prompt")
            return prompt if isinstance(prompt, str) else None
        except (ValueError, AttributeError):
            return None
    return text.read_text(encoding="utf-8").strip() or None if text.is_file() else None


def _find_flow(item: Item, flows: Path, single: bool) -> Path | None:
    if flows.is_file():
        return flows if single else None
    for suffix in FLOW_SUFFIXES + VIDEO_SUFFIXES:
        candidate = flows / f"{item.name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _check_flow(path: Path, video_frames: int) -> str | None:
    """What is wrong with a reference flow file for a video of `video_frames` frames, or None."""
    import numpy as np

    from dvd360.data.video import VideoError, probe_video

    if path.suffix.lower() == ".npz":
        try:
            with np.load(path) as data:
                if "flow" not in data.files:
                    return f"no 'flow' array (has {', '.join(data.files) or 'nothing'})"
                shape = data["flow"].shape
        except (OSError, ValueError) as error:
            return f"unreadable npz ({error})"
        if len(shape) != 4 or shape[-1] != 2:
            return f"flow must be (F, H, W, 2), got {shape}"
        frames = shape[0]
    elif path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES:
        try:
            frames = probe_video(path).frames
        except VideoError as error:
            return error.problem
    else:
        return "not a .npz flow or a flow video"
    if frames < video_frames - 1:
        return f"{frames} flow frame(s), the video needs at least {video_frames - 1}"
    return None


def validate(items: list[Item], prompts: dict[str, str] | None, flows: Path | None, min_frames: int,
             problems: list[str]) -> None:
    """Append every problem of every input to `problems` (nothing is decoded but headers)."""
    from dvd360.data.video import VideoError, probe_video

    if flows is not None and not flows.exists():
        problems.append(f"{flows}: no such flow file or folder")
    if flows is not None and flows.is_file() and len(items) != 1:
        problems.append(f"{flows}: a single flow file needs exactly one video (got {len(items)}); give a folder")
    for item in items:
        try:
            info = probe_video(item.path)
        except VideoError as error:
            problems.append(str(error))
            continue
        if info.width != 2 * info.height:
            problems.append(f"{item.path}: not an ERP panorama: {info.width}x{info.height} is not 2:1 (W = 2H)")
        if info.frames < min_frames:
            problems.append(f"{item.path}: {info.frames} frame(s), needs at least {min_frames}")
        item.prompt = prompts.get(item.name) if prompts is not None else _sidecar_prompt(item)
        if prompts is not None and item.prompt is None:
            problems.append(f"{item.path}: no prompt for {item.name!r} in the prompts file")
        if flows is not None and flows.exists():
            item.flow = _find_flow(item, flows, single=len(items) == 1)  # None: no flow metrics for it
            if item.flow is not None:
                problem = _check_flow(item.flow, info.frames)
                if problem:
                    problems.append(f"{item.flow}: {problem}")
    if flows is not None and flows.is_dir() and items and not any(item.flow for item in items):
        problems.append(f"{flows}: holds no {{name}}.npz or {{name}}.mp4 flow for any of the videos")


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

    problems: list[str] = []
    items = _collect(inputs, problems)
    prompt_map = _read_prompts(prompts, problems) if prompts is not None else None
    validate(items, prompt_map, flows, min_frames=2, problems=problems)
    spec = model or (str(DEFAULT_CLIP_DIR) if DEFAULT_CLIP_DIR.is_dir() else PAPER_CLIP)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s), nothing scored:\n  " + "\n  ".join(problems))
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
