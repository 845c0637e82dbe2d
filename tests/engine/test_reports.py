"""Reports: snapshot tests of each renderer on seeded data, empty results, and the PR-comment size limit.

Run with UPDATE_SNAPSHOTS=1 to rewrite the snapshots after an intended change; review the diff.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtesting_modules import SessionGate, StrategyConfig, TimezoneBacktester, run_backtest, run_sweep
from backtesting_modules.backtest import RunInfo
from backtesting_modules.data import synthetic_bars
from backtesting_modules.portfolio import run_portfolio_backtest
from backtesting_modules.reports import (
    PR_COMMENT_LIMIT,
    fit_to_limit,
    render_backtest,
    render_batch,
    render_benchmark_line,
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


@pytest.mark.parametrize(
    ("metrics", "symbols", "expected"),
    [
        (
            {"total_return": 0.0322, "benchmark_return": 1.3137, "excess_return": -1.2815, "alpha": -0.0274,
             "beta": 0.04205},
            (),
            "**Against buy and hold** (same bars and fees, first close to last close): strategy +3.22%, "
            "buy and hold +131.37%, excess -128.15%, alpha -2.74% a year, beta 0.04205.",
        ),
        (
            {"total_return": -0.01, "benchmark_return": 0.02, "excess_return": -0.03, "alpha": float("nan"),
             "beta": float("nan")},
            ("KRW-A", "KRW-B"),
            "**Against equal-weight buy and hold of KRW-A, KRW-B** (same bars and fees, first close to last "
            "close): strategy -1.00%, buy and hold +2.00%, excess -3.00%, alpha – a year, beta –.",
        ),
        ({"total_return": 0.1, "benchmark_return": float("nan")}, (), ""),  # not computed: no line
        ({"total_return": 0.1}, (), ""),  # metrics from before the benchmark existed
    ],
)  # fmt: skip
def test_benchmark_line(metrics: dict[str, float], symbols: tuple[str, ...], expected: str) -> None:
    assert render_benchmark_line(metrics, symbols) == expected


def test_portfolio_report_names_its_equal_weight_benchmark(bars: pd.DataFrame) -> None:
    other = synthetic_bars("KRW-XRP", periods=2000, freq="1h", seed=22)
    result = run_portfolio_backtest({"KRW-ETH": bars, "KRW-XRP": other}, "SMA_Crossover", None, CONFIG)
    text = render_backtest(result)
    assert "**Against equal-weight buy and hold of KRW-ETH, KRW-XRP**" in text
    assert "| benchmark_return " in text and "| beta " in text


def test_reports_without_a_benchmark_leave_it_out(bars: pd.DataFrame) -> None:
    # metrics computed without a benchmark (compute_metrics(benchmark=None)): NaN, so neither the line nor
    # four rows of dashes.
    result = run_backtest(bars, "SMA_Crossover", {"fast": 5, "slow": 20}, CONFIG)
    names = ("benchmark_return", "excess_return", "alpha", "beta")
    without = dataclasses.replace(result, metrics={**result.metrics, **dict.fromkeys(names, float("nan"))})
    text = render_backtest(without)
    assert "Against" not in text and "benchmark_return" not in text and "| sharpe " in text
    # A batch of results stored before the benchmark existed has no such columns.
    rows = pd.DataFrame([{"strategy": "S", "symbol": "X", "params": {}, "sharpe": 1.0, "total_return": 0.1}])
    assert "buy and hold" not in render_batch(rows, title="old", rank="sharpe")


def test_the_timezone_backtester_has_the_same_buy_and_hold_as_the_engine(bars: pd.DataFrame) -> None:
    params = {"fast": 5, "slow": 20}
    zoned = TimezoneBacktester(CONFIG).run(bars, "SMA_Crossover", params).result.metrics
    plain = run_backtest(bars, "SMA_Crossover", params, CONFIG).metrics
    assert zoned["benchmark_return"] == plain["benchmark_return"]
    assert zoned["excess_return"] == pytest.approx(zoned["total_return"] - plain["benchmark_return"])
    assert np.isfinite(zoned["alpha"]) and np.isfinite(zoned["beta"])


def test_fit_to_limit_truncates_with_a_note() -> None:
    text = "\n".join(f"| row {i} | {'x' * 80} |" for i in range(2000))
    cut = fit_to_limit(text)
    assert len(cut.encode()) <= PR_COMMENT_LIMIT
    assert cut.endswith("full report is in the run's artifacts.\n")
    assert fit_to_limit("short") == "short"
