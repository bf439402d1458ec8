"""Generate the videos of one method: every prompt of a suite x every seed, resumable.

Outputs per video, in `{out_dir}/{method}/`: `{prompt_id}-s{seed}.npz` (uint8 frames (F, H, W, 3),
key `frames`), `.mp4` (H.264, browser-playable), `.json` (the sampler's record plus method,
prompt, condition clip, a fingerprint of every setting, and the sha256 of the mp4 and npz) and
`.run.json` (what this run measured: MEASURED). The record holds only what the video is made
from, so a rerun that makes the same video writes the same record bytes: the scores reuse it and
DVC's hash of the folder, which ignores `*.run.json` (.dvcignore), does not change.
The JSON record is written last, atomically, so it marks a finished video: a video whose JSON
exists, whose fingerprint matches the current settings and whose files match the recorded hashes
is skipped; anything else (missing, truncated, stale) is generated again.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from dvd360.atomic import atomic_path
from dvd360.device import resolve_device
from dvd360.methods import Method, Prompt
from dvd360.params_schema import Device, StageSettings
from dvd360.provenance import RUN_SUFFIX, sha256_of, write_record

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class GenerateSettings(StageSettings):
    """params.yaml `generate`: where things are, which videos, and how every one is sampled."""

    models_dir: str
    adapters_dir: str
    prepared_dir: str
    out_dir: str
    suite: str                                   # of eval/prompts.yaml
    seeds: list[int] = Field(min_length=1)
    steps: int = Field(gt=0)
    guidance: float = Field(ge=0)
    negative_prompt: str = ""
    personalised: str | None = None              # a name under {models_dir}/personalised
    height: int = Field(gt=0, multiple_of=64)    # the UNet's and the adapter's
    width: int = Field(gt=0, multiple_of=64)
    frames: int = Field(gt=0)
    fps: float = Field(gt=0)
    condition_stride: int = Field(gt=0)
    decode_chunk_size: int = Field(1, gt=0)
    fast_path: bool = False  # `dvd360.sampling.fast_path` (its kernels round differently: keyed)
    device: Device                               # as `resolve_device` takes it; the videos key on its type
    dtype: Literal[tuple(DTYPES)]


# Settings that do not change what a video is: which videos are made, where files are, and the
# device as written (a video is keyed on the resolved device's type, not on its index).
NOT_SHAPING = ("models_dir", "adapters_dir", "prepared_dir", "out_dir", "suite", "seeds", "device")


# What a generation measures rather than what it makes (wall times, peak memory, graphs compiled
# in this call, which the first video of a process does): in `{stem}.run.json` (`write_record`).
MEASURED = ("timings_s", "peak_memory", "graphs_compiled", "seconds")


@dataclass(frozen=True)
class VideoPaths:
    mp4: Path
    json: Path
    npz: Path
    run: Path


def video_paths(out_dir: str | Path, method_id: str, prompt_id: str, seed: int) -> VideoPaths:
    """`{out_dir}/{method}/{prompt_id}-s{seed}.{mp4,json,npz,run.json}`."""
    stem = Path(out_dir) / method_id / f"{prompt_id}-s{seed}"
    return VideoPaths(stem.with_suffix(".mp4"), stem.with_suffix(".json"), stem.with_suffix(".npz"),
                      stem.with_suffix(RUN_SUFFIX))


# The code that shapes a video or its record (with its transitive dvd360 imports): a change in
# it makes existing videos stale, as DVC's own dependencies say, so a re-run stage regenerates.
CODE = ("dvd360.generate",)


def fingerprint(method: Method, prompt: Prompt, seed: int, settings: GenerateSettings, device_type: str,
                models_sha: str, adapter_sha: str | None,
                condition_files: dict[str, Path | None] | None = None) -> str:
    """Content fingerprint (`dvd360.fingerprint`) of one video: method, prompt, seed, the settings
    that shape it (dtype and personalised checkpoint included) and the type of the device it is
    made on ("cpu", "cuda"), weights, the condition clip's flow files (their bytes) and the code."""
    from dvd360.fingerprint import fingerprint as content_fingerprint

    shaping = {"method": asdict(method), "prompt": asdict(prompt), "seed": seed,
               "settings": {**settings.model_dump(exclude=set(NOT_SHAPING)), "device_type": device_type},
               "models": models_sha, "adapter": adapter_sha}
    return content_fingerprint(shaping, condition_files, CODE)


def condition_files(clip) -> dict[str, Path | None]:
    """The files a clip's motion condition is read from (their content keys the fingerprint)."""
    return {"condition_flow_video": clip.flow_video_path, "condition_flow_npz": clip.flow_npz_path}


def is_complete(paths: VideoPaths, expected_fingerprint: str) -> bool:
    """True when the JSON record exists, matches the settings, and the mp4/npz match its hashes."""
    try:
        record = json.loads(paths.json.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    files = record.get("files", {})
    return (record.get("fingerprint") == expected_fingerprint
            and paths.mp4.is_file() and paths.npz.is_file()
            and files.get("mp4_sha256") == sha256_of(paths.mp4)
            and files.get("npz_sha256") == sha256_of(paths.npz))


def motion_condition(clip_id: str, settings: GenerateSettings) -> tuple[torch.Tensor, list[int]]:
    """The flow visualisation of a prepared dataset clip, (F, 3, H, W) in [-1, 1] at the
    generation size, and its source frame indices: frames 0, stride, 2*stride, ... as the
    training dataset samples them."""
    from dvd360.data.clips import Web360ClipDataset
    from dvd360.data.web360 import load_prepared

    index = load_prepared(settings.prepared_dir)
    ids = [clip.id for clip in index.clips]
    if clip_id not in ids:
        raise KeyError(f"{settings.prepared_dir}: no clip {clip_id!r} for the motion condition; "
                       f"clips: {', '.join(ids[:20])}{' ...' if len(ids) > 20 else ''}")
    dataset = Web360ClipDataset(index, length=settings.frames, stride=settings.condition_stride,
                                height=settings.height, width=settings.width, augment=False)
    item = dataset[ids.index(clip_id)]
    return item["condition"], [int(i) for i in item["indices"]]


def generate_method(method: Method, prompts: list[Prompt], settings: GenerateSettings, *,
                    progress: bool = True, rank: int = 0, world_size: int = 1) -> list[dict[str, Any]]:
    """Generate (or keep, when complete) this process's videos of `method`; one summary per video.

    The jobs are every prompt x every seed; process `rank` of `world_size` (torchrun) takes job i
    when i % world_size == rank, on its own device (`resolve_device`: cuda:LOCAL_RANK). A video
    depends only on its prompt, seed and settings, so it is the same whichever process makes it.
    Components are loaded once, and only if some video needs generating. A summary holds the
    job's index, prompt_id, seed, status ("generated" or "skipped"), the paths and the seconds.
    """
    from tqdm.auto import tqdm

    models_dir, prepared_dir = Path(settings.models_dir), settings.prepared_dir
    device = resolve_device(settings.device)
    adapter_file = method.adapter_path(settings.adapters_dir)
    if adapter_file is not None and not adapter_file.is_file():
        raise FileNotFoundError(f"{adapter_file}: the {method.adapter!r} adapter of method {method.id} is "
                                f"missing; run `dvc repro train@{method.adapter}` first")
    known: dict = {}
    if method.condition == "clip":
        unknown = sorted({p.condition for p in prompts if p.condition != "zero"})
        if unknown:  # validate before loading any model
            from dvd360.data.web360 import load_prepared

            known = load_prepared(prepared_dir).by_id()
            missing = [c for c in unknown if c not in known]
            if missing:
                raise KeyError(f"{prepared_dir}: prompt condition clip(s) {missing} are not in the prepared dataset")
    models_sha = sha256_of(models_dir / "manifest.json")
    adapter_sha = None if adapter_file is None else sha256_of(adapter_file)
    jobs = [(prompt, seed, video_paths(settings.out_dir, method.id, prompt.id, seed))
            for prompt in prompts for seed in settings.seeds]
    jobs = [(index, job) for index, job in enumerate(jobs) if index % world_size == rank]

    pipe = adapter = None
    conditions: dict[str, tuple[torch.Tensor, list[int]]] = {}
    summaries = []
    where = f" [rank {rank}/{world_size}]" if world_size > 1 else ""
    for index, (prompt, seed, paths) in tqdm(jobs, desc=f"generate {method.id}{where}", unit="video",
                                             disable=not progress):
        condition = condition_files(known[prompt.condition]) if prompt.condition in known else None
        expected = fingerprint(method, prompt, seed, settings, device.type, models_sha, adapter_sha, condition)
        if is_complete(paths, expected):
            summaries.append({"index": index, "prompt_id": prompt.id, "seed": seed, "status": "skipped",
                              "paths": paths, "seconds": 0.0})
            continue
        if pipe is None:
            pipe, adapter = _load(models_dir, str(device), DTYPES[settings.dtype], settings.personalised, method,
                                  adapter_file, settings.fast_path)
        # The prompt's motion clip is the flow metric's reference for every method (for methods
        # without a motion condition it measures chance agreement); only clip-conditioned ones see it.
        reference_id = None if prompt.condition == "zero" else prompt.condition
        if reference_id is not None and reference_id not in conditions:
            conditions[reference_id] = motion_condition(reference_id, settings)
        clip_id = reference_id if method.condition == "clip" else None
        start = time.perf_counter()
        result = pipe(prompt.text, seed=seed, steps=settings.steps, guidance=settings.guidance,
                      height=settings.height, width=settings.width, num_frames=settings.frames,
                      negative_prompt=settings.negative_prompt,
                      condition=conditions[clip_id][0] if clip_id else None, adapter=adapter,
                      latent_rotation=method.latent_rotation, circular_padding=method.circular_padding,
                      decode_chunk_size=settings.decode_chunk_size)
        seconds = time.perf_counter() - start
        reference = None if reference_id is None else {
            "clip_id": reference_id, "frame_indices": conditions[reference_id][1]}
        _write_video(paths, result, method, prompt, clip_id, reference, settings, expected, seconds)
        summaries.append({"index": index, "prompt_id": prompt.id, "seed": seed, "status": "generated",
                          "paths": paths, "seconds": seconds,
                          "first_in_process": not any(s["status"] == "generated" for s in summaries)})
    return summaries


def _load(models_dir: Path, device: str, dtype: torch.dtype, personalised: str | None, method: Method,
          adapter_file: Path | None, fast_path: bool):
    from dvd360.models.adapter import load_adapter
    from dvd360.models.materialize import load_components
    from dvd360.sampling.pipeline import Panorama360Pipeline

    components = load_components(models_dir, device=device, dtype=dtype, personalised=personalised)
    pipe = Panorama360Pipeline.from_components(components)
    pipe.set_progress_bar_config(leave=False)
    if method.lora_weight is not None:
        if components.lora_path is None:
            raise FileNotFoundError(f"{models_dir}: method {method.id} needs the panorama LoRA; none materialised")
        pipe.set_panorama_lora(str(components.lora_path), method.lora_weight)
    if fast_path:  # after the LoRA, which it fuses into the weights
        from dvd360.sampling.fast_path import FastPath

        pipe.enable_fast_path(FastPath())
    adapter = None
    if adapter_file is not None:
        adapter = load_adapter(adapter_file, device=device).to(dtype).eval().requires_grad_(False)
    return pipe, adapter


def _write_video(paths: VideoPaths, result, method: Method, prompt: Prompt, clip_id: str | None,
                 reference: dict | None, settings: GenerateSettings, expected: str, seconds: float) -> None:
    from dvd360.data.video import write_video

    with atomic_path(paths.npz) as tmp:
        with tmp.open("wb") as handle:
            np.savez_compressed(handle, frames=result.frames)
    write_video(paths.mp4, result.frames, fps=settings.fps)
    record = {**result.record, "method": method.id, "method_definition": asdict(method),
              "prompt_id": prompt.id, "condition_clip": clip_id, "reference_motion": reference,
              "personalised": settings.personalised, "fps": settings.fps, "seconds": round(seconds, 3),
              "fingerprint": expected,
              "files": {"mp4": paths.mp4.name, "npz": paths.npz.name, "run": paths.run.name,
                        "mp4_sha256": sha256_of(paths.mp4), "npz_sha256": sha256_of(paths.npz)}}
    write_record(paths.json, record, MEASURED)
