"""DVC stage `prepare`: the dataset every later stage reads, as `data/web360/index.json`.

tiny:  synthesise a WEB360-layout dataset into data/web360 (videos, flow videos, numeric
       flows, captions.csv, metadata.json) and index it.
paper: validate and index the real WEB360 download at `web360_dir` (nothing is copied).
Both write `index.json` (clips, skipped clips, statistics) and `preview.mp4` (one clip beside
its flow visualisation), and log params, statistics and the preview to MLflow.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from dvd360.atomic import atomic_dir
from dvd360.config import load_params, repo_root
from dvd360.data.prepare_settings import PrepareSettings, Web360Settings
from dvd360.data.synthetic_dataset import write_synthetic_web360
from dvd360.data.video import read_frames, write_video
from dvd360.data.web360 import INDEX_FILE, Web360ValidationError, dataset_statistics, index_web360, save_index
from dvd360.params_schema import validated_stage_params
from dvd360.stage_process import begin_stage
from dvd360.tracking import log_artifact, log_metrics, stage_run

PREVIEW_FILE = "preview.mp4"
WHERE_TO_GET_WEB360 = """\
WEB360 was not found at {path}.
Get it from the 360DVD authors: the 'Dataset' link of https://github.com/Akaneqwq/360DVD
(README; its download_bashscripts/4-WEB360.sh fetches WEB360.zip with gdown, Google Drive
file 1W1eLmaP16GZOeisAR1q-y9JYP9gT1CRs). Unzip it so that {path} holds
videos_512x1024x100/, WEB360_360TF.csv and, if you have them, flows_512x1024x100/;
or set prepare.paper.web360_dir in params.yaml to where it already is. Check it with
`dvd360-eval data check {path}`."""


def write_preview(index, target: Path, fps: float, frames: int = 32) -> Path:
    """The first clip's first `frames` frames beside their flow visualisation, as mp4."""
    clip = index.clips[0]
    indices = list(range(min(frames, clip.num_frames)))
    video = read_frames(clip.video_path, indices)
    flow = (read_frames(clip.flow_video_path, indices) if clip.flow_video_path is not None
            else np.zeros_like(video))
    return write_video(target, np.concatenate([video, flow], axis=2), fps=fps)


def finish(index, out: Path, root_label: str, fps: float, flow_clips: int | None) -> dict:
    """Statistics, preview and index.json into `out`; returns the statistics."""
    statistics = dataset_statistics(index, flow_clips=flow_clips)
    write_preview(index, out / PREVIEW_FILE, fps)
    save_index(index, out / INDEX_FILE, root=root_label, statistics=statistics)
    return statistics


def index_download(settings: Web360Settings):
    """Validate the real WEB360 folder before anything else; exit with a message if unusable."""
    root = Path(settings.web360_dir)
    root = root if root.is_absolute() else repo_root() / root
    if not root.is_dir():
        raise SystemExit(WHERE_TO_GET_WEB360.format(path=root))
    try:
        return index_web360(root, csv=settings.csv, lenient=settings.lenient, require_flows=settings.require_flows,
                            progress=True)
    except Web360ValidationError as error:
        raise SystemExit(f"{error}\nFix these files, or set prepare.paper.lenient: true to skip "
                         "the clips they concern.") from error


def main() -> int:
    begin_stage()
    params = load_params()
    profile = params["profile"]
    settings = validated_stage_params("prepare", params, PrepareSettings)
    out = repo_root() / params["paths"]["web360"]
    index = index_download(settings) if profile == "paper" else None
    with stage_run("prepare", profile=profile, params=settings.model_dump()):
        with atomic_dir(out) as tmp:
            if index is None:
                write_synthetic_web360(tmp, clips=settings.clips, height=settings.height, width=settings.width,
                                       frames=settings.frames, fps=settings.fps, seed=settings.seed)
                index = index_web360(tmp)
                statistics = finish(index, tmp, ".", settings.fps, None)
            else:
                statistics = finish(index, tmp, str(index.root.resolve()), settings.fps, settings.stats_clips)
        log_metrics(statistics)
        log_artifact(out / PREVIEW_FILE, "preview")
        log_artifact(out / INDEX_FILE)
    for problem in index.skipped:
        print(f"prepare: skipped: {problem}", file=sys.stderr)
    print(f"prepare: {statistics['clips']} clips, {statistics['frames_total']} frames, "
          f"mean flow {statistics['mean_flow_px']:.2f} px -> {out}/{INDEX_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
