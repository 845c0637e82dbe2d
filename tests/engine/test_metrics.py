"""Metric definitions checked against hand computations and brute-force references."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from backtesting_modules import StrategyConfig, run_backtest, run_sweep, synthetic_bars
from backtesting_modules.bars import BarArrays
from backtesting_modules.errors import ConfigError
from backtesting_modules.metrics import (
    HIGHER_IS_BETTER,
    LEGACY_NAMES,
    METRIC_NAMES,
    SECONDS_PER_YEAR,
    buy_and_hold,
    compute_metrics,
    legacy_metrics,
)
from backtesting_modules.portfolio import run_portfolio_backtest
from backtesting_modules.strategies import Param, Strategy
from backtesting_modules.trades import TradeArrays

HOUR = 3600.0
NO_TRADES = TradeArrays.empty()


def make_trades(
    combo: list[int],
    pnl: list[float],
    return_pct: list[float] | None = None,
    held: list[int] | None = None,
) -> TradeArrays:
    """Trades with only the columns metrics read filled in meaningfully."""
    n = len(combo)
    held_bars = np.asarray(held if held is not None else [1] * n, dtype=np.int64)
    entry = np.zeros(n, dtype=np.int64)
    returns = return_pct if return_pct is not None else [p / 1000 for p in pnl]
    return TradeArrays(
        combo=np.asarray(combo, dtype=np.int64),
        entry_bar=entry,
        exit_bar=entry + held_bars,
        entry_price=np.ones(n),
        exit_price=np.ones(n),
        size=np.ones(n),
        fees=np.zeros(n),
        pnl=np.asarray(pnl, dtype=np.float64),
        return_pct=np.asarray(returns, dtype=np.float64),
        exit_reason=np.zeros(n, dtype=np.int8),
    )


def scalar_metrics(equity: list[float] | np.ndarray, trades: TradeArrays = NO_TRADES, **kw: float) -> dict:
    options: dict[str, Any] = {"initial_cash": 100.0, "bar_seconds": HOUR, **kw}
    return {k: float(v[0]) for k, v in compute_metrics(np.asarray(equity, float), trades, **options).items()}


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True))


# --- reference implementations -------------------------------------------------------------------------


def ref_returns(equity: np.ndarray, initial: float) -> np.ndarray:
    prev = np.vstack([np.full((1, equity.shape[1]), initial), equity[:-1]])
    return equity / prev - 1


def ref_duration(initial: float, equity: np.ndarray) -> int:
    """Bars from the peak bar to the bar that regains it (or to the last bar), the slow obvious way."""
    peak, peak_bar, longest = initial, -1, 0
    for t, value in enumerate(equity):
        if value >= peak:
            if t - peak_bar > 1:
                longest = max(longest, t - peak_bar)
            peak, peak_bar = value, t
    return max(longest, len(equity) - 1 - peak_bar)


# --- the hand-computed example -------------------------------------------------------------------------


def test_hand_computed_curve() -> None:
    m = scalar_metrics([110.0, 99.0, 121.0])
    r = [0.1, -0.1, 121 / 99 - 1]
    bpy = 365 * 24
    mean, std = statistics.fmean(r), statistics.stdev(r)
    years = 3 / bpy
    cagr = 1.21 ** (1 / years) - 1
    expected = {
        "total_return": 0.21,
        "cagr": cagr,
        "volatility": std * math.sqrt(bpy),
        "sharpe": mean / std * math.sqrt(bpy),
        "sortino": mean / math.sqrt(0.01 / 3) * math.sqrt(bpy),
        "max_drawdown": -0.1,
        "max_drawdown_duration": 2.0,  # peak at bar 0, regained at bar 2
        "max_drawdown_duration_hours": 2.0,
        "calmar": cagr / 0.1,
        "recovery_factor": 21 / 11,  # gain 21 over the deepest currency drop 110 -> 99
        # sorted r = [-0.1, 0.1, 0.222]; position 0.05 * 2 = 0.1 -> -0.1 + 0.1 * (0.1 - -0.1)
        "var_95": -0.08,
    }
    for name, value in expected.items():
        assert m[name] == pytest.approx(value, rel=1e-9), name


def test_var_matches_numpy_percentile_small() -> None:
    equity = np.array([110.0, 99.0, 121.0])
    r = ref_returns(equity[:, None], 100.0)[:, 0]
    assert scalar_metrics(equity)["var_95"] == pytest.approx(np.percentile(r, 5))


@pytest.mark.parametrize(
    ("equity", "duration", "drawdown"),
    [
        ([110, 99, 121], 2, -0.1),
        ([99, 98, 101], 3, -0.02),  # the peak is the initial cash, "bar -1"
        ([110, 100, 105], 2, -1 / 11),  # never regained: until the last bar
        ([90], 1, -0.1),
        ([101, 102, 103], 0, 0.0),
        ([100, 100, 100], 0, 0.0),  # equal to the peak is not below it
        ([110, 100, 110, 105, 104, 103, 111], 4, -1 / 11),  # second episode is longer
        ([110, 90, 110, 105, 111], 2, -2 / 11),  # deepest is not longest
    ],
)
def test_drawdown_depth_and_duration(equity: list[float], duration: int, drawdown: float) -> None:
    m = scalar_metrics(np.asarray(equity, float), bar_seconds=4 * HOUR)
    assert m["max_drawdown_duration"] == duration == ref_duration(100.0, np.asarray(equity, float))
    assert m["max_drawdown_duration_hours"] == 4 * duration
    assert m["max_drawdown"] == pytest.approx(drawdown, abs=1e-12)


def test_flat_equity() -> None:
    m = scalar_metrics([100.0] * 5)
    assert m["volatility"] == 0 and m["total_return"] == 0 and m["var_95"] == 0
    assert m["max_drawdown"] == 0 and m["max_drawdown_duration"] == 0
    for name in ("sharpe", "sortino", "calmar", "recovery_factor"):
        assert math.isnan(m[name]), name


def test_only_gains_has_no_downside() -> None:
    m = scalar_metrics([101.0, 103.0, 106.0])
    assert math.isnan(m["sortino"]) and math.isnan(m["calmar"]) and math.isnan(m["recovery_factor"])
    assert m["sharpe"] > 0


def test_single_bar_has_no_sample_std() -> None:
    m = scalar_metrics([105.0])
    assert math.isnan(m["volatility"]) and math.isnan(m["sharpe"])
    assert m["total_return"] == pytest.approx(0.05)


def test_cagr_of_a_wipe_out_and_of_a_year() -> None:
    assert scalar_metrics([50.0, 0.0])["cagr"] == -1
    daily = scalar_metrics(np.full(365, 100.0) * np.r_[np.ones(364), 1.1], bar_seconds=86_400)
    assert daily["cagr"] == pytest.approx(0.1)  # exactly one year of daily bars


# --- trade statistics ----------------------------------------------------------------------------------


def test_trade_statistics_grouped_by_combo() -> None:
    # combo 0: a big winner, a loser with a large return, a small winner; combo 1: one loser; combo 2: none.
    trades = make_trades(
        combo=[0, 0, 0, 1],
        pnl=[100.0, -50.0, 30.0, -20.0],
        return_pct=[0.10, -0.10, 0.03, -0.02],
        held=[4, 2, 6, 10],
    )
    equity = np.full((20, 3), 100.0)
    m = compute_metrics(equity, trades, initial_cash=100.0, bar_seconds=HOUR)
    nan = np.nan
    expected = {
        "trades": [3, 1, 0],
        "winning_trades": [2, 0, 0],
        "losing_trades": [1, 1, 0],
        "win_rate": [2 / 3, 0, nan],
        "avg_return": [0.01, -0.02, nan],
        "avg_win": [0.065, nan, nan],
        "avg_loss": [-0.10, -0.02, nan],
        "total_pnl": [80, -20, 0],
        "gross_profit": [130, 0, 0],
        "gross_loss": [50, 20, 0],
        # on P&L: 130 / 50; on returns it would be 0.13 / 0.10 = 1.3
        "profit_factor": [2.6, 0, nan],
        "expectancy": [80 / 3, -20, nan],
        "exposure": [12 / 20, 10 / 20, 0],
        "avg_holding_bars": [4, 10, nan],
        "avg_holding_hours": [4, 10, nan],
        "kelly_fraction": [2 / 3 - (1 / 3) / 0.65, -1, nan],
        "b_value": [0.65, nan, nan],
    }
    for name, values in expected.items():
        assert same(m[name], np.asarray(values, float)), (name, m[name])


def test_kelly_textbook_case() -> None:
    # p = 0.6, average win 10 %, average loss 5 % -> b = 2, f* = (2 * 0.6 - 0.4) / 2 = 0.4
    trades = make_trades([0] * 5, [10, 10, 10, -5, -5], [0.10, 0.10, 0.10, -0.05, -0.05])
    m = scalar_metrics([100.0] * 10, trades)
    assert m["b_value"] == pytest.approx(2)
    assert m["kelly_fraction"] == pytest.approx(0.4)
    assert m["kelly_half"] == pytest.approx(0.2)
    assert m["kelly_quarter"] == pytest.approx(0.1)
    assert m["swing_score"] == pytest.approx(2 * 0.6 - 0.4)


@pytest.mark.parametrize(
    ("pnl", "returns", "kelly", "profit_factor"),
    [
        ([5.0, 7.0], [0.05, 0.07], 1.0, math.inf),  # no losses: kelly = p
        ([-5.0, -7.0], [-0.05, -0.07], -1.0, 0.0),  # no wins: kelly = -1
        ([0.0], [0.0], -1.0, math.nan),  # break-even counts as a loss; no P&L either way
    ],
)
def test_kelly_and_profit_factor_edges(
    pnl: list[float], returns: list[float], kelly: float, profit_factor: float
) -> None:
    m = scalar_metrics([100.0] * 4, make_trades([0] * len(pnl), pnl, returns))
    assert m["kelly_fraction"] == kelly
    assert same(np.array(m["profit_factor"]), np.array(profit_factor))
    assert math.isnan(m["b_value"]) and math.isnan(m["swing_score"])


def test_kelly_is_clamped() -> None:
    # p = 0.5, b = 0.01 -> f* = 0.5 - 0.5 / 0.01 = -49.5 -> -1
    trades = make_trades([0, 0], [1.0, -100.0], [0.001, -0.1])
    assert scalar_metrics([100.0] * 3, trades)["kelly_fraction"] == -1


def test_no_trades() -> None:
    m = scalar_metrics([100.0, 101.0])
    for name in ("trades", "winning_trades", "losing_trades", "total_pnl", "gross_profit", "exposure"):
        assert m[name] == 0, name
    for name in ("win_rate", "avg_return", "avg_win", "avg_loss", "profit_factor", "expectancy"):
        assert math.isnan(m[name]), name
    for name in ("kelly_fraction", "kelly_half", "b_value", "swing_score", "avg_holding_hours"):
        assert math.isnan(m[name]), name


def test_composite_score() -> None:
    trades = make_trades([0] * 5, [10, 10, 10, -5, -5], [0.10, 0.10, 0.10, -0.05, -0.05])
    m = scalar_metrics([110.0, 99.0, 121.0], trades)
    expected = 100 * (0.35 * 0.21 + 0.25 * 0.6 + 0.20 * 0.4 + 0.15 * min(m["sharpe"] / 3, 1.0) - 0.05 * 0.1)
    assert m["composite_score"] == pytest.approx(expected)
    # Flat, no trades: every component is 0 or NaN (counted as 0).
    assert scalar_metrics([100.0] * 3)["composite_score"] == 0


# --- shapes, sweeps and the fast paths -----------------------------------------------------------------


def random_equity(n: int, m: int, seed: int, flat: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0002, 0.01, (n, m))
    steps[rng.random((n, m)) < flat] = 0.0  # out of the market: exact zero returns
    return 1000.0 * np.cumprod(1 + steps, axis=0)


def random_trades(n: int, m: int, count: int, seed: int) -> TradeArrays:
    rng = np.random.default_rng(seed)
    combo = np.sort(rng.integers(0, m, count))
    pnl = rng.normal(0, 10, count)
    return make_trades(
        combo.tolist(), pnl.tolist(), (pnl / 500).tolist(), rng.integers(0, 20, count).tolist()
    )


def test_two_dimensional_call_equals_column_by_column() -> None:
    equity = random_equity(300, 4, seed=1)
    trades = random_trades(300, 4, 40, seed=2)
    together = compute_metrics(equity, trades, initial_cash=1000.0, bar_seconds=HOUR)
    for col in range(4):
        # for_combo keeps the combo number; renumber to column 0 for the 1-D call.
        renumbered = trades.for_combo(col)
        renumbered = TradeArrays(**{**renumbered.__dict__, "combo": np.zeros(len(renumbered), np.int64)})
        alone = compute_metrics(equity[:, col], renumbered, initial_cash=1000.0, bar_seconds=HOUR)
        for name in METRIC_NAMES:
            assert same(together[name][col : col + 1], alone[name]), (name, col)


@pytest.mark.parametrize(
    ("n", "m", "sigmas"), [(5000, 40, None), (5000, 3, None), (600, 50, None), (5000, 40, 0.0)]
)
def test_matches_brute_force_references(
    n: int, m: int, sigmas: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunked scan, sampled VaR bracket (n > 4096) and both running-peak paths against plain numpy.

    sigmas=0 makes the sampled VaR bracket too narrow for many columns: the exact fallback must agree.
    """
    if sigmas is not None:
        monkeypatch.setattr("backtesting_modules.metrics_var._TAIL_SIGMAS", sigmas)
    equity = random_equity(n, m, seed=n + m)
    equity[:, 0] = 1000.0  # flat: all-zero returns
    equity[:, 1] = random_equity(n, 1, seed=3, flat=0.96)[:, 0]  # 5th percentile inside a run of zeros
    equity[: n // 2, 2] *= 1.5  # a big early peak never regained
    got = compute_metrics(equity, NO_TRADES, initial_cash=1000.0, bar_seconds=HOUR)
    r = ref_returns(equity, 1000.0)
    bpy = SECONDS_PER_YEAR / HOUR
    peak = np.maximum(np.maximum.accumulate(equity, axis=0), 1000.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = r.std(axis=0, ddof=1)
        sharpe = np.where(std > 0, r.mean(axis=0) / std * math.sqrt(bpy), np.nan)
        recovery = (equity[-1] - 1000.0) / (peak - equity).max(axis=0)
    assert same(got["var_95"], np.percentile(r, 5, axis=0))
    assert same(got["volatility"], std * math.sqrt(bpy))
    assert np.allclose(got["sharpe"], sharpe, rtol=1e-7, equal_nan=True)
    assert same(got["max_drawdown"], (equity / peak - 1).min(axis=0))
    assert same(got["recovery_factor"][1:], recovery[1:])  # column 0 never drops: NaN, not 0 / 0
    durations = [ref_duration(1000.0, equity[:, j]) for j in range(m)]
    assert np.array_equal(got["max_drawdown_duration"], durations)


def test_every_metric_is_a_float_array_per_column_and_input_untouched() -> None:
    equity = random_equity(200, 3, seed=5)
    before = equity.copy()
    got = compute_metrics(equity, random_trades(200, 3, 10, seed=6), initial_cash=1000.0, bar_seconds=60.0)
    assert tuple(got) == METRIC_NAMES
    for name, values in got.items():
        assert values.dtype == np.float64 and values.shape == (3,), name
    assert np.array_equal(equity, before)


@pytest.mark.parametrize("n", [50, 5000])
def test_column_major_input_gives_the_same_numbers(n: int) -> None:
    # Sweeps pass the transposed view of an (m, n_bars) array; rows are then strided and get copied.
    equity = random_equity(n, 300, seed=7)
    trades = random_trades(n, 300, 500, seed=8)
    column_major = np.asfortranarray(equity)
    assert not column_major.flags.c_contiguous
    a = compute_metrics(equity, trades, initial_cash=1000.0, bar_seconds=HOUR)
    b = compute_metrics(column_major, trades, initial_cash=1000.0, bar_seconds=HOUR)
    for name in METRIC_NAMES:
        assert np.array_equal(a[name], b[name], equal_nan=True), name


def test_one_dimensional_input_is_one_column() -> None:
    got = compute_metrics(np.array([100.0, 105.0]), NO_TRADES, initial_cash=100.0, bar_seconds=HOUR)
    assert got["total_return"].shape == (1,)


@pytest.mark.parametrize(
    ("equity", "trades", "kwargs", "error"),
    [
        (np.ones((2, 2, 2)), NO_TRADES, {}, ValueError),
        (np.ones((0, 2)), NO_TRADES, {}, ValueError),
        (np.ones((3, 2)), NO_TRADES, {"initial_cash": 0.0}, ConfigError),
        (np.ones((3, 2)), NO_TRADES, {"bar_seconds": -1.0}, ConfigError),
        (np.ones((3, 2)), make_trades([2], [1.0]), {}, ValueError),
    ],
)
def test_bad_inputs(equity: np.ndarray, trades: TradeArrays, kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        compute_metrics(equity, trades, **{"initial_cash": 1.0, "bar_seconds": HOUR, **kwargs})


# --- names -----------------------------------------------------------------------------------------------


def test_names_and_directions() -> None:
    assert len(set(METRIC_NAMES)) == len(METRIC_NAMES)
    assert set(HIGHER_IS_BETTER) == set(METRIC_NAMES)
    assert HIGHER_IS_BETTER["max_drawdown"] and HIGHER_IS_BETTER["var_95"]
    assert not HIGHER_IS_BETTER["volatility"]
    assert HIGHER_IS_BETTER["excess_return"] and HIGHER_IS_BETTER["alpha"]
    assert not HIGHER_IS_BETTER["beta"]  # neutral: less of the result owed to the market ranks first
    assert set(LEGACY_NAMES.values()) <= set(METRIC_NAMES)


def test_legacy_metrics() -> None:
    trades = make_trades([0] * 5, [10, 10, 10, -5, -5], [0.10, 0.10, 0.10, -0.05, -0.05], [2] * 5)
    m = scalar_metrics([110.0, 99.0, 121.0], trades, bar_seconds=4 * HOUR)
    legacy = legacy_metrics(m)
    assert list(legacy) == [
        "total_trades", "winning_trades", "losing_trades", "win_rate", "avg_return", "total_return",
        "avg_win", "avg_loss", "volatility", "mdd", "sharpe_ratio", "sortino_ratio", "profit_factor",
        "kelly_fraction", "kelly_half", "kelly_quarter", "b_value", "swing_score", "var_95",
        "avg_holding_time", "calmar_ratio", "recovery_factor", "composite_score",
    ]  # fmt: skip
    assert legacy["total_trades"] == 5
    assert legacy["mdd"] == pytest.approx(-0.1)
    assert legacy["sharpe_ratio"] == m["sharpe"] and legacy["calmar_ratio"] == m["calmar"]
    assert legacy["avg_holding_time"] == 8.0  # hours: 2 bars of 4 hours
    assert all(isinstance(v, float) for v in legacy.values())


# --- against buy and hold: benchmark_return, excess_return, alpha, beta ----------------------------------

BENCHMARK_NAMES = ("benchmark_return", "excess_return", "alpha", "beta")
FEE = 0.01
CLOSES = [100.0, 110.0, 99.0, 121.0]
# Bought at the first close with the fee on top, sold at the last close net of the fee.
UNITS = 100.0 / (100.0 * (1 + FEE))
HELD = [UNITS * 100, UNITS * 110, UNITS * 99, UNITS * 121 * (1 - FEE)]


def regression(strategy: np.ndarray, benchmark: np.ndarray, initial: float, bar_seconds: float) -> tuple:
    """(beta, annualised alpha) by least squares on the per-bar returns, the textbook way."""
    r_s = ref_returns(np.asarray(strategy, float).reshape(-1, 1), initial)[:, 0]
    r_b = ref_returns(np.asarray(benchmark, float).reshape(-1, 1), initial)[:, 0]
    beta, intercept = np.polyfit(r_b, r_s, 1)
    return beta, intercept * SECONDS_PER_YEAR / bar_seconds


def benchmark_metrics(equity: list[float] | np.ndarray, benchmark: list[float] | np.ndarray) -> dict:
    got = compute_metrics(
        np.asarray(equity, float),
        NO_TRADES,
        initial_cash=100.0,
        bar_seconds=HOUR,
        benchmark=np.asarray(benchmark),
    )
    return {name: float(got[name][0]) for name in (*BENCHMARK_NAMES, "total_return")}


@pytest.mark.parametrize(
    ("closes", "fee", "expected"),
    [
        (CLOSES, FEE, HELD),
        (CLOSES, 0.0, CLOSES),  # without fees the curve is the price, scaled to the initial cash
        ([100.0], FEE, [100 * (1 - FEE) / (1 + FEE)]),  # one bar: bought and sold at the same close
        # Equal weight, 50 each; A has no bar 2 (carried at 110), B trades only on bars 1 and 2.
        (
            [[100.0, np.nan], [110.0, 50.0], [np.nan, 55.0], [121.0, np.nan]],
            FEE,
            [
                50 / 1.01 + 50,
                50 / 1.01 * 1.1 + 50 / 1.01,
                50 / 1.01 * 1.1 + 50 / 1.01 * 1.1 * 0.99,
                50 / 1.01 * 1.21 * 0.99 + 50 / 1.01 * 1.1 * 0.99,
            ],
        ),
    ],
)
def test_buy_and_hold_curve(closes: list, fee: float, expected: list[float]) -> None:
    got = buy_and_hold(np.asarray(closes), initial_cash=100.0, cost_rate=fee)
    assert np.allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("closes", [np.array([]), np.array([[100.0, np.nan], [101.0, np.nan]])])
def test_buy_and_hold_needs_a_price_per_column(closes: np.ndarray) -> None:
    with pytest.raises(ValueError, match="price"):
        buy_and_hold(closes, initial_cash=100.0, cost_rate=0.0)


BENCHMARK_RETURN = 1.21 * (1 - FEE) / (1 + FEE) - 1


@pytest.mark.parametrize(
    ("case", "equity", "expected"),
    [
        # Holding exactly as the benchmark does: its beta is 1, nothing is left for alpha or excess.
        ("always in", HELD, {"excess_return": 0.0, "beta": 1.0, "alpha": 0.0}),
        # Cash only: no market exposure, no alpha, and it misses the whole benchmark return.
        ("flat cash", [100.0] * 4, {"excess_return": -BENCHMARK_RETURN, "beta": 0.0, "alpha": 0.0}),
        # In the market every bar but sold and bought back at close 1: one more round trip of fees.
        (
            "an extra round trip",
            [HELD[0], *(v * (1 - FEE) / (1 + FEE) for v in HELD[1:])],
            {"excess_return": (1 + BENCHMARK_RETURN) * ((1 - FEE) / (1 + FEE) - 1)},
        ),
        # Half the cash held: beta about one half (returns are of the whole equity, cash included).
        (
            "half in",
            [50 + v / 2 for v in HELD],
            {"excess_return": (50 + HELD[-1] / 2) / 100 - 1 - BENCHMARK_RETURN},
        ),
    ],
)
def test_against_buy_and_hold(case: str, equity: list[float], expected: dict[str, float]) -> None:
    got = benchmark_metrics(equity, HELD)
    beta, alpha = regression(np.asarray(equity), np.asarray(HELD), 100.0, HOUR)
    assert got["benchmark_return"] == pytest.approx(BENCHMARK_RETURN, rel=1e-12), case
    assert got["excess_return"] == pytest.approx(got["total_return"] - BENCHMARK_RETURN, abs=1e-15), case
    assert got["beta"] == pytest.approx(beta, rel=1e-9, abs=1e-12), case
    assert got["alpha"] == pytest.approx(alpha, rel=1e-9, abs=1e-9), case
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), (case, name)


@pytest.mark.parametrize(("intercept", "slope"), [(0.0, 1.0), (0.001, 0.5), (-0.0005, 2.0), (0.0002, 0.0)])
def test_alpha_and_beta_of_returns_built_from_them(intercept: float, slope: float) -> None:
    # r_s = intercept + slope * r_b on every bar: beta is the slope, alpha the intercept × bars a year.
    r_b = np.random.default_rng(4).normal(0, 0.01, 500)
    benchmark = 100.0 * np.cumprod(1 + r_b)
    equity = 100.0 * np.cumprod(1 + intercept + slope * r_b)
    got = compute_metrics(equity, NO_TRADES, initial_cash=100.0, bar_seconds=4 * HOUR, benchmark=benchmark)
    assert got["beta"][0] == pytest.approx(slope, abs=1e-9)
    assert got["alpha"][0] == pytest.approx(intercept * SECONDS_PER_YEAR / (4 * HOUR), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(
    ("case", "equity", "benchmark", "benchmark_return"),
    [
        # A flat benchmark (constant price, no fees) has no variance: beta and alpha are undefined.
        ("flat benchmark", [101.0, 102.0, 103.0], [100.0, 100.0, 100.0], 0.0),
        # Returns equal on every bar up to rounding count as flat too (1 % a bar, computed from prices).
        ("constant growth", np.full(50, 100.0), 100.0 * 1.01 ** np.arange(1, 51), 1.01**50 - 1),
        # One bar: no variance either.
        ("one bar", [101.0], [99.0], -0.01),
    ],
)
def test_undefined_beta_and_alpha(case: str, equity: list, benchmark: list, benchmark_return: float) -> None:
    got = benchmark_metrics(equity, benchmark)
    assert math.isnan(got["beta"]) and math.isnan(got["alpha"]), case
    assert got["benchmark_return"] == pytest.approx(benchmark_return, rel=1e-12), case
    assert got["excess_return"] == pytest.approx(got["total_return"] - benchmark_return), case


def test_without_a_benchmark_the_comparison_is_nan() -> None:
    m = scalar_metrics([110.0, 99.0, 121.0])
    assert all(math.isnan(m[name]) for name in BENCHMARK_NAMES)


def test_benchmark_must_have_one_value_per_bar() -> None:
    with pytest.raises(ValueError, match="one equity value per bar"):
        compute_metrics(np.ones((3, 2)), NO_TRADES, initial_cash=1.0, bar_seconds=HOUR, benchmark=np.ones(4))


@pytest.mark.parametrize(("n", "m"), [(5000, 40), (300, 4)])
def test_benchmark_metrics_of_a_sweep_match_numpy(n: int, m: int) -> None:
    """The chunked scan (several chunks at n=5000) against plain numpy, column by column."""
    equity = random_equity(n, m, seed=n + m)
    equity[:, 0] = 1000.0  # cash only
    benchmark = buy_and_hold(
        random_equity(n, 1, seed=9, flat=0.0)[:, 0], initial_cash=1000.0, cost_rate=0.002
    )
    got = compute_metrics(equity, NO_TRADES, initial_cash=1000.0, bar_seconds=HOUR, benchmark=benchmark)
    for col in range(m):
        beta, alpha = regression(equity[:, col], benchmark, 1000.0, HOUR)
        assert got["beta"][col] == pytest.approx(beta, rel=1e-9, abs=1e-12), col
        assert got["alpha"][col] == pytest.approx(alpha, rel=1e-7, abs=1e-9), col
        alone = compute_metrics(
            equity[:, col], NO_TRADES, initial_cash=1000.0, bar_seconds=HOUR, benchmark=benchmark
        )
        for name in BENCHMARK_NAMES:
            assert same(got[name][col : col + 1], alone[name]), (name, col)
    assert np.all(got["benchmark_return"] == benchmark[-1] / 1000.0 - 1)
    assert got["beta"][0] == 0 and got["alpha"][0] == 0


def _always_in(bars: BarArrays, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    shape = (len(bars), len(params["unused"]))
    return np.ones(shape, bool), np.zeros(shape, bool)


ALWAYS_IN = Strategy(
    name="Test_Always_In",
    description="an entry signal on every bar, never an exit (tests only)",
    params=(Param("unused", 0, 0, 1, int, "no effect"),),
    signals=_always_in,
    warmup=lambda p: np.zeros(len(p["unused"]), dtype=np.int64),
)
ALL_IN: dict[str, Any] = {
    "filters": None,
    "min_volume": 0.0,
    "position_size_method": "percent",
    "position_size_value": 1.0,
}


def test_a_backtest_always_in_the_market_is_its_benchmark() -> None:
    # Close fills enter at the first close and leave at the last, all the cash in: the benchmark itself.
    bars = synthetic_bars("KRW-ETH", periods=500, freq="1h", seed=3)
    config = StrategyConfig(**ALL_IN, fill="close", stop_loss_pct=None, take_profit_pct=None)
    m = run_backtest(bars, ALWAYS_IN, {"unused": 0}, config).metrics
    close = bars["close"].to_numpy()
    held = close[-1] / close[0] * (1 - config.cost_rate) / (1 + config.cost_rate) - 1
    assert m["benchmark_return"] == pytest.approx(held, rel=1e-12)
    assert m["total_return"] == pytest.approx(held, rel=1e-12)
    assert m["excess_return"] == pytest.approx(0.0, abs=1e-12)
    assert m["beta"] == pytest.approx(1.0, abs=1e-9) and m["alpha"] == pytest.approx(0.0, abs=1e-9)
    # Next-open fills buy at the second bar's open instead: the excess is that price difference alone.
    config = StrategyConfig(**ALL_IN, fill="next_open", stop_loss_pct=None, take_profit_pct=None)
    m = run_backtest(bars, ALWAYS_IN, {"unused": 0}, config).metrics
    fees = (1 - config.cost_rate) / (1 + config.cost_rate)
    expected = close[-1] * fees * (1 / bars["open"].iloc[1] - 1 / close[0])
    assert m["excess_return"] == pytest.approx(expected, rel=1e-9)


def test_sweep_rows_equal_single_runs_and_share_one_benchmark() -> None:
    bars = synthetic_bars("KRW-XRP", periods=1500, freq="1h", seed=5)
    config = StrategyConfig(filters=None, min_volume=0.0, stop_loss_pct=0.03)
    grid = {"fast": [5, 10], "slow": [20, 40]}
    frame = run_sweep(bars, "SMA_Crossover", grid, config, block_cells=len(bars) * 2)  # two dense blocks
    held = buy_and_hold(
        bars["close"].to_numpy(), initial_cash=config.initial_cash, cost_rate=config.cost_rate
    )
    assert (frame["benchmark_return"] == held[-1] / config.initial_cash - 1).all()
    for _, row in frame.iterrows():
        single = run_backtest(bars, "SMA_Crossover", {"fast": row["fast"], "slow": row["slow"]}, config)
        for name in BENCHMARK_NAMES:
            assert row[name] == pytest.approx(single.metrics[name], rel=1e-9, abs=1e-12), name


def test_portfolio_is_compared_with_equal_weight_buy_and_hold() -> None:
    # B starts 200 bars later than A: its half of the cash waits until B's first close.
    a = synthetic_bars("KRW-A", periods=600, freq="1h", seed=1)
    b = synthetic_bars("KRW-B", periods=400, freq="1h", seed=2, start=a.index[200])
    config = StrategyConfig(filters=None, min_volume=0.0, max_positions=2)
    result = run_portfolio_backtest(
        {"KRW-A": a, "KRW-B": b}, "SMA_Crossover", {"fast": 5, "slow": 20}, config
    )
    fees = (1 - config.cost_rate) / (1 + config.cost_rate)
    legs = [f["close"].iloc[-1] / f["close"].iloc[0] * fees for f in (a, b)]
    assert result.metrics["benchmark_return"] == pytest.approx(sum(legs) / 2 - 1, rel=1e-12)
    closes = np.column_stack([f["close"].reindex(result.equity.index).to_numpy() for f in (a, b)])
    basket = buy_and_hold(closes, initial_cash=config.initial_cash, cost_rate=config.cost_rate)
    beta, alpha = regression(result.equity.to_numpy(), basket, config.initial_cash, HOUR)
    assert result.metrics["beta"] == pytest.approx(beta, rel=1e-9, abs=1e-12)
    assert result.metrics["alpha"] == pytest.approx(alpha, rel=1e-7, abs=1e-9)
