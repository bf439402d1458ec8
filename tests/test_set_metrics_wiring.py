"""Set metrics wired into `dvd360-eval score --reference`, the compare table and the tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from dvd360.cli import main
from dvd360.compare import build_comparison, render
from dvd360.data.synthetic import make_scene, render_clip
from dvd360.data.video import write_video
from dvd360.models.clip_model import build_tiny_clip
from dvd360.metrics.set_features import FEATURE_SETS
from dvd360.metrics.set_metrics import SET_METRIC_NAMES
from dvd360.models.feature_nets import SET_KINDS, build_tiny_feature_net, load_feature_net


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("set_cli")
    for kind in SET_KINDS:
        build_tiny_feature_net(root / "features" / kind, kind, seed=0)
    build_tiny_clip(root / "clip", seed=0)
    for name, seeds in (("generated", (0, 1, 2)), ("reference", (3, 4))):
        (root / name).mkdir()
        for seed in seeds:
            write_video(root / name / f"v{seed}.mp4", render_clip(make_scene(seed), 32, 64, 3).frames)
    (root / "lonely").mkdir()
    write_video(root / "lonely" / "one.mp4", render_clip(make_scene(9), 32, 64, 3).frames)
    return root


def _score(folders, reference, out, cache=None):
    args = ["score", str(folders / "generated"), "--model", str(folders / "clip"), "--reference", str(reference),
            "--features", str(folders / "features"), "--out", str(out)]
    return CliRunner().invoke(main, args + (["--feature-cache", str(cache)] if cache else []))


def test_score_cli_reports_set_metrics_with_n_and_uncertainty(folders, tmp_path):
    result = _score(folders, folders / "reference", tmp_path / "scores.json", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "scores.json").read_text())
    sets = data["set_metrics"]
    assert list(sets) == list(SET_METRIC_NAMES)
    for name, entry in sets.items():
        assert (entry["n"], entry["n_reference"]) == (3, 2) and np.isfinite(entry["value"]) and entry["warnings"]
    assert sets["fvd_erp"]["ci_low"] <= sets["fvd_erp"]["ci_high"] and "std" in sets["kid_views"]
    assert set(sets["fvd_cubemap"]["groups"]) == {"sides", "top", "bottom"}
    assert data["set_metrics_info"]["fvd_erp"]["preprocessing"]["resize"] == [224, 224]
    assert "random weights" in data["set_metrics_info"]["fid_views"]["model"]
    assert "say nothing about quality" in data["note"]
    cached = sorted(p.name for p in (tmp_path / "cache").rglob("*.npy"))
    assert len(cached) == len(FEATURE_SETS) * 5  # every feature set x (3 generated + 2 reference videos)
    again = _score(folders, folders / "reference", tmp_path / "again.json", tmp_path / "cache")
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "again.json").read_text())["set_metrics"] == sets
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*.npy")) == cached
    # `compare --format json` on these score files: a row per method for every set metric
    (tmp_path / "scores").mkdir()
    for method in "ABCD":
        (tmp_path / "scores" / f"{method}.json").write_text(json.dumps({**data, "method": method}))
    compared = CliRunner().invoke(main, ["compare", "--methods", "A,B,C,D", "--scores", str(tmp_path / "scores"),
                                         "--out-dir", str(tmp_path / "compare"), "--format", "json",
                                         "--resamples", "100"])
    assert compared.exit_code == 0, compared.output
    metrics = json.loads(compared.stdout)["metrics"]
    for name in ("fid_sphere", "kid_sphere", "fid_seam", "omnifid"):
        assert set(metrics[name]["rows"]) == set("ABCD") and metrics[name]["rows"]["A"]["n"] == 3


def test_score_cli_refuses_a_reference_set_of_one_video(folders, tmp_path):
    result = _score(folders, folders / "lonely", tmp_path / "scores.json")
    assert result.exit_code != 0
    assert "lonely" in result.output and "at least 2 videos" in result.output
    assert not (tmp_path / "scores.json").exists()


def test_compare_shows_set_metrics_as_rows_with_ci_std_and_n():
    def scores(value):
        entry = {"value": value, "ci_low": value - 1, "ci_high": value + 1, "n": 3, "n_reference": 12,
                 "warnings": ["generated set: 3 samples <= 400 feature dimensions"]}
        return {"videos": [{"prompt_id": "p", "seed": s, "metrics": {"end_continuity": value / 100 + s}} for s in (0, 1)],
                "set_metrics": {"fvd_erp": entry, "kid_views": {**entry, "std": 0.5, "ci_low": None, "ci_high": None}},
                "set_metrics_info": {"fvd_erp": {"model": "tiny i3d"}}}

    comparison = build_comparison({"A": scores(10.0), "D": scores(5.0)}, reference="D", n_resamples=100)
    assert comparison["metrics"]["fvd_erp"]["rows"]["A"]["mean"] == 10.0
    text = render(comparison, "table")
    assert "10 [9, 11] n=3 ref=12" in text and "+-0.5 n=3 ref=12" in text
    assert "WARNING generated set: 3 samples" in text and "tiny i3d" in text
    assert "fvd_erp" in render(comparison, "markdown")


def test_tiny_feature_nets_are_byte_identical_per_seed_and_keep_the_contracts(tmp_path):
    import torch

    for kind in SET_KINDS:
        a, b = (build_tiny_feature_net(tmp_path / name / kind, kind, seed=3) for name in ("a", "b"))
        assert (tmp_path / "a" / kind / "model.safetensors").read_bytes() == \
               (tmp_path / "b" / kind / "model.safetensors").read_bytes()
    i3d, inception = (load_feature_net(tmp_path / "a" / kind) for kind in SET_KINDS)
    with torch.no_grad():
        assert i3d(torch.zeros(2, 3, 16, 224, 224)).shape == (2, 400)
        assert inception(torch.zeros(2, 3, 50, 100, dtype=torch.uint8)).shape == (2, 2048)
    with pytest.raises(ValueError, match="uint8"):
        inception(torch.zeros(1, 3, 8, 8))


def test_features_extracted_in_the_background_equal_those_extracted_in_turn(folders):
    from dvd360.metrics.set_scoring import SetScorer

    generated = sorted((folders / "generated").glob("*.mp4"))
    reference = sorted((folders / "reference").glob("*.mp4"))
    in_turn = SetScorer(folders / "features", None, background=False)
    overlapped = SetScorer(folders / "features", None, background=True)
    for scorer in (in_turn, overlapped):
        scorer.use_reference(reference)
    overlapped.start(generated + generated[:1])  # a path listed twice is extracted twice
    assert sum(len(queue) for queue in overlapped._started.values()) == 4
    a, b = in_turn.score(generated), overlapped.score(generated)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    [again] = overlapped.features(generated[:1])  # the second extraction of the path listed twice
    [once] = in_turn.features(generated[:1])
    assert all(np.array_equal(again[name], once[name]) for name in once)
    with pytest.raises(RuntimeError, match="engine failed"), overlapped.started(generated):
        raise RuntimeError("engine failed")  # what was not begun is cancelled, nothing is left queued
    assert not overlapped._started and overlapped._thread is None
    assert overlapped.features(generated[:1])[0].keys() == once.keys()  # then computed in turn
