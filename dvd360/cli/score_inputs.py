"""What `dvd360-eval score` is given, found and checked in one pass before anything is scored.

`check_score_inputs` collects the videos (files, frame folders, folders of either), reads the
prompts file, finds each video's reference flow, and lists every problem of every input,
each naming its file: every frame of every video and flow video is decoded (a header can
look whole over zeroed or cut data), every numeric flow is loaded and must be finite.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dvd360.data.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, VideoError, VideoInfo, check_video
from dvd360.data.web360 import load_flow_npz, parse_caption_csv
from dvd360.inputs import InputError, read_json

FLOW_SUFFIXES = (".npz",)
PROMPT_COLUMNS = (("videoid", "name"), ("video", "prompt"))  # WEB360's captions, or plain
PROMPT_KEYS = ("video", "name", "id", "prompt_id")  # what names the video in a list entry
MAX_PROMPTS_BYTES = 64 * 2**20
MAX_JSON_DEPTH = 8  # {name: prompt} nests 1 level, [{video, prompt}] 2
MAX_SIDECAR_BYTES = 2**20
MAX_SIDECAR_DEPTH = 64  # a sidecar may be a whole generation record (settings, provenance)


@dataclass
class Item:
    """One video to score: its path, the name used to find its prompt and flow, what was found."""

    path: Path
    name: str
    prompt: str | None = None
    flow: Path | None = None
    info: VideoInfo | None = None
    fine: bool = True  # passed every check


def _has_frames(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())


def collect(inputs: tuple[Path, ...], problems: list[str]) -> list[Item]:
    """The videos named by `inputs`: video files, frame folders, and folders holding either."""
    items = []
    for path in inputs:
        try:
            if path.is_file():
                if path.suffix.lower() in VIDEO_SUFFIXES:
                    items.append(Item(path, path.stem))
                else:
                    problems.append(f"{path}: not a video ({', '.join(VIDEO_SUFFIXES)}) or a folder")
            elif path.is_dir():
                entries = sorted(path.iterdir())
                if _has_frames(path):
                    items.append(Item(path, path.name))  # a folder of frames is one video
                    continue
                found = [Item(p, p.stem) for p in entries if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
                found += [Item(p, p.name) for p in entries if p.is_dir() and _has_frames(p)]
                if not found:
                    problems.append(f"{path}: folder holds no videos and no frames")
                items += found
            else:
                problems.append(f"{path}: no such file or folder")
        except OSError as error:
            problems.append(f"{path}: unreadable ({error.strerror or error})")
    return items


def _entry_key(entry: dict) -> str | None:
    return next((str(entry[k]) for k in PROMPT_KEYS if isinstance(entry.get(k), (str, int)) and entry[k] != ""),
                None)


def read_prompts(path: Path, problems: list[str]) -> dict[str, str]:
    """{name: prompt} from JSON ({name: prompt} or [{video|name|id|prompt_id, prompt}]) or CSV
    (videoid,name or video,prompt); names are file stems."""
    if path.suffix.lower() == ".csv":
        prompts, file_problems, row_problems = parse_caption_csv(path, PROMPT_COLUMNS)
        problems += [str(problem) for problem in file_problems + row_problems]
        return {Path(name).stem: prompt for name, prompt in prompts.items()}
    try:
        data = read_json(path, "prompts file", max_bytes=MAX_PROMPTS_BYTES, max_depth=MAX_JSON_DEPTH)
    except InputError as error:
        problems.append(str(error))
        return {}
    if isinstance(data, dict):
        wrong = [key for key, value in data.items() if not isinstance(value, str)]
        if wrong:
            problems.append(f"{path}: the prompts of {', '.join(map(repr, wrong[:5]))}"
                            f"{f' and {len(wrong) - 5} more' if len(wrong) > 5 else ''} are not text")
        return {Path(key).stem: value for key, value in data.items() if isinstance(value, str)}
    if isinstance(data, list):
        out = {}
        for number, entry in enumerate(data):
            key = _entry_key(entry) if isinstance(entry, dict) else None
            if key is None or not isinstance(entry.get("prompt"), str):
                problems.append(f"{path}: entry {number} ({str(entry)[:80]!r}) is not an object with a "
                                f"{'/'.join(PROMPT_KEYS)} and a text prompt")
                continue
            out[Path(key).stem] = entry["prompt"]
        return out
    problems.append(f"{path}: JSON must map names to prompts or list {{video, prompt}} objects, "
                    f"got {json.dumps(data)[:40]}")
    return {}


def sidecar_prompt(item: Item, problems: list[str]) -> str | None:
    """A prompt stored beside the video: `{stem}.json` with a "prompt" key, or `{stem}.txt`."""
    base = item.path.with_suffix("") if item.path.is_file() else item.path
    record, text = base.with_name(base.name + ".json"), base.with_name(base.name + ".txt")
    try:
        if record.is_file():
            data = read_json(record, "prompt record", max_bytes=MAX_SIDECAR_BYTES, max_depth=MAX_SIDECAR_DEPTH)
            prompt = data.get("prompt") if isinstance(data, dict) else None
            if prompt is not None and not isinstance(prompt, str):
                problems.append(f"{record}: \"prompt\" is a {type(prompt).__name__}, not text")
            return prompt if isinstance(prompt, str) else None
        if text.is_file():
            if text.stat().st_size > MAX_SIDECAR_BYTES:
                problems.append(f"{text}: over the {MAX_SIDECAR_BYTES // 2**20} MiB limit for a prompt")
                return None
            return text.read_text(encoding="utf-8").strip() or None
    except InputError as error:
        problems.append(str(error))
    except (OSError, UnicodeDecodeError) as error:
        problems.append(f"{text}: unreadable prompt ({error})")
    return None


def find_flow(item: Item, flows: Path, single: bool) -> Path | None:
    """`flows` itself for a single video, else `{flows}/{name}.npz` or `{flows}/{name}.{video suffix}`."""
    if flows.is_file():
        return flows if single else None
    for suffix in FLOW_SUFFIXES + VIDEO_SUFFIXES:
        candidate = flows / f"{item.name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def check_flow(path: Path, video_frames: int) -> str | None:
    """What is wrong with a reference flow file for a video of `video_frames` frames, or None.

    An npz is loaded whole (finite (F, H, W, 2) numbers); a flow video is decoded frame by frame.
    """
    if path.suffix.lower() in FLOW_SUFFIXES:
        try:
            frames = load_flow_npz(path).shape[0]
        except InputError as error:
            return error.problem
    elif path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES:
        try:
            frames = check_video(path).frames
        except VideoError as error:
            return error.problem if error.path == path else str(error)
    else:
        return "not a .npz flow or a flow video"
    if frames < video_frames - 1:
        return f"{frames} flow frame(s), the video needs at least {video_frames - 1}"
    return None


def check_score_inputs(inputs: tuple[Path, ...], prompts: Path | None, flows: Path | None,
                       min_frames: int) -> tuple[list[Item], list[str]]:
    """The videos to score (each with its prompt, flow and `info`) and every problem of every input."""
    from tqdm.auto import tqdm

    problems: list[str] = []
    items = collect(inputs, problems)
    prompt_map = read_prompts(prompts, problems) if prompts is not None else None
    if flows is not None and not flows.exists():
        problems.append(f"{flows}: no such flow file or folder")
    if flows is not None and flows.is_file() and len(items) != 1:
        problems.append(f"{flows}: a single flow file needs exactly one video (got {len(items)}); give a folder")
    for item in tqdm(items, desc="check inputs", unit="video", leave=False, disable=None):
        before = len(problems)
        try:
            item.info = check_video(item.path)
        except VideoError as error:
            problems.append(str(error))
        else:
            if item.info.width != 2 * item.info.height:
                problems.append(f"{item.path}: not an ERP panorama: {item.info.width}x{item.info.height} is not "
                                "2:1 (W = 2H)")
            if item.info.frames < min_frames:
                problems.append(f"{item.path}: {item.info.frames} frame(s), needs at least {min_frames}")
        item.prompt = prompt_map.get(item.name) if prompt_map is not None else sidecar_prompt(item, problems)
        if prompt_map is not None and item.prompt is None:
            problems.append(f"{item.path}: no prompt for {item.name!r} in the prompts file")
        if flows is not None and flows.exists():
            item.flow = find_flow(item, flows, single=len(items) == 1)  # None: no flow metrics for it
            if item.flow is not None:
                problem = check_flow(item.flow, item.info.frames if item.info else 0)
                if problem:
                    problems.append(f"{item.flow}: {problem}")
        item.fine = len(problems) == before
    if flows is not None and flows.is_dir() and items and not any(item.flow for item in items):
        problems.append(f"{flows}: holds no {{name}}.npz or {{name}}.mp4 flow for any of the videos")
    return items, problems


def problem_report(items: list[Item], problems: list[str]) -> str:
    """Every problem, then the videos that passed every check (nothing is scored either way)."""
    fine = [str(item.path) for item in items if item.fine]
    return (f"{len(problems)} problem(s), nothing scored:\n  " + "\n  ".join(problems) +
            (f"\n{len(fine)} video(s) passed every check:\n  " + "\n  ".join(fine) if fine else ""))
