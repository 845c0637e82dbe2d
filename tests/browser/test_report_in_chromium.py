"""The batch's HTML report in a real headless browser (Chromium from the distribution's packages;
`.ci/browser` installs it): the page loads with no console error and fetches nothing, every Plotly chart
renders (the heatmap, the line, the curves, the histograms), a header click sorts the top table, and a
screenshot shows the heatmap's and the curves' colours. Where no browser can be found the tests skip,
saying how to install one; the report itself never needs a browser.

Chromium runs with its background services off (no update checks, sync or component downloads: this
machine's network is closed, and the page must not need one) and without its sandbox, as CI runs as root.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from opslib.batch.report_html import write_html
from tests.scripts.test_report_html import CONDITIONS, sample_summary, sample_visuals

BROWSERS = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)
NO_BROWSER = (
    "NO BROWSER: the HTML report's browser test needs headless Chromium and found none (chromium, "
    "chromium-browser, google-chrome, or $CHROMIUM). Install it with `bash .ci/browser` (Debian: "
    "apt-get install --no-install-recommends chromium). report.html itself is written without a browser."
)
# Injected at the top of <head> in a copy of the page: records every error and CSP violation, then, once the
# charts are drawn, what rendered and what was fetched, and what clicking the sharpe header does, into a
# <pre id="probe"> that --dump-dom prints.
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push("error: " + e.message); });
window.addEventListener("unhandledrejection", function (e) {
  window.__errors.push("rejection: " + e.reason);
});
document.addEventListener("securitypolicyviolation", function (e) {
  window.__errors.push("CSP: " + e.violatedDirective + " " + e.blockedURI);
});
var consoleError = console.error;
console.error = function () {
  window.__errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
  consoleError.apply(console, arguments);
};
window.addEventListener("load", function () { setTimeout(function () {
  function count(selector) { return document.querySelectorAll(selector).length; }
  var top = document.querySelector("#top table");
  var sharpe = Array.prototype.filter.call(top.tHead.rows[0].cells, function (th) {
    return th.textContent === "sharpe"; })[0];
  var order = [];
  sharpe.click(); order.push(top.tBodies[0].rows[0].cells[0].textContent);
  sharpe.click(); order.push(top.tBodies[0].rows[0].cells[0].textContent);
  var probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    errors: window.__errors,
    fetched: performance.getEntriesByType("resource").map(function (r) { return r.name; }),
    graphs: count(".plotly-graph-div"),
    plotted: count(".plotly-graph-div.js-plotly-plot .main-svg .cartesianlayer"),
    heatmaps: count(".heatmaplayer .hm image"),
    lines: count(".scatterlayer path.js-line"),
    bars: count(".barlayer .trace.bars .point"),
    stars: count(".scatterlayer .points path.point"),
    sorted: order
  });
  document.body.appendChild(probe);
}, 500); });
</script>"""


def _browser() -> str | None:
    given = os.environ.get("CHROMIUM")
    if given:
        return shutil.which(given)
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _browser()
    if path is None:
        warnings.warn(NO_BROWSER, pytest.PytestWarning, stacklevel=1)
        pytest.skip(NO_BROWSER)
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_html(sample_summary(), sample_visuals(), CONDITIONS, tmp_path_factory.mktemp("report"))


def _run(chromium: str, profile: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [chromium, *FLAGS, f"--user-data-dir={profile}", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def _console(stderr: str) -> list[str]:
    """The page's console messages as Chromium logs them (`INFO:CONSOLE... "text", source: ...`)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_the_page_loads_without_errors_fetches_nothing_and_renders_every_chart(
    chromium: str, report: Path, tmp_path: Path
) -> None:
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), "utf-8")
    run = _run(chromium, tmp_path / "profile", probed.as_uri(), "--virtual-time-budget=15000", "--dump-dom")
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.DOTALL)
    assert found, f"the page never finished loading (exit {run.returncode}):\n{run.stderr[-3000:]}"
    probe: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    console = _console(run.stderr)
    bad = [m for m in console if re.search(r"uncaught|error|violates|failed", m, re.IGNORECASE)]
    assert probe["errors"] == [] and bad == [], (probe["errors"], console)
    assert probe["fetched"] == []  # nothing but the file itself: no script, style, font or image loaded
    # 4 charts: the EVIL strategy's line, the SMA heatmap, the winners' curves, the distributions.
    assert probe["graphs"] == 4 and probe["plotted"] >= 4, probe
    assert probe["heatmaps"] == 1, probe
    assert probe["lines"] >= 1 + 2 * 2 + 1, probe  # the one-axis line; 2 winners' equity and drawdown; hold
    assert probe["bars"] >= 5 and probe["stars"] >= 2, probe  # histogram bins; the winners' stars
    assert probe["sorted"] == ["2", "1"], probe  # sharpe ascending (the #2 row is lowest), then descending


def _near(pixels: np.ndarray, colour: str, tolerance: int = 24) -> int:
    """How many pixels are within `tolerance` of `colour` ("#rrggbb") on each channel."""
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels - target) <= tolerance).all(axis=1).sum())


def test_a_screenshot_shows_the_heatmap_and_the_curves(chromium: str, report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    run = _run(
        chromium,
        tmp_path / "profile",
        report.as_uri(),
        "--window-size=1280,3000",
        "--virtual-time-budget=15000",
        f"--screenshot={shot}",
    )
    assert shot.is_file(), f"no screenshot (exit {run.returncode}):\n{run.stderr[-3000:]}"
    with Image.open(shot) as image:
        assert image.size == (1280, 3000)
        pixels = np.asarray(image.convert("RGB"), dtype=int).reshape(-1, 3)
    colours = np.unique(pixels[:, 0] << 16 | pixels[:, 1] << 8 | pixels[:, 2])
    assert colours.size > 500  # not blank: text, tables, a colour scale, curves
    assert (pixels == 255).all(axis=1).mean() < 0.97
    assert _near(pixels, "#fde725") > 50  # viridis' bright end: the heatmap's best cells and its colour bar
    assert _near(pixels, "#440154") > 50  # viridis' dark end
    assert _near(pixels, "#ff7f0e", tolerance=30) > 50  # the second winner's equity and drawdown lines
    assert _near(pixels, "#d62728", tolerance=30) > 20  # the winners' red stars
