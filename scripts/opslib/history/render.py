"""Markdown of the history queries: the batch list, a batch's report and failures, a top N, the comparison
of two batches (sized for a PR comment)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from tabulate import tabulate

from backtesting_modules.metrics import METRIC_NAMES
from backtesting_modules.pipeline.records import BatchRecord, JobRecord
from backtesting_modules.reports import format_value

from .compute import Comparison, compute_duration, format_param
from .queries import BatchEntry


def report_conditions(summary: Mapping[str, Any], record: BatchRecord, target: str) -> list[tuple[str, str]]:
    """The run's conditions a stored batch still knows (its spec, counts, creation time and duration)."""
    spec = summary.get("spec") or {}
    data = spec.get("data") or {}
    return [
        ("target", target),
        ("data", f"{data.get('source')} ({', '.join(spec.get('symbols', []))}, {data.get('timeframe')})"),
        ("jobs", f"{summary['jobs']['succeeded']} succeeded, {summary['jobs']['failed']} failed"),
        ("created", record.created_at),
        ("duration", render_duration(compute_duration(record))),
    ]


def render_list(entries: Sequence[BatchEntry]) -> str:
    rows = [
        [
            e.batch_id,
            e.name,
            e.created_at[:19].replace("T", " "),
            e.status,
            f"{e.succeeded}/{e.failed}/{e.total_jobs}",
            f"{e.backtests:,}",
            render_duration(e.duration_s),
            render_best(e.best, e.ranking_metric),
        ]
        for e in entries
    ]
    headers = ["batch", "name", "created (UTC)", "status", "jobs ok/failed/total", "backtests", "duration"]
    return tabulate(rows, headers=[*headers, "best"], tablefmt="github", disable_numparse=True)


def render_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def render_best(best: Mapping[str, Any] | None, metric: str) -> str:
    if not best:
        return "–"
    params = ", ".join(f"{k}={format_param(v)}" for k, v in sorted(best.get("params", {}).items()))
    value = format_value(metric, best["metrics"].get(metric))
    return f"{metric} {value}: {best['strategy']} {best['symbol']} {params}".rstrip()


def render_report(
    summary: Mapping[str, Any],
    record: BatchRecord,
    target: str,
    validation: Mapping[str, Any] | None = None,
    search: Mapping[str, Any] | None = None,
) -> str:
    """The batch report run_batch.py writes (its out-of-sample view first for a validated sweep, its search
    section first for a search), with the conditions a stored batch still knows."""
    # opslib.batch.reports imports the charts (matplotlib): only `show` needs it, not every query.
    from ..batch.reports import render_report as render_batch_report  # noqa: PLC0415

    document = dict(validation) if validation is not None else None
    searched = dict(search) if search is not None else None
    return render_batch_report(dict(summary), report_conditions(summary, record, target), document, searched)


def render_validated_top(record: BatchRecord, rows: Sequence[Mapping[str, Any]], metric: str) -> str:
    """The fold winners of a validated sweep ranked by a validation metric, in and out of sample."""
    title = f"Fold winners of batch {record.batch_id} ({record.name}) by {metric}:"
    if not rows:
        return f"{title} no winner has a value for {metric}."
    columns = [metric] + [
        m
        for m in ("is_sharpe", "oos_sharpe", "oos_total_return", "oos_trades", "deflated_sharpe", "pbo")
        if m != metric
    ]
    table = [
        [
            r["position"],
            r["strategy"],
            r["symbol"],
            r["fold"],
            r["rank"],
            ", ".join(f"{k}={format_param(v)}" for k, v in r["params"].items()),
            *[_validation_value(m, r["metrics"].get(m)) for m in columns],
        ]
        for r in rows
    ]
    headers = ["#", "strategy", "symbol", "fold", "rank in fold", "parameters", *columns]
    return f"{title}\n\n" + tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)


def _validation_value(metric: str, value: Any) -> str:
    if value is None:
        return "–"
    if metric in ("deflated_sharpe", "pbo"):
        return f"{value:.0%}"
    return format_value(metric.removeprefix("oos_").removeprefix("is_"), value)


def render_validation_comparison(rows: Sequence[Mapping[str, Any]]) -> str:
    """Batch A's out-of-sample figures beside batch B's, per strategy and symbol."""
    measures = ("oos_sharpe", "walk_forward_efficiency", "pbo", "deflated_sharpe")
    labels = {"oos_sharpe": "OOS Sharpe", "walk_forward_efficiency": "WF eff.", "pbo": "PBO",
              "deflated_sharpe": "deflated Sharpe"}  # fmt: skip
    table = [
        [r["strategy"], r["symbol"], *[_compared(m, r[f"{side}_{m}"]) for side in "ab" for m in measures]]
        for r in rows
    ]
    headers = ["strategy", "symbol", *[f"{side.upper()} {labels[m]}" for side in "ab" for m in measures]]
    return "## Out of sample, side by side\n\n" + tabulate(
        table, headers=headers, tablefmt="github", disable_numparse=True
    )


def _compared(measure: str, value: Any) -> str:
    if measure == "walk_forward_efficiency":
        return f"{value:.2f}" if value is not None else "–"
    return _validation_value(measure, value)


def render_failures(record: BatchRecord, failures: Sequence[JobRecord]) -> str:
    title = f"# Failed jobs of batch {record.batch_id} ({record.name})"
    if not failures:
        return f"{title}\n\nNone: {record.succeeded} of {record.total_jobs} jobs succeeded."
    rows = [
        [
            f.job_id,
            f.strategy or "–",
            ",".join(f.symbols) or "–",
            f.attempts,
            (f.finished_at or "")[:19].replace("T", " "),
            (f.error or "").replace("\n", " ")[:300],
        ]
        for f in failures
    ]
    table = tabulate(
        rows,
        headers=["job", "strategy", "symbols", "attempts", "finished (UTC)", "error"],
        tablefmt="github",
        disable_numparse=True,
    )
    return f"{title}\n\n{len(failures)} of {record.total_jobs} jobs failed.\n\n{table}"


def render_top(
    record: BatchRecord,
    rows: Sequence[Mapping[str, Any]],
    metric: str,
    higher: bool,
    *,
    strategy: str | None = None,
    symbol: str | None = None,
) -> str:
    where = "".join(f", {k} {v}" for k, v in (("strategy", strategy), ("symbol", symbol)) if v)
    if not record.complete:
        where += f", RUNNING: {record.succeeded} of {record.total_jobs} jobs so far"
    backtests = record.backtests
    title = (
        f"Top {len(rows)} of batch {record.batch_id} ({record.name}, {backtests:,} backtests"
        f"{where}) by {metric}, {'higher' if higher else 'lower'} is better:"
    )
    if not rows:
        return f"{title} no result has a value for {metric}."
    others = [m for m in METRIC_NAMES if m != metric and any(m in r["metrics"] for r in rows)]
    table = [
        [
            r["rank"],
            r["strategy"],
            r["symbol"],
            ", ".join(f"{k}={format_param(v)}" for k, v in r["params"].items()),
            format_value(metric, r["metrics"].get(metric)),
            *[format_value(m, r["metrics"].get(m)) for m in others],
        ]
        for r in rows
    ]
    headers = ["#", "strategy", "symbol", "parameters", metric, *others]
    return f"{title}\n\n" + tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)


def render_comparison(a: BatchRecord, b: BatchRecord, comparison: Comparison, n: int) -> str:
    """Markdown for a PR comment: the two batches, counts, the top rows side by side with their moves
    (and how many rows changed rank), the largest changes, and the best added and removed rows."""
    metric, counts = comparison.metric, comparison.counts()
    facts: list[list[Any]] = [
        ["batch", f"`{a.batch_id}`", f"`{b.batch_id}`"],
        ["name", a.name, b.name],
        ["created (UTC)", a.created_at[:19], b.created_at[:19]],
        ["backtests", f"{a.backtests:,}", f"{b.backtests:,}"],
        ["status", a.status, b.status],
        ["failed jobs", a.failed, b.failed],
    ]
    parts = [
        f"## Batch comparison: {a.name} → {b.name}",
        tabulate(facts, headers=["", "A", "B"], tablefmt="github", disable_numparse=True),
        f"Rows matched by strategy, symbol and parameters, compared on **{metric}** "
        f"({'higher' if comparison.higher else 'lower'} is better): **{counts['changed']:,} changed**, "
        f"{counts['same']:,} unchanged, **{counts['added']:,} added** (only in B), "
        f"**{counts['removed']:,} removed** (only in A).",
    ]
    top, moved = comparison.top(n), comparison.moved(n)
    matched = counts["changed"] + counts["same"]
    parts += [
        f"### Top {n} of either batch by {metric}, side by side",
        _side_by_side(top, metric) if not top.empty else "None.",
        f"Rank changed for {len(moved)} of these {len(top)} rows (▲ up, ▼ down, new: only in B, gone: only "
        f"in A); over all matched rows, {comparison.moved_count():,} of {matched:,} changed rank.",
    ]
    sections = [
        (f"Largest changes of {metric}", comparison.changed(n)),
        (f"Best added rows (top {n} by rank in B)", comparison.only("added", n)),
        (f"Best removed rows (top {n} by rank in A)", comparison.only("removed", n)),
    ]
    for title, frame in sections:
        parts += [f"### {title}", _side_by_side(frame, metric) if not frame.empty else "None."]
    return "\n\n".join(parts) + "\n"


def _side_by_side(frame: pd.DataFrame, metric: str) -> str:
    rows = [
        [
            _rank(r["rank_a"]),
            _rank(r["rank_b"]),
            _move(r["rank_a"], r["rank_b"]),
            r["strategy"],
            r["symbol"],
            r["params"],
            format_value(metric, r["value_a"]),
            format_value(metric, r["value_b"]),
            format_value(metric, r["delta"]),
        ]
        for r in frame.to_dict("records")
    ]
    headers = ["rank A", "rank B", "move", "strategy", "symbol", "parameters", "A", "B", "Δ"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _rank(value: Any) -> str:
    return "–" if pd.isna(value) else f"{int(value):,}"


def _move(rank_a: Any, rank_b: Any) -> str:
    if pd.isna(rank_a):
        return "new"
    if pd.isna(rank_b):
        return "gone"
    step = int(rank_a) - int(rank_b)
    return "=" if step == 0 else f"▲{step}" if step > 0 else f"▼{-step}"
