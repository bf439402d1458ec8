"""The held-out reference split of WEB360: clips training never sees and the set metrics
compare against (paper profile).

A clip `id` is held out iff the first 8 hex digits of sha256("dvd360-reference-v1:" + id), read
as an integer / 2^32, are below `HELD_OUT_FRACTION` (10%). It depends only on the id (not on the
list or its order), so adding clips never moves another clip across the split. Training must
skip the clips for which `is_reference_clip(id)` is true; split "all" (tiny profile) takes every clip.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

SPLIT_SALT = "dvd360-reference-v1"
HELD_OUT_FRACTION = 0.1
SPLITS = ("all", "held_out")


def is_reference_clip(clip_id: str, fraction: float = HELD_OUT_FRACTION) -> bool:
    """Whether a WEB360 clip belongs to the held-out reference split."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{clip_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32 < fraction


def reference_clip_ids(clip_ids: Iterable[str], split: str) -> list[str]:
    """The sorted ids of `split` ("all" or "held_out") among clip_ids."""
    if split not in SPLITS:
        raise ValueError(f"unknown reference split {split!r}; known: {', '.join(SPLITS)}")
    ids = sorted(clip_ids)
    return ids if split == "all" else [i for i in ids if is_reference_clip(i)]
