"""The scoring protocol: which frames of a video are scored and at what size, read as a stream.

Every metric sees the frames `read_video` returns, and every record says which (the "protocol"
detection, `ScoringProtocol.describe`):

- `frames` N (default 16: the paper's videos and FVD's clip; None: every frame, memory growing with it);
- `sample`: which N of the video's distinct frames (repeated frames are found first, on the
  stream at the working size, `data.repeats`, and dropped unless kept):
  - "first" (default): the first N. The paper's videos are 16 frames and FVD's clip is a video's
    first 16 (cd-fvd), so generated videos are scored whole and as FVD sees them; consecutive
    frames keep frame consistency and flow agreement at the source's own frame step, where the
    flow estimator is valid; and reading stops after them, so a long video costs what a short
    one does. It sees only the start of a long video: "uniform" covers all of it.
  - "uniform": distinct frame round(i (M - 1) / (N - 1)), i = 0 .. N - 1, of the M distinct
    frames (a first pass finds M, a second keeps the frames); consecutive scored frames are then
    about (M - 1) / (N - 1) source frames apart.
  - "stride:K": distinct frames 0, K, 2K, ... (N of them), the sampling of the conditions and of
    the reference set.
- `size` HxW (default 512x1024, the paper's): a frame larger than HxW (in height or width) is
  resized once, as it is decoded, to exactly HxW with OpenCV's INTER_AREA (area averaging: each
  output pixel the mean of the source pixels it covers, an antialiased downscale); a frame not
  larger is scored at its own size (upsampling adds no detail; records give the size scored).

Memory for one video: the decoder's own frames, one frame converted at the source size, and at
most 2N + 1 frames at the working size (those chosen, those a still video would score, the
previous frame), whatever the source's size or length. Metrics with a published input protocol
resample these frames to it and say so: CLIP at its input size, FVD's I3D at 224x224 on the first
16 frames, FID's Inception on 299x299 views, MUSIQ with the longer side at most 512 (VBench).
"""

from __future__ import annotations

import re
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

from dvd360.data.detections import repeats_detection, size_detection
from dvd360.data.repeats import REPEAT_MAX_CHANGE, pair_change, repeats_of_changes
from dvd360.data.video import VideoError, stream_frames
from dvd360.params_schema import StrictModel

SAMPLE_PATTERN = r"^(first|uniform|stride:[1-9][0-9]*)$"
SIZE_PATTERN = r"^[1-9][0-9]*x[1-9][0-9]*$"
RESIZE_FILTER = "OpenCV INTER_AREA (area averaging), downscale only"


class ScoringProtocol(StrictModel):
    """How many frames, which, and at what size every metric scores (module doc)."""

    frames: int | None = Field(default=16, gt=0)
    sample: str = Field(default="first", pattern=SAMPLE_PATTERN)
    size: str = Field(default="512x1024", pattern=SIZE_PATTERN)

    @property
    def shape(self) -> tuple[int, int]:
        """The working size (height, width)."""
        height, width = self.size.split("x")
        return int(height), int(width)

    @property
    def stride(self) -> int | None:
        """K of "stride:K", 1 for "first", None for "uniform"."""
        if self.sample == "uniform":
            return None
        return int(self.sample.split(":")[1]) if self.sample.startswith("stride:") else 1

    def scored_size(self, height: int, width: int) -> tuple[int, int]:
        """The size a height x width source is scored at: the working size if larger, else its own."""
        top, side = self.shape
        return (top, side) if height > top or width > side else (height, width)

    def wants(self, position: int) -> bool:
        """Whether the distinct frame at `position` is scored ("first" and "stride:K")."""
        return position % self.stride == 0 and (self.frames is None or position // self.stride < self.frames)

    def complete(self, distinct: int) -> bool:
        """Whether `distinct` frames hold every one scored ("first" and "stride:K")."""
        return self.frames is not None and distinct >= (self.frames - 1) * self.stride + 1

    def choose(self, distinct: list[int]) -> list[int]:
        """The scored frames among a video's distinct frames (indices in the video, increasing)."""
        if self.stride is not None:
            return [index for position, index in enumerate(distinct) if self.wants(position)]
        count = len(distinct)
        if self.frames is None or count <= self.frames:
            return list(distinct)
        if self.frames == 1:
            return [distinct[0]]
        steps = self.frames - 1
        return [distinct[(2 * i * (count - 1) + steps) // (2 * steps)] for i in range(self.frames)]

    def describe(self) -> dict:
        """The protocol as every output records it."""
        return {"frames": self.frames if self.frames is not None else "all", "sample": self.sample,
                "size": self.size, "resize": RESIZE_FILTER,
                "repeats": "dropped before sampling unless kept (data.repeats)"}


def parse_protocol(frames: str | int | None, sample: str, size: str) -> ScoringProtocol:
    """A protocol from command-line text: `frames` a count or "all"; ValueError naming what is wrong."""
    if isinstance(frames, str):
        if frames == "all":
            frames = None
        elif re.fullmatch(r"[1-9][0-9]*", frames):
            frames = int(frames)
        else:
            raise ValueError(f"--frames: {frames!r} is neither a positive count nor 'all'")
    if not re.fullmatch(SAMPLE_PATTERN, sample):
        raise ValueError(f"--sample: {sample!r} is not first, uniform or stride:K (K >= 1)")
    if not re.fullmatch(SIZE_PATTERN, size):
        raise ValueError(f"--size: {size!r} is not HxW in pixels (e.g. 512x1024)")
    return ScoringProtocol(frames=frames, sample=sample, size=size)


@dataclass(frozen=True)
class ScoredVideo:
    """What `read_video` returns: the frames scored (uint8 (N, h, w, 3) RGB), the index in the
    video of each, and the detections (size, repeats, protocol: `data.detections`)."""

    frames: np.ndarray
    indices: list[int]
    detections: dict


def read_video(path: str | Path, protocol: ScoringProtocol = ScoringProtocol(),
               keep_repeats: bool = False) -> ScoredVideo:
    """The frames of a video (any `data.video.stream_frames` input) that `protocol` scores, each
    resized once to its working size, in one streaming pass ("uniform": two). Repeats are measured
    on every frame read and dropped before sampling unless `keep_repeats`; a video in which no
    frame moves keeps every frame (`data.repeats`). Raises `VideoError` naming the file."""
    path = Path(path)
    info, stream = stream_frames(path)
    shape = protocol.scored_size(info.height, info.width)
    collect = protocol.stride is not None
    with closing(stream):
        scan = _scan(path, stream, protocol, (info.height, info.width), shape, keep_repeats, collect)
    chosen = scan.chosen if collect else _collect(path, protocol.choose(scan.distinct), shape)
    repeats = repeats_of_changes(scan.changes)
    indices = sorted(chosen)
    total = info.frames or (scan.read if scan.ended else None)
    resized = shape != (info.height, info.width)
    summary = (f"{len(indices)} frames ({protocol.sample}"
               f"{'' if protocol.frames is None else f', N={protocol.frames}'}) at {shape[0]}x{shape[1]}"
               f"{f' (INTER_AREA from {info.height}x{info.width})' if resized else ''}")
    repeats_entry = repeats_detection(repeats, keep_repeats)
    if not scan.ended:
        repeats_entry["summary"] += f" in the first {scan.read} frames (reading stopped there)"
    detections = {"size": size_detection(total, info.height, info.width),
                  "repeats": repeats_entry,
                  "protocol": {**protocol.describe(), "scored_frames": indices, "scored_height": shape[0],
                               "scored_width": shape[1], "frames_read": scan.read, "summary": summary}}
    return ScoredVideo(np.stack([chosen[i] for i in indices]), indices, detections)


@dataclass
class _Scan:
    distinct: list[int]
    changes: list[float]
    chosen: dict[int, np.ndarray]
    read: int
    ended: bool


def _scan(path: Path, stream, protocol: ScoringProtocol, source: tuple[int, int], shape: tuple[int, int],
          keep_repeats: bool, collect: bool) -> _Scan:
    """Read frames, measuring repeats; with `collect`, keep the scored ones ("first", "stride:K")
    and stop once they are all there."""
    distinct: list[int] = []
    changes: list[float] = []
    chosen: dict[int, np.ndarray] = {}
    still: dict[int, np.ndarray] = {}  # what is scored if no frame moves (every frame distinct)
    previous, moved, read = None, False, 0
    for frame in stream:
        image = _working(path, frame.index, frame.rgb(), source, shape)
        change = None if previous is None else pair_change(previous, image)
        if change is not None:
            changes.append(change)
            moved = moved or change > REPEAT_MAX_CHANGE
        previous, read = image, read + 1
        if change is None or keep_repeats or change > REPEAT_MAX_CHANGE:
            distinct.append(frame.index)
            if collect and protocol.wants(len(distinct) - 1):
                chosen[frame.index] = image
        if collect and not moved and not keep_repeats and protocol.wants(frame.index):
            still[frame.index] = image
        elif moved:
            still.clear()
        if collect and (moved or keep_repeats) and protocol.complete(len(distinct)):
            return _Scan(distinct, changes, chosen, read, ended=False)
    if not moved and not keep_repeats:  # a still video: nothing to tell apart, every frame counts
        distinct, chosen = list(range(read)), still
    return _Scan(distinct, changes, chosen, read, ended=True)


def _collect(path: Path, indices: list[int], shape: tuple[int, int]) -> dict[int, np.ndarray]:
    """The frames `indices` of a video at the working size, in one pass that stops after the last."""
    wanted, chosen = set(indices), {}
    info, stream = stream_frames(path)
    with closing(stream):
        for frame in stream:
            if frame.index in wanted:
                chosen[frame.index] = _working(path, frame.index, frame.rgb(), (info.height, info.width), shape)
                if len(chosen) == len(wanted):
                    break
    if len(chosen) < len(wanted):
        raise VideoError(path, f"frame {min(wanted - set(chosen))} is gone on the second reading")
    return chosen


def _working(path: Path, index: int, image: np.ndarray, source: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """A decoded frame at the working size (INTER_AREA when it is larger)."""
    if image.shape[:2] != source:
        raise VideoError(path, f"frame {index} is {image.shape[1]}x{image.shape[0]}, the header says "
                               f"{source[1]}x{source[0]}")
    if image.shape[:2] == shape:
        return image
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
