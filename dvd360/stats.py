"""Statistics for per-method scores: mean with a seeded 95% bootstrap CI, paired deltas.

- `summarize(values)`: mean, percentile bootstrap CI of the mean (scipy.stats.bootstrap,
  `n_resamples` resamples of the videos with replacement, seeded), and n.
- `paired_delta(method, reference)`: over pairs matched by key (prompt_id, seed), the deltas
  d_k = method_k - reference_k; their mean, bootstrap CI, and the two-sided sign-flip
  permutation p-value (scipy.stats.permutation_test, permutation_type="samples": each d_k's
  sign is flipped at random; the exact null over all 2^n sign patterns when 2^n <= n_resamples):
  ``p = P(|mean(s * d)| >= |mean(d)|)`` under random signs s.
NaN values are dropped before anything is computed; n counts what is left.
"""

from __future__ import annotations

from typing import Hashable, Mapping

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 10_000


def _finite(values) -> np.ndarray:
    array = np.asarray(list(values), dtype=np.float64)
    return array[np.isfinite(array)]


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def bootstrap_ci(values, *, seed: int = 0, n_resamples: int = N_RESAMPLES,
                 confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the mean; None when fewer than 2 finite values."""
    x = _finite(values)
    if x.size < 2:
        return None
    if np.all(x == x[0]):  # every resample has the same mean
        return float(x[0]), float(x[0])
    result = stats.bootstrap((x,), _mean, confidence_level=confidence, n_resamples=n_resamples,
                             method="percentile", random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarize(values, *, seed: int = 0, n_resamples: int = N_RESAMPLES) -> dict[str, float | int | None]:
    """{"mean", "ci_low", "ci_high", "n"}: mean of the finite values with its 95% bootstrap CI."""
    x = _finite(values)
    ci = bootstrap_ci(x, seed=seed, n_resamples=n_resamples)
    return {"mean": float(x.mean()) if x.size else None,
            "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "n": int(x.size)}


def sign_flip_pvalue(deltas, *, seed: int = 0, n_resamples: int = N_RESAMPLES) -> float | None:
    """Two-sided sign-flip permutation p-value of mean(deltas) = 0; None when n < 1."""
    d = _finite(deltas)
    if d.size < 1:
        return None
    if np.all(d == 0):
        return 1.0
    result = stats.permutation_test((d,), _mean, permutation_type="samples", n_resamples=n_resamples,
                                    alternative="two-sided", random_state=np.random.default_rng(seed))
    return float(result.pvalue)


def paired_delta(method: Mapping[Hashable, float], reference: Mapping[Hashable, float], *,
                 seed: int = 0, n_resamples: int = N_RESAMPLES) -> dict[str, float | int | None]:
    """Paired deltas method - reference over the keys both have (finite values only).

    Returns {"mean", "ci_low", "ci_high", "n", "p_value"} (p: sign-flip permutation test).
    """
    keys = [k for k in method if k in reference]
    pairs = [(method[k], reference[k]) for k in keys]
    deltas = _finite(a - b for a, b in pairs if a is not None and b is not None)
    summary = summarize(deltas, seed=seed, n_resamples=n_resamples)
    summary["p_value"] = sign_flip_pvalue(deltas, seed=seed, n_resamples=n_resamples)
    return summary
