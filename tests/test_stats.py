"""Bootstrap CIs and sign-flip permutation tests against independent computations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dvd360.stats import bootstrap_ci, paired_delta, sign_flip_pvalue, summarize


def test_summary_mean_n_and_seeded_ci():
    rng = np.random.default_rng(0)
    values = rng.normal(5.0, 2.0, size=40)
    summary = summarize(list(values) + [float("nan")])
    assert summary["n"] == 40
    assert summary["mean"] == pytest.approx(values.mean())
    assert summary["ci_low"] < summary["mean"] < summary["ci_high"]
    assert summarize(values) == summarize(values)  # seeded
    # Independent percentile bootstrap in numpy: endpoints agree to Monte-Carlo precision.
    means = values[rng.integers(0, 40, size=(20_000, 40))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    se = values.std(ddof=1) / np.sqrt(40)
    assert summary["ci_low"] == pytest.approx(low, abs=0.1 * se)
    assert summary["ci_high"] == pytest.approx(high, abs=0.1 * se)


def test_degenerate_samples():
    assert bootstrap_ci([1.0]) is None
    assert summarize([3.0]) == {"mean": 3.0, "ci_low": None, "ci_high": None, "n": 1}
    assert summarize([]) ["n"] == 0
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert sign_flip_pvalue([0.0, 0.0]) == 1.0


def test_sign_flip_pvalue_equals_exact_enumeration():
    rng = np.random.default_rng(3)
    deltas = rng.normal(0.4, 1.0, size=7)
    observed = abs(deltas.mean())
    flips = [abs(np.mean(deltas * np.array(signs))) >= observed - 1e-12
             for signs in itertools.product((1, -1), repeat=7)]
    assert sign_flip_pvalue(deltas) == pytest.approx(np.mean(flips))
    assert sign_flip_pvalue([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)


def test_paired_delta_matches_pairs_by_key():
    method = {("p1", 0): 3.0, ("p2", 0): 5.0, ("p3", 0): 4.0, ("only-here", 0): 100.0}
    reference = {("p1", 0): 1.0, ("p2", 0): 2.0, ("p3", 0): 4.5, ("only-there", 0): -100.0}
    result = paired_delta(method, reference)
    assert result["n"] == 3
    assert result["mean"] == pytest.approx(np.mean([2.0, 3.0, -0.5]))
    assert result["p_value"] == pytest.approx(sign_flip_pvalue([2.0, 3.0, -0.5]))
    assert result["ci_low"] <= result["mean"] <= result["ci_high"]
