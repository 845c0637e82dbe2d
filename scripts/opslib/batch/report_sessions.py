"""The session view of TIMEZONE_ANALYSIS and PERFORMANCE_COMPARISON batches across all their jobs
(docs/reports.md): every timezone run stores its trades' tables by local and UTC entry hour, region and
market condition in its row's extras (`jobs.runner._hour_summary`); here they are merged — trade counts
add, win rates and average returns are weighted by trades, P&L adds — into one table each, with the hour
chart. A PERFORMANCE_COMPARISON batch stores each parameter set twice (ungated and gated by the session
rules): `compute_gating` sets the two side by side per strategy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from backtesting_modules.reports import format_value
from backtesting_modules.timezone.report import render_hour_chart

from .report_html_tables import metric_cell, num, para, section, table

TABLES = (
    ("by_hour_local", "hour", "entry hour ({zone})"),
    ("by_hour_utc", "hour", "entry hour (UTC)"),
    ("by_region", "region", "dominant region at entry"),
    ("by_condition", "condition", "market condition at entry"),
)


def gating_headers(metric: str) -> list[str]:
    """The session gate's columns, in report.md and report.html alike."""
    medians = [f"median {metric} ungated", f"median {metric} gated"]
    return ["strategy", "parameter sets", *medians, "gate improved"]


def _extras(rows: pd.DataFrame) -> list[dict[str, Any]]:
    if "extras" not in rows:
        return []
    return [json.loads(text) for text in rows["extras"].dropna() if text]


def compute_sessions(rows: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], str]:
    """Each session table merged over every timezone run of the batch ({} when it has none), and the zone
    of its local hours."""
    extras = [e for e in _extras(rows) if "by_hour_local" in e]
    if not extras:
        return {}, ""
    zone = str(extras[0].get("zone", ""))
    out = {}
    for name, key, _ in TABLES:
        parts = [pd.DataFrame(e[name]) for e in extras if e.get(name)]
        if parts:
            out[name] = _merge(pd.concat(parts, ignore_index=True), key)
    return out, zone


def _merge(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Trades add; win rate and average return are weighted by trades; P&L adds."""
    trades = frame["trades"].fillna(0.0).astype(float)
    work = pd.DataFrame(
        {
            key: frame[key],
            "trades": trades,
            "wins": frame["win_rate"].fillna(0.0).astype(float) * trades,
            "returns": frame["avg_return"].fillna(0.0).astype(float) * trades,
            "total_pnl": frame["total_pnl"].fillna(0.0).astype(float),
        }
    )
    merged = work.groupby(key, sort=False).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        merged["win_rate"] = np.where(merged["trades"] > 0, merged["wins"] / merged["trades"], np.nan)
        merged["avg_return"] = np.where(merged["trades"] > 0, merged["returns"] / merged["trades"], np.nan)
    return merged[["trades", "win_rate", "avg_return", "total_pnl"]]


def render_sessions(tables: Mapping[str, pd.DataFrame], zone: str, runs: int) -> str:
    """The merged session tables with the hour chart (mermaid), in words when no trade was made."""
    if not tables:
        return ""
    lines = [
        "## Sessions across all jobs",
        "",
        f"The trades of {runs:,} timezone runs, by their entry's session: trades add, win rate and average "
        "return are weighted by trades.",
    ]
    local = tables.get("by_hour_local")
    if local is None or not local["trades"].sum():
        return "\n".join([*lines, "", "No run made a trade: there is no session to show."]) + "\n"
    lines += ["", render_hour_chart(local, zone)]
    for name, key, title in TABLES:
        if name in tables:
            lines += ["", f"### By {title.format(zone=zone)}", "", _table(tables[name], key)]
    return "\n".join(lines) + "\n"


def _table(frame: pd.DataFrame, key: str) -> str:
    rows = [
        [
            f"{label:02d}" if isinstance(label, int | np.integer) else str(label),
            f"{int(r['trades']):,}",
            format_value("win_rate", r["win_rate"]) if r["trades"] else "no trade",
            f"{100 * r['avg_return']:.3f}%" if np.isfinite(r["avg_return"]) else "no trade",
            f"{r['total_pnl']:,.0f}",
        ]
        for label, r in frame.iterrows()
    ]
    headers = [key, "trades", "win rate", "avg return", "total P&L"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def compute_gating(rows: pd.DataFrame, metric: str) -> list[dict[str, Any]]:
    """Per strategy of a PERFORMANCE_COMPARISON batch: rows, median and mean of the metric ungated and
    gated, and the share of parameter sets the gate improved."""
    extras = rows["extras"] if "extras" in rows else pd.Series(dtype=object)
    variant = extras.map(lambda e: json.loads(e).get("variant") if isinstance(e, str) else None)
    if metric not in rows or not variant.isin(["gated", "ungated"]).any():
        return []
    out = []
    keys = ["symbol", *[c for c in rows.columns if c.startswith("param.")]]
    for strategy, group in rows.assign(variant=variant).groupby("strategy", sort=True):
        plain = group[group["variant"] == "ungated"].set_index(keys)[metric]
        gated = group[group["variant"] == "gated"].set_index(keys)[metric]
        both = pd.concat([plain.rename("ungated"), gated.rename("gated")], axis=1).dropna()
        out.append(
            {
                "strategy": str(strategy),
                "sets": len(both),
                "median_ungated": float(both["ungated"].median()) if len(both) else None,
                "median_gated": float(both["gated"].median()) if len(both) else None,
                "improved": float((both["gated"] > both["ungated"]).mean()) if len(both) else None,
            }
        )
    return out


def render_gating(gating: list[dict[str, Any]], metric: str) -> str:
    if not gating:
        return ""
    rows = [
        [
            g["strategy"],
            f"{g['sets']:,}",
            format_value(metric, g["median_ungated"]),
            format_value(metric, g["median_gated"]),
            f"{g['improved']:.0%}" if g["improved"] is not None else "–",
        ]
        for g in gating
    ]
    headers = gating_headers(metric)
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    return f"## Session gate: ungated against gated\n\n{table}\n"


def sessions_html(visuals: Any) -> str:
    """The same session and gate tables for report.html (sortable; every text escaped)."""
    return "\n".join(p for p in (_sessions_html(visuals), _gating_html(visuals)) if p)


def _sessions_html(visuals: Any) -> str:
    tables: Mapping[str, pd.DataFrame] = visuals.sessions
    if not tables:
        return ""
    intro = para(
        f"The trades of {visuals.session_runs:,} timezone runs, by their entry's session: trades add, "
        "win rate and average return are weighted by trades.",
        "hint",
    )
    local = tables.get("by_hour_local")
    if local is None or not local["trades"].sum():
        none = para("No run made a trade: there is no session to show.", "note")
        return section("sessions", "Sessions across all jobs", intro, none)
    parts = []
    for name, key, title in TABLES:
        if name in tables:
            rows = [_session_row(label, r) for label, r in tables[name].iterrows()]
            headers = [key, "trades", "win rate", "avg return", "total P&L"]
            parts += [
                f"<h3>By {escape(title.format(zone=visuals.zone))}</h3>",
                table(headers, rows, sortable=True),
            ]
    return section("sessions", "Sessions across all jobs", intro, *parts)


def _session_row(label: Any, r: pd.Series) -> list[Any]:
    return [
        f"{label:02d}" if isinstance(label, int | np.integer) else str(label),
        num(f"{int(r['trades']):,}", r["trades"]),
        metric_cell("win_rate", r["win_rate"] if r["trades"] else None),
        num(f"{100 * r['avg_return']:.3f}%" if r["trades"] else "no trade", r["avg_return"]),
        num(f"{r['total_pnl']:,.0f}", r["total_pnl"]),
    ]


def _gating_html(visuals: Any) -> str:
    if not visuals.gating:
        return ""
    metric = visuals.metric
    rows = [
        [
            g["strategy"],
            num(f"{g['sets']:,}", g["sets"]),
            metric_cell(metric, g["median_ungated"]),
            metric_cell(metric, g["median_gated"]),
            num(f"{g['improved']:.0%}" if g["improved"] is not None else "–", g["improved"]),
        ]
        for g in visuals.gating
    ]
    headers = gating_headers(metric)
    return section("gate", "Session gate: ungated against gated", table(headers, rows))
