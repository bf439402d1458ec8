"""The comparison table, paired deltas and `dvd360-eval compare` on small score files."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from click.testing import CliRunner

from dvd360.cli import main
from dvd360.compare import UnknownMethodError, build_comparison, load_scores, render

NOTE = "tiny profile: random-weight models; these numbers exercise the pipeline and say nothing about quality"


def _scores(method, values, note=NOTE):
    videos = [{"video": f"p{i}-s0.mp4", "prompt_id": f"p{i}", "seed": 0,
               "metrics": {"seam_ratio": v, "clip_similarity_erp": 20.0 + v}} for i, v in enumerate(values)]
    return {"method": method, "note": note, "metrics_info": {"clip_similarity_erp": {"model": "tiny-clip"}},
            "videos": videos}


@pytest.fixture()
def scores_dir(tmp_path):
    folder = tmp_path / "scores"
    folder.mkdir()
    data = {"A": [1.9, 2.5, 3.1, 2.2, 2.8], "B": [1.5, 1.1, 1.8, 1.3, 1.6], "D": [1.0, 1.2, 0.9, 1.1, 1.05]}
    for method, values in data.items():
        (folder / f"{method}.json").write_text(json.dumps(_scores(method, values)))
    return folder


def test_comparison_numbers_match_independent_computation(scores_dir):
    comparison = build_comparison(load_scores(scores_dir, ["A", "B", "D"]), "D", n_resamples=2000)
    row = comparison["metrics"]["seam_ratio"]["rows"]["A"]
    assert row["mean"] == pytest.approx(np.mean([1.9, 2.5, 3.1, 2.2, 2.8])) and row["n"] == 5
    deltas = np.array([1.9, 2.5, 3.1, 2.2, 2.8]) - np.array([1.0, 1.2, 0.9, 1.1, 1.05])
    assert row["delta"]["mean"] == pytest.approx(deltas.mean())
    # All deltas positive: only the all-plus and all-minus sign patterns reach |mean| -> p = 2 / 32.
    exact = np.mean([abs(np.mean(deltas * s)) >= abs(deltas.mean()) - 1e-12
                     for s in itertools.product((1, -1), repeat=5)])
    assert row["delta"]["p_value"] == pytest.approx(exact) == pytest.approx(2 / 32)
    assert "delta" not in comparison["metrics"]["seam_ratio"]["rows"]["D"]
    assert comparison["metrics"]["seam_ratio"]["better"] == "lower"


def test_unknown_methods_list_the_known_ones(scores_dir):
    with pytest.raises(UnknownMethodError, match="known: A, B, D"):
        load_scores(scores_dir, ["A", "Z"])


def test_renderings_carry_the_tiny_note(scores_dir):
    comparison = build_comparison(load_scores(scores_dir, ["A", "D"]), "D", n_resamples=500)
    for fmt in ("table", "markdown", "html"):
        text = render(comparison, fmt)
        assert "say nothing about quality" in text and "seam_ratio" in text and "tiny-clip" in text
    assert json.loads(render(comparison, "json"))["reference"] == "D"


def test_compare_cli_writes_reports_and_plots(scores_dir, tmp_path):
    out = tmp_path / "reports"
    args = ["compare", "--methods", "A,B,D", "--reference", "D", "--scores", str(scores_dir),
            "--out-dir", str(out), "--format", "markdown", "--resamples", "500"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "| seam_ratio | lower | A |" in result.output
    assert {p.name for p in out.iterdir()} >= {"comparison.md", "comparison.json", "comparison.html", "comparison.txt"}
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["clip_similarity_erp.png", "seam_ratio.png"]
    bad = CliRunner().invoke(main, ["compare", "--methods", "A,C", "--scores", str(scores_dir), "--out-dir", str(out)])
    assert bad.exit_code != 0 and "unknown method(s) C" in bad.output and "known: A, B, D" in bad.output


def test_compare_cli_compares_with_D_by_default(scores_dir, tmp_path):
    base = ["compare", "--methods", "A,B,D", "--scores", str(scores_dir), "--out-dir", str(tmp_path),
            "--format", "json", "--resamples", "500"]
    default = CliRunner().invoke(main, base)
    assert default.exit_code == 0, default.output
    assert json.loads(default.stdout)["reference"] == "D"
    off = CliRunner().invoke(main, [*base, "--reference", "none"])
    assert off.exit_code == 0 and json.loads(off.stdout)["reference"] is None
