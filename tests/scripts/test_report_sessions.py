"""The session view of timezone batches across jobs (opslib/batch/report_sessions.py): tables merged by
trade counts (trades add, win rate and average return weighted by trades, P&L adds), the hour chart, words
when no run traded, and the ungated-vs-gated comparison of a PERFORMANCE_COMPARISON batch."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from opslib.batch.report_sessions import compute_gating, compute_sessions, render_gating, render_sessions


def hour_rows(counts: dict[int, tuple[int, float, float]]) -> list[dict[str, Any]]:
    """24 hours; `counts` gives (trades, win_rate, avg_return) for some, the others have no trade."""
    out = []
    for hour in range(24):
        trades, win, ret = counts.get(hour, (0, float("nan"), float("nan")))
        out.append(
            {"hour": hour, "trades": trades, "win_rate": win, "avg_return": ret, "total_pnl": 100.0 * trades}
        )
    return out


def run_extras(counts: dict[int, tuple[int, float, float]]) -> str:
    table = hour_rows(counts)
    trades = sum(c[0] for c in counts.values())
    stats = {"trades": trades, "win_rate": 0.5, "avg_return": 0.01, "total_pnl": 1.0}
    return json.dumps(
        {
            "zone": "Asia/Seoul",
            "by_hour_local": table,
            "by_hour_utc": table,
            "by_region": [{"region": "asia", **stats}],
            "by_condition": [{"condition": "normal", **stats}],
        }
    )


def test_tables_merge_by_trade_counts_and_show_the_hour_chart() -> None:
    rows = pd.DataFrame(
        {
            "strategy": ["S", "S"],
            "symbol": ["KRW-BTC", "KRW-ETH"],
            "sharpe": [1.0, 2.0],
            "extras": [
                run_extras({9: (2, 1.0, 0.02)}),
                run_extras({9: (6, 0.5, -0.01), 21: (1, 0.0, -0.05)}),
            ],
        }
    )
    tables, zone = compute_sessions(rows)
    assert zone == "Asia/Seoul" and set(tables) == {
        "by_hour_local",
        "by_hour_utc",
        "by_region",
        "by_condition",
    }
    nine = tables["by_hour_local"].loc[9]
    assert nine["trades"] == 8
    assert nine["win_rate"] == pytest.approx((2 * 1.0 + 6 * 0.5) / 8)
    assert nine["avg_return"] == pytest.approx((2 * 0.02 - 6 * 0.01) / 8)
    assert nine["total_pnl"] == 800.0 and tables["by_region"].loc["asia", "trades"] == 3 + 6
    text = render_sessions(tables, zone, runs=2)
    assert "## Sessions across all jobs" in text and "xychart-beta" in text and "(Asia/Seoul)" in text
    assert "### By entry hour (UTC)" in text and "### By market condition at entry" in text
    assert "| 09     | 8        | 62.50%" in text


def test_no_trade_is_said_in_words_and_sweeps_have_no_session_view() -> None:
    quiet = pd.DataFrame({"strategy": ["S"], "symbol": ["X"], "extras": [run_extras({})]})
    tables, zone = compute_sessions(quiet)
    assert "No run made a trade" in render_sessions(tables, zone, runs=1)
    sweep = pd.DataFrame({"strategy": ["S"], "symbol": ["X"], "sharpe": [1.0]})
    assert compute_sessions(sweep) == ({}, "") and render_sessions({}, "", 0) == ""


def test_the_gate_is_compared_per_parameter_set() -> None:
    variants = [json.dumps({"variant": v}) for v in ("ungated", "gated")] * 2
    rows = pd.DataFrame(
        {
            "strategy": ["S"] * 4,
            "symbol": ["KRW-BTC"] * 4,
            "param.fast": [5, 5, 10, 10],
            "sharpe": [1.0, 1.5, 2.0, 1.0],
            "extras": variants,
        }
    )
    (entry,) = compute_gating(rows, "sharpe")
    assert entry == {"strategy": "S", "sets": 2, "median_ungated": 1.5, "median_gated": 1.25, "improved": 0.5}
    assert "| S          | 2                | 1.500" in render_gating([entry], "sharpe")
    assert compute_gating(rows.drop(columns="extras"), "sharpe") == []


def test_the_html_report_carries_the_same_session_tables() -> None:
    from opslib.batch.charts import Visuals
    from opslib.batch.report_sessions import sessions_html

    rows = pd.DataFrame({"strategy": ["S<b>"], "symbol": ["X"], "extras": [run_extras({9: (2, 1.0, 0.02)})]})
    visuals = Visuals("sharpe", True)
    visuals.sessions, visuals.zone = compute_sessions(rows)
    visuals.session_runs = 1
    visuals.gating = [
        {"strategy": "S<b>", "sets": 1, "median_ungated": 1.0, "median_gated": 2.0, "improved": 1.0}
    ]
    page = sessions_html(visuals)
    assert 'id="sessions"' in page and "By entry hour (Asia/Seoul)" in page and 'data-sort="2.0"' in page
    assert "S&lt;b&gt;" in page and "<b>" not in page  # escaped
    assert sessions_html(Visuals("sharpe", True)) == ""
