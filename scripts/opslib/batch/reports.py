"""A batch's report files (report.md, results.csv, summary.json) and the progress line of a running batch."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from backtesting_modules.metrics import HIGHER_IS_BETTER
from backtesting_modules.pipeline.records import BatchRecord
from backtesting_modules.reports import render_batch

from .charts import Visuals, render_charts
from .report_html import write_html
from .search_report import render_search, search_headline
from .validation_report import render_validation, validation_headline


def progress_line(batch: BatchRecord, started: float) -> str:
    total, done = batch.total_jobs, batch.done
    width = 30
    filled = int(width * done / total) if total else width
    return (
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} jobs, {batch.failed} failed, "
        f"{batch.backtests:,} backtests, {time.monotonic() - started:5.1f} s"
    )


def write_reports(
    summary: dict[str, Any],
    out_dir: Path,
    conditions: Iterable[tuple[str, str]],
    validation: dict[str, Any] | None = None,
    search: dict[str, Any] | None = None,
    visuals: Visuals | None = None,
) -> Path:
    """reports/<batch_id>/report.md, results.csv (the top rows), summary.json and, for a validated sweep,
    validation.json; with `visuals` (`charts.compute_visuals`) the charts' PNGs and the self-contained
    report.html (`report_html`) beside them, and the per-strategy and per-symbol aggregates computed from
    the stored rows (medians included); returns report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = ""
    if visuals is not None:
        summary = {
            **summary,
            "by_strategy": visuals.aggregates.get("strategy") or summary["by_strategy"],
            "by_symbol": visuals.aggregates.get("symbol") or summary["by_symbol"],
        }
        charts = render_charts(visuals, out_dir)
    # For a validated sweep, summary.json also carries the out-of-sample figures per strategy and symbol.
    kept = summary if validation is None else {**summary, "validation": validation_headline(validation)}
    if search is not None:  # a search's summary.json carries its best trials and their deflated Sharpe
        kept = {**kept, "search": search_headline(search)}
        (out_dir / "search.json").write_text(json.dumps(search, indent=2), encoding="utf-8")
    (out_dir / "summary.json").write_text(json.dumps(kept, indent=2), encoding="utf-8")
    if validation is not None:
        (out_dir / "validation.json").write_text(json.dumps(validation, indent=2), encoding="utf-8")
    rows = summary["ranking"]["top"]
    with (out_dir / "results.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        metrics = sorted({m for r in rows for m in r["metrics"]})
        writer.writerow(["strategy", "symbol", "params", *metrics])
        for r in rows:
            writer.writerow(
                [r["strategy"], r["symbol"], json.dumps(r["params"]), *[r["metrics"].get(m) for m in metrics]]
            )
    path = out_dir / "report.md"
    conditions = list(conditions)  # read twice: by the markdown and by the HTML report
    text = render_report(summary, conditions, validation, search)
    if visuals is not None:  # the same numbers, interactive, one self-contained file
        write_html(summary, visuals, conditions, out_dir, validation=validation, search=search)
    if charts:  # after the ranking, before the aggregates
        head, sep, rest = text.partition("\n## By ")
        text = head.rstrip("\n") + "\n\n" + charts + ("\n## By " + rest if sep else "")
    path.write_text(text, encoding="utf-8")
    return path


def render_report(
    summary: dict[str, Any],
    conditions: Iterable[tuple[str, str]],
    validation: dict[str, Any] | None = None,
    search: dict[str, Any] | None = None,
) -> str:
    """The markdown report of a completed batch from its summary: for a validated sweep first the
    out-of-sample view (`validation_report`), for a search first its section (`search_report`), then the
    best rows by the ranking metric (in sample), per-strategy and per-symbol aggregates, failed jobs, the
    bars, and the run's conditions."""
    text = _render_in_sample(summary, conditions, validated=validation is not None)
    if validation is not None:
        head, sep, rest = text.partition("\n## ")
        text = head + "\n" + render_validation(validation) + sep + rest
    if search is not None:
        head, sep, rest = text.partition("\n## ")
        text = head + "\n" + render_search(search) + sep + rest
    return text


def _render_in_sample(
    summary: dict[str, Any], conditions: Iterable[tuple[str, str]], *, validated: bool
) -> str:
    rows = summary["ranking"]["top"]
    metric = summary["ranking"]["metric"]
    frame = pd.DataFrame(
        [
            {"strategy": r["strategy"], "symbol": r["symbol"], "params": r["params"], **r["metrics"]}
            for r in rows
        ]
    )
    frame = frame.astype({c: float for c in frame.columns if c not in ("strategy", "symbol", "params")})
    jobs = summary["jobs"]
    conditions = [*conditions, ("jobs", render_job_counts(jobs))] if "reused" in jobs else list(conditions)
    text = render_batch(
        frame if not frame.empty else pd.DataFrame(columns=["strategy", "symbol", "params", metric]),
        title=f"Batch {summary['name']} ({summary['batch_id']})",
        ranking_label="in sample: the train windows, not validated" if validated else None,
        rank=metric,
        top=len(rows),
        higher_is_better=HIGHER_IS_BETTER.get(metric, True),
        conditions=_unique(conditions),
        failures=summary["failures"],
        backtests=int(summary["backtests"]),
        aggregates={"strategy": summary["by_strategy"], "symbol": summary["by_symbol"]},
    )
    apart = render_few_trades(summary)
    if apart:
        text = text.rstrip("\n") + "\n\n" + apart + "\n"
    data = summary.get("data")
    return text if not data else text.rstrip("\n") + "\n\n" + render_bars(data) + "\n"


def render_few_trades(summary: dict[str, Any]) -> str:
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
            ", ".join(f"{k}={v}" for k, v in r["params"].items()),
            _count(r["metrics"].get("trades")),
            f"{r['metrics'][metric]:.3f}" if r["metrics"].get(metric) is not None else "–",
        ]
        for r in few.get("top", [])
    ]
    table = tabulate(rows, headers=["strategy", "symbol", "parameters", "trades", metric], tablefmt="github")
    return (
        f"## Listed apart: {count:,} variants with fewer than {least} trades\n\n"
        "Too few trades to tell skill from luck (`ranking.min_trades`): never ranked as winners. "
        f"The best of them by {metric}:\n\n{table}"
    )


def render_job_counts(jobs: dict[str, Any]) -> str:
    reused = int(jobs.get("reused", 0))
    ran = f"{jobs['succeeded']} succeeded" + (f" ({reused} reused from earlier batches)" if reused else "")
    return f"{ran}, {jobs['failed']} failed"


def _unique(conditions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The conditions, the last value of a repeated name winning, in first-seen order."""
    merged: dict[str, str] = {}
    for name, value in conditions:
        merged[name] = value
    return list(merged.items())


def render_bars(data: dict[str, Any]) -> str:
    """The bars the batch ran on: per symbol, their identity (sha256 or S3 object and ETag), range, window
    and what the gap policy found and did."""
    window = data.get("window") or [None, None]
    lines = [
        "## Bars",
        "",
        f"Source {data.get('source')}, timeframe {data.get('timeframe')}, window "
        f"{window[0] or '(start)'} to {window[1] or '(end)'} (UTC, end excluded), gaps: {data.get('gaps')}.",
        "",
    ]
    rows = []
    for symbol, facts in sorted(data.get("symbols", {}).items()):
        identity = facts.get("object") or ""
        if facts.get("sha256"):
            identity = f"{identity} sha256 {str(facts['sha256'])[:12]}".strip()
        rows.append(
            [
                symbol,
                f"{facts['bars']:,}" if facts.get("bars") is not None else "–",
                f"{_minute(facts.get('first'))} to {_minute(facts.get('last'))}",
                _count(facts.get("missing")),
                _count(facts.get("filled")),
                identity,
            ]
        )
    headers = ["symbol", "bars", "range (UTC)", "missing bars", "filled", "bars identity"]
    lines.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    return "\n".join(lines)


def _count(value: Any) -> str:
    return f"{int(value):,}" if value is not None else "–"


def _minute(stamp: Any) -> str:
    return str(stamp or "")[:16].replace("T", " ")
