"""Markdown for the timezone analysis: hour-by-metric tables, regions, conditions, weekdays, the best and
worst hours, a strategy × hour heatmap and a mermaid chart of average return by entry hour.

Pure functions: analysis in, markdown out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd
from tabulate import tabulate

from ..reports import format_value, render_backtest
from .backtester import TimezoneBacktestResult
from .trade_analysis import TradeSessionAnalysis

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def render_group_table(table: pd.DataFrame, key: str, labels: Mapping[object, str] | None = None) -> str:
    """One row per group (hour, region, condition, weekday); Kelly shown only with enough trades."""
    rows = []
    for group, row in table.iterrows():
        kelly = format_value("kelly_fraction", row["kelly_fraction"]) if row["sufficient"] else "insufficient"
        rows.append(
            [
                labels.get(group, str(group)) if labels else str(group),
                f"{int(row['trades'])}",
                format_value("win_rate", row["win_rate"]),
                format_value("avg_return", row["avg_return"]),
                format_value("total_pnl", row["total_pnl"]),
                format_value("profit_factor", row["profit_factor"]),
                kelly,
            ]
        )
    headers = [key, "trades", "win rate", "avg return", "total P&L", "profit factor", "Kelly"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def render_hour_chart(by_hour: pd.DataFrame, zone: str) -> str:
    """A mermaid bar chart of the average trade return (in %) by entry hour."""
    values = [0.0 if math.isnan(v) else round(100 * float(v), 3) for v in by_hour["avg_return"]]
    low, high = min([*values, 0.0]), max([*values, 0.0])
    pad = (high - low) * 0.1 or 1.0
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            f'    title "Average trade return (%) by entry hour ({zone})"',
            f"    x-axis [{', '.join(f'{h:02d}' for h in range(24))}]",
            f'    y-axis "avg return %" {low - pad:.2f} --> {high + pad:.2f}',
            f"    bar [{', '.join(f'{v:g}' for v in values)}]",
            "```",
        ]
    )


def render_trade_sessions(analysis: TradeSessionAnalysis) -> str:
    """Every table of a trade-session analysis, with the hour tables in the chosen zone and in UTC."""
    best = ", ".join(f"{h:02d} h" for h in analysis.best_hours.index) or "– (too few trades per hour)"
    worst = ", ".join(f"{h:02d} h" for h in analysis.worst_hours.index) or "– (too few trades per hour)"
    correlation = analysis.activity_correlation
    corr_text = "–" if math.isnan(correlation) else f"{correlation:+.3f}"
    return "\n\n".join(
        [
            f"## Performance by entry hour ({analysis.zone})",
            f"Best hours: {best}. Worst hours: {worst}. Groups with fewer than {analysis.min_trades} trades "
            f"are marked insufficient. Correlation of activity score at entry with return: {corr_text}.",
            render_hour_chart(analysis.by_hour_local, analysis.zone),
            render_group_table(analysis.by_hour_local, "hour"),
            "## Performance by entry hour (UTC)",
            render_group_table(analysis.by_hour_utc, "hour"),
            "## By dominant region at entry",
            render_group_table(analysis.by_region, "region"),
            "## By market condition at entry",
            render_group_table(analysis.by_condition, "condition"),
            f"## By weekday ({analysis.zone})",
            render_group_table(analysis.by_weekday, "weekday", dict(enumerate(_WEEKDAYS))),
        ]
    )


def render_comparison(table: pd.DataFrame) -> str:
    """Gated against ungated: one row per metric with the difference."""
    rows = [
        [
            row["metric"],
            format_value(row["metric"], row["ungated"]),
            format_value(row["metric"], row["gated"]),
            format_value(row["metric"], row["difference"]),
        ]
        for _, row in table.iterrows()
    ]
    return tabulate(
        rows, headers=["metric", "ungated", "gated", "difference"], tablefmt="github", disable_numparse=True
    )


def render_timezone(result: TimezoneBacktestResult, comparison: pd.DataFrame | None = None) -> str:
    """The timezone report: the backtest report, the session options, the analysis tables, the comparison."""
    opts = result.options
    parts = [
        render_backtest(result.result, title=f"Timezone backtest: {result.result.strategy}").rstrip(),
        "## Session rules",
        tabulate(
            [
                ("entry gate", result.gate.describe()),
                ("size scaled by market condition", "yes" if opts.get("scale_by_condition") else "no"),
                (
                    "dominant style's stop, take-profit ladder, max hold",
                    "yes" if opts.get("style_exits") else "no",
                ),
            ],
            headers=["rule", ""],
            tablefmt="github",
        ),
        render_trade_sessions(result.trade_analysis),
    ]
    if comparison is not None:
        parts += ["## Gated against ungated (same strategy, same bars)", render_comparison(comparison)]
    return "\n\n".join(parts) + "\n"


def render_strategy_hour_heatmap(
    analyses: Mapping[str, TradeSessionAnalysis], metric: str = "avg_return"
) -> str:
    """Strategies × entry hour (local) of `metric`; '·' where a strategy made no trade at that hour."""
    rows = []
    for name, analysis in analyses.items():
        table = analysis.by_hour_local
        cells = [
            format_value(metric, v) if n > 0 else "·"
            for v, n in zip(table[metric], table["trades"], strict=True)
        ]
        rows.append([name, *cells])
    zone = next(iter(analyses.values())).zone if analyses else "local"
    headers = [f"strategy \\ hour ({zone})", *[f"{h:02d}" for h in range(24)]]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
