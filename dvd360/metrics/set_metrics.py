"""Set-level metrics: a generated set of videos against a reference set of real panorama videos.

Inputs are per-video feature arrays (`set_features.SetFeatureExtractor`), so every statistic can
be resampled over videos. Names, as in every output:
- `fvd_erp`: Frechet distance of I3D features of the ERP clips (`i3d_erp`), the standard FVD
  protocol (StyleGAN-V / cd-fvd / PanFlow: 16 frames squashed to 224x224, one clip per video);
  comparable with PanFlow's FVD at the same sample size (FVD is biased in n).
- `fvd_cubemap`: per cubemap face group, the Frechet distance of I3D face clips (`i3d_cube`):
  sides = the features of the 4 side faces of every video pooled as samples (4 per video, not
  averaged as pixels or features), top, bottom; combined with PanoWan's ("following OmniFID")
  weights: fvd_cubemap = FD_sides / 3 + FD_top / 3 + FD_bottom / 3 (each side face 1/12).
- `fid_views`: Frechet distance of Inception-v3 pool3 features (torch-fidelity / torchmetrics'
  FID definition) of every frame's 4 horizontal FoV-90 views (lat 0, lon 0/90/180/270; the cube
  side faces), pooled as samples (4F per video). Not the top and bottom faces.
- `kid_views`: torchmetrics' KernelInceptionDistance (torch-fidelity's KID: unbiased MMD^2 with
  the kernel k(x, y) = (x.y / d + 1)^3, mean and std over `subsets` random subsets of
  `subset_size` samples, seeded) on the same features as fid_views.

Frechet distance: FD = |mu_g - mu_r|^2 + tr(S_g) + tr(S_r) - 2 tr sqrt(S_g S_r) (unbiased
covariances, float64). Uncertainty: FVD/FID carry a seeded percentile bootstrap 95% CI over
videos (both sets resampled with replacement, a video's samples kept together); KID its subset
std. Every result carries n (videos and samples of both sets) and warnings when the sample is
smaller than the feature dimension (rank-deficient covariance: FD is biased upwards and only
comparable at equal n) or when KID's subsets are smaller than torch-fidelity's default 1000.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from dvd360.metrics.registry import SET_METRIC_NAMES, SET_METRICS
from dvd360.stats import CONFIDENCE

# PanoWan / OmniFID: top and bottom 1/3 each, the 4 side faces 1/12 each (1/3 as a group).
FACE_GROUPS = {"sides": (0, 1, 2, 3), "top": (4,), "bottom": (5,)}
FACE_GROUP_WEIGHTS = {"sides": 1 / 3, "top": 1 / 3, "bottom": 1 / 3}
KID_SUBSET_SIZE = 1000  # torch-fidelity's default
KID_SUBSETS = 100


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """FD between the Gaussians fitted to samples x (n1, d) and y (n2, d) (unbiased covariances).

    Written here rather than taken from torchmetrics (whose `_compute_fid` is private and works on
    d x d covariances only): the bootstrap needs hundreds of FDs, and with n < d samples the
    trace term is exact and far cheaper in sample space. With A = (x - mean) / sqrt(n1 - 1) and
    B likewise, S_x S_y = A'A B'B has the nonzero eigenvalues of (AB')(AB')', so
    tr sqrt(S_x S_y) = sum of the singular values of AB' (n1 x n2). Otherwise (more samples than
    d^2 / n) tr sqrt(S_x^1/2 S_y S_x^1/2) from symmetric eigendecompositions. Both are tested
    against scipy.linalg.sqrtm and torchmetrics' FrechetInceptionDistance.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"features must be (n, d) with the same d, got {x.shape} and {y.shape}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"a Frechet distance needs at least 2 samples per set, got {len(x)} and {len(y)}")
    a = (x - x.mean(0)) / np.sqrt(len(x) - 1)
    b = (y - y.mean(0)) / np.sqrt(len(y) - 1)
    mean_term = float(np.sum((x.mean(0) - y.mean(0)) ** 2))
    traces = float(np.sum(a * a) + np.sum(b * b))
    d = x.shape[1]
    if len(x) * len(y) <= d * d:
        cross = float(np.linalg.svd(a @ b.T, compute_uv=False).sum())
    else:
        evals, evecs = np.linalg.eigh(a.T @ a)
        root = (evecs * np.sqrt(np.clip(evals, 0, None))) @ evecs.T
        cross = float(np.sqrt(np.clip(np.linalg.eigvalsh(root @ (b.T @ b) @ root), 0, None)).sum())
    return mean_term + traces - 2 * cross


def _stack(videos: Sequence[np.ndarray], rows: Sequence[int] | None = None) -> np.ndarray:
    parts = [np.asarray(v)[list(rows)] if rows is not None else np.asarray(v) for v in videos]
    return np.concatenate(parts).reshape(-1, parts[0].shape[-1])


def _group_fd(generated, reference, groups: dict | None) -> dict[str, float]:
    if groups is None:
        return {"all": frechet_distance(_stack(generated), _stack(reference))}
    return {g: frechet_distance(_stack(generated, rows), _stack(reference, rows)) for g, rows in groups.items()}


def _combine(fds: dict[str, float], weights: dict | None) -> float:
    return fds["all"] if weights is None else sum(weights[g] * fds[g] for g in weights)


def _sizes(generated, reference) -> dict:
    return {"n": len(generated), "n_samples": sum(len(v) for v in generated), "n_reference": len(reference),
            "n_reference_samples": sum(len(v) for v in reference),
            "feature_dim": int(np.asarray(generated[0]).shape[-1])}


def _check_sets(name: str, generated, reference) -> None:
    if len(generated) < 2 or len(reference) < 2:
        raise ValueError(f"{name}: needs at least 2 videos per set, got {len(generated)} generated and "
                         f"{len(reference)} reference")


def _rank_warnings(dim: int, samples: dict[str, int]) -> list[str]:
    """A warning per set (label -> sample count) whose covariance cannot have full rank."""
    return [f"{label}: {n} samples <= {dim} feature dimensions: the covariance is rank-deficient, the "
            "Frechet distance is biased upwards and comparable only at equal n" for label, n in samples.items()
            if n <= dim]


def frechet_set_metric(name: str, generated: Sequence[np.ndarray], reference: Sequence[np.ndarray], *,
                       groups: dict | None = None, weights: dict | None = None, seed: int = 0,
                       n_resamples: int = 200) -> dict:
    """A Frechet set metric with its bootstrap 95% CI over videos.

    `generated` / `reference`: one (k, d) feature array per video. Without `groups` all rows of
    all videos are pooled; with `groups` ({group: row indices}) one FD per group, combined with
    `weights`. Returns {"value", "ci_low", "ci_high", n..., "groups" (if any), "warnings",
    "uncertainty"}.
    """
    _check_sets(name, generated, reference)
    fds = _group_fd(generated, reference, groups)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_resamples):
        g = [generated[i] for i in rng.integers(0, len(generated), len(generated))]
        r = [reference[i] for i in rng.integers(0, len(reference), len(reference))]
        boot.append(_combine(_group_fd(g, r, groups), weights))
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha]) if boot else (None, None)
    sizes = _sizes(generated, reference)
    if groups is None:
        samples = {"generated set": sizes["n_samples"], "reference set": sizes["n_reference_samples"]}
    else:
        samples = {f"{label} set ({g})": n * len(rows) for g, rows in groups.items()
                   for label, n in (("generated", sizes["n"]), ("reference", sizes["n_reference"]))}
    result = {"value": _combine(fds, weights), "ci_low": None if low is None else float(low),
              "ci_high": None if high is None else float(high), **sizes,
              "warnings": _rank_warnings(sizes["feature_dim"], samples),
              "uncertainty": f"percentile bootstrap {CONFIDENCE:.0%} CI over videos ({n_resamples} resamples "
                             f"of both sets, seed {seed})"}
    if groups is not None:
        result.update(groups=fds, group_weights=weights)
    return result


class _Precomputed(torch.nn.Module):
    """Feature 'extractor' for torchmetrics' KID whose inputs already are the cached features."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def kid_set_metric(name: str, generated: Sequence[np.ndarray], reference: Sequence[np.ndarray], *, seed: int = 0,
                   n_resamples: int | None = None, subsets: int = KID_SUBSETS,
                   subset_size: int = KID_SUBSET_SIZE) -> dict:
    """torchmetrics' KernelInceptionDistance on pooled per-video features, seeded; its subset std.

    `subset_size` is capped at the smaller set's sample count (recorded); `n_resamples` is unused
    (KID's uncertainty is its subset std)."""
    import warnings

    from torchmetrics.image.kid import KernelInceptionDistance

    _check_sets(name, generated, reference)
    fake, real = _stack(generated), _stack(reference)
    size = min(subset_size, len(fake), len(real))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        kid = KernelInceptionDistance(feature=_Precomputed(), subsets=subsets, subset_size=size)
    kid.update(torch.from_numpy(real), real=True)
    kid.update(torch.from_numpy(fake), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = kid.compute()
    sizes = _sizes(generated, reference)
    warnings_ = [] if size >= KID_SUBSET_SIZE else [
        f"KID subsets of {size} samples (torch-fidelity's default is {KID_SUBSET_SIZE}): the std is large "
        "and values are comparable only at equal subset size"]
    return {"value": float(mean), "std": float(std), "ci_low": None, "ci_high": None, **sizes,
            "subsets": subsets, "subset_size": size, "warnings": warnings_,
            "uncertainty": f"std over {subsets} random subsets of {size} samples (seed {seed})"}


def cubemap_frechet_set_metric(name: str, generated: Sequence[np.ndarray], reference: Sequence[np.ndarray], *,
                               seed: int = 0, n_resamples: int = 200) -> dict:
    """PanoWan's cubemap FD: one FD per face group (`FACE_GROUPS`), weighted by `FACE_GROUP_WEIGHTS`."""
    return frechet_set_metric(name, generated, reference, groups=FACE_GROUPS, weights=FACE_GROUP_WEIGHTS,
                              seed=seed, n_resamples=n_resamples)


def set_metrics(generated: Sequence[dict], reference: Sequence[dict], *, seed: int = 0,
                n_resamples: int = 200, names: Sequence[str] = SET_METRIC_NAMES) -> dict[str, dict]:
    """Every set metric of `names` from per-video feature dicts ({feature set: array}); each is
    its registry spec's `compute(name, generated, reference, seed=, n_resamples=)` on its `features`."""
    out = {}
    for name in names:
        spec = SET_METRICS[name]
        out[name] = spec.function()(name, [v[spec.features] for v in generated],
                                    [v[spec.features] for v in reference], seed=seed, n_resamples=n_resamples)
    return out


def summary_row(result: dict) -> dict:
    """The short per-method entry of a set metric (summary.json, DVC metrics, compare rows)."""
    row = {"mean": result["value"], "ci_low": result["ci_low"], "ci_high": result["ci_high"], "n": result["n"],
           "n_reference": result["n_reference"]}
    if "std" in result:
        row["std"] = result["std"]
    return row
