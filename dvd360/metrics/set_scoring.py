"""Set metrics of sets of video files against one reference set (what `score` stage and CLI call).

`SetScorer(features_dir, cache_dir)` loads the I3D and Inception folders (`data/models/features/
{i3d,inception}`), `use_reference(paths, frames, stride, source)` extracts the reference set's
features once, and `score(paths)` returns {metric name: result} for one generated set (see
`set_metrics`). Features are cached per video content, model and preprocessing, so rescoring
after adding one method computes only that method's features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from dvd360.metrics.feature_cache import FeatureCache
from dvd360.metrics.reference_set import reference_features
from dvd360.metrics.set_features import SetFeatureExtractor
from dvd360.metrics.set_metrics import FEATURES_OF, SET_METRICS, set_metrics

COMPARABLE = {
    "fvd_erp": "the standard FVD protocol as PanFlow's (same I3D file, 16 frames, 224x224 squash); "
               "FVD falls with n, so compare only at equal set sizes",
    "fvd_cubemap": "PanoWan's cubemap FVD weighting (top, bottom 1/3, each side 1/12; sides pooled as samples); "
                   "PanoWan released no code, so face orientation and face size (224) are ours",
    "fid_views": "torchmetrics / torch-fidelity FID features on perspective views (not PanFlow's whole-ERP FID)",
    "kid_views": "torchmetrics / torch-fidelity KID on the same views; trust it over FID for small sets",
}


class SetScorer:
    """Scores generated sets of videos against the reference set given to `use_reference`."""

    def __init__(self, features_dir: str | Path, cache_dir: str | Path | None, device: str = "cpu",
                 seed: int = 0, n_resamples: int = 200):
        features_dir = Path(features_dir)
        cache = FeatureCache(cache_dir) if cache_dir is not None else None
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.extractor = SetFeatureExtractor(features_dir / "i3d", features_dir / "inception", cache, device)
        self.seed, self.n_resamples = int(seed), int(n_resamples)
        self.reference: list[dict] = []
        self.reference_note: dict[str, Any] = {}

    @property
    def random_weights(self) -> bool:
        return self.extractor.random_weights

    def use_reference(self, paths: Sequence[str | Path], frames: int | None = None, stride: int = 1,
                      source: str = "") -> None:
        """Extract (or read from the cache) the reference set's features."""
        if len(paths) < 2:
            raise ValueError(f"reference set {source!r}: needs at least 2 videos, got {len(paths)}")
        self.reference = reference_features(self.extractor, [Path(p) for p in paths], frames, stride)
        self.reference_note = {"source": source, "videos": len(paths), "frames": frames, "stride": stride,
                               "paths": [str(p) for p in paths]}

    def score(self, paths: Sequence[str | Path], desc: str = "set features") -> dict[str, dict]:
        """{name: result} of the generated videos `paths` (every frame) against the reference;
        {} for fewer than 2 videos (no covariance)."""
        if not self.reference:
            raise RuntimeError("call use_reference before score")
        if len(paths) < 2:
            return {}
        generated = [self.extractor.features_of_file(p) for p in tqdm(paths, desc=desc, leave=False)]
        return set_metrics(generated, self.reference, seed=self.seed, n_resamples=self.n_resamples)

    def describe(self) -> dict[str, dict]:
        """Per set metric: better, scale, model, preprocessing, reference set, comparability."""
        return {name: {"better": better, "scale": scale, **self.extractor.describe(FEATURES_OF[name]),
                       "reference": {k: v for k, v in self.reference_note.items() if k != "paths"},
                       "comparable_with": COMPARABLE[name]}
                for name, (better, scale) in SET_METRICS.items()}

