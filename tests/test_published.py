"""eval/published.yaml: valid, every row names a registered metric and cites its source; the
published block is shown beside our rows with its label and never enters our statistics."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from dvd360.compare import build_comparison, render
from dvd360.metrics.registry import METRICS
from dvd360.published import MATCHES, PublishedFileError, block, load_published, published_file
from dvd360.report.page import Section, render_page, table_groups

NOTE = "tiny profile: random-weight models; these numbers exercise the pipeline and say nothing about quality"
# The figures issue #29 and REFERENCE.md quote: (paper, method, value).
QUOTED = [("panowan", "360DVD", 1750.36), ("panowan", "360DVD", 20.27), ("panowan", "360DVD", 0.7054),
          ("panowan", "360DVD", 0.0323), ("panowan", "PanoWan", 0.0270), ("panowan", "DynamicScaler", 0.0339),
          ("dynamicscaler", "360DVD", 0.293), ("dynamicscaler", "360DVD", 0.436), ("dynamicscaler", "360DVD", 0.917),
          ("imagine360", "360DVD", 0.5537), ("imagine360", "360DVD", 0.4745), ("imagine360", "360DVD", 0.9701),
          ("imagine360", "360DVD", 0.9629)]


def test_shipped_file_holds_the_quoted_figures_each_with_source_and_label():
    published = load_published()
    figures = {(f.paper, f.method, f.value) for f in published.figures}
    assert set(QUOTED) <= figures
    study = [f for f in published.figures if f.paper == "dvd360_paper"]
    assert len(study) == 20 and sum(f.value for f in study if "graphics" in f.metric) == pytest.approx(100.0, abs=0.1)
    for figure in published.figures:
        assert figure.table and published.papers[figure.paper].read_from
        assert figure.dvd360.match in MATCHES and figure.dvd360.reason
        assert figure.dvd360.metric is None or figure.dvd360.metric in METRICS
    ec = [f for f in published.figures if f.metric == "End Continuity"]
    assert {f.dvd360.metric for f in ec} == {"end_continuity"} and {f.dvd360.match for f in ec} == {"exactly"}


@pytest.mark.parametrize("change, message", [
    (lambda d: d["figures"][0]["dvd360"].update(metric="fvd_panorama"), "figures.0.dvd360.metric"),
    (lambda d: d["figures"][0]["dvd360"].update(match="exactly", metric=None), "names the dvd360 metric"),
    (lambda d: d["figures"][0].update(paper="nobody"), "not listed under `papers`: nobody"),
    (lambda d: d["figures"][0].update(value="high"), "figures.0.value"),
])
def test_bad_files_are_refused_naming_the_key(tmp_path, change, message):
    data = yaml.safe_load(published_file().read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(PublishedFileError, match=str(path)) as error:
        load_published(path)
    assert message in str(error.value)


def _scores(method, values):
    videos = [{"video": f"p{i}.mp4", "prompt_id": f"p{i}", "seed": 0, "metrics": {"end_continuity": v}}
              for i, v in enumerate(values)]
    return {"method": method, "note": NOTE, "metrics_info": {}, "videos": videos}


def test_published_block_is_beside_our_rows_and_never_in_our_statistics():
    # Ours are all worse than PanoWan's published 0.0270: a mixed-in figure would take the star.
    scores = {"A": _scores("A", [0.05, 0.06, 0.07]), "D": _scores("D", [0.04, 0.045, 0.05])}
    plain = build_comparison(scores, "D", n_resamples=300)
    beside = build_comparison(scores, "D", n_resamples=300, published=block())
    assert {k: v for k, v in beside.items() if k != "published"} == plain
    assert table_groups(beside) == table_groups(plain)
    assert [r["method"] for r in beside["published"]["metrics"]["end_continuity"]] == ["360DVD", "PanoWan",
                                                                                       "DynamicScaler"]
    text = render(beside, "table")
    assert "end_continuity: PanoWan 0.027 [exactly] PanoWan, Xia et al." in text
    assert "fvd_cubemap (not scored here): 360DVD 1750 [comparable up to protocol]" in text
    assert "no dvd360 equivalent: 360DVD VideoCLIP-XL 20.27" in text
    assert json.loads(render(beside, "json"))["published"] == beside["published"]

    page = render_page([Section("Methods", "methods", beside)], charts=False)
    same = render_page([Section("Methods", "methods", copy.deepcopy(plain))], charts=False)
    star = 'title="best mean in this row"'
    assert page.count(star) == same.count(star) == 1  # the star stays with our best (D), not a published figure
    assert page.index("Not a result") < page.index('<table class="comparison"') < page.index("Published figures beside")
    published = page[page.index("Published figures beside"):]
    for label in MATCHES:
        assert f'<span class="match match-{label.split()[0]}">{label}</span>' in published
    assert "A 0.06<br>D 0.045<br>" in published and "not scored here" in published
    assert "no dvd360 metric computes" in published and "user preference: motion pattern (%)" in published
