"""Broken inputs for the hardening tests: byte-level damage, and the cases of issue 13 as CLI calls.

Every case is small (32x64 panoramas, a few frames), so the whole corpus is built in seconds.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from dvd360.data.video import write_video
from dvd360.data.web360 import FLOW_KEY
from web360_support import make_web360, panning_clip

FRAMES, HEIGHT, WIDTH = 6, 32, 64


def truncated(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


def zeroed(data: bytes, start: float, stop: float) -> bytes:
    """`data` with the bytes from fraction `start` to `stop` of its length set to 0."""
    a, b = int(len(data) * start), int(len(data) * stop)
    return data[:a] + bytes(b - a) + data[b:]


def sparse_file(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk space (all zeros)."""
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def good_video(path: Path, frames: int = FRAMES, seed: int = 0) -> Path:
    video, _ = panning_clip(frames, HEIGHT, WIDTH, seed=seed)
    return write_video(path, video, fps=8)


def index_end(data: bytes) -> int:
    """Byte offset just past the mp4's `moov` box (the index; first in our +faststart files)."""
    offset = 0
    while offset + 8 <= len(data):
        size, kind = int.from_bytes(data[offset:offset + 4], "big"), data[offset + 4:offset + 8]
        if kind == b"moov":
            return offset + size
        offset += size
    raise ValueError("no moov box")


def flow_npz(path: Path, flow: np.ndarray | None = None, **arrays) -> Path:
    flow = panning_clip(FRAMES, HEIGHT, WIDTH)[1] if flow is None else flow
    np.savez(path, **({FLOW_KEY: flow} | arrays))
    return path


@dataclass(frozen=True)
class Case:
    """One CLI call on a broken input: its arguments, what the message must say, a file it must not write."""

    name: str
    args: list[str]
    expected: str
    out: Path | None = None


def _flow_with(value: float, where: tuple) -> np.ndarray:
    flow = panning_clip(FRAMES, HEIGHT, WIDTH)[1]
    flow[where] = value
    return flow


def score_cases(root: Path) -> list[Case]:
    """The score command's cases of issue 13; each is given beside a good video that must be listed as fine."""
    root.mkdir(parents=True, exist_ok=True)
    good = good_video(root / "good.mp4")
    data = good.read_bytes()
    out = root / "scores.json"
    cases = []

    def video_case(name: str, content: bytes, expected: str) -> None:
        path = root / name / f"{name}.mp4"
        path.parent.mkdir()
        path.write_bytes(content)
        cases.append(Case(name, ["score", str(good), str(path), "--out", str(out)], expected, out))

    video_case("half", truncated(data, 0.5), "half.mp4: truncated: header lists 6 frames")
    video_case("after_index", data[:index_end(data)], "after_index.mp4: truncated: header lists 6 frames, only 0")
    video_case("zeroed", zeroed(data, 0.6, 0.9), "zeroed.mp4: corrupt: decoding fails after")
    frames = root / "odd_frame"
    frames.mkdir()
    video, _ = panning_clip(FRAMES, HEIGHT, WIDTH)
    for i, image in enumerate(video):
        Image.fromarray(image if i != 3 else image[:, :48]).save(frames / f"{i:03d}.png")
    cases.append(Case("odd_frame", ["score", str(good), str(frames), "--out", str(out)],
                      "odd_frame/003.png: frame of 48x32, the folder's first frame is 64x32", out))
    prompts = root / "prompts_list.json"
    prompts.write_text(json.dumps(["video", "prompt"]))
    cases.append(Case("prompts_strings", ["score", str(good), "--prompts", str(prompts), "--out", str(out)],
                      "prompts_list.json: entry 0 ('video') is not an object", out))
    for name, value, where, expected in [
            ("flow_nan_patch", np.nan, (slice(1, 3), slice(4, 8), slice(10, 20)),
             "160 non-finite value(s) (NaN 160, inf 0) in frames 1-2 (2 of 6 frames affected)"),
            ("flow_all_nan", np.nan, (...,), "24576 non-finite value(s) (NaN 24576, inf 0) in frames 0-5"),
            ("flow_one_inf", np.inf, (2, 5, 5, 0), "1 non-finite value(s) (NaN 0, inf 1) in frame 2")]:
        flows = root / name
        flows.mkdir()
        flow_npz(flows / "good.npz", _flow_with(value, where))
        cases.append(Case(name, ["score", str(good), "--flows", str(flows / "good.npz"), "--out", str(out)],
                          f"{name}/good.npz: {expected}", out))
    return cases


def web360_cases(root: Path) -> list[Case]:
    """`data check` cases of issue 13: each a copy of a good 3-clip folder with clip 001 broken."""
    good = make_web360(root / "good", clips=3, frames=FRAMES)
    videos, flows = good / f"videos_{HEIGHT}x{WIDTH}x{FRAMES}", good / f"flows_{HEIGHT}x{WIDTH}x{FRAMES}"
    cases = []

    def case(name: str, expected: str, damage: Callable[[Path], None]) -> None:
        folder = root / name
        shutil.copytree(good, folder)
        damage(folder)
        cases.append(Case(name, ["data", "check", str(folder)], expected))

    def one_frame(folder: Path) -> None:
        good_video(folder / videos.name / "001.mp4", frames=1)
        good_video(folder / flows.name / "001.mp4", frames=1)

    def nan_flow(folder: Path) -> None:
        flow = panning_clip(FRAMES, HEIGHT, WIDTH)[1]
        flow[4, :2] = np.nan
        flow_npz(folder / flows.name / "001.npz", flow.astype(np.float16))

    def zero_middle(folder: Path) -> None:
        path = folder / videos.name / "001.mp4"
        path.write_bytes(zeroed(path.read_bytes(), 0.6, 0.9))

    def open_quote(folder: Path) -> None:
        path = folder / "captions.csv"
        lines = path.read_text().splitlines()
        lines[2] = lines[2].replace(",", ',"', 1)  # line 3 (clip 001): a quote that never closes
        path.write_text("\n".join(lines) + "\n")

    case("one_frame", f"001.mp4: 1 frame(s) of 32x64 (HxW), its folder {videos.name} declares 6 of 32x64", one_frame)
    case("nan_flow", "001.npz: numeric flow: 256 non-finite value(s) (NaN 256, inf 0) in frame 4", nan_flow)
    case("zeroed_bytes", "001.mp4: corrupt: decoding fails after", zero_middle)
    case("open_quote", "captions.csv: line 3: a quote opened in this row is never closed", open_quote)
    return cases
