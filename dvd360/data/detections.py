"""What scoring finds out about an input video before it scores it, one entry per detector.

`detect_input(frames, keep_repeats)` returns the frames to score, their indices in the video
and the detections: {detector name: JSON-ready dict with a one-line "summary"}. They go into
every score record, and `detection_line` turns them into the line `dvd360-eval score` prints
per video. Another detector (e.g. the flow video's encoding) adds its own entry to the dict.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from dvd360.data.repeats import detect_repeats


def size_detection(frames: np.ndarray) -> dict:
    """The input's frame count and size as decoded."""
    count, height, width = (int(n) for n in np.asarray(frames).shape[:3])
    return {"frames": count, "height": height, "width": width, "summary": f"{count} frames {height}x{width}"}


def repeats_detection(frames: np.ndarray, keep_repeats: bool = False) -> tuple[list[int], dict]:
    """(indices of the frames to score, the repeats entry): the distinct frames, or every frame
    with `keep_repeats`; "dropped" lists the frames left out of scoring."""
    info = detect_repeats(frames)
    kept = list(range(info.frames)) if keep_repeats else list(info.kept)
    dropped = [] if keep_repeats else list(info.dropped)
    if info.still:
        summary = "none (no frame moves: nothing to tell apart)"
    elif not info.dropped:
        summary = "none"
    else:
        action = "kept (--keep-repeats)" if keep_repeats else "dropped"
        summary = (f"x{info.factor:.2f} ({len(info.kept)} distinct of {info.frames} frames, "
                   f"{len(info.dropped)} {action})")
    return kept, {**info.to_json(), "dropped": dropped, "summary": summary}


def detect_input(frames: np.ndarray, keep_repeats: bool = False) -> tuple[np.ndarray, list[int], dict[str, dict]]:
    """(frames to score, their indices in the video, detections {"size", "repeats"})."""
    frames = np.asarray(frames)
    kept, repeats = repeats_detection(frames, keep_repeats)
    return frames[kept], kept, {"size": size_detection(frames), "repeats": repeats}


def detection_line(label: str, detections: Mapping[str, Mapping]) -> str:
    """`label: size 24 frames 64x128; repeats x3.00 (...)`: every detection's summary, in order."""
    return f"{label}: " + "; ".join(f"{name.replace('_', ' ')} {entry['summary']}"
                                    for name, entry in detections.items())
