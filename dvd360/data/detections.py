"""What scoring finds out about an input video before it scores it, one entry per detector.

The detections are {detector name: JSON-ready dict with a one-line "summary"}: the input's size,
its repeated frames and the frames the protocol took (`data.protocol.read_video` makes them while
it streams the video). They go into every score record, and `detection_line` turns them into the
line `dvd360-eval score` prints per video. Another detector (e.g. the flow video's encoding) adds
its own entry to the dict.
"""

from __future__ import annotations

from typing import Mapping

from dvd360.data.repeats import RepeatInfo


def size_detection(frames: int | None, height: int, width: int) -> dict:
    """The input's frame count (None: the header gives none and reading stopped early) and size."""
    count = "?" if frames is None else frames
    return {"frames": frames, "height": height, "width": width, "summary": f"{count} frames {height}x{width}"}


def repeats_detection(info: RepeatInfo, keep_repeats: bool = False) -> dict:
    """The repeats entry of the frames read; "dropped" lists the frames left out of scoring (none
    with `keep_repeats`)."""
    dropped = [] if keep_repeats else list(info.dropped)
    if info.still:
        summary = "none (no frame moves: nothing to tell apart)"
    elif not info.dropped:
        summary = "none"
    else:
        action = "kept (--keep-repeats)" if keep_repeats else "dropped"
        summary = (f"x{info.factor:.2f} ({len(info.kept)} distinct of {info.frames} frames, "
                   f"{len(info.dropped)} {action})")
    return {**info.to_json(), "dropped": dropped, "summary": summary}


def detection_line(label: str, detections: Mapping[str, Mapping]) -> str:
    """`label: size 24 frames 64x128; repeats x3.00 (...)`: every detection's summary, in order."""
    return f"{label}: " + "; ".join(f"{name.replace('_', ' ')} {entry['summary']}"
                                    for name, entry in detections.items())
