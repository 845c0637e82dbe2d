"""PBO and the deflated Sharpe ratio on real sweeps (run_sweep with daily returns), seeds fixed:

- pure noise — a driftless random walk (pinned to end where it started, so being long more often earns
  nothing), no costs (fees alone would make the slow variants persistently better, a real edge) — and a
  large SMA grid: PBO near one half, and no winner's deflated Sharpe significant;
- a planted, persistent edge the grid can capture — a 10-day price cycle under the same noise — and a grid
  around it: PBO near zero and the winner's deflated Sharpe significant.

The same grid over the cycle shows the deflated Sharpe's caution: when the variants' Sharpe ratios differ
widely (some in phase with the cycle, some against it), the expected best of that many trials is high too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtesting_modules import StrategyConfig, run_sweep
from backtesting_modules.validation import BlockStats, compute_pbo, deflated_sharpe

NO_COSTS = StrategyConfig(filters=None, min_volume=0.0, commission_rate=0.0, slippage_rate=0.0)
LARGE_GRID = {"fast": list(range(2, 60, 4)), "slow": list(range(20, 300, 20))}
AROUND_THE_CYCLE = {"fast": [6, 12, 18, 24, 30], "slow": [48, 72, 96, 120, 144]}
HOURS = 24 * 400


def _bars(log_price: np.ndarray) -> pd.DataFrame:
    close = 50_000 * np.exp(log_price)
    open_ = np.r_[close[0], close[:-1]]
    index = pd.date_range("2023-01-01", periods=len(close), freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": 1_000.0,
        },
        index=index,
    )


def noise(seed: int) -> pd.DataFrame:
    steps = np.random.default_rng(seed).normal(0.0, 0.004, HOURS)
    return _bars(np.cumsum(steps - steps.mean()))


def cycle(seed: int) -> pd.DataFrame:
    steps = np.random.default_rng(seed).normal(0.0, 0.002, HOURS)
    hours = np.arange(HOURS)
    return _bars(0.06 * np.sin(2 * np.pi * hours / 240) + np.cumsum(steps - steps.mean()))


def validate(bars: pd.DataFrame, grid: dict[str, list[int]]) -> dict[str, Any]:
    returns = run_sweep(bars, "SMA_Crossover", grid, NO_COSTS, period_returns="1D").attrs["period_returns"]
    values = returns.values.astype(np.float64)
    std = values.std(axis=0, ddof=1)
    sharpes = np.where(std > 0, values.mean(axis=0) / np.where(std > 0, std, 1.0), 0.0)
    winner = int(np.argmax(sharpes))
    return {
        "pbo": compute_pbo(BlockStats.from_returns(values, blocks=16)).pbo,
        "deflated": deflated_sharpe(values[:, winner], sharpes),
    }


def test_pure_noise_overfits_about_half_the_time_and_its_winners_are_not_significant() -> None:
    results = [validate(noise(seed), LARGE_GRID) for seed in range(1, 7)]
    assert np.mean([r["pbo"] for r in results]) >= 0.4
    assert not any(r["deflated"].significant(0.05) for r in results)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_planted_edge_has_a_low_pbo_and_a_significant_winner(seed: int) -> None:
    result = validate(cycle(seed), AROUND_THE_CYCLE)
    assert result["pbo"] <= 0.05
    assert result["deflated"].significant(0.05) and result["deflated"].probability > 0.99


def test_a_grid_of_widely_differing_variants_raises_the_bar_of_the_deflated_sharpe() -> None:
    result = validate(cycle(1), LARGE_GRID)
    assert result["pbo"] <= 0.05  # the ranking persists: real structure
    assert result["deflated"].sr0 > result["deflated"].sr  # but the best of 195 such trials is higher still
