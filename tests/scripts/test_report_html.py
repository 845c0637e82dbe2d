"""The batch's HTML report (opslib.batch.report_html, docs/reports.md): self-contained (plotly.js inlined
once, nothing fetched), the markdown's numbers, a line for a one-axis grid, words where there is no chart,
every text escaped. Fast: hand-made rows through report_rows' own computations, no pipeline. The page in a
real browser: tests/browser/.
"""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtesting_modules.reports import format_value
from opslib.batch.charts import Visuals
from opslib.batch.report_html import render_html, write_html
from opslib.batch.report_html_figures import CURVE_POINTS, curves_figure, grid_figure, plotly_js
from opslib.batch.report_rows import Curve, compute_aggregates, compute_distributions, compute_grids

EVIL = "Evil<img src=x onerror=alert(1)>&Co"  # a strategy name that is also markup
EVIL_PARAM = 'len<i>"'  # and a parameter name
BEST = 2.345678  # the SMA grid's best sharpe, at fast=10, slow=30


def sample_rows() -> pd.DataFrame:
    """SMA_Crossover: two axes (a heatmap); EVIL: one axis (a line); NoTrades: no sharpe at all (a note)."""
    rows: list[dict[str, Any]] = []
    for fast in (5, 10, 15):
        for slow in (20, 30, 40):
            sharpe = BEST if (fast, slow) == (10, 30) else round(0.1 * fast - 0.01 * slow, 4)
            rows.append({"strategy": "SMA_Crossover", "symbol": "KRW-BTC", "param.fast": fast,
                         "param.slow": slow, "sharpe": sharpe, "total_return": sharpe / 10})  # fmt: skip
    for length in (3, 6, 9, 12):
        rows.append({"strategy": EVIL, "symbol": "KRW-ETH", f"param.{EVIL_PARAM}": length,
                     "sharpe": 1.0 - abs(length - 6) * 0.25, "total_return": 0.01})  # fmt: skip
    for n in (1, 2):
        rows.append({"strategy": "NoTrades", "symbol": "KRW-XRP", "param.n": n, "sharpe": math.nan,
                     "total_return": 0.0})  # fmt: skip
    return pd.DataFrame(rows)


def sample_curves(bars: int = 3000) -> list[Curve]:
    index = pd.date_range("2024-01-01", periods=bars, freq="1h")
    random = np.random.default_rng(7)
    curves = []
    for rank, (params, drift) in enumerate(
        (({"fast": 10, "slow": 30}, 4e-5), ({"fast": 5, "slow": 20}, 2e-5)), 1
    ):
        equity = np.cumprod(1 + random.normal(drift, 2e-3, bars))
        drawdown = equity / np.maximum.accumulate(equity) - 1.0
        hold = np.cumprod(1 + random.normal(5e-5, 4e-3, bars))
        curves.append(Curve(f"#{rank} SMA_Crossover KRW-BTC", "SMA_Crossover", "KRW-BTC", params, index,
                            equity, drawdown, hold, {"sharpe": 1.0}))  # fmt: skip
    return curves


def sample_visuals() -> Visuals:
    rows = sample_rows()
    grids, notes = compute_grids(rows, "sharpe", True)
    visuals = Visuals("sharpe", True, grids, notes, compute_distributions(rows, "sharpe"), rows=len(rows))
    visuals.curves = sample_curves()
    visuals.aggregates = {
        key: compute_aggregates(rows, key, "sharpe", True) for key in ("strategy", "symbol")
    }
    return visuals


def _top_row(strategy: str, symbol: str, params: dict[str, Any], sharpe: float) -> dict[str, Any]:
    metrics = {"sharpe": sharpe, "total_return": sharpe / 10, "trades": 42.0, "max_drawdown": -0.05,
               "benchmark_return": 0.8, "excess_return": sharpe / 10 - 0.8}  # fmt: skip
    return {"strategy": strategy, "symbol": symbol, "params": params, "metrics": metrics}


def sample_summary() -> dict[str, Any]:
    top = [
        _top_row("SMA_Crossover", "KRW-BTC", {"fast": 10, "slow": 30}, BEST),
        _top_row(EVIL, "KRW-ETH", {EVIL_PARAM: 6, "mode": "<b>bold</b>"}, 1.0),
        _top_row("SMA_Crossover", "KRW-BTC", {"fast": 15, "slow": 20}, 1.3),
    ]
    return {
        "name": "html <demo>",
        "batch_id": "b-0123456789abcdef",
        "backtests": 15,
        "ranking": {"metric": "sharpe", "min_trades": 30, "top": top},
        "jobs": {"total": 3, "succeeded": 3, "failed": 0, "reused": 0},
        "by_strategy": [],
        "by_symbol": [],
        "failures": [],
        "few_trades": {"count": 0},
        "data": {"source": "synthetic", "timeframe": "1h", "gaps": "keep", "symbols": {
            "KRW-BTC": {"bars": 3000, "first": "2024-01-01T00:00:00+00:00",
                        "last": "2024-05-05T23:00:00+00:00", "missing": 0, "filled": 0,
                        "sha256": "ab" * 32}}},
    }  # fmt: skip


CONDITIONS = [("spec", "batches/<demo>.yaml"), ("target", "local")]


def sample_page() -> str:
    return render_html(sample_summary(), sample_visuals(), CONDITIONS)


class _Links(HTMLParser):
    """Every URL-bearing attribute of every element (script and style bodies are text, not elements)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in {"src", "href", "action", "srcset", "poster", "data", "formaction"}:
                self.urls.append((tag, name, value or ""))


@pytest.fixture(scope="module")
def page() -> str:
    return sample_page()


def test_the_page_fetches_nothing(page: str) -> None:
    links = _Links()
    links.feed(page)
    assert "link" not in links.tags and "iframe" not in links.tags and "img" not in links.tags
    assert all(value.startswith("#") for _, _, value in links.urls), links.urls  # in-page anchors only
    assert "script" in links.tags
    # A Content Security Policy forbids any fetch the scripts might still attempt (MathJax, fonts, a CDN).
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    own = page.replace(plotly_js(), "")
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", own, re.IGNORECASE)
    assert "cdn.plot.ly" not in own and "mathjax" not in own.lower() and "url(" not in own


def test_plotly_js_is_inlined_exactly_once(page: str) -> None:
    assert len(plotly_js()) > 1_000_000
    assert page.count(plotly_js()) == 1
    assert page.count("* plotly.js v") == 1
    # One Plotly.newPlot per chart: 1 heatmap, 1 line, the curves, the distributions.
    assert page.count("Plotly.newPlot(") == 4


def test_the_heatmap_shows_the_grid_numbers_and_the_winner(page: str) -> None:
    assert page.count('"type":"heatmap"') == 1
    assert f"best sharpe {format_value('sharpe', BEST)} at fast=10, slow=30" in page
    assert repr(BEST) in page  # the cell's value in the figure's data (hover), not only rounded
    visuals = sample_visuals()
    heat = grid_figure(next(g for g in visuals.grids if g.y is not None), "sharpe", True)
    assert list(heat.data[0].x) == ["5", "10", "15"] and list(heat.data[0].y) == ["20", "30", "40"]
    assert heat.data[0].z[1][1] == BEST  # row slow=30, column fast=10
    assert heat.data[1].x == ("10",) and heat.data[1].y == ("30",)  # the winner's star


def test_a_one_axis_grid_is_a_line(page: str) -> None:
    visuals = sample_visuals()
    line = next(g for g in visuals.grids if g.y is None)
    figure = grid_figure(line, "sharpe", True)
    assert [t.type for t in figure.data] == ["scatter", "scatter"]
    assert figure.data[0].mode == "lines+markers" and list(figure.data[0].x) == [3.0, 6.0, 9.0, 12.0]
    assert figure.data[1].x == (6.0,) and figure.data[1].y == (1.0,)  # the winner
    assert "(one axis: a line)" in page


def test_a_strategy_without_trades_is_said_in_words_not_charted(page: str) -> None:
    assert (
        '<h3>NoTrades</h3>\n<p class="note">NoTrades on KRW-XRP: no variant has a sharpe (no trades): '
        "nothing to chart.</p>"
    ) in page
    assert "No variant of NoTrades has a sharpe (no trades)." in page  # nor an empty histogram
    assert "KRW-XRP, " not in page  # no panel was made for it


def test_every_text_is_escaped(page: str) -> None:
    assert EVIL not in page and "<img" not in page and "<b>bold</b>" not in page and "<i>" not in page
    assert "Evil&lt;img src=x onerror=alert(1)&gt;&amp;Co" in page  # in the tables and headings
    assert "len&lt;i&gt;&quot;=6, mode=&lt;b&gt;bold&lt;/b&gt;" in page  # the parameters
    assert "<title>Batch html &lt;demo&gt; (b-0123456789abcdef)</title>" in page
    assert "batches/&lt;demo&gt;.yaml" in page
    # In the figures' JSON Plotly writes < > / as \u003c \u003e \u002f; the text itself is escaped too,
    # since plotly.js reads labels as a small HTML dialect.
    figures = "".join(page.split("Plotly.newPlot(")[1:])
    assert "Evil&lt;img" in figures and "\\u003cimg" not in figures


def test_the_top_table_sorts_by_number_and_keeps_the_markdown_columns(page: str) -> None:
    top = page[page.index('<section id="top">') : page.index("</section>", page.index('<section id="top">'))]
    assert '<table class="sortable">' in top
    headers = re.findall(r"<th>(.*?)</th>", top)
    assert headers == ["#", "strategy", "symbol", "parameters", "sharpe", "total_return", "max_drawdown",
                       "trades", "buy and hold", "excess"]  # fmt: skip
    assert f'data-sort="{BEST!r}">{format_value("sharpe", BEST)}</td>' in top
    assert ">23.46%</td>" in top  # total_return as report.md prints it


def test_aggregates_show_only_columns_with_values() -> None:
    visuals = sample_visuals()
    for entry in visuals.aggregates["symbol"]:
        entry["mean_total_return"] = None
    page = render_html(sample_summary(), visuals, CONDITIONS)
    by_symbol = page[page.index('id="by-symbol"') :]
    assert "mean total_return" not in by_symbol.split("</table>")[0]
    assert "best sharpe" in by_symbol.split("</table>")[0]


def test_curves_are_thinned_and_keep_their_deepest_drawdown() -> None:
    curves = sample_curves(bars=5000)
    windows = [(pd.Timestamp("2024-05-01"), pd.Timestamp("2024-06-01"))]
    figure = curves_figure(curves, windows)
    equity, drawdown, hold = figure.data[0], figure.data[1], figure.data[2]
    assert len(equity.x) <= CURVE_POINTS + 1 and equity.x[0] == "2024-01-01 00:00"
    assert equity.x[-1] == curves[0].index[-1].strftime("%Y-%m-%d %H:%M")
    assert min(drawdown.y) == pytest.approx(curves[0].drawdown.min() * 100, abs=1e-4)
    assert hold.name == "buy and hold KRW-BTC" and len(figure.data) == 5  # buy and hold drawn once
    assert len(figure.layout.shapes) == 2 and len(figure.layout.annotations) == 1  # the test window, shaded


def test_validation_and_search_sections_carry_their_numbers() -> None:
    validation = {
        "test_batch_id": "b-test",
        "folds": [{"number": 1}],
        "groups": [
            {"strategy": "SMA_Crossover", "symbol": "KRW-BTC", "trials": 9, "in_sample": {"sharpe": 2.15},
             "out_of_sample": {"sharpe": 2.09, "total_return": 0.039, "max_drawdown": -0.034},
             "walk_forward_efficiency": 1.69, "pbo": 0.24, "deflated_sharpe": 0.64},
            {"strategy": EVIL, "symbol": "KRW-ETH", "trials": 4, "in_sample": {"sharpe": -0.2},
             "out_of_sample": {"sharpe": None}, "walk_forward_efficiency": None, "pbo": None,
             "deflated_sharpe": None},
        ],
    }  # fmt: skip
    search = {
        "metric": "sharpe", "objective": "sharpe on all the bars, in sample", "out_of_sample": False,
        "min_trades": 30,
        "studies": [{"strategy": "SMA_Crossover", "symbol": "KRW-BTC", "method": "tpe", "seed": 1,
                     "trials_run": 40, "budget": 50, "waves": 4, "stopped": "patience",
                     "states": {"complete": 38},
                     "best": [{"trial": 17, "objective": 1.23456, "folds": [], "trades": 55,
                               "deflated_sharpe": {"probability": 0.912}, "params": {"fast": 9.87654}}]}],
    }  # fmt: skip
    page = render_html(sample_summary(), sample_visuals(), CONDITIONS, validation=validation, search=search)
    oos = page[page.index('<section id="out-of-sample">') :]
    assert all(f">{text}</td>" in oos for text in ("2.15", "2.09", "3.9%", "-3.4%", "1.69", "24%", "64%"))
    assert oos.index("SMA_Crossover") < oos.index("Evil&lt;img")  # best out of sample first
    found = page[page.index('<section id="search">') :]
    assert all(f">{text}</td>" in found for text in ("17", "1.23", "55", "91.2%", "fast=9.877"))
    assert "40 of 50 trials run in 4 waves" in found and "In sample only" in found


def test_a_batch_with_nothing_to_chart_says_so() -> None:
    summary = {**sample_summary(), "ranking": {"metric": "sharpe", "top": []}, "data": {}}
    page = render_html(summary, Visuals("sharpe", True), CONDITIONS)
    assert "Plotly.newPlot(" not in page and page.count(plotly_js()) == 1
    assert "No ranked row: nothing to list." in page and "No stored row has a value to chart." in page
    assert "No winner could be run again" in page and 'id="distributions"' not in page


def test_write_html_writes_report_html(tmp_path: Path) -> None:
    path = write_html(sample_summary(), sample_visuals(), CONDITIONS, tmp_path / "b-1")
    assert path == tmp_path / "b-1" / "report.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert path.stat().st_size < len(plotly_js()) + 400_000  # the page's own part stays small
