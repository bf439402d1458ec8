"""A rater's session in a real browser: Playwright driving Debian's chromium, pages opened from file://.

Open a packet, wait until every video can play and every 360 viewer has drawn a picture
(pixels read back from the canvas), answer every question, reload and find the answers
kept, export (the download is caught), and aggregate the exported file.
The browser is Debian's `chromium` package (no Playwright browser download); the fixture
installs it with apt when it is missing and we are root, and fails otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dvd360.study.aggregate import aggregate
from dvd360.study.render import build_study
from study_support import panorama_frames, write_generations

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
# WebGL on SwiftShader (software); an in-process GPU makes a WebGL context ~10 ms instead of ~1 s.
FLAGS = ["--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--in-process-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync",
         "--disable-quic", "--autoplay-policy=no-user-gesture-required"]
METHODS = ("A", "B", "C", "D")
TIMEOUT_MS = 30_000


LAUNCH_ATTEMPTS = 3


def launch(playwright, chromium: Path):
    """Start headless chromium; a browser that dies while starting (seen once on the 2-core
    machine: a SIGSEGV before any page existed) is started again, up to 3 times."""
    from playwright.sync_api import Error

    for attempt in range(1, LAUNCH_ATTEMPTS + 1):
        try:
            return playwright.chromium.launch(executable_path=str(chromium), args=FLAGS)
        except Error as error:
            if attempt == LAUNCH_ATTEMPTS or "has been closed" not in str(error):
                raise


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium; installed with apt-get when missing and running as root."""
    if not CHROMIUM.exists() and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "chromium"]
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True)
            done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"could not install chromium with apt-get:\n{done.stderr[-2000:]}")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) "
                    "to run the browser test")
    return CHROMIUM


@pytest.fixture(scope="module")
def packet(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    generations = write_generations(root / "gen", prompts={"p00": "a beach"})  # + its attention repeat
    built = build_study(generations, root / "study", methods=METHODS, raters=1, seed=11, profile="tiny")
    return built.packets[0], root / "study" / "packets" / built.packets[0].rater_id, built.key_path


def wanted_method(criterion_index: int) -> str:
    """The test rater's fixed taste: criterion i goes to method i mod 4 (also on the repeated set)."""
    return METHODS[criterion_index % len(METHODS)]


CANVAS_PIXELS = """canvas => {
    const copy = document.createElement('canvas');
    copy.width = canvas.width; copy.height = canvas.height;
    const context = copy.getContext('2d');
    context.drawImage(canvas, 0, 0);
    const data = context.getImageData(0, 0, copy.width, copy.height).data;
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4 * 7) colours.add(data[i] + ',' + data[i + 1] + ',' + data[i + 2]);
    return {colours: colours.size, width: copy.width, height: copy.height};
}"""


CENTRE_PIXEL = """(canvas, view) => {
    canvas.dvd360Viewer.setView(view[0], view[1]);
    const data = canvas.getContext('2d').getImageData(canvas.width >> 1, canvas.height >> 1, 1, 1).data;
    return [data[0], data[1], data[2]];
}"""


def check_view_geometry(canvas) -> None:
    """The ray through the view's centre at (yaw, pitch) must hit ERP longitude yaw, latitude pitch.

    The test clips' red grows linearly with the column and green with the row, so the expected
    colour follows from the conventions alone: column j has lon = ((j + 0.5) / W) * 360 - 180,
    row i has lat = 90 - ((i + 0.5) / H) * 180. Views look below the horizon (the moving white
    block lies above it). Tolerance: H.264 and YUV->RGB rounding.
    """
    frame = panorama_frames(0, 0)[0].astype(float)
    height, width = frame.shape[:2]
    for yaw, pitch in [(0, -30), (90, -30), (-100, -60), (170, -20), (45, -10)]:
        column = (yaw + 180) / 360 * width - 0.5
        row = (90 - pitch) / 180 * height - 0.5
        expected_red = np.interp(column, np.arange(width), frame[0, :, 0])
        expected_green = np.interp(row, np.arange(height), frame[:, 0, 1])
        red, green, _ = canvas.evaluate(CENTRE_PIXEL, [yaw, pitch])
        assert abs(red - expected_red) < 16 and abs(green - expected_green) < 16, (yaw, pitch, red, green)


def test_a_rater_answers_reloads_exports_and_the_file_aggregates(chromium, packet, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    packet_, folder, key_path = packet
    key = json.loads(key_path.read_text())["packets"][packet_.packet_id]
    criteria = json.loads(key_path.read_text())["criteria"]
    errors = []
    with sync_playwright() as playwright:
        browser = launch(playwright, chromium)
        try:
            context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 800})
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            page.goto((folder / "index.html").as_uri())
            assert page.locator("h1").inner_text() == "Which 360° video fits best?"
            page.click("text=Start with set 1")
            for index, packet_set in enumerate(packet_.sets):
                # The pager's click starts a navigation; wait for the page and its scripts (load event).
                page.wait_for_url(f"**/{packet_set.set_id}.html")
                # Every video is playable (HAVE_FUTURE_DATA, no error) and every viewer has drawn it.
                page.wait_for_function("() => [...document.querySelectorAll('video')].every("
                                       "v => v.readyState >= 3 && !v.error && v.videoWidth > 0)")
                page.wait_for_function("() => [...document.querySelectorAll('canvas.view360')].every("
                                       "c => c.dvd360Viewer && c.dvd360Viewer.hasFrame && c.dvd360Viewer.frames > 0)")
                assert page.locator("video").count() == 4
                # Pause playback: the rest of the test needs no new frames, and software WebGL is slow.
                page.evaluate("() => document.querySelectorAll('video').forEach(v => v.pause())")
                for canvas in page.locator("canvas.view360").all():
                    pixels = canvas.evaluate(CANVAS_PIXELS)
                    assert pixels["width"] > 100 and pixels["colours"] > 20, pixels
                if index == 0:
                    check_view_geometry(page.locator("canvas.view360").first)
                    # "Front" faces lon 0; dragging left and down turns the view right and up.
                    page.locator("button[data-view='0,0']").first.click()
                    box = page.locator("canvas.view360").first.bounding_box()
                    page.mouse.move(box["x"] + 300, box["y"] + 100)
                    page.mouse.down()
                    page.mouse.move(box["x"] + 100, box["y"] + 140, steps=4)
                    page.mouse.up()
                    yaw, pitch = page.locator("canvas.view360").first.evaluate(
                        "c => [c.dvd360Viewer.yaw, c.dvd360Viewer.pitch]")
                    assert yaw > 10 and pitch > 2
                    assert re.fullmatch(r"Looking \d+° right, \d+° up", page.locator(".view-heading").first.inner_text())
                    # The views are linked by default: the last one turned too.
                    assert page.locator("canvas.view360").last.evaluate("c => c.dvd360Viewer.yaw") == pytest.approx(yaw)
                label_of = {method: label for label, method in key["sets"][packet_set.set_id]["labels"].items()}
                for c, criterion in enumerate(criteria):
                    page.check(f"input[name='{criterion}'][value='{label_of[wanted_method(c)]}']")
                answered = (index + 1) * len(criteria)
                expect(page.locator("#progress-text")).to_have_text(re.compile(rf"^{answered} of "))
                if index == 0:  # a reload keeps the answers
                    page.reload()
                    for c, criterion in enumerate(criteria):
                        checked = page.locator(f"input[name='{criterion}']:checked")
                        assert checked.get_attribute("value") == label_of[wanted_method(c)]
                    expect(page.locator("#progress-text")).to_have_text(re.compile(rf"^{len(criteria)} of "))
                page.locator(".pager a.primary").click()
            page.wait_for_url("**/finish.html")
            # The summary is written by the page's script once it has run: wait for it (CI once read it empty).
            expect(page.locator("#finish-summary")).to_have_text(re.compile(r"^All questions are answered"))
            with page.expect_download() as download_info:
                page.click("main button[data-action=export]")
            download = download_info.value
            assert download.suggested_filename == f"dvd360-answers-{packet_.packet_id}.json"
            exported = tmp_path / download.suggested_filename
            download.save_as(exported)
        finally:
            browser.close()
    assert errors == []
    document = json.loads(exported.read_text())
    assert document["packet_id"] == packet_.packet_id and document["mapping_checksum"] == packet_.mapping_checksum
    result = aggregate([exported], key_path, n_resamples=200)
    assert result["excluded"] == [] and result["raters"] == 1
    assert result["included"][0]["attention"] == {"agreed": len(criteria), "compared": len(criteria)}
    for c, criterion in enumerate(criteria):
        assert result["share_pct"][criterion][wanted_method(c)]["pct"] == 100.0
