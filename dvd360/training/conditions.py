"""Motion conditions for training: which flow each clip is conditioned on, estimating where needed.

Per clip of a prepared WEB360 index:
- `exact`: the clip has a numeric npz flow (the synthetic set's, exact from the scene): kept.
- `released`: `source="released"` and the clip came with a flow video (WEB360's PanoFlow
  flows, what the paper trained on): kept.
- `estimated`: otherwise the flow is estimated wrap-aware (`data.flow_estimation.estimate_flow`)
  on the first `max_frames` frames and written as the released encoding
  (`{out}/{method}/{id}.mp4`, `encode_flow`) plus numeric flow (`{id}.npz`, key `flow`, float16).

The index (`{out}/index.json`) names, per clip, the source and the flow video the trainer uses
(repository-relative paths, `repo_relative`: a moved clone's index has the same bytes).
Finished estimates of the same content fingerprint are reused (the stage resumes); a clip that fails is listed and skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal

import numpy as np
from pydantic import Field
from tqdm.auto import tqdm

from dvd360.atomic import atomic_path, write_json
from dvd360.config import repo_relative, repo_root
from dvd360.data.flow_estimation import DEFAULT_METHOD, METHODS
from dvd360.fingerprint import fingerprint
from dvd360.params_schema import StageSettings
from dvd360.provenance import sha256_of

INDEX_FILE = "index.json"
SOURCES = ("released", "estimate")


class FlowSettings(StageSettings):
    """params.yaml `flow`: where each clip's condition comes from and how a flow is estimated."""

    method: Literal[METHODS] = DEFAULT_METHOD       # the wrap-aware estimator (`data.flow_estimation`)
    source: Literal[SOURCES] = "released"           # released: a clip's own flow video where it has one
    max_frames: int | None = Field(default=None, gt=1)  # frames estimated per clip (None: all)


# The code that shapes an estimate and its encoded video (with its transitive dvd360 imports).
ESTIMATE_CODE = ("dvd360.data.flow_estimation", "dvd360.data.flow_encoding", "dvd360.data.video")


def estimate_fingerprint(clip, method: str, frames: int) -> str:
    """Content fingerprint of one estimate: estimator, frame count, the clip's video bytes, the code."""
    return fingerprint({"method": method, "frames": frames}, {"video": clip.video_path}, ESTIMATE_CODE)


def _finished(npz: Path, video: Path, key: str) -> bool:
    """The npz (written last) carries this fingerprint and the sha256 of the encoded video beside it."""
    try:
        with np.load(npz) as data:
            return str(data["fingerprint"]) == key and str(data["video_sha256"]) == sha256_of(video)
    except Exception:  # missing, truncated, stale or foreign file: estimate again
        return False


def estimate_clip(clip, out_dir: Path, method: str, max_frames: int | None) -> dict:
    """Estimate one clip's flow (or reuse a finished estimate of the same content fingerprint);
    write the encoded video, then the npz (flow, fingerprint, the video's sha256) that marks it done."""
    from dvd360.data.flow_encoding import encode_flow
    from dvd360.data.flow_estimation import estimate_flow
    from dvd360.data.video import probe_video, read_frames, write_video

    count = clip.num_frames if max_frames is None else min(max_frames, clip.num_frames)
    video_out, npz_out = out_dir / method / f"{clip.id}.mp4", out_dir / method / f"{clip.id}.npz"
    key = estimate_fingerprint(clip, method, count)
    if not _finished(npz_out, video_out, key):
        flow = estimate_flow(read_frames(clip.video_path, indices=list(range(count))), method=method)
        write_video(video_out, encode_flow(flow), fps=probe_video(clip.video_path).fps)
        with atomic_path(npz_out) as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, flow=flow.astype(np.float16), fingerprint=np.array(key),
                                    video_sha256=np.array(sha256_of(video_out)))
    return {"source": "estimated", "method": method, "frames": count,
            "flow_video": repo_relative(video_out), "flow_npz": repo_relative(npz_out)}


def prepare_conditions(clips: Iterable, out_dir: str | Path, settings: FlowSettings) -> dict:
    """Decide (and where needed estimate) every clip's condition; write and return the index."""
    from dvd360.data.flow_estimation import describe

    out_dir = Path(out_dir)
    entries, failures = {}, []
    for clip in tqdm(list(clips), desc="flow", unit="clip"):
        if clip.flow_npz_path is not None:
            entries[clip.id] = {"source": "exact", "frames": clip.num_frames,
                                "flow_video": repo_relative(clip.flow_video_path),
                                "flow_npz": repo_relative(clip.flow_npz_path)}
        elif settings.source == "released" and clip.flow_video_path is not None:
            entries[clip.id] = {"source": "released", "frames": clip.num_frames,
                                "flow_video": repo_relative(clip.flow_video_path), "flow_npz": None}
        else:
            try:
                entries[clip.id] = estimate_clip(clip, out_dir, settings.method, settings.max_frames)
            except Exception as error:  # report the clip, keep going with the others
                failures.append({"videoid": clip.id, "video": repo_relative(clip.video_path),
                                 "error": f"{type(error).__name__}: {error}"})
    counts = {kind: sum(e["source"] == kind for e in entries.values()) for kind in ("exact", "released", "estimated")}
    index = {"source": settings.source, "estimator": describe(settings.method), "counts": counts, "clips": entries,
             "failures": failures,
             "note": "exact: synthetic clips, flow known from the scene (not estimated); "
                     "released: the dataset's own flow video; estimated: wrap-aware estimate written here"}
    write_json(out_dir / INDEX_FILE, index)
    return index


def apply_conditions(index, conditions: dict):
    """A copy of a Web360Index whose clips use the condition index's flow videos, cut to the frames
    that have a flow (clips the index lacks are dropped)."""
    import dataclasses

    clips = []
    for clip in index.clips:
        entry = conditions["clips"].get(clip.id)
        if entry is None:
            continue
        npz = entry.get("flow_npz")
        clips.append(dataclasses.replace(clip, flow_video_path=repo_root() / entry["flow_video"],
                                         flow_npz_path=repo_root() / npz if npz else None,
                                         num_frames=min(clip.num_frames, int(entry["frames"]))))
    return dataclasses.replace(index, clips=clips)
