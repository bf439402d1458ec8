"""`dvd360-eval audit` on tiny synthetic reference videos with the tiny models: every metric x defect
listed, the non-learned metrics' known responses, repeats dropped; set-metric effects on features."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from dvd360.audit import TOLERANCE, _set_effects, summary
from dvd360.cli import main
from dvd360.data.synthetic import make_scene, render_clip, scene_caption
from dvd360.data.video import write_video
from dvd360.metrics.registry import METRICS
from dvd360.models.clip_model import build_tiny_clip
from dvd360.report.audit_view import render_text

DEFECTS = ("seam_step", "seam_blur", "roll", "frame_repeat")


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    (root / "ref").mkdir()
    prompts = {}
    for k in range(4):
        scene = make_scene(100 + k)
        write_video(root / "ref" / f"v{k}.mp4", render_clip(scene, 32, 64, 5).frames, lossless=True)
        prompts[f"v{k}"] = scene_caption(scene)
    (root / "prompts.json").write_text(json.dumps(prompts))
    build_tiny_clip(root / "clip", seed=0)
    result = CliRunner().invoke(main, ["audit", str(root / "ref"), "--prompts", str(root / "prompts.json"),
                                       "--model", str(root / "clip"), "--features", str(root / "none"),
                                       "--no-quality", "--defects", ",".join(DEFECTS), "--out-dir",
                                       str(root / "out"), "--resamples", "500"])
    assert result.exit_code == 0, result.output
    return json.loads((root / "out" / "audit.json").read_text()), result.stdout, root / "out"


def test_the_audit_lists_every_metric_and_defect_with_three_strengths(audited):
    audit, output, out = audited
    assert set(audit["effects"]) == set(METRICS)
    assert all(list(audit["effects"][name]) == list(DEFECTS) for name in METRICS)
    assert all(len(cells) == 3 for per_metric in audit["effects"].values() for cells in per_metric.values())
    assert audit["not_computed"]["flow_epe_deg"].startswith("needs each video's conditioning flow")
    assert "fvd_erp" in audit["not_computed"] and "imaging_quality_erp" in audit["not_computed"]
    assert audit["reference"]["videos"] == 4 and "say nothing about quality" in audit["note"]
    assert {p.name for p in out.iterdir()} == {"audit.json", "audit.txt", "audit.png"}
    assert output.startswith("NOTE: tiny profile") and "seam_ratio: sees seam_step" in output


def test_seam_metrics_respond_as_their_definitions_say(audited):
    audit = audited[0]
    ec = audit["effects"]["end_continuity"]["seam_step"]
    assert [c["verdict"] for c in ec] == ["sees"] * 3
    assert ec[0]["effect"] < ec[1]["effect"] < ec[2]["effect"]  # grows with the step
    # A blurred seam makes the last and first columns alike: End Continuity reads it as better,
    # the seam ratio (target 1), at the strongest blur, as a ratio below 1: further from its target.
    assert audit["summary"]["end_continuity"]["wrong_way"] == ["seam_blur"]
    for name in ("seam_ratio", "seam_ratio_codec"):
        assert "seam_step" in audit["summary"][name]["sees"], name
        strongest = audit["effects"][name]["seam_blur"][-1]
        assert strongest["verdict"] == "sees" and strongest["delta"]["mean"] < 0, name
        assert audit["summary"][name]["invariant"]["roll"], name
    assert audit["summary"]["pole_continuity"]["invariant"]["roll"]


def test_repeated_frames_are_detected_and_dropped(audited):
    for name, per_metric in audited[0]["effects"].items():
        for cell in per_metric["frame_repeat"]:
            assert cell["verdict"] in ("holds", "not computed"), name
            if cell["verdict"] == "holds":
                assert cell["delta"]["mean"] == 0.0 and cell["right_way"]


def _features(clean: list[dict], shift: float, seed: int) -> list[dict]:
    """Each clean video's features moved by `shift` plus a little noise of its own."""
    rng = np.random.default_rng(seed)
    return [{k: v + shift + rng.normal(0, 0.05, v.shape) for k, v in video.items()} for video in clean]


def test_set_metric_effects_compare_defective_and_clean_halves_against_the_other_half(name="fid_views"):
    rng = np.random.default_rng(0)
    clean = [{"inception_views": rng.normal(0.0, 1.0, (16, 4))} for _ in range(8)]
    features = {None: clean, ("noise", 0.02): _features(clean, 0.0, 1), ("noise", 0.05): _features(clean, 0.5, 2),
                ("noise", 0.1): _features(clean, 3.0, 3)}
    info, effects = _set_effects(name, features, ["noise"], seed=0, n_resamples=50)
    assert info["clean"]["n"] == info["clean"]["n_reference"] == 4 and info["spread"] > 0
    cells = effects["noise"]
    assert cells[0]["verdict"] == "ignores" and cells[-1]["verdict"] == "sees" and cells[-1]["effect"] > TOLERANCE
    assert cells[-1]["delta"]["ci_low"] > 0 and summary(effects)["sees"] == ["noise"]
    text = render_text({"note": None, "defects": {"noise": {}}, "metrics": {name: info}, "effects": {name: effects},
                        "summary": {name: summary(effects)}, "tolerance": TOLERANCE,
                        "reference": {"videos": 8, "source": "features"}, "bootstrap": {"resamples": 50},
                        "seconds": 0.0, "not_computed": {}})
    assert f"{name}: sees noise" in text


def test_the_results_page_shows_the_audit_as_a_heat_map_and_summary(audited):
    from dvd360.compare import build_comparison
    from dvd360.report.page import Section, render_page

    scores = {m: {"note": audited[0]["note"], "videos": [{"prompt_id": f"p{i}", "seed": 0,
                                                          "metrics": {"seam_ratio": 1.0 + i / 10 + (m == "A")}}
                                                         for i in range(3)]} for m in ("A", "D")}
    page = render_page([Section("Methods", "methods", build_comparison(scores, "D", n_resamples=200))], charts=False,
                       audit=audited[0])
    section = page[page.index('<section class="block" id="audit">'):]
    assert '<a href="#audit">Metric audit</a>' in page and "<svg" in section
    assert "<th scope=\"row\">seam_ratio</th><td>seam_step" in section and "roll holds" in section
    assert "Not a result:" in section and "flow_epe_deg (needs each video" in section
