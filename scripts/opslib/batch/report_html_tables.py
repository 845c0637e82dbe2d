"""The HTML report's tables and text (`report_html`): escaped cells that sort by their number, and the
sections drawn from documents rather than charts — a search's best trials per study, a validated sweep's
out-of-sample table, failed jobs, the variants listed apart, the bars. The same numbers as report.md.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from backtesting_modules.reports import format_value

from .search_report import render_search_line, search_headline
from .validation_report import GROUP_HEADERS, render_validation_line, validation_headline


@dataclass(frozen=True)
class Cell:
    """A table cell: its text (escaped when written) and, for a number, the value it sorts by."""

    text: str
    sort: float | None = None
    number: bool = False
    wrap: bool = False  # long text (parameters, an error): may wrap where the rest of the table does not


def wide(text: str) -> Cell:
    return Cell(text, wrap=True)


def num(text: str, value: Any) -> Cell:
    """A number's cell: `text` shown, `value` sorted by (missing values sort last)."""
    known = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    return Cell(text, float(value) if known else None, number=True)


def metric_cell(name: str, value: Any) -> Cell:
    return num(format_value(name, value), None if value is None else float(value))


def _sort_value(value: float | None) -> str:
    if value is None:
        return ""
    return ("Infinity" if value > 0 else "-Infinity") if math.isinf(value) else repr(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, sortable: bool = False) -> str:
    """An HTML table, every text escaped; a cell is a `Cell` or anything shown as `str` (a `sortable`
    table sorts by clicking a header, numbers by their value)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for given in row:
            cell = given if isinstance(given, Cell) else Cell(str(given))
            attributes = ' class="num"' if cell.number else ' class="wrap"' if cell.wrap else ""
            if cell.number:
                attributes += f' data-sort="{_sort_value(cell.sort)}"'
            cells.append(f"<td{attributes}>{escape(cell.text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    kind = ' class="sortable"' if sortable else ""
    rows_html = "".join(body)
    inner = f"<thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody>"
    return f'<div class="scroll"><table{kind}>{inner}</table></div>'


def para(text: str, kind: str = "") -> str:
    return f'<p class="{kind}">{escape(text)}</p>' if kind else f"<p>{escape(text)}</p>"


def section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>\n' + "\n".join(parts) + "\n</section>"


def params_text(params: Any) -> str:
    """`name=value, ...` as in report.md (a whole float shown as an integer)."""
    if isinstance(params, Mapping):
        return ", ".join(f"{k}={_plain(v)}" for k, v in params.items())
    return str(params)


def _plain(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def fixed(value: Any, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if _finite(value) else "–"


def percent(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}%}" if _finite(value) else "–"


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def render_validation_section(document: Mapping[str, Any]) -> str:
    """Per strategy and symbol, best out of sample first: the fold winners' in-sample Sharpe beside their
    stitched out-of-sample results, walk-forward efficiency, PBO and deflated Sharpe (validation_report)."""
    groups = sorted(
        document["groups"],
        key=lambda g: (
            g["out_of_sample"].get("sharpe") if _finite(g["out_of_sample"].get("sharpe")) else -math.inf
        ),
        reverse=True,
    )
    rows = []
    for g in groups:
        ins, oos = g["in_sample"], g["out_of_sample"]
        rows.append(
            [
                g["strategy"],
                g["symbol"],
                num(fixed(ins.get("sharpe")), ins.get("sharpe")),
                num(fixed(oos.get("sharpe")), oos.get("sharpe")),
                num(percent(oos.get("total_return")), oos.get("total_return")),
                num(percent(oos.get("max_drawdown")), oos.get("max_drawdown")),
                num(fixed(g.get("walk_forward_efficiency")), g.get("walk_forward_efficiency")),
                num(percent(g.get("pbo"), 0), g.get("pbo")),
                num(percent(g.get("deflated_sharpe"), 0), g.get("deflated_sharpe")),
            ]
        )
    headers = list(GROUP_HEADERS)
    return section(
        "out-of-sample",
        "Out of sample",
        para(render_validation_line(validation_headline(dict(document))) + ".", "note"),
        para(
            "In-sample figures are the fold winners' on their train windows; out-of-sample figures are the "
            "same parameter sets on the test windows that followed, stitched. Each fold's winner and the PBO "
            "histogram: report.md and validation.json.",
            "hint",
        ),
        table(headers, rows, sortable=True),
    )


def render_search_section(document: Mapping[str, Any]) -> str:
    """Per study its trial counts and best trials (trial, objective, per window, trades, deflated Sharpe,
    parameters), as in search_report."""
    metric = document["metric"]
    parts = [
        para(
            f"Objective: {document['objective']}; trials with fewer than {document['min_trades']} trades "
            "are not ranked."
        ),
        *[para(line, "note") for line in render_search_line(list(search_headline(document))).splitlines()],
    ]
    if not document["out_of_sample"]:
        parts.append(
            para(
                "In sample only (validation: none): the best trials were chosen and scored on the same bars.",
                "note",
            )
        )
    for study in document["studies"]:
        states = study["states"]
        heading = f"{study['strategy']} on {study['symbol']}: {study['method']}, seed {study['seed']}"
        parts += [
            f"<h3>{escape(heading)}</h3>",
            para(
                f"{study['trials_run']:,} of {study['budget']:,} trials run in {study['waves']} waves "
                f"(stopped by {study['stopped']}); {states.get('complete', 0):,} scored, "
                f"{states.get('few_trades', 0):,} with too few trades, {states.get('failed', 0):,} failed."
            ),
        ]
        if not study["best"]:
            parts.append(para("No trial was scored: nothing to rank.", "note"))
            continue
        rows = [
            [
                num(str(t["trial"]), t["trial"]),
                num(_general(t.get("objective")), t.get("objective")),
                ", ".join(_general(v) for v in t.get("folds", [])) or "–",
                num(f"{int(t['trades']):,}" if _finite(t.get("trades")) else "–", t.get("trades")),
                num(
                    percent((t.get("deflated_sharpe") or {}).get("probability")),
                    (t.get("deflated_sharpe") or {}).get("probability"),
                ),
                wide(
                    ", ".join(
                        f"{k}={_general(v, 4) if isinstance(v, float) else v}" for k, v in t["params"].items()
                    )
                ),
            ]
            for t in study["best"]
        ]
        headers = ["trial", metric, f"{metric} per window", "trades", "deflated Sharpe", "parameters"]
        parts.append(table(headers, rows, sortable=True))
    return section("search", "Search", *parts)


def _general(value: Any, digits: int = 3) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:.{digits}g}" if _finite(value) else "–"


def render_failures(failures: Sequence[Mapping[str, Any]]) -> str:
    if not failures:
        return ""
    rows = [
        [
            str(f.get("job_id", "–")),
            str(f.get("strategy", "–")),
            str(f.get("symbol", "–")),
            str(f.get("attempts", "–")),
            wide(str(f.get("error", "")).replace("\n", " ")[:300]),
        ]
        for f in failures
    ]
    return section(
        "failures",
        f"Failed jobs ({len(failures):,})",
        table(["job", "strategy", "symbol", "attempts", "error"], rows),
    )


def render_few_trades(summary: Mapping[str, Any]) -> str:
    """The variants listed apart for having fewer than `ranking.min_trades` trades (never ranked)."""
    few = summary.get("few_trades") or {}
    count, least = int(few.get("count", 0)), summary["ranking"].get("min_trades", 0)
    if not count:
        return ""
    metric = summary["ranking"]["metric"]
    rows = [
        [
            r["strategy"],
            r["symbol"],
            wide(params_text(r["params"])),
            metric_cell("trades", r["metrics"].get("trades")),
            metric_cell(metric, r["metrics"].get(metric)),
        ]
        for r in few.get("top", [])
    ]
    return section(
        "few-trades",
        f"Listed apart: {count:,} variants with fewer than {least} trades",
        para(
            "Too few trades to tell skill from luck (ranking.min_trades): never ranked as winners. "
            "The best of them:",
            "hint",
        ),
        table(["strategy", "symbol", "parameters", "trades", metric], rows, sortable=True),
    )


def render_bars(data: Mapping[str, Any]) -> str:
    """The bars the batch ran on, per symbol: count, range, gaps and identity (as in report.md)."""
    if not data:
        return ""
    window = data.get("window") or [None, None]
    rows = []
    for symbol, facts in sorted(data.get("symbols", {}).items()):
        identity = facts.get("object") or ""
        if facts.get("sha256"):
            identity = f"{identity} sha256 {str(facts['sha256'])[:12]}".strip()
        rows.append(
            [
                symbol,
                num(f"{facts['bars']:,}" if facts.get("bars") is not None else "–", facts.get("bars")),
                f"{_minute(facts.get('first'))} to {_minute(facts.get('last'))}",
                _count(facts.get("missing")),
                _count(facts.get("filled")),
                identity,
            ]
        )
    return section(
        "bars",
        "Bars",
        para(
            f"Source {data.get('source')}, timeframe {data.get('timeframe')}, window "
            f"{window[0] or '(start)'} to {window[1] or '(end)'} (UTC, end excluded), "
            f"gaps: {data.get('gaps')}."
        ),
        table(["symbol", "bars", "range (UTC)", "missing bars", "filled", "bars identity"], rows),
    )


def _count(value: Any) -> Cell:
    return num(f"{int(value):,}" if value is not None else "–", value)


def _minute(stamp: Any) -> str:
    return str(stamp or "")[:16].replace("T", " ")
