"""A batch's self-contained HTML report, reports/<batch>/report.html (docs/reports.md): the same numbers as
report.md, interactive where it helps — hover values on the heatmaps and curves (Plotly), a top table sorted
by clicking a header (a few lines of inline JavaScript). plotly.js is inlined once and a Content Security
Policy forbids every fetch: the page opens offline from the artifact and makes no network request.
Driver-side only, never in the Lambda layer.

Every text put into the page is HTML-escaped; a chart that cannot be drawn is said in words.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from backtesting_modules.metrics import HIGHER_IS_BETTER

# The markdown top table's columns (render_batch), so both reports show the same numbers.
from backtesting_modules.reports import _BENCHMARK, _BENCHMARK_HEADERS, _HEADLINE

from .charts import Visuals, group_grids
from .report_html_figures import (
    curves_figure,
    distributions_figure,
    figure_html,
    grid_best,
    grid_figure,
    grid_title,
    plotly_js,
    plotly_js_version,
)
from .report_html_tables import (
    metric_cell,
    num,
    para,
    params_text,
    render_bars,
    render_failures,
    render_few_trades,
    render_search_section,
    render_validation_section,
    section,
    table,
    wide,
)
from .report_sessions import sessions_html

FILE_NAME = "report.html"
# No fetch of any kind (scripts, styles, fonts, images, connections): only what the page carries inline.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)
STYLE = """
body { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; margin: 1.5rem auto; max-width: 1400px;
       padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.5rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; } h3 { margin-bottom: .3rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .85rem; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top;
         white-space: nowrap; }
.scroll { overflow-x: auto; }
td.wrap { white-space: normal; min-width: 12em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
thead th { background: #f3f5f8; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #aaa; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; color: #222; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; color: #222; }
.panels { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: .5rem 1rem; }
.panel p, p.hint, footer { font-size: .85rem; color: #555; margin: .2rem 0; }
p.note { background: #fff8e1; border-left: 4px solid #ffbf00; padding: .4rem .6rem; }
nav a { margin-right: .8rem; }
"""
# Click (or Enter on) a header: sort by that column, again to reverse; numbers by their `data-sort` value,
# missing values last either way.
SORT_JS = """
(function () {
  function key(cell) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { return cell.textContent; }
    return raw === "" ? null : Number(raw);
  }
  function sortBy(table, th, column) {
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[column]), y = key(b.cells[column]);
      if (x === y) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var numbers = typeof x === "number" && typeof y === "number";
      var order = numbers ? x - y : String(x).localeCompare(String(y));
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.tabIndex = 0;
      th.title = "sort by " + th.textContent;
      th.addEventListener("click", function () { sortBy(table, th, column); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, th, column); }
      });
    });
  });
})();
"""


def render_html(
    summary: dict[str, Any],
    visuals: Visuals,
    conditions: Iterable[tuple[str, str]],
    *,
    validation: dict[str, Any] | None = None,
    search: dict[str, Any] | None = None,
) -> str:
    """The page (see the module docstring): title and conditions, a search's best trials, a validated
    sweep's out-of-sample table, the sortable top table, the heatmaps (a line for one axis, words where
    there is no chart), the winners' curves, the distributions, the aggregates, failed jobs and bars."""
    started = time.perf_counter()
    metric = summary["ranking"]["metric"]
    aggregates = {
        "strategy": visuals.aggregates.get("strategy") or summary["by_strategy"],
        "symbol": visuals.aggregates.get("symbol") or summary["by_symbol"],
    }
    ids = (f"chart-{n}" for n in itertools.count(1))
    sections = [
        render_search_section(search) if search is not None else "",
        render_validation_section(validation) if validation is not None else "",
        render_top(summary, validated=validation is not None),
        render_grids(visuals, ids),
        render_curves(visuals, ids),
        render_distributions(visuals, ids),
        sessions_html(visuals),
        render_aggregates(aggregates, metric),
        render_failures(summary.get("failures") or []),
        render_few_trades(summary),
        render_bars(summary.get("data") or {}),
    ]
    body = "\n".join(s for s in sections if s)
    title = f"Batch {summary['name']} ({summary['batch_id']})"
    took = time.perf_counter() - started
    return _page(title, _header(title, summary, conditions, body), body, _footer(visuals, took))


def write_html(
    summary: dict[str, Any],
    visuals: Visuals,
    conditions: Iterable[tuple[str, str]],
    out_dir: Path,
    *,
    validation: dict[str, Any] | None = None,
    search: dict[str, Any] | None = None,
) -> Path:
    """Write `out_dir`/report.html (`render_html`) and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILE_NAME
    text = render_html(summary, visuals, conditions, validation=validation, search=search)
    path.write_text(text, encoding="utf-8")
    return path


def _page(title: str, header: str, body: str, footer: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n"
        f"<script>{plotly_js()}</script>\n</head>\n<body>\n{header}\n{body}\n{footer}\n"
        f"<script>{SORT_JS}</script>\n</body>\n</html>\n"
    )


def _conditions(summary: Mapping[str, Any], conditions: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """As in report.md: the job counts added where the summary has them, the last of a repeated name kept."""
    listed = list(conditions)
    jobs = summary["jobs"]
    if "reused" in jobs:
        reused = int(jobs.get("reused", 0))
        ran = f"{jobs['succeeded']} succeeded" + (
            f" ({reused} reused from earlier batches)" if reused else ""
        )
        listed.append(("jobs", f"{ran}, {jobs['failed']} failed"))
    return list(dict(listed).items())


def _header(title: str, summary: dict[str, Any], conditions: Iterable[tuple[str, str]], body: str) -> str:
    metric = summary["ranking"]["metric"]
    higher = HIGHER_IS_BETTER.get(metric, True)
    failed = len(summary.get("failures") or [])
    anchors = [
        (a, label)
        for a, label in (
            ("search", "Search"), ("out-of-sample", "Out of sample"), ("top", "Top"), ("grids", "Grids"),
            ("curves", "Curves"), ("distributions", "Distributions"), ("by-strategy", "By strategy"),
            ("failures", "Failed jobs"), ("bars", "Bars"),
        )
        if f'id="{a}"' in body
    ]  # fmt: skip
    nav = "".join(f'<a href="#{a}">{escape(label)}</a>' for a, label in anchors)
    return "\n".join(
        [
            f"<header><h1>{escape(title)}</h1>",
            table(["batch", ""], _conditions(summary, conditions)),
            para(
                f"{int(summary['backtests']):,} backtests, {failed:,} failed jobs; ranked by {metric} "
                f"({'higher' if higher else 'lower'} is better)."
            ),
            para(
                "Hover a chart for its values (drag to zoom, double-click to reset); click a table's header "
                "to sort it. This page carries everything it shows and opens offline.",
                "hint",
            ),
            f"<nav>{nav}</nav></header>",
        ]
    )


def _footer(visuals: Visuals, took: float) -> str:
    return (
        f"<footer><p>Charts from {visuals.rows:,} stored rows ({visuals.seconds:.2f} s to compute, "
        f"{took:.2f} s to draw); plotly.js {escape(plotly_js_version())} inlined ({len(plotly_js()):,} "
        "bytes), no network request.</p></footer>"
    )


def render_top(summary: dict[str, Any], *, validated: bool) -> str:
    """The summary's top rows with the markdown's columns: the ranking metric, six headline metrics and,
    where the rows have it, buy and hold of the same bars; sortable, `#` restores the ranking."""
    rows = summary["ranking"]["top"]
    metric = summary["ranking"]["metric"]
    if not rows:
        return section("top", f"Top by {metric}", para("No ranked row: nothing to list.", "note"))
    present = {m for r in rows for m in r["metrics"]}
    metrics = [m for m in _HEADLINE if m in present and m != metric][:6]
    if any(r["metrics"].get("benchmark_return") is not None for r in rows):
        metrics += [m for m in _BENCHMARK if m in present and m != metric]
    headers = [
        "#",
        "strategy",
        "symbol",
        "parameters",
        metric,
        *[_BENCHMARK_HEADERS.get(m, m) for m in metrics],
    ]
    body = [
        [
            num(str(rank), rank),
            r["strategy"],
            r["symbol"],
            wide(params_text(r["params"])),
            *[metric_cell(m, r["metrics"].get(m)) for m in [metric, *metrics]],
        ]
        for rank, r in enumerate(rows, start=1)
    ]
    label = " (in sample: the train windows, not validated)" if validated else ""
    return section("top", f"Top {len(rows)} by {metric}{label}", table(headers, body, sortable=True))


def render_grids(visuals: Visuals, ids: Iterator[str]) -> str:
    """Per strategy, a panel per symbol and pair of axes: a heatmap (a line for one axis) with the winner
    starred; a (strategy, symbol) without a chart is said in words, with why."""
    by_strategy: dict[str, list[str]] = {}
    for (strategy, symbol), grids in group_grids(visuals.grids).items():
        by_strategy.setdefault(strategy, []).extend(
            f'<div class="panel"><p><b>{escape(symbol)}, {escape(grid_title(grid))}</b>: '
            f"{escape(grid_best(grid, visuals.metric))}</p>"
            f"{figure_html(grid_figure(grid, visuals.metric, visuals.higher), next(ids))}</div>"
            for grid in grids
        )
    notes: dict[str, list[str]] = {}
    for note in visuals.notes:
        notes.setdefault(note.strategy, []).append(
            para(f"{note.strategy} on {note.symbol}: {note.why}.", "note")
        )
    parts = [
        f"<h3>{escape(strategy)}</h3>\n"
        + (f'<div class="panels">{"".join(by_strategy[strategy])}</div>' if strategy in by_strategy else "")
        + "".join(notes.get(strategy, []))
        for strategy in sorted(by_strategy.keys() | notes.keys())
    ]
    if not parts:
        parts.append(para("No stored row has a value to chart.", "note"))
    intro = para(
        f"{visuals.metric} over each grid: every cell is the best variant with those two values (over the "
        "other axes, if any); the red star is the winner. Hover a cell for its values.",
        "hint",
    )
    return section("grids", f"{visuals.metric} over the grids", intro, *parts)


def render_curves(visuals: Visuals, ids: Iterator[str]) -> str:
    if not visuals.curves:
        return section(
            "curves", "Winners' curves", para("No winner could be run again (no ranked row).", "note")
        )
    windows = getattr(visuals, "test_windows", None) or []
    intro = para(
        f"The top {len(visuals.curves)} run again on the batch's bars: equity as growth of 1 beside buy and "
        "hold of the same bars and fees (dashed), drawdowns below"
        + ("; the shaded span is the out-of-sample test window the winners never saw." if windows else "."),
        "hint",
    )
    figure = curves_figure(visuals.curves, windows)
    return section("curves", "Winners' curves", intro, figure_html(figure, next(ids)))


def render_distributions(visuals: Visuals, ids: Iterator[str]) -> str:
    figure = distributions_figure(visuals.distributions, visuals.metric)
    empty = [name for name, values in visuals.distributions.items() if not len(values)]
    parts = [figure_html(figure, next(ids))] if figure is not None else []
    if empty:
        parts.append(para(f"No variant of {', '.join(empty)} has a {visuals.metric} (no trades).", "note"))
    if not parts:
        return ""
    intro = para(
        f"Distribution of {visuals.metric} per strategy over every stored row; the red line is the median.",
        "hint",
    )
    return section("distributions", f"Distribution of {visuals.metric}", intro, *parts)


def render_aggregates(aggregates: Mapping[str, Sequence[Mapping[str, Any]]], metric: str) -> str:
    """Per strategy and per symbol: backtests, best, median and mean of the metric and the mean total
    return, a column only where a row has it (as in report.md)."""
    parts = []
    for key in ("strategy", "symbol"):
        rows = aggregates.get(key) or []
        fields = [(f"{w}_{metric}", f"{w} {metric}", metric) for w in ("best", "median", "mean")]
        fields += [("mean_total_return", "mean total_return", "total_return")]
        fields = [f for f in fields if any(r.get(f[0]) is not None for r in rows)]
        body = [
            [
                str(r[key]),
                num(f"{int(r['backtests']):,}", r["backtests"]),
                *(metric_cell(m, r.get(n)) for n, _, m in fields),
            ]
            for r in rows
        ]
        headers = [key, "backtests", *(h for _, h, _ in fields)]
        parts.append(f'<h3 id="by-{key}">By {key}</h3>\n{table(headers, body, sortable=True)}')
    return section("aggregates", "Aggregates", *parts)
