"""Set metrics of sets of video files against one reference set (what `score` stage and CLI call).

`SetScorer(features_dir, cache_dir)` loads the I3D and Inception folders (`data/models/features/
{i3d,inception}`), `use_reference(paths, frames, stride, source)` extracts the reference set's
features once, and `score(paths)` returns {metric name: result} for one generated set (see
`set_metrics`). Features are cached per video content, model and preprocessing, so rescoring
after adding one method computes only that method's features.

`start(paths)` begins extracting generated videos' features in a background thread, on a CUDA
stream of its own, so they overlap the per-video engine (whose CPU workers estimate flows while
the GPU would otherwise idle); `score` then takes them from there. The features are the same
either way: the same kernels on the same inputs, only when they run differs. By default only on
CUDA: on a CPU the features would compete with the engine's workers for the same cores, and
overlapping them there was measured slower than running them in turn (docs/performance.md).
"""

from __future__ import annotations

import contextlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from tqdm.auto import tqdm

from dvd360.metrics.feature_cache import FeatureCache
from dvd360.data.protocol import ScoringProtocol
from dvd360.metrics.reference_set import reference_features, reference_protocol
from dvd360.metrics.set_features import SetFeatureExtractor
from dvd360.metrics.registry import SET_METRICS
from dvd360.metrics.set_metrics import set_metrics

class SetScorer:
    """Scores generated sets of videos against the reference set given to `use_reference`."""

    def __init__(self, features_dir: str | Path, cache_dir: str | Path | None, device: str = "cpu",
                 seed: int = 0, n_resamples: int = 200, background: bool | None = None,
                 protocol: ScoringProtocol = ScoringProtocol()):
        features_dir = Path(features_dir)
        cache = FeatureCache(cache_dir) if cache_dir is not None else None
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.extractor = SetFeatureExtractor(features_dir / "i3d", features_dir / "inception", cache, device)
        self.seed, self.n_resamples, self.protocol = int(seed), int(n_resamples), protocol
        self.background = torch.device(device).type == "cuda" if background is None else bool(background)
        self.reference: list[dict] = []
        self.reference_note: dict[str, Any] = {}
        self._thread: ThreadPoolExecutor | None = None
        self._started: dict[str, deque[Future]] = {}

    @property
    def random_weights(self) -> bool:
        return self.extractor.random_weights

    def use_reference(self, paths: Sequence[str | Path], frames: int | None = None, stride: int = 1,
                      source: str = "") -> None:
        """Extract (or read from the cache) the reference set's features."""
        if len(paths) < 2:
            raise ValueError(f"reference set {source!r}: needs at least 2 videos, got {len(paths)}")
        protocol = reference_protocol(frames, stride, self.protocol)
        self.reference = reference_features(self.extractor, [Path(p) for p in paths], protocol)
        self.reference_note = {"source": source, "videos": len(paths), "frames": frames, "stride": stride,
                               "protocol": protocol.describe(), "paths": [str(p) for p in paths]}

    def score(self, paths: Sequence[str | Path], desc: str = "set features") -> dict[str, dict]:
        """{name: result} of the generated videos `paths` (read by the scoring protocol) against the reference;
        {} for fewer than 2 videos (no covariance)."""
        if not self.reference:
            raise RuntimeError("call use_reference before score")
        if len(paths) < 2:
            return {}
        return set_metrics(self.features(paths, desc), self.reference, seed=self.seed, n_resamples=self.n_resamples)

    def start(self, paths: Sequence[str | Path]) -> None:
        """Begin extracting the features of `paths` in the background (see module doc); each
        path's features are taken once by `features` / `score` (a path listed twice: twice).
        Without `background` (default: on CUDA only, see module doc) it does nothing."""
        if not self.background:
            return
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="dvd360-set-features")
        for path in paths:
            self._started.setdefault(str(path), deque()).append(self._thread.submit(self._on_own_stream, path))

    @contextlib.contextmanager
    def started(self, paths: Sequence[str | Path]) -> Iterator["SetScorer"]:
        """`start(paths)` for the block; an exception in it cancels what was not begun (`close`),
        so a failed run does not wait for the background features."""
        self.start(paths)
        try:
            yield self
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Cancel the background extraction not yet begun (a failed run does not wait for it)."""
        if self._thread is not None:
            self._thread.shutdown(wait=False, cancel_futures=True)
            self._thread, self._started = None, {}

    def features(self, paths: Sequence[str | Path], desc: str = "set features") -> list[dict[str, np.ndarray]]:
        """Each video's feature sets: started ones from the background, the others computed here."""
        return [self._started[str(p)].popleft().result() if self._started.get(str(p)) else
                self.extractor.features_of_file(p, self.protocol) for p in tqdm(paths, desc=desc, leave=False)]

    def _on_own_stream(self, path: str | Path) -> dict[str, np.ndarray]:
        device = torch.device(self.extractor.device)
        with torch.cuda.stream(torch.cuda.Stream(device)) if device.type == "cuda" else contextlib.nullcontext():
            return self.extractor.features_of_file(path, self.protocol)

    def describe(self) -> dict[str, dict]:
        """Per set metric: better, scale, model, preprocessing (its own input size, from the frames the
        scoring protocol reads), protocol, reference set, comparability."""
        return {name: {**spec.describe(), **self.extractor.describe(spec.features), "protocol": self.protocol.describe(),
                       "reference": {k: v for k, v in self.reference_note.items() if k != "paths"}}
                for name, spec in SET_METRICS.items()}

