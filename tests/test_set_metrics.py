"""Set metrics (FVD, FID/KID on ERP, cubemap faces and views): known answers, invariances, cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg
from scipy.ndimage import gaussian_filter

from dvd360.data.synthetic import make_scene, render_clip
from dvd360.metrics.feature_cache import FeatureCache
from dvd360.data.reference_split import is_reference_clip, reference_clip_ids
from dvd360.metrics.set_features import FEATURE_SETS, SetFeatureExtractor, fvd_frame_indices, i3d_input
from dvd360.metrics.set_metrics import (FACE_GROUP_WEIGHTS, FACE_GROUPS, frechet_distance, frechet_set_metric,
                                        kid_set_metric, set_metrics)


def _scipy_fd(mu1, s1, mu2, s2) -> float:
    root = linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


def _gaussian(rng, n, mean, cov):
    return rng.multivariate_normal(mean, cov, size=n)


@pytest.mark.parametrize("n1,n2", [(40, 30), (400, 500)])  # sample-space path (n1 n2 <= d^2) and d x d path
def test_frechet_distance_matches_scipy_on_the_sample_statistics(n1, n2):
    rng = np.random.default_rng(0)
    d = 64 if n1 < 100 else 16
    q = rng.normal(size=(d, d))
    x = _gaussian(rng, n1, np.zeros(d), q @ q.T / d)
    y = _gaussian(rng, n2, np.full(d, 0.3), np.eye(d) * 2.0)
    expected = _scipy_fd(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert frechet_distance(x, y) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_approaches_the_closed_form_of_known_gaussians():
    # N(0, diag(1, 4, 9)) vs N((1, 0, 0), I): FD = 1 + (1 + 4 + 9) + 3 - 2 (1 + 2 + 3) = 6.
    rng = np.random.default_rng(1)
    x = _gaussian(rng, 200_000, np.zeros(3), np.diag([1.0, 4.0, 9.0]))
    y = _gaussian(rng, 200_000, np.array([1.0, 0, 0]), np.eye(3))
    assert _scipy_fd(np.zeros(3), np.diag([1.0, 4, 9]), np.array([1.0, 0, 0]), np.eye(3)) == pytest.approx(6.0)
    assert frechet_distance(x, y) == pytest.approx(6.0, abs=0.05)


def test_frechet_distance_of_a_set_against_itself_is_zero():
    x = np.random.default_rng(2).normal(size=(50, 200))  # n < d: rank-deficient covariance
    assert abs(frechet_distance(x, x)) < 1e-8


def test_frechet_distance_matches_torchmetrics_fid_on_the_same_features():
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Features(torch.nn.Module):
        num_features = 32

        def forward(self, x):
            return x

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 32)), rng.normal(0.2, 1.3, size=(250, 32))
    fid = FrechetInceptionDistance(feature=Features())
    fid.update(torch.from_numpy(x), real=True)
    fid.update(torch.from_numpy(y), real=False)
    assert frechet_distance(y, x) == pytest.approx(float(fid.compute()), rel=1e-5)


def test_kid_matches_an_independent_unbiased_mmd():
    rng = np.random.default_rng(4)
    gen = [rng.normal(0.5, 1, size=(10, 8)) for _ in range(3)]
    ref = [rng.normal(0, 1, size=(10, 8)) for _ in range(3)]
    x, y = np.concatenate(gen), np.concatenate(ref)  # subsets of all 30 samples: one value
    k = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3  # noqa: E731
    m = len(x)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
    result = kid_set_metric("kid_views", gen, ref, subsets=5)
    assert result["value"] == pytest.approx(mmd, rel=1e-6)
    assert result["std"] == pytest.approx(0.0, abs=1e-9) and result["subset_size"] == 30 and result["warnings"]


@pytest.mark.parametrize("subset_size", [30, 8])  # kernel matrices computed once (subsets cover the sets) / per subset
@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save all extracted features")
def test_kid_equals_torchmetrics_kernel_inception_distance(subset_size):
    from torchmetrics.image.kid import KernelInceptionDistance

    class Features(torch.nn.Module):
        def forward(self, x):
            return x

    rng = np.random.default_rng(7)
    gen = [rng.normal(0.3, 1, size=(10, 8)) for _ in range(3)]
    ref = [rng.normal(0, 1, size=(10, 8)) for _ in range(4)]
    kid = KernelInceptionDistance(feature=Features(), subsets=7, subset_size=subset_size)
    kid.update(torch.from_numpy(np.concatenate(ref)), real=True)
    kid.update(torch.from_numpy(np.concatenate(gen)), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        mean, std = kid.compute()
    ours = kid_set_metric("kid_views", gen, ref, seed=3, subsets=7, subset_size=subset_size)
    assert ours["value"] == pytest.approx(float(mean), rel=1e-10)
    assert ours["std"] == pytest.approx(float(std), rel=1e-8) and ours["subset_size"] == subset_size


def test_bootstrap_ci_is_seeded_and_brackets_resamples():
    rng = np.random.default_rng(5)
    gen = [rng.normal(0.3, 1, size=(4, 6)) for _ in range(8)]
    ref = [rng.normal(0, 1, size=(4, 6)) for _ in range(8)]
    a = frechet_set_metric("fid_views", gen, ref, seed=1, n_resamples=50)
    b = frechet_set_metric("fid_views", gen, ref, seed=1, n_resamples=50)
    assert a == b and a["ci_low"] < a["ci_high"]
    assert (a["n"], a["n_samples"], a["n_reference_samples"], a["feature_dim"]) == (8, 32, 32, 6)
    assert not a["warnings"]
    small = frechet_set_metric("fid_views", [g[:1] for g in gen[:3]], ref, n_resamples=5)  # 3 <= 6
    assert any("rank-deficient" in w for w in small["warnings"])


@pytest.mark.parametrize("d,k", [(64, 5), (4, 6)])  # sample-space path (n1 n2 <= d^2) and d x d path
def test_bootstrap_resamples_equal_the_fd_of_the_resampled_videos(d, k):
    """The bootstrap computes each resample from the distinct videos with their counts (and, in
    sample space, from cross products computed once): the CI of the FDs of the videos drawn."""
    rng = np.random.default_rng(8)
    gen = [rng.normal(0.3, 1, size=(k, d)) + 2 for _ in range(5)]
    ref = [rng.normal(0, 1.2, size=(k, d)) + 2 for _ in range(7)]
    draws = np.random.default_rng(4)
    boot = []
    for _ in range(30):
        g = [gen[i] for i in draws.integers(0, 5, 5)]
        r = [ref[i] for i in draws.integers(0, 7, 7)]
        boot.append(frechet_distance(np.concatenate(g), np.concatenate(r)))
    result = frechet_set_metric("fid_views", gen, ref, seed=4, n_resamples=30)
    assert [result["ci_low"], result["ci_high"]] == pytest.approx(list(np.quantile(boot, [0.025, 0.975])), rel=1e-9)


def test_fvd_cubemap_with_equal_faces_is_the_single_face_value_and_weights_sum_to_one():
    assert sum(FACE_GROUP_WEIGHTS.values()) == pytest.approx(1.0)
    assert sum(FACE_GROUP_WEIGHTS[g] / len(rows) for g, rows in FACE_GROUPS.items() for _ in rows) == pytest.approx(1.0)
    assert FACE_GROUP_WEIGHTS["sides"] / len(FACE_GROUPS["sides"]) == pytest.approx(1 / 12)
    rng = np.random.default_rng(6)
    gen = [rng.normal(0.4, 1, size=(1, 5)) for _ in range(12)]
    ref = [rng.normal(0, 1, size=(1, 5)) for _ in range(12)]
    single = frechet_distance(np.concatenate(gen), np.concatenate(ref))
    cube = frechet_set_metric("fvd_cubemap", [np.repeat(g, 6, 0) for g in gen], [np.repeat(r, 6, 0) for r in ref],
                              groups=FACE_GROUPS, weights=FACE_GROUP_WEIGHTS, n_resamples=0)
    # 4 identical side rows per video change neither the mean nor the covariance (up to n-1 vs 4n-1).
    assert cube["groups"]["top"] == pytest.approx(single) and cube["groups"]["bottom"] == pytest.approx(single)
    assert cube["groups"]["sides"] == pytest.approx(single, rel=0.1)
    exact = frechet_set_metric("fvd_cubemap", [np.repeat(g, 6, 0) for g in gen], [np.repeat(r, 6, 0) for r in ref],
                               groups={g: (0,) for g in FACE_GROUPS}, weights=FACE_GROUP_WEIGHTS, n_resamples=0)
    assert exact["value"] == pytest.approx(single)


def test_reference_split_is_deterministic_and_about_ten_percent():
    ids = [f"{i:05d}" for i in range(2000)]
    held = reference_clip_ids(ids, "held_out")
    assert held == reference_clip_ids(list(reversed(ids)), "held_out")
    assert 150 < len(held) < 250 and all(is_reference_clip(i) for i in held)
    assert reference_clip_ids(ids[:3], "all") == ids[:3]
    with pytest.raises(ValueError, match="unknown reference split"):
        reference_clip_ids(ids, "train")


def test_fvd_clip_frames_follow_the_protocol():
    assert fvd_frame_indices(24) == list(range(16))
    assert fvd_frame_indices(4) == [i // 4 for i in range(16)]


@pytest.mark.parametrize("size", [(224, 224), (64, 128)])
def test_i3d_input_equals_cd_fvd_preprocessing(size):
    """The same values as cd-fvd's preprocess_i3d, also where the resize to 224x224 is skipped."""
    from cdfvd.third_party.i3d.utils import preprocess_i3d

    clip = np.random.default_rng(0).uniform(0, 255, (2, 16, *size, 3)).astype(np.float32)
    assert torch.equal(i3d_input(clip), preprocess_i3d(clip, target_resolution=(224, 224)))


# -- on tiny random-weight feature nets and synthetic panoramas --------------------------------
@pytest.fixture(scope="module")
def panoramas():
    return [render_clip(make_scene(seed), 32, 64, 4).frames for seed in range(3)]


def _blur(v, level):
    return np.clip(gaussian_filter(v.astype(np.float32), (0, level, level, 0), mode="wrap"), 0, 255).astype(np.uint8)


def _noise(v, level):
    unit = np.random.default_rng(0).normal(size=v.shape)  # one noise field, scaled by the level
    return np.clip(v + level * unit, 0, 255).astype(np.uint8)


def _seam(v, level):
    """The eastern half turned by `level` columns against the western half: cuts at lon 0 and 180."""
    out = v.copy()
    w = v.shape[2]
    out[:, :, w // 2:] = np.roll(v[:, :, w // 2:], level, axis=2)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("degrade,levels", [(_blur, (0.7, 1.5, 3.0)), (_noise, (8, 24, 64)), (_seam, (1, 3, 6))])
def test_set_metrics_grow_with_degradation(feature_dirs, panoramas, degrade, levels):
    """Against the clean videos as reference (0 without degradation), growing with the level (KID, unbiased, may start below 0). Same scenes on both sides,
    so the degradation is the only difference (random-weight features cannot tell scenes apart
    robustly, but they respond smoothly to the size of a change). fvd_erp is blind to the seam at
    lon 180 of an ERP frame (it sees only the cut at lon 0), hence checked for blur and noise only."""
    extractor = SetFeatureExtractor(feature_dirs / "i3d", feature_dirs / "inception")
    reference = [extractor.features(v) for v in panoramas]
    values = []
    for level in levels:
        generated = [extractor.features(degrade(v, level)) for v in panoramas]
        values.append({k: m["value"] for k, m in set_metrics(generated, reference, n_resamples=0).items()})
    names = ("fvd_cubemap", "fid_views", "kid_views", "fid_sphere", "kid_sphere", "fid_seam", "omnifid") + (
        ("fvd_erp",) if degrade is not _seam else ())
    for name in names:
        series = [v[name] for v in values]
        assert all(a < b for a, b in zip(series, series[1:])), (name, series)
        assert name.startswith("kid_") or series[0] > 0


@pytest.mark.slow
def test_a_90_degree_roll_changes_no_side_or_view_metric(feature_dirs, panoramas):
    """The 4 horizontal views / side faces of a video rolled by W/4 are the same views in another
    order, so pooled-sample metrics agree up to float32 sampling rounding, which the uint8 truncation
    of the Inception views can turn into a 1-level change of a few pixels: tolerance 1e-4 relative
    (measured: 1e-6)."""
    extractor = SetFeatureExtractor(feature_dirs / "i3d", feature_dirs / "inception")
    # Equal set sizes: KID's subsets are then the whole sets, so its value does not depend on the
    # order of the samples, which the roll permutes (with smaller subsets it draws other samples).
    reference = [extractor.features(v) for v in panoramas]
    generated = [extractor.features(_noise(v, 30)) for v in panoramas]
    rolled = [extractor.features(np.roll(_noise(v, 30), v.shape[2] // 4, axis=2)) for v in panoramas]
    a = set_metrics(generated, reference, n_resamples=0)
    b = set_metrics(rolled, reference, n_resamples=0)
    assert b["fvd_cubemap"]["groups"]["sides"] == pytest.approx(a["fvd_cubemap"]["groups"]["sides"], rel=1e-4)
    assert b["fid_views"]["value"] == pytest.approx(a["fid_views"]["value"], rel=1e-4)
    assert b["kid_views"]["value"] == pytest.approx(a["kid_views"]["value"], rel=1e-4, abs=1e-9)


def test_feature_cache_recomputes_only_what_changed(feature_dirs, panoramas, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    first = SetFeatureExtractor(feature_dirs / "i3d", feature_dirs / "inception", cache)
    before = [first.features(v) for v in panoramas[:2]]
    sets = len(FEATURE_SETS)
    assert first.computed == 2 * sets and cache.misses == 2 * sets
    again = SetFeatureExtractor(feature_dirs / "i3d", feature_dirs / "inception", cache)
    after = [again.features(v) for v in panoramas[:2]]
    assert again.computed == 0
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(before, after) for k in a)
    changed = panoramas[1].copy()
    changed[0, 0, 0, 0] ^= 1
    again.features(panoramas[0])
    again.features(changed)
    assert again.computed == sets  # the feature sets of the changed video, nothing else
