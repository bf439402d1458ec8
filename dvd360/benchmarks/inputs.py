"""Inputs as people have them: seconds and peak resident memory per video of `dvd360-eval score`
and of the set features, on ERP sources of 1920x960, 3840x1920 and 5760x2880 at 150 and 300 frames.

    python -m dvd360.benchmarks.inputs           # every source (2 cores: about 10 minutes)
    python -m dvd360.benchmarks.inputs --quick   # 1920x960 and 3840x1920 at 150 frames

Sources: a textured panorama panning 2 working-size pixels per frame (no repeats) with grain,
written with PyAV as H.264 yuv420p (libx264, preset ultrafast, crf 23) to a temporary folder. Models: the tiny
random-weight ones the tests build (CLIP, MUSIQ, the LAION head, I3D, Inception). Each measurement
runs in a child process of its own and reports that child's wall time, CPU time (user + system:
meaningful when other work shares the cores) and peak resident set (`os.wait4`): the score command
(CPU, --workers 1, the default protocol: 16 frames at 512x1024, every metric but the quality
ones unless --quality) and the set features of the one video (`features_of_file`). A 16-frame 512x1024 source (the
paper's videos, nothing resized) comes first: the fixed cost of a run (imports, models).
Last, a 16-frame 512x1024 video scored against a 100-frame flow video (flow_vis colours, crf 28),
once to fill the flow estimator's self-check cache and once timed.
Targets (issue 27, 2 cores): peak resident memory <= 3 GiB for every source, a 3840x1920 150-frame
video scored in <= 20 s, the flow case in <= 10 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

SOURCES = ((960, 1920), (1920, 3840), (2880, 5760))
LENGTHS = (150, 300)
WORKING_WIDTH = 1024
FEATURES_PROBE = """
import sys
from dvd360.data.protocol import ScoringProtocol
from dvd360.metrics.set_features import SetFeatureExtractor
extractor = SetFeatureExtractor(sys.argv[2] + "/i3d", sys.argv[2] + "/inception", None, "cpu")
extractor.features_of_file(sys.argv[1], ScoringProtocol())
"""


def panorama(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A uint8 ERP texture: smooth random colour at three scales, wrapped in longitude."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.float32)
    for cells, weight in ((8, 0.5), (64, 0.3), (512, 0.2)):
        grid = rng.random((cells // 2, cells, 3)).astype(np.float32)
        grid = np.concatenate([grid, grid[:, :1]], axis=1)  # the seam wraps
        image += weight * cv2.resize(grid, (width + width // cells, height), interpolation=cv2.INTER_CUBIC)[:, :width]
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_source(path: Path, height: int, width: int, frames: int, crf: int = 23) -> Path:
    """A panning panorama (2 working-size pixels per frame) with sensor-like grain (+-4 levels,
    4 patterns in turn: the bitrate of camera footage rather than of a clean render), as H.264
    yuv420p mp4."""
    base, step = panorama(height, width), 2 * max(1, width // WORKING_WIDTH)
    grain = np.random.default_rng(1).integers(-4, 5, size=(4, height, width, 1), dtype=np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(30))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": str(crf)}
        for index in range(frames):
            image = np.clip(np.roll(base, step * index, axis=1) + grain[index % 4], 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_flow_case(folder: Path) -> tuple[Path, Path]:
    """A 16-frame 512x1024 turning video and its 100-frame flow video in flow_vis colours (crf 28)."""
    import flow_vis

    from dvd360.data.video import write_video
    from dvd360.metrics.flow_agreement import rigid_rotation_clip

    frames, flow = rigid_rotation_clip(512, 1024, 16, yaw_deg=1.0, pitch_deg=0.5, roll_deg=0.0, seed=0)
    video = write_video(folder / "turning.mp4", frames, crf=18)
    image = flow_vis.flow_to_color(flow[0])
    flows = folder / "flows" / "turning.mp4"
    flows.parent.mkdir(exist_ok=True)
    write_video(flows, np.repeat(image[None], 100, axis=0), crf=28)
    return video, flows


def build_models(folder: Path) -> tuple[Path, Path]:
    """The tiny random-weight CLIP folder and features folder (i3d, inception, musiq, aesthetic)."""
    from dvd360.models.clip_model import build_tiny_clip
    from dvd360.models.feature_nets import KINDS, build_tiny_feature_net

    clip = build_tiny_clip(folder / "clip", seed=0)
    for kind in KINDS:
        build_tiny_feature_net(folder / "features" / kind, kind, seed=0)
    return clip, folder / "features"


def measure(command: list[str], env: dict) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds (user + system), peak resident GiB) of a child process; raises on
    failure. CPU seconds stay meaningful when other work shares the cores."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}):\n{text[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20


def score_command(video: Path, clip: Path, features: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dvd360.cli", "score", str(video), "--model", str(clip), "--features",
            str(features), "--device", "cpu", "--workers", "1", "--out", str(out), *extra]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1920x960 and 3840x1920 at 150 frames only")
    parser.add_argument("--keep", type=Path, default=None, help="write the sources here and keep them")
    parser.add_argument("--quality", action="store_true",
                        help="score with the quality metrics too (MUSIQ and the LAION head: most of a run's time)")
    args = parser.parse_args(argv)
    sources = [(512, 1024, 16)] + [(h, w, n) for h, w in SOURCES for n in LENGTHS
                                   if not args.quick or (w <= 3840 and n == 150)]
    with tempfile.TemporaryDirectory(prefix="dvd360-inputs-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DVD360_CACHE_DIR": str(Path(scratch) / "cache")}
        clip, features = build_models(Path(scratch) / "models")
        quality = [] if args.quality else ["--no-quality"]
        print(f"{'source':>22} | score: {'wall s':>6} {'CPU s':>6} {'GiB':>5} | set features: {'wall s':>6} "
              f"{'CPU s':>6} {'GiB':>5}", flush=True)
        for height, width, frames in sources:
            start = time.perf_counter()
            video = write_source(folder / f"pan_{width}x{height}_{frames}.mp4", height, width, frames)
            written = time.perf_counter() - start
            score = measure(score_command(video, clip, features, Path(scratch) / "out.json", *quality), env)
            sets = measure([sys.executable, "-c", FEATURES_PROBE, str(video), str(features)], env)
            print(f"{width}x{height} {frames:>3} frames | score: {score[0]:6.1f} {score[1]:6.1f} {score[2]:5.2f} | "
                  f"set features: {sets[0]:6.1f} {sets[1]:6.1f} {sets[2]:5.2f}   (source written in {written:.0f} s, "
                  f"{video.stat().st_size / 2**20:.0f} MiB)", flush=True)
        video, flows = write_flow_case(folder)
        command = score_command(video, clip, features, Path(scratch) / "flow.json", "--flows", str(flows),
                                "--flow-encoding", "flowvis", *quality)
        first = measure(command, env)
        flow = measure(command, env)
        print(f"16x512x1024 + 100-frame flow video: {flow[0]:.1f} s wall, {flow[1]:.1f} s CPU, peak {flow[2]:.2f} GiB "
              f"(first run, filling the estimator's self-check cache: {first[0]:.1f} s wall, {first[1]:.1f} s CPU)")


if __name__ == "__main__":
    main()
