"""Repeated frames: runs of (near-)identical consecutive frames, as web frame-rate upsampling makes.

A video shown at 24 or 30 fps from 8 generated frames per second repeats each frame 2-3 times;
consecutive repeats make frame consistency look near perfect and the estimated flow zero
every other pair. `detect_repeats` finds them, `drop_repeats` keeps the first frame of each run.

The statistic of the pair (t, t+1) is the change relative to a one-pixel pan of frame t:

    rho_t = mean |I_{t+1} - I_t| / mean |I_t[:, j+1 mod W] - I_t[:, j]|

(means over rows, columns and channels; uint8 levels cancel). A horizontal pan of 1 px/frame
gives rho = 1 whatever the content; a repeat gives only the codec's re-quantisation noise. A
pair is a repeat when rho_t <= `REPEAT_MAX_CHANGE` = 0.5 (half the change of a 1-px pan).
Measured on the 12 synthetic dataset clips (64x128, frames repeated 3x, H.264 yuv420p) and
on periodic textures at 64x128 and 256x512 (tests/test_repeats.py keeps the cases):

- codec noise on repeats: rho <= 0.11 at crf 18, 0.13 at crf 23, 0.23 at crf 28, 0.43 at crf 35
  (margin 2.2x below the threshold up to crf 28);
- real motion: rho >= 0.79 for 1 px/frame pans (raw or at crf 35), >= 2.1 for 1 px/frame
  tilts, >= 0.72 for the synthetic clips' own camera motion (margin 1.4x above).

A video in which no pair moves more than the threshold (still, or panning slower than
0.5 px/frame) has no frame to tell repeats from: nothing is dropped and it is reported as
`still`. Limitation: a video whose frames change by less than half of a 1-px pan between
moving pairs (a locked-off camera where only small parts move) reads as repeated there;
scoring with repeats kept (`--keep-repeats`) is the opt-out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REPEAT_MAX_CHANGE = 0.5


@dataclass(frozen=True)
class RepeatInfo:
    """What `detect_repeats` found in a video of `frames` frames.

    `kept`: indices of the distinct frames (the first of each run); `changes`: rho of each
    consecutive pair (F - 1 values); `still`: no pair moved, nothing could be told apart.
    """

    frames: int
    kept: tuple[int, ...]
    changes: tuple[float, ...]
    still: bool
    threshold: float = REPEAT_MAX_CHANGE

    @property
    def dropped(self) -> tuple[int, ...]:
        """The frames that repeat the one before them (what `drop_repeats` leaves out)."""
        kept = set(self.kept)
        return tuple(i for i in range(self.frames) if i not in kept)

    @property
    def factor(self) -> float:
        """Frames per distinct frame: 1.0 without repeats, 3.0 when every frame shows 3 times."""
        return self.frames / len(self.kept)

    @property
    def longest_run(self) -> int:
        """The most consecutive frames showing the same picture."""
        starts = list(self.kept) + [self.frames]
        return max(b - a for a, b in zip(starts[:-1], starts[1:]))

    def to_json(self) -> dict:
        return {"frames": self.frames, "distinct": len(self.kept), "factor": round(self.factor, 4),
                "longest_run": self.longest_run, "repeated": list(self.dropped), "still": self.still,
                "threshold": self.threshold,
                "statistic": "mean |I[t+1] - I[t]| / mean |I[t] shifted 1 px in longitude - I[t]|",
                "max_change_of_a_repeat": max((c for c in self.changes if c <= self.threshold), default=None),
                "min_change_of_a_move": min((c for c in self.changes if c > self.threshold), default=None)}


def pair_change(before: np.ndarray, after: np.ndarray) -> float:
    """rho of one pair of uint8 or float (H, W, 3) frames (module docstring): 0 for identical
    frames, inf for a constant frame followed by another picture."""
    work = [f.astype(np.int16) if f.dtype == np.uint8 else f.astype(np.float64) for f in (before, after)]
    change = np.abs(work[1] - work[0]).mean()
    pan = np.abs(np.roll(work[0], -1, axis=1) - work[0]).mean()
    return float(change / pan) if pan > 0 else (0.0 if change == 0 else float("inf"))


def pair_changes(frames: np.ndarray) -> np.ndarray:
    """rho_t of every consecutive pair (F - 1,) of uint8 or float (F, H, W, 3) frames (`pair_change`)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] < 2:
        raise ValueError(f"frames must be (F >= 2, H, W, C), got shape {frames.shape}")
    return np.array([pair_change(frames[t], frames[t + 1]) for t in range(frames.shape[0] - 1)])


def detect_repeats(frames: np.ndarray, threshold: float = REPEAT_MAX_CHANGE) -> RepeatInfo:
    """Runs of repeated frames: frame t+1 repeats frame t when rho_t <= `threshold`."""
    return repeats_of_changes(pair_changes(frames), threshold)


def repeats_of_changes(changes, threshold: float = REPEAT_MAX_CHANGE) -> RepeatInfo:
    """`detect_repeats` from the pair changes rho_t of a video of len(changes) + 1 frames (as a
    stream measures them, `data.protocol`)."""
    changes = np.asarray(changes, dtype=np.float64)
    count = len(changes) + 1
    still = not bool((changes > threshold).any())
    if still:
        kept = tuple(range(count))
    else:
        kept = (0,) + tuple(t + 1 for t, change in enumerate(changes) if change > threshold)
    return RepeatInfo(count, kept, tuple(float(c) for c in changes), still, threshold)


def drop_repeats(frames: np.ndarray, info: RepeatInfo) -> np.ndarray:
    """The distinct frames (`info.kept`) of the video `info` was detected on."""
    frames = np.asarray(frames)
    if frames.shape[0] != info.frames:
        raise ValueError(f"repeat info is for {info.frames} frames, got {frames.shape[0]}")
    return frames[list(info.kept)]
