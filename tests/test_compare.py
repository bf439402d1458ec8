"""The comparison table, paired deltas and `dvd360-eval compare` on small score files."""

from __future__ import annotations

import itertools
import json
import re
import shutil

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
    row = comparison["metrics"]["clip_similarity_erp"]["rows"]["A"]  # 20 + the seam ratios: higher is better
    assert row["mean"] == pytest.approx(20 + np.mean([1.9, 2.5, 3.1, 2.2, 2.8])) and row["n"] == 5
    deltas = np.array([1.9, 2.5, 3.1, 2.2, 2.8]) - np.array([1.0, 1.2, 0.9, 1.1, 1.05])
    assert row["delta"]["mean"] == pytest.approx(deltas.mean())
    # All deltas positive: only the all-plus and all-minus sign patterns reach |mean| -> p = 2 / 32.
    exact = np.mean([abs(np.mean(deltas * s)) >= abs(deltas.mean()) - 1e-12
                     for s in itertools.product((1, -1), repeat=5)])
    assert row["delta"]["p_value"] == pytest.approx(exact) == pytest.approx(2 / 32)
    assert "delta" not in comparison["metrics"]["seam_ratio"]["rows"]["D"]
    assert comparison["metrics"]["seam_ratio"]["better"] == "closer to 1"


def test_a_seam_ratio_below_one_never_outranks_a_seamless_method(tmp_path):
    """Blurred or darkened edge columns give a seam ratio below 1: further from the target 1 than a
    seamless method's, so neither the star, nor the paired delta, nor the per-video marks rank it first."""
    from dvd360.report.page import table_groups

    folder = tmp_path / "scores"
    folder.mkdir()
    data = {"blurred": [0.62, 0.58, 0.66, 0.60], "seamless": [1.01, 0.99, 1.02, 0.98], "seam": [1.9, 2.1, 1.8, 2.0]}
    for method, values in data.items():
        (folder / f"{method}.json").write_text(json.dumps(_scores(method, values)))
    comparison = build_comparison(load_scores(folder, list(data)), "seamless", n_resamples=200)
    entry = comparison["metrics"]["seam_ratio"]
    assert entry["direction"] == "target" and entry["target"] == 1.0
    distance = np.mean(np.abs(np.log(data["blurred"]))) - np.mean(np.abs(np.log(data["seamless"])))
    assert entry["rows"]["blurred"]["delta"]["mean"] == pytest.approx(distance) and distance > 0
    cells = next(m for g in table_groups(comparison) for m in g["metrics"] if m["name"] == "seam_ratio")["cells"]
    assert [c["method"] for c in cells if c["best"]] == ["seamless"]
    assert not any(c["better_than_reference"] for c in cells)


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
    assert "| seam_ratio | closer to 1 | A |" in result.output
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


# --- the results page (dvd360.report) ---------------------------------------------------------

from report_support import ABLATIONS, METHODS, write_report_inputs  # noqa: E402

from dvd360.metrics.registry import GROUP_ORDER, METRICS  # noqa: E402
from dvd360.report.page import table_groups  # noqa: E402


@pytest.fixture(scope="module")
def report_inputs(tmp_path_factory):
    return write_report_inputs(tmp_path_factory.mktemp("report"), prompts=2, height=32, frames=4)


def _page_args(inputs, out, *extra):
    return ["compare", "--methods", ",".join(METHODS), "--scores", str(inputs["scores"]),
            "--generations", str(inputs["generations"]), "--train-reports", str(inputs["train"]),
            "--report", str(out / "index.html"), "--out-dir", str(out / "compare"), "--format", "html",
            "--resamples", "200", *extra]


def test_every_metric_has_a_group():
    assert {spec.group for spec in METRICS.values()} == set(GROUP_ORDER)


def test_table_rows_are_grouped_and_mark_the_best_mean(scores_dir):
    comparison = build_comparison(load_scores(scores_dir, ["A", "B", "D"]), "D", n_resamples=500)
    groups = table_groups(comparison)
    assert [g["group"] for g in groups] == ["panorama", "quality"]  # GROUP_ORDER, empty groups left out
    seam = next(m for g in groups for m in g["metrics"] if m["name"] == "seam_ratio")
    best = {c["method"]: c["best"] for c in seam["cells"]}
    assert best == {"A": False, "B": False, "D": True}  # closer to 1 is better: D is the closest
    a = next(c for c in seam["cells"] if c["method"] == "A")
    # p = 2/32 > 0.05: not significant; A is worse than D (further from 1: a positive delta of the distance).
    assert not a["significant"] and not a["better_than_reference"]
    clip = next(m for g in groups for m in g["metrics"] if m["name"] == "clip_similarity_erp")
    assert "model: tiny-clip" in clip["title"] and "higher is better" in clip["title"]


def test_cli_writes_a_self_contained_page(report_inputs, tmp_path):
    result = CliRunner().invoke(main, _page_args(report_inputs, tmp_path, "--ablations", ",".join(ABLATIONS[1:])))
    assert result.exit_code == 0, result.output
    page = (tmp_path / "index.html").read_text()
    # The notice comes before the table; nothing is fetched from elsewhere.
    assert page.index("say nothing about quality") < page.index('<table class="comparison"')
    assert not re.search(r"""(src|href)=["']?(https?:)?//(?!127\.0\.0\.1)""", page)
    assert "<link" not in page and "@import" not in page
    # One embedded copy per distinct video (D is in both galleries); every method's card in each.
    videos = sorted(report_inputs["generations"].glob("*/*.mp4"))
    assert page.count('<script type="application/octet-stream" id="media-') == len(videos)
    assert page.count('class="video-card"') == 2 * (len(METHODS) + len(dict.fromkeys(ABLATIONS)))  # 2 prompts
    metrics = list(json.loads((tmp_path / "compare" / "comparison.json").read_text())["metrics"])
    charts = re.findall(r'<figure class="chart" data-metric="(\w+)"><svg', page)
    assert charts == metrics + metrics  # one per metric in the methods' and the ablations' sections
    assert page.count('<figure class="chart wide"><svg') == 1  # the loss curves
    assert "window.DVD360Viewer" in page and "Look at the seam" in page
    assert str(report_inputs["scores"] / "A.json") in page and str(videos[0]) in page
    assert "seam_ratio" in page and "flow_epe_deg" in page and "dvd360 git commit" in page and "matplotlib" in page


def test_page_refuses_a_video_changed_since_scoring(report_inputs, tmp_path):
    generations = tmp_path / "generations"
    shutil.copytree(report_inputs["generations"], generations)
    changed = generations / "B" / "p00-s0.mp4"
    changed.write_bytes(changed.read_bytes() + b"\0")
    inputs = {**report_inputs, "generations": generations}
    result = CliRunner().invoke(main, _page_args(inputs, tmp_path / "out"))
    assert result.exit_code != 0 and f"{changed}: changed since it was scored" in result.output
    assert not (tmp_path / "out" / "index.html").exists()
    (generations / "B" / "p00-s0.mp4").unlink()
    result = CliRunner().invoke(main, _page_args(inputs, tmp_path / "out"))
    assert result.exit_code != 0 and "video missing" in result.output


def test_page_refuses_a_malformed_loss_file(report_inputs, tmp_path):
    train = tmp_path / "train"
    shutil.copytree(report_inputs["train"], train)
    bad = train / "full" / "loss.tsv"
    bad.write_text("step\tloss\n2\tnan?\n")
    result = CliRunner().invoke(main, _page_args({**report_inputs, "train": train}, tmp_path / "out"))
    assert result.exit_code != 0 and str(bad) in result.output and "not a number" in result.output


def test_page_is_the_same_bytes_for_the_same_input(scores_dir):
    from dvd360.report.page import Section, render_page

    comparison = build_comparison(load_scores(scores_dir, ["A", "B", "D"]), "D", n_resamples=300)
    first, again = (render_page([Section("Methods", "methods", comparison)]) for _ in range(2))
    assert first == again and first.count('<figure class="chart"') == 2
