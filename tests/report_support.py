"""Test inputs for the results page: synthetic panorama videos scored for real, loss curves.

Every method renders the same synthetic scene per prompt (`dvd360.data.synthetic`); methods
differ by a known seam: the last `SEAM_BAND` columns are darkened by the method's factor, so
the seam metrics order them (A worst, D none). The score files hold what `VideoScorer` (no
CLIP; flow on the scene's exact flow) measures on the written mp4s, in the score stage's layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dvd360.data.synthetic import make_scene, render_clip
from dvd360.data.video import read_frames, write_video
from dvd360.metrics.scorers import RANDOM_WEIGHTS_NOTE as TINY_NOTE
from dvd360.metrics.scoring import VideoScorer
from dvd360.provenance import sha256_of

METHODS = ("A", "B", "C", "D")
ABLATIONS = ("D", "D_no_360tf", "D_no_latloss")
SEAM_DARKENING = {"A": 0.55, "B": 0.7, "C": 0.9, "D": 1.0, "D_no_360tf": 0.97, "D_no_latloss": 0.85}
SEAM_BAND = 1 / 8
VARIANTS = ("full", "no_360tf", "no_latloss")


def method_frames(clip_frames: np.ndarray, method: str) -> np.ndarray:
    """The scene with the method's seam: the last columns darkened, a step at longitude 180."""
    frames = clip_frames.astype(np.float32)
    band = int(frames.shape[2] * SEAM_BAND)
    frames[:, :, -band:] *= SEAM_DARKENING[method]
    return frames.round().astype(np.uint8)


def write_report_inputs(root: Path, prompts: int = 2, height: int = 48, frames: int = 5) -> dict[str, Path]:
    """generations/{method}/{prompt_id}-s0.mp4 + .json, scores/{method}.json, train/{variant}/loss.tsv."""
    methods = list(dict.fromkeys(METHODS + ABLATIONS))
    scorer = VideoScorer(clip=None, flow_method="ilk")
    records: dict[str, list] = {m: [] for m in methods}
    for p in range(prompts):
        clip = render_clip(make_scene(100 + p), height, 2 * height, frames)
        prompt, prompt_id = clip.metadata["caption"], f"p{p:02d}"
        for method in methods:
            video = root / "generations" / method / f"{prompt_id}-s0.mp4"
            write_video(video, method_frames(clip.frames, method), fps=6)
            video.with_suffix(".json").write_text(json.dumps({"prompt": prompt, "prompt_id": prompt_id, "seed": 0}))
            decoded = read_frames(video)
            scored = scorer.score(decoded, prompt, clip.flow)
            records[method].append({"video": video.name, "video_sha256": sha256_of(video), "prompt": prompt,
                                    "prompt_id": prompt_id, "seed": 0, "frames": int(decoded.shape[0]),
                                    "height": height, "width": 2 * height, "metrics": scored["metrics"]})
    (root / "scores").mkdir(parents=True)
    for method in methods:
        document = {"method": method, "profile": "tiny", "note": TINY_NOTE, "metrics_info": scorer.describe(),
                    "videos": records[method]}
        (root / "scores" / f"{method}.json").write_text(json.dumps(document))
    rng = np.random.default_rng(0)
    for v, variant in enumerate(VARIANTS):
        steps = np.arange(2, 82, 2)
        loss = 0.75 * np.exp(-steps / (60 + 20 * v)) + 0.2 + 0.02 * rng.standard_normal(steps.size)
        path = root / "train" / variant / "loss.tsv"
        path.parent.mkdir(parents=True)
        path.write_text("step\tloss\n" + "".join(f"{s}\t{x:.6f}\n" for s, x in zip(steps, loss)))
    return {"generations": root / "generations", "scores": root / "scores", "train": root / "train"}
