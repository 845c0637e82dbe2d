"""The jobs of a validated sweep: one train sweep per fold on its window (ids that differ per window and
keep the jobs of unvalidated batches as they were), the winners' jobs on their test windows, windows and
period returns through the job message, and the per-period returns through the stored result body."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtesting_modules.data import synthetic_bars
from backtesting_modules.jobs.messages import decode_job, encode_job, encode_result
from backtesting_modules.jobs.planner import Winner, plan_jobs, plan_test_jobs
from backtesting_modules.jobs.results import decode_period_returns, encode_result_body, result_frame
from backtesting_modules.jobs.runner import run_job
from backtesting_modules.jobs.spec import parse_spec
from backtesting_modules.validation import WalkForward, plan_folds

SPEC: dict[str, Any] = {
    "name": "wf",
    "job_type": "PARAMETER_OPTIMIZATION",
    "symbols": ["KRW-BTC", "KRW-ETH"],
    "data": {"source": "synthetic", "seed": 5, "periods": 2000, "freq": "1h"},
    "config": {"filters": None, "min_volume": 0.0},
    "strategies": [{"name": "SMA_Crossover", "grid": {"fast": [5, 10, 15], "slow": [30, 60]}}],
    "validation": {"walk_forward": {"folds": 3, "train": "20d", "test": "7d"}, "top_k": 2},
}


@pytest.fixture
def bars() -> pd.DataFrame:
    return synthetic_bars("KRW-BTC", start="2024-01-01", periods=2000, freq="1h", seed=5)


def test_each_fold_sweeps_its_train_window_and_keeps_daily_returns(bars: pd.DataFrame) -> None:
    spec = parse_spec(SPEC)
    folds = plan_folds(bars.index, spec.validation.scheme(), min_train_bars=62)  # type: ignore[arg-type]
    jobs = plan_jobs(spec, "b-1", bars=2000, folds=folds)
    windows = {(f.train_start.isoformat(), f.train_stop.isoformat()) for f in folds}
    assert {j.window for j in jobs} == windows and len(windows) == 3
    assert {j.period_returns for j in jobs} == {"1d"}
    assert len({j.job_id for j in jobs}) == len(jobs)  # a window is part of the content: fold jobs differ
    plain = plan_jobs(spec, "b-1", bars=2000)  # no folds: the whole bars, no returns, the ids of before
    assert all(j.window is None and j.period_returns is None for j in plain)
    assert "window" not in plain[0].content() and "window" in jobs[0].content()


def test_a_windowed_job_runs_on_its_window_and_its_result_carries_the_returns(bars: pd.DataFrame) -> None:
    spec = parse_spec(SPEC)
    folds = plan_folds(bars.index, spec.validation.scheme(), min_train_bars=62)  # type: ignore[arg-type]
    job = next(j for j in plan_jobs(spec, "b-1", bars=2000, folds=folds) if j.symbols == ("KRW-BTC",))
    assert decode_job(encode_job(job)) == job
    result = run_job(job, {"KRW-BTC": bars})
    freq, starts, values = result.period_returns  # type: ignore[misc]
    fold = folds[0]
    assert freq == "1d" and values.dtype == np.float32 and values.shape == (len(starts), len(result.rows))
    assert starts[0] >= fold.train_start.floor("1D") and starts[-1] < fold.train_stop
    message, body = encode_result(result)
    assert body is not None and message["columns"] is None  # returns always travel by claim check
    decoded = decode_period_returns(body)
    assert decoded is not None and decoded[0] == "1d" and decoded[1].equals(starts)
    assert np.array_equal(decoded[2], values)
    assert len(result_frame(body)) == len(result.rows)
    assert decode_period_returns(encode_result_body(job.job_id, result.columns)) is None


def test_the_winners_run_alone_on_their_test_windows(bars: pd.DataFrame) -> None:
    spec = parse_spec(SPEC)
    folds = plan_folds(bars.index, spec.validation.scheme(), min_train_bars=62)  # type: ignore[arg-type]
    winners = [
        Winner(
            fold=2, strategy="SMA_Crossover", symbol="KRW-ETH", rank=1, params=(("fast", 10), ("slow", 60))
        ),
        Winner(
            fold=3, strategy="SMA_Crossover", symbol="KRW-BTC", rank=2, params=(("fast", 5), ("slow", 30))
        ),
    ]
    refs = {"KRW-BTC": "bars/a.npz", "KRW-ETH": "bars/b.npz"}
    jobs = plan_test_jobs(spec, "b-2", refs, folds, winners)
    assert [j.grid for j in jobs] == [(("fast", (10,)), ("slow", (60,))), (("fast", (5,)), ("slow", (30,)))]
    assert [j.window for j in jobs] == [
        (folds[1].test_start.isoformat(), folds[1].test_stop.isoformat()),
        (folds[2].test_start.isoformat(), folds[2].test_stop.isoformat()),
    ]
    assert [j.data_keys for j in jobs] == [("bars/b.npz",), ("bars/a.npz",)]
    rows = run_job(jobs[1], {"KRW-BTC": bars}).rows
    assert len(rows) == 1 and rows[0]["params"] == {"fast": 5, "slow": 30}


def test_a_test_window_warms_up_on_the_bars_before_it(bars: pd.DataFrame) -> None:
    # The winner's first test-window trade may come at once: its indicators saw the train window.
    spec = parse_spec({**SPEC, "validation": {"holdout": {"fraction": 0.25}}})
    (fold,) = plan_folds(bars.index, spec.validation.scheme(), min_train_bars=62)  # type: ignore[arg-type]
    winner = Winner(
        fold=1, strategy="SMA_Crossover", symbol="KRW-BTC", rank=1, params=(("fast", 5), ("slow", 60))
    )
    (job,) = plan_test_jobs(spec, "b-3", {"KRW-BTC": "bars/a.npz", "KRW-ETH": "bars/b.npz"}, [fold], [winner])
    result = run_job(job, {"KRW-BTC": bars})
    _, starts, values = result.period_returns  # type: ignore[misc]
    assert starts[0] == fold.test_start.floor("1D") and len(values) == len(starts)
    assert WalkForward is not None  # the scheme types are importable from validation
