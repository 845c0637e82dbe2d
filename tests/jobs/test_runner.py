"""run_job: rows equal the engine run directly; deterministic failures are JobFailed and not retryable."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from backtesting_modules import (
    StrategyConfig,
    run_backtest,
    run_portfolio_backtest,
    run_sweep,
    synthetic_bars,
)
from backtesting_modules.errors import DataError
from backtesting_modules.jobs import JobFailed, JobStatus, is_retryable, parse_spec, plan_jobs, run_job
from backtesting_modules.jobs.runner import sweep_rows

SYMBOLS = ["KRW-BTC", "KRW-ETH"]
CONFIG: dict[str, Any] = {"filters": None, "stop_loss_pct": 0.05}


@pytest.fixture(scope="module")
def bars() -> dict[str, pd.DataFrame]:
    return {s: synthetic_bars(s, periods=1200, seed=3) for s in SYMBOLS}


def spec_of(job_type: str, strategies: list[dict[str, Any]]) -> Any:
    return parse_spec(
        {
            "name": "r",
            "job_type": job_type,
            "symbols": SYMBOLS,
            "config": CONFIG,
            "data": {"source": "synthetic", "periods": 1200, "seed": 3},
            "strategies": strategies,
            "ranking": {"metric": "total_return"},
        }
    )


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12) if isinstance(a, float) else a == b


def _rows_equal(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g["strategy"], g["symbol"], g["params"]) == (w["strategy"], w["symbol"], w["params"])
        assert g["metrics"].keys() == w["metrics"].keys()
        bad = [k for k in g["metrics"] if not _same(g["metrics"][k], w["metrics"][k])]
        assert not bad, bad


def test_sweep_jobs_equal_run_sweep(bars: dict[str, pd.DataFrame]) -> None:
    grid = {"fast": "3:12:1", "slow": [8, 10, 20, 40]}
    spec = spec_of("PARAMETER_OPTIMIZATION", [{"name": "SMA_Crossover", "grid": grid}])
    jobs = plan_jobs(spec, "b", target_seconds=7 * 1200 / 2e7)  # 7 valid combinations per job
    assert len(jobs) > 2 * len(SYMBOLS)
    config = StrategyConfig(**CONFIG)
    for symbol in SYMBOLS:
        results = [run_job(j, bars) for j in jobs if j.symbols == (symbol,)]
        got = [row for r in results for row in r.rows]
        direct = run_sweep(bars[symbol], "SMA_Crossover", spec.strategies[0].grid_dict(), config)
        _rows_equal(got, sweep_rows(direct, "SMA_Crossover", symbol, ["fast", "slow"]))
        assert sum(r.backtests for r in results) == len(direct)
        assert all(r.status is JobStatus.SUCCEEDED and r.engine_seconds >= 0 for r in results)
        best = max((r.best for r in results if r.best), key=lambda row: row["metrics"]["total_return"])
        # A job's best row is the best of those with at least the batch's ranking.min_trades trades.
        eligible = direct[direct["trades"] >= spec.ranking.min_trades]
        assert best["metrics"]["total_return"] == pytest.approx(eligible["total_return"].max())


def test_single_and_portfolio_jobs_equal_the_engine(bars: dict[str, pd.DataFrame]) -> None:
    config = StrategyConfig(**CONFIG)
    single = spec_of("SINGLE_STRATEGY", [{"name": "RSI_MeanReversion", "params": {"period": 9}}])
    for job in plan_jobs(single, "b"):
        (row,) = run_job(job, bars).rows
        want = run_backtest(bars[job.symbols[0]], "RSI_MeanReversion", {"period": 9}, config).metrics
        assert all(_same(row["metrics"][k], None if not math.isfinite(v) else v) for k, v in want.items())
    multi = spec_of("MULTI_STRATEGY", [{"name": "SMA_Crossover", "grid": {"fast": [5, 10], "slow": [30]}}])
    (job,) = plan_jobs(multi, "b")
    result = run_job(job, bars)
    assert [r["params"] for r in result.rows] == [{"fast": 5, "slow": 30}, {"fast": 10, "slow": 30}]
    want = run_portfolio_backtest(bars, "SMA_Crossover", {"fast": 10, "slow": 30}, config).metrics
    assert _same(result.rows[1]["metrics"]["total_return"], want["total_return"])
    assert result.rows[0]["symbol"] == "PORTFOLIO"


def test_timezone_and_comparison_jobs(bars: dict[str, pd.DataFrame]) -> None:
    strategies = [{"name": "SMA_Crossover", "params": {"fast": 5, "slow": 20}}]
    (job, *_) = plan_jobs(spec_of("TIMEZONE_ANALYSIS", strategies), "b")
    (row,) = run_job(job, bars).rows
    extras = row["extras"]
    assert len(extras["by_hour_local"]) == 24 and extras["zone"] == "Asia/Seoul"
    # The tables the batch report merges across jobs: UTC hours, regions and market conditions too.
    assert len(extras["by_hour_utc"]) == 24 and extras["by_region"] and extras["by_condition"]
    trades = [sum(r["trades"] for r in extras[t]) for t in ("by_hour_local", "by_hour_utc", "by_condition")]
    assert len(set(trades)) == 1 and trades[0] > 0  # every trade in each table once
    (job, *_) = plan_jobs(spec_of("PERFORMANCE_COMPARISON", strategies), "b")
    result = run_job(job, bars)
    assert [r["extras"]["variant"] for r in result.rows] == ["ungated", "gated"]
    assert result.backtests == 1


def test_rows_are_json_ready(bars: dict[str, pd.DataFrame]) -> None:
    spec = spec_of(
        "PARAMETER_OPTIMIZATION", [{"name": "SMA_Crossover", "grid": {"fast": [400], "slow": [1000]}}]
    )
    job = plan_jobs(spec, "b")[0]
    short = {s: b.iloc[:900] for s, b in bars.items()}
    with pytest.raises(JobFailed):  # warm-up longer than the data: deterministic
        run_job(job, short)
    result = run_job(plan_jobs(spec_of("PARAMETER_OPTIMIZATION", [{"name": "SMA_Crossover"}]), "b")[0], bars)
    values = [v for row in result.rows for v in row["metrics"].values()]
    assert all(v is None or (isinstance(v, int | float) and math.isfinite(v)) for v in values)


def test_deterministic_failures_are_not_retryable(bars: dict[str, pd.DataFrame]) -> None:
    spec = spec_of("PARAMETER_OPTIMIZATION", [{"name": "SMA_Crossover", "grid": {"fast": [5], "slow": [20]}}])
    job = plan_jobs(spec, "b")[0]
    cases = [
        ({}, type(job)(**{**job.__dict__}), "no bars for ['KRW-BTC']"),
        (bars, type(job)(**{**job.__dict__, "strategy": "SMA_Crossovr"}), "Did you mean 'SMA_Crossover'"),
        (bars, type(job)(**{**job.__dict__, "config": (("stop_loss_pct", 3.0),)}), "stop_loss_pct"),
        (bars, type(job)(**{**job.__dict__, "config": (("no_such_field", 1),)}), "no_such_field"),
        ({"KRW-BTC": bars["KRW-BTC"].iloc[::-1]}, job, "KRW-BTC"),
    ]
    for given_bars, bad_job, expected in cases:
        with pytest.raises(JobFailed) as info:
            run_job(bad_job, given_bars)
        assert expected in str(info.value)
        assert info.value.retryable is False and not is_retryable(info.value)


def test_is_retryable_classification() -> None:
    assert is_retryable(TimeoutError("S3 read timed out"))
    assert is_retryable(ConnectionError())
    assert not is_retryable(DataError("bad bars"))
    assert is_retryable(JobFailed("throttled", retryable=True))
