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
- `fid_sphere` / `kid_sphere`: as fid_views / kid_views on every frame's 14 FoV-90 views at the
  6 cube-face centres and the 8 cube corners (`inception_sphere`: poles included, every direction
  within 36.2 deg of a view centre), pooled as samples (14F per video): the whole sphere.
- `fid_seam`: as fid_views on every frame's 3 views centred on the seam (lon 180, lat 45, 0, -45;
  `inception_seam`), against the reference's views at the same places (3F per video).
- `omnifid`: OmniFID (arXiv 2407.18207): (FD_U + FD_D + FD_F) / 3, FD_U / FD_D of the Inception
  features of every frame's top / bottom cube face, FD_F of its 4 side faces pooled as samples (4F
  per video; not averaged as pixels or features, as third-party versions do). Faces at 299x299,
  FoV 90: views 0-5 of `inception_sphere` (`geometry.cubemap`'s faces and order).

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
from threadpoolctl import threadpool_limits

from dvd360.geometry.view_sets import SPHERE_CENTRES
from dvd360.metrics.registry import SET_METRIC_NAMES, SET_METRICS
from dvd360.stats import CONFIDENCE

# PanoWan / OmniFID: top and bottom 1/3 each, the 4 side faces 1/12 each (1/3 as a group).
FACE_GROUPS = {"sides": (0, 1, 2, 3), "top": (4,), "bottom": (5,)}
FACE_GROUP_WEIGHTS = {"sides": 1 / 3, "top": 1 / 3, "bottom": 1 / 3}
KID_SUBSET_SIZE = 1000  # torch-fidelity's default
KID_SUBSETS = 100


def frechet_distance(x: np.ndarray, y: np.ndarray, x_counts: np.ndarray | None = None,
                     y_counts: np.ndarray | None = None) -> float:
    """FD between the Gaussians fitted to samples x (n1, d) and y (n2, d) (unbiased covariances).

    `x_counts` / `y_counts`: how many times each sample counts (a bootstrap resample's
    multiplicities): the FD of the samples repeated that many times, computed on the distinct
    ones (with c_i the counts and n = sum c_i: mean sum c_i x_i / n, rows of A scaled by sqrt(c_i),
    n - 1 in the covariance), which for a resample of videos is a fraction of the work.

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
    (mean_x, a), (mean_y, b) = _centred(x, x_counts), _centred(y, y_counts)
    mean_term = float(np.sum((mean_x - mean_y) ** 2))
    traces = float(np.sum(a * a) + np.sum(b * b))
    d = x.shape[1]
    if len(x) * len(y) <= d * d:
        cross = float(np.linalg.svd(a @ b.T, compute_uv=False).sum())
    else:
        evals, evecs = np.linalg.eigh(a.T @ a)
        root = (evecs * np.sqrt(np.clip(evals, 0, None))) @ evecs.T
        cross = float(np.sqrt(np.clip(np.linalg.eigvalsh(root @ (b.T @ b) @ root), 0, None)).sum())
    return mean_term + traces - 2 * cross


def _centred(x: np.ndarray, counts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The mean of samples x (n, d) counted `counts` times (None: once) and A with A'A their
    unbiased covariance: (x - mean) / sqrt(n - 1), rows scaled by sqrt(count)."""
    n = len(x) if counts is None else int(np.sum(counts))
    if n < 2:
        raise ValueError(f"a Frechet distance needs at least 2 samples per set, got {n}")
    if counts is None:
        return x.mean(0), (x - x.mean(0)) / np.sqrt(n - 1)
    counts = np.asarray(counts, dtype=np.float64)
    mean = counts @ x / n
    return mean, (x - mean) * np.sqrt(counts / (n - 1))[:, None]


def _stack(videos: Sequence[np.ndarray], rows: Sequence[int] | None = None) -> np.ndarray:
    """All samples (n, d) of per-video arrays (k, d) or (F, V, d); `rows` select along the
    second-to-last axis (rows of a (k, d) array, views of every frame of a (F, V, d) one)."""
    parts = [np.asarray(v)[..., list(rows), :] if rows is not None else np.asarray(v) for v in videos]
    return np.concatenate([p.reshape(-1, p.shape[-1]) for p in parts])


def _count(videos: Sequence[np.ndarray], rows: Sequence[int] | None = None) -> int:
    """How many samples `_stack(videos, rows)` holds."""
    shapes = [np.shape(v) for v in videos]
    if rows is None:
        return sum(int(np.prod(s[:-1])) for s in shapes)
    return sum(int(np.prod(s[:-2])) * len(rows) for s in shapes)


def _group_fd(generated, reference, groups: dict | None) -> dict[str, float]:
    if groups is None:
        return {"all": frechet_distance(_stack(generated), _stack(reference))}
    return {g: frechet_distance(_stack(generated, rows), _stack(reference, rows)) for g, rows in groups.items()}


def _resampled_fd(generated, reference, rows: Sequence[int] | None):
    """fd(generated_counts, reference_counts): the FD of a bootstrap resample in which video i
    counts `counts[i]` times, equal to `frechet_distance` of the resampled samples (tested).

    Each distinct sample is used once with its count (`frechet_distance`'s counts). In the
    sample-space case (n1 n2 <= d^2) the cross products X Y' of all samples are computed once and
    each resample's centred A B' is read from them: with means m_x, m_y,
    (x_i - m_x).(y_j - m_y) = x_i.y_j - x_i.m_y - m_x.y_j + m_x.m_y, rows and columns scaled by
    sqrt(count / (n - 1)); tr S_x = (sum c_i |x_i|^2 - n |m_x|^2) / (n - 1). A resample then costs
    one small SVD instead of a product over the 2048 feature dimensions.
    """
    x, y = _stack(generated, rows), _stack(reference, rows)
    video_x = np.repeat(np.arange(len(generated)), [_count([v], rows) for v in generated])
    video_y = np.repeat(np.arange(len(reference)), [_count([v], rows) for v in reference])
    if len(x) * len(y) > x.shape[1] ** 2:
        def fd(counts_x, counts_y):
            cx, cy = counts_x[video_x], counts_y[video_y]
            return frechet_distance(x[cx > 0], y[cy > 0], cx[cx > 0], cy[cy > 0])
        return fd
    cross_all, norms_x, norms_y = x @ y.T, np.sum(x * x, 1), np.sum(y * y, 1)

    def fd(counts_x, counts_y):
        cx, cy = counts_x[video_x].astype(np.float64), counts_y[video_y].astype(np.float64)
        ix, iy = np.flatnonzero(cx), np.flatnonzero(cy)
        cx, cy = cx[ix], cy[iy]
        nx, ny = cx.sum(), cy.sum()
        mean_x, mean_y = cx @ x[ix] / nx, cy @ y[iy] / ny
        centred = cross_all[np.ix_(ix, iy)] - (x[ix] @ mean_y)[:, None] - (y[iy] @ mean_x)[None, :] + mean_x @ mean_y
        centred *= np.sqrt(cx / (nx - 1))[:, None] * np.sqrt(cy / (ny - 1))[None, :]
        traces = ((cx @ norms_x[ix] - nx * mean_x @ mean_x) / (nx - 1)
                  + (cy @ norms_y[iy] - ny * mean_y @ mean_y) / (ny - 1))
        cross = float(np.linalg.svd(centred, compute_uv=False).sum())
        return float(np.sum((mean_x - mean_y) ** 2)) + float(traces) - 2 * cross
    return fd


def _combine(fds: dict[str, float], weights: dict | None) -> float:
    return fds["all"] if weights is None else sum(weights[g] * fds[g] for g in weights)


def _sizes(generated, reference) -> dict:
    return {"n": len(generated), "n_samples": _count(generated), "n_reference": len(reference),
            "n_reference_samples": _count(reference),
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

    `generated` / `reference`: one (k, d) or (F, V, d) feature array per video. Without `groups`
    all samples of all videos are pooled; with `groups` ({group: indices along the second-to-last
    axis}) one FD per group, combined with `weights`. Returns {"value", "ci_low", "ci_high", n...,
    "groups" (if any), "warnings", "uncertainty"}.
    """
    _check_sets(name, generated, reference)
    # Hundreds of small decompositions: BLAS threads cost more than they save, and thrash when the
    # cores are shared (docs/performance.md), so one thread; the values do not depend on it.
    with threadpool_limits(limits=1, user_api="blas"):
        fds = _group_fd(generated, reference, groups)
        rng = np.random.default_rng(seed)
        resampled = {g: _resampled_fd(generated, reference, rows)
                     for g, rows in (groups or {"all": None}).items()} if n_resamples else {}
        boot = []
        for _ in range(n_resamples):
            g = np.bincount(rng.integers(0, len(generated), len(generated)), minlength=len(generated))
            r = np.bincount(rng.integers(0, len(reference), len(reference)), minlength=len(reference))
            boot.append(_combine({group: fd(g, r) for group, fd in resampled.items()}, weights))
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha]) if boot else (None, None)
    sizes = _sizes(generated, reference)
    if groups is None:
        samples = {"generated set": sizes["n_samples"], "reference set": sizes["n_reference_samples"]}
    else:
        samples = {f"{label} set ({g})": _count(videos, rows) for g, rows in groups.items()
                   for label, videos in (("generated", generated), ("reference", reference))}
    result = {"value": _combine(fds, weights), "ci_low": None if low is None else float(low),
              "ci_high": None if high is None else float(high), **sizes,
              "warnings": _rank_warnings(sizes["feature_dim"], samples),
              "uncertainty": f"percentile bootstrap {CONFIDENCE:.0%} CI over videos ({n_resamples} resamples "
                             f"of both sets, seed {seed})"}
    if groups is not None:
        result.update(groups=fds, group_weights=weights)
    return result


def kid_set_metric(name: str, generated: Sequence[np.ndarray], reference: Sequence[np.ndarray], *, seed: int = 0,
                   n_resamples: int | None = None, subsets: int = KID_SUBSETS,
                   subset_size: int = KID_SUBSET_SIZE) -> dict:
    """torchmetrics' KernelInceptionDistance on pooled per-video features, seeded; its subset std.

    `subset_size` is capped at the smaller set's sample count (recorded); `n_resamples` is unused
    (KID's uncertainty is its subset std). Computed as `KernelInceptionDistance.compute` does (its
    `poly_kernel` and `maximum_mean_discrepancy`, the same `randperm` draws per subset), except
    that when the subsets cover most of the samples the three kernel matrices are computed once
    for all samples and each subset's read from them: torchmetrics recomputes them per subset,
    which for 14 views per frame cost seconds per method on a CPU (tested equal to torchmetrics)."""
    from torchmetrics.image.kid import maximum_mean_discrepancy, poly_kernel, poly_mmd

    _check_sets(name, generated, reference)
    fake, real = torch.from_numpy(_stack(generated)), torch.from_numpy(_stack(reference))
    size = min(subset_size, len(fake), len(real))
    if len(real) ** 2 + len(fake) ** 2 + len(real) * len(fake) <= 3 * subsets * size ** 2:
        k_rr, k_ff, k_rf = poly_kernel(real, real), poly_kernel(fake, fake), poly_kernel(real, fake)

        def mmd(r, f):
            return maximum_mean_discrepancy(k_rr[r][:, r], k_rf[r][:, f], k_ff[f][:, f])
    else:
        def mmd(r, f):
            return poly_mmd(real[r], fake[f])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        scores = torch.stack([mmd(torch.randperm(len(real))[:size], torch.randperm(len(fake))[:size])
                              for _ in range(subsets)])
    mean, std = scores.mean(), scores.std(unbiased=False)
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


def omnifid_set_metric(name: str, generated: Sequence[np.ndarray], reference: Sequence[np.ndarray], *,
                       seed: int = 0, n_resamples: int = 200) -> dict:
    """OmniFID (arXiv 2407.18207) = (FD_U + FD_D + FD_F) / 3 from per-video `inception_sphere`
    arrays (14F, d), whose views 0-5 per frame are the cube faces in `FACE_GROUPS` order: the same
    groups and equal weights as `FACE_GROUPS` / `FACE_GROUP_WEIGHTS` ("top" = U, "bottom" = D,
    "sides" = F, its 4 faces of every frame pooled as samples); bootstrap CI over videos as every
    Frechet metric."""
    views = len(SPHERE_CENTRES)
    generated, reference = ([np.asarray(v).reshape(-1, views, np.shape(v)[-1]) for v in videos]
                            for videos in (generated, reference))
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
