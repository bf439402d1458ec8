"""On-disk cache of per-video feature arrays, keyed by the content they were computed from.

A key is the content fingerprint (`dvd360.fingerprint.fingerprint`) of its parts (video content
hash, model content hash, preprocessing settings, code hash: whatever the caller passes).
Entries are `.npy` files written atomically under `{root}/{key[:2]}/{key}.npy`, so an interrupted run leaves no partial entry and a
changed input simply misses. `hits` / `misses` count lookups (what a rescoring recomputed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from dvd360.atomic import atomic_path
from dvd360.fingerprint import fingerprint


class FeatureCache:
    """`get_or_compute(parts, compute)`: the cached array for `parts`, computed and stored on a miss."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get_or_compute(self, parts: Mapping[str, Any], compute: Callable[[], np.ndarray]) -> np.ndarray:
        path = self.path(fingerprint(parts))
        if path.is_file():
            try:
                array = np.load(path, allow_pickle=False)
                self.hits += 1
                return array
            except (OSError, ValueError):  # a damaged entry is recomputed and replaced
                pass
        self.misses += 1
        array = np.asarray(compute())
        with atomic_path(path) as tmp:
            np.save(tmp, array, allow_pickle=False)
        return array
