"""The results page in a real browser: Playwright driving Debian's chromium, opened from file://.

Built from synthetic score files and tiny videos (`report_support`), the page is opened with
every request that is not file:, data: or blob: aborted and recorded. It must show the profile
notice without scrolling, the table and the charts, and per method a 360 viewer that draws the
playing video; "Look at the seam" must turn the views to longitude 180, where method A's
known seam defect (its last columns darkened) shows on the left half of the view. And DVC's
own plots page, made with the repository's template, draws offline too.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from dvd360.cli import main
from report_support import METHODS, SEAM_DARKENING, write_report_inputs
from test_study_browser import CANVAS_PIXELS, TIMEOUT_MS, chromium, launch  # noqa: F401 (chromium: a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LOCAL_SCHEMES = ("file:", "data:", "blob:")

HALF_BRIGHTNESS = """canvas => {
    const context = canvas.getContext('2d'), w = canvas.width, h = canvas.height;
    const mean = (x0, x1) => {
        const data = context.getImageData(x0, h >> 2, x1 - x0, h >> 1).data;
        let total = 0;
        for (let i = 0; i < data.length; i += 4) total += data[i] + data[i + 1] + data[i + 2];
        return total / (data.length / 4);
    };
    return [mean(Math.round(w * 0.05), Math.round(w * 0.45)), mean(Math.round(w * 0.55), Math.round(w * 0.95))];
}"""


@pytest.fixture(scope="module")
def report_page(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_browser")
    inputs = write_report_inputs(root, prompts=2, height=48, frames=5)
    page = root / "reports" / "index.html"
    result = CliRunner().invoke(main, [
        "compare", "--methods", ",".join(METHODS), "--scores", str(inputs["scores"]),
        "--generations", str(inputs["generations"]), "--train-reports", str(inputs["train"]),
        "--ablations", "D_no_360tf,D_no_latloss", "--report", str(page), "--out-dir", str(root / "reports" / "compare"),
        "--format", "html", "--resamples", "200"])
    assert result.exit_code == 0, result.output
    return page


def test_the_page_works_offline_and_every_method_plays_in_a_360_viewer(chromium, report_page, tmp_path):
    from playwright.sync_api import sync_playwright

    left_page, errors = [], []

    def guard(route):
        if route.request.url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            left_page.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = launch(playwright, chromium)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.route("**/*", guard)
            page = context.new_page()
            page.on("request", lambda r: None if r.url.startswith(LOCAL_SCHEMES) else left_page.append(r.url))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(report_page.as_uri())
            # The notice is on screen before any scrolling.
            notice = page.locator("#profile-notice")
            assert notice.is_visible() and "say nothing about quality" in notice.inner_text()
            box = notice.bounding_box()
            assert page.evaluate("window.scrollY") == 0 and 0 <= box["y"] and box["y"] + box["height"] <= 800
            page.screenshot(path=str(tmp_path / "report-top.png"))
            # The table: methods as columns, grouped metric rows; the charts are drawn SVG.
            headers = page.locator("#methods table.comparison thead th.method").all_inner_texts()
            assert [h.split()[0] for h in headers] == list(METHODS)
            assert page.locator("#methods tr.group").first.inner_text().lower() == "panorama"
            assert page.locator("#methods figure.chart svg").count() >= 1
            assert page.locator("#training svg").count() == 1
            # Per method a playing video and a 360 viewer that has drawn its frames.
            gallery = page.locator("#methods-gallery .prompt-set").first
            gallery.scroll_into_view_if_needed()
            for method in METHODS:
                card = gallery.locator(f".video-card[data-method='{method}']")
                card.locator("video").evaluate("v => new Promise(done => v.readyState >= 3 && !v.paused ? done() : "
                                               "v.addEventListener('playing', () => done(), {once: true}))")
                page.wait_for_function("c => c.dvd360Viewer && c.dvd360Viewer.hasFrame && c.dvd360Viewer.frames > 2",
                                       arg=card.locator("canvas.view360").element_handle())
                assert card.locator("video").evaluate("v => !v.paused && !v.error && v.videoWidth === 96")
                pixels = card.locator("canvas.view360").evaluate(CANVAS_PIXELS)
                assert pixels["width"] > 100 and pixels["colours"] > 20, (method, pixels)
            page.screenshot(path=str(tmp_path / "report-gallery.png"))
            # "Look at the seam" turns every view of the set to longitude 180 (wrapped to -180).
            page.evaluate("() => document.querySelectorAll('video').forEach(v => v.pause())")
            gallery.locator(".video-card[data-method='A'] button[data-view='180,0']").click()
            for method in METHODS:
                canvas = gallery.locator(f".video-card[data-method='{method}'] canvas.view360")
                assert abs(canvas.evaluate("c => c.dvd360Viewer.yaw")) == 180
            assert gallery.locator(".video-card[data-method='A'] .view-heading").inner_text().endswith("(the seam)")
            # A's darkened band (lon 135..180) fills the left half of its seam view; D has no band.
            ratio = {m: gallery.locator(f".video-card[data-method='{m}'] canvas.view360").evaluate(HALF_BRIGHTNESS)
                     for m in ("A", "D")}
            relative = (ratio["A"][0] / ratio["A"][1]) / (ratio["D"][0] / ratio["D"][1])
            assert relative == pytest.approx(SEAM_DARKENING["A"], abs=0.12), ratio
        finally:
            browser.close()
    assert left_page == [] and errors == []


def test_dvc_plots_show_draws_offline_with_the_vendored_template(chromium, tmp_path):
    """`dvc plots show` with the repository's template (.dvc/config: plots.html_template) draws
    its vega charts with no request leaving the page (DVC's default page loads vega from a CDN)."""
    from playwright.sync_api import sync_playwright

    template = Path(__file__).resolve().parents[1] / ".dvc" / "plots_offline.html"
    repo = tmp_path / "repo"
    (repo / "train").mkdir(parents=True)
    (repo / "train" / "loss.tsv").write_text("step\tloss\n" + "".join(f"{s}\t{1 / s:.4f}\n" for s in range(1, 30)))
    (repo / "dvc.yaml").write_text("plots:\n  - train/loss.tsv:\n      x: step\n      y: loss\n")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=repo, check=True, env=env)
    shown = subprocess.run(["dvc", "plots", "show", "--html-template", str(template), "-o", "plots"],
                           cwd=repo, env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    left_page = []
    with sync_playwright() as playwright:
        browser = launch(playwright, chromium)
        try:
            context = browser.new_context()
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(LOCAL_SCHEMES)
                          else (left_page.append(route.request.url), route.abort()))
            page = context.new_page()
            page.goto((repo / "plots" / "index.html").as_uri())
            page.wait_for_selector(".vega-embed canvas, .vega-embed svg", timeout=TIMEOUT_MS)
            assert page.locator(".vega-embed").count() == 1
        finally:
            browser.close()
    assert left_page == []
