"""Reports: snapshot tests of each renderer on seeded data, empty results, and the PR-comment size limit.

Run with UPDATE_SNAPSHOTS=1 to rewrite the snapshots after an intended change; review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from backtesting_modules import SessionGate, StrategyConfig, TimezoneBacktester, run_backtest, run_sweep
from backtesting_modules.backtest import RunInfo
from backtesting_modules.data import synthetic_bars
from backtesting_modules.reports import (
    PR_COMMENT_LIMIT,
    fit_to_limit,
    render_backtest,
    render_batch,
    render_sweep,
)
from backtesting_modules.timezone.report import render_strategy_hour_heatmap, render_timezone

SNAPSHOTS = Path(__file__).parent / "snapshots"
CONFIG = StrategyConfig(filters=None, min_volume=0.0, stop_loss_pct=0.03, take_profit_pct=0.06)


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.md"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with UPDATE_SNAPSHOTS=1 to create it, then review it"
    assert text == path.read_text(encoding="utf-8"), f"{path} differs; UPDATE_SNAPSHOTS=1 after review"


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return synthetic_bars("KRW-ETH", periods=2000, freq="1h", seed=21)


def test_backtest_report_snapshot(bars: pd.DataFrame) -> None:
    text = render_backtest(run_backtest(bars, "SMA_Crossover", {"fast": 5, "slow": 20}, CONFIG))
    assert "**synthetic data**" in text and "next_open" in text and "stop loss 3.0%" in text
    check_snapshot("backtest", text)


def test_empty_backtest_renders(bars: pd.DataFrame) -> None:
    config = StrategyConfig(filters={"min_price": 1e12}, min_volume=0.0)
    text = render_backtest(run_backtest(bars, "SMA_Crossover", {"fast": 5, "slow": 20}, config))
    assert "_No trades._" in text and "entry filters block" in text
    check_snapshot("backtest_empty", text)


def test_sweep_report_snapshot(bars: pd.DataFrame) -> None:
    frame = run_sweep(bars, "SMA_Crossover", {"fast": [5, 10, 15], "slow": [20, 40]}, CONFIG)
    info = frame.attrs["info"]
    run = RunInfo.from_dict(info)
    text = render_sweep(
        frame, strategy="SMA_Crossover", param_names=["fast", "slow"], rank="sharpe", config=CONFIG, info=run
    )
    assert "## sharpe by fast × slow" in text
    check_snapshot("sweep", text)


def test_timezone_report_snapshot(bars: pd.DataFrame) -> None:
    backtester = TimezoneBacktester(CONFIG, gate=SessionGate.makenaide())
    _, gated, comparison = backtester.compare(bars, "SMA_Crossover", {"fast": 5, "slow": 20})
    text = render_timezone(gated, comparison)
    assert "entries at 02, 09, 15, 18, 21, 23 h Asia/Seoul" in text
    assert text.count("\n| 23 ") >= 2  # 24-row hour tables (local and UTC)
    assert "xychart-beta" in text
    check_snapshot("timezone", text)


def test_timezone_report_with_no_trades(bars: pd.DataFrame) -> None:
    config = StrategyConfig(filters={"min_price": 1e12}, min_volume=0.0)
    out = TimezoneBacktester(config).run(bars, "SMA_Crossover", {"fast": 5, "slow": 20})
    text = render_timezone(out)
    assert "_No trades._" in text and "too few trades" in text


def test_strategy_hour_heatmap(bars: pd.DataFrame) -> None:
    analyses = {
        name: TimezoneBacktester(CONFIG).run(bars, name, None).trade_analysis
        for name in ("SMA_Crossover", "Dynamic_RSI_MACD")
    }
    text = render_strategy_hour_heatmap(analyses)
    assert text.splitlines()[0].count("|") == 26  # strategy column + 24 hours
    check_snapshot("heatmap", text + "\n")


def test_batch_report_snapshot(bars: pd.DataFrame) -> None:
    rows = []
    for strategy, params in (("SMA_Crossover", {"fast": 5, "slow": 20}), ("Dynamic_RSI_MACD", {})):
        for symbol, seed in (("KRW-ETH", 1), ("KRW-XRP", 2)):
            result = run_backtest(synthetic_bars(symbol, periods=1500, seed=seed), strategy, params, CONFIG)
            rows.append({"strategy": strategy, "symbol": symbol, "params": result.params, **result.metrics})
    failures = [
        {
            "job_id": "j-7",
            "strategy": "SMA_Crossover",
            "symbol": "KRW-SOL",
            "attempts": 1,
            "error": "DataError: bars for KRW-SOL not found in S3 (data/KRW-SOL_1h.npz)",
        }
    ]
    text = render_batch(
        pd.DataFrame(rows),
        title="Batch demo",
        rank="sharpe",
        failures=failures,
        conditions=[("data", "synthetic (seeded)")],
    )
    assert "## By strategy" in text and "## Failed jobs" in text and "KRW-SOL not found" in text
    check_snapshot("batch", text)


def test_fit_to_limit_truncates_with_a_note() -> None:
    text = "\n".join(f"| row {i} | {'x' * 80} |" for i in range(2000))
    cut = fit_to_limit(text)
    assert len(cut.encode()) <= PR_COMMENT_LIMIT
    assert cut.endswith("full report is in the run's artifacts.\n")
    assert fit_to_limit("short") == "short"
