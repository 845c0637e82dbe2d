"""Strategies: hand-built bar series with the expected signal bars written out, the registry's checks, and
the vectorised-over-combinations contract (a grid equals its combinations run one at a time)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtesting_modules.bars import BarArrays
from backtesting_modules.errors import StrategyError
from backtesting_modules.strategies import (
    Strategy,
    expand_grid,
    get_strategy,
    list_strategies,
    resolve_params,
    table_rows,
)

ALL = [
    "SMA_Crossover",
    "RSI_MeanReversion",
    "Donchian_Breakout",
    "Static_Donchian_Supertrend",
    "Dynamic_RSI_MACD",
    "Hybrid_VCP_Momentum",
    "Simple_MA_Crossover",
]


def make_bars(
    closes: Sequence[float],
    volumes: Sequence[float] | None = None,
    highs: Sequence[float] | None = None,
    lows: Sequence[float] | None = None,
) -> BarArrays:
    """Bars whose open, high and low equal the close unless given."""
    close = np.asarray(closes, dtype=float)
    index = pd.date_range("2024-01-01", periods=len(close), freq="1h", tz="UTC")
    frame = pd.DataFrame(
        {
            "open": close,
            "high": close if highs is None else np.asarray(highs, dtype=float),
            "low": close if lows is None else np.asarray(lows, dtype=float),
            "close": close,
            "volume": np.ones(len(close)) if volumes is None else np.asarray(volumes, dtype=float),
        },
        index=index,
    )
    return BarArrays.from_frame(frame)


def random_bars(n: int = 400, seed: int = 5) -> BarArrays:
    rng = np.random.default_rng(seed)
    close = 1000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
    opens = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(opens, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(opens, close) * (1 - rng.uniform(0, 0.01, n))
    volume = rng.lognormal(0.0, 0.7, n)
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    frame = pd.DataFrame(
        {"open": opens, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )
    return BarArrays.from_frame(frame)


def run(name: str, bars: BarArrays, **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """1-D entry and exit positions of one combination (defaults overlaid with `params`)."""
    strategy = get_strategy(name)
    table, _ = expand_grid(strategy, {}, params)
    entries, exits = strategy.signals(bars, table)
    return np.flatnonzero(entries[:, 0]), np.flatnonzero(exits[:, 0])


# --- classic strategies, hand-checked --------------------------------------------------------------------

# SMA(2) / SMA(3) of the closes below (fast vs slow):
# t=2 10/10 (equal) | t=3 9.5/9.67 below: exit (t-1 was >=) | t=4..6 below | t=7 9/8.33 above: entry
# t=8..10 above | t=11 11/11.67 below: exit | t=12, 13 below.
SMA_CLOSES = [10, 10, 10, 9, 8, 7, 8, 10, 12, 13, 12, 10, 8, 7]

# Wilder RSI(2): t=2 0 | t=3 50 (crosses up through 30: entry) | t=4 75, t=5 87.5 (>= 70: exit) |
# t=6 43.75 | t=7 21.875 | t=8 10.9375 | t=9 55.47 (crosses up through 30 again: entry).
RSI_CLOSES = [10, 9, 8, 9, 10, 11, 10, 9, 8, 9]

# Donchian with high = close + 1, low = close - 1. Entry above the highest high of the previous 3 bars:
# t=3: 12 > 11; t=4: 11 < 13; t=7: 9 < 12; t=8: 13 > max(11, 9, 10) = 11. Exit below the lowest low of the
# previous 2 bars: t=5: 10 is not < min(11, 10) = 10; t=6: 8 < min(10, 9) = 9; t=7: 9 > 7.
DONCHIAN_CLOSES = [10, 10, 10, 12, 11, 10, 8, 9, 13, 12]


@pytest.mark.parametrize(
    ("name", "bars", "params", "entries", "exits"),
    [
        ("SMA_Crossover", make_bars(SMA_CLOSES), {"fast": 2, "slow": 3}, [7], [3, 11]),
        ("RSI_MeanReversion", make_bars(RSI_CLOSES), {"period": 2, "lower": 30, "upper": 70}, [3, 9], [4, 5]),
        (
            "Donchian_Breakout",
            make_bars(
                DONCHIAN_CLOSES,
                highs=[c + 1 for c in DONCHIAN_CLOSES],
                lows=[c - 1 for c in DONCHIAN_CLOSES],
            ),
            {"entry_period": 3, "exit_period": 2},
            [3, 8],
            [6],
        ),
    ],
)
def test_classic_signal_bars(
    name: str, bars: BarArrays, params: dict[str, float], entries: list[int], exits: list[int]
) -> None:
    got_entries, got_exits = run(name, bars, **params)
    assert got_entries.tolist() == entries
    assert got_exits.tolist() == exits


def test_rsi_exit_level_and_entry_cross_are_inclusive() -> None:
    # RSI(2) at t=3 is exactly 50: lower=50 still enters (rsi[t-1] < 50 <= rsi[t]); upper=75 exits at t=4.
    entries, exits = run("RSI_MeanReversion", make_bars(RSI_CLOSES), period=2, lower=50, upper=75)
    assert entries.tolist() == [3, 9]
    assert exits.tolist() == [4, 5]


# --- Makenaide strategies, hand-checked ------------------------------------------------------------------

RISING = [100 * 1.01**t for t in range(30)]
FALLING = [100 * 0.99**t for t in range(30)]


def test_static_donchian_buys_on_the_volume_spike_of_a_rising_series() -> None:
    # Every bar closes at its channel high: position 1 (25), MA5 > MA10 > MA20 (20), RSI 100 is outside both
    # bands (0), constant returns have std 0 < 0.06 (8): 53. The spike at bar 25 is 5 / 1.4 = 3.6 times
    # its 10-bar mean (20): 73 >= 70. Sell score: RSI 100 > 75 (25) only.
    volumes = [1.0] * 30
    volumes[25] = 5.0
    entries, exits = run("Static_Donchian_Supertrend", make_bars(RISING, volumes))
    assert entries.tolist() == [25]
    assert exits.tolist() == []
    entries, _ = run("Static_Donchian_Supertrend", make_bars(RISING, volumes), buy_threshold=74)
    assert entries.tolist() == []


def test_static_donchian_sells_a_falling_series_from_the_warmup_on() -> None:
    # Position 0 (30), MA5 < MA10 < MA20 (25), RSI 0 < 25 (25), MA5 about 7 % under MA20 (20): 100 >= 60.
    entries, exits = run("Static_Donchian_Supertrend", make_bars(FALLING))
    assert entries.tolist() == []
    assert exits.tolist() == list(range(19, 30))  # warm-up: MA20 first defined at bar 19


def test_dynamic_rsi_macd_buys_the_rebound_bar() -> None:
    # Closes fall by 1 for 20 bars (100 .. 81), then jump to 85. With momentum SMA2 - SMA3:
    # t=20: RSI(7) gain (0*6 + 4)/7, loss (1*6 + 0)/7 -> 40 < 60; momentum 83 - 82.67 > 0; MA7 = 586/7 < 85.
    # Before it: close = MA7 - 3 < 0.97 MA7 (close < 97) -> exit from the warm-up (RSI(7): bar 7) on.
    bars = make_bars([100 - t for t in range(20)] + [85])
    entries, exits = run("Dynamic_RSI_MACD", bars, momentum_fast=2, momentum_slow=3)
    assert entries.tolist() == [20]
    assert exits.tolist() == list(range(7, 20))


def test_dynamic_rsi_macd_defaults_on_a_falling_series() -> None:
    # SMA6 - SMA14 = -4 x the 1 %-a-bar slope, far below -1 % of SMA14 -> exit everywhere after bar 13.
    entries, exits = run("Dynamic_RSI_MACD", make_bars(FALLING))
    assert entries.tolist() == []
    assert exits.tolist() == list(range(13, 30))


def hybrid_closes() -> list[float]:
    # Bars 0..24 zig-zag 100 / 106 (returns of ±6 %), bars 25..39 creep up 0.1 a bar from 100.
    return [100.0 if t % 2 == 0 else 106.0 for t in range(25)] + [100 + 0.1 * k for k in range(15)]


def test_hybrid_vcp_buys_a_quiet_pullback() -> None:
    # t=39: 20-bar high 106, close 101.4: pullback 4.3 % in (3 %, 20 %) and the older returns are far more
    # volatile than the recent ones (contraction >> 1.3): 30. Momentum 5/10 > -5 % / -10 %: 25. The last 15
    # closes rise, so MA5 > MA10 > MA15: 20. Already 75 >= 65 whatever RSI adds.
    entries, exits = run("Hybrid_VCP_Momentum", make_bars(hybrid_closes()))
    assert 39 in entries.tolist()
    assert 39 not in exits.tolist()
    # Moving the 30-point band above the pullback (under 5 %, so not in the 15-point band either) leaves at
    # most 25 + 20 + 15 = 60 < 65.
    entries, _ = run("Hybrid_VCP_Momentum", make_bars(hybrid_closes()), pullback_min=0.05)
    assert 39 not in entries.tolist()


def test_hybrid_vcp_sells_a_falling_series() -> None:
    # MA5 about 10 % under MA15 (< 0.97): exit on every bar after the warm-up (contraction: bar 30).
    entries, exits = run("Hybrid_VCP_Momentum", make_bars([100 * 0.98**t for t in range(40)]))
    assert entries.tolist() == []
    assert exits.tolist() == list(range(30, 40))


def test_simple_ma_crossover_needs_four_conditions() -> None:
    # Rising 1 % a bar: MA5 ~ 1.025 MA10 with MA5 ~ 7.5 % over MA20 (strong trend) and MA10 > 1.005 MA20 are
    # 2 buy conditions; RSI 100 is outside 30-75 and constant returns have std 0 < 0.01. The volume spike
    # at bar 25 (5 over its 15-bar mean 19/15 > 1.4) makes 3 there: 3 required sees it, 4 sees nothing.
    volumes = [1.0] * 30
    volumes[25] = 5.0
    entries, exits = run("Simple_MA_Crossover", make_bars(RISING, volumes), min_buy_conditions=3)
    assert entries.tolist() == [25]
    assert exits.tolist() == []  # RSI 100 > 75 is only one of the two sell conditions needed
    entries, _ = run("Simple_MA_Crossover", make_bars(RISING, volumes))
    assert entries.tolist() == []


def test_simple_ma_crossover_sells_a_falling_series() -> None:
    # Strong fall (MA5 < 0.985 MA10 and MA5 7 % under MA20), RSI 0 < 25, MA5 < 0.98 MA20: 3 >= 2.
    entries, exits = run("Simple_MA_Crossover", make_bars(FALLING))
    assert entries.tolist() == []
    assert exits.tolist() == list(range(19, 30))


def test_makenaide_entry_wins_over_exit_on_the_same_bar() -> None:
    # Every condition of Dynamic_RSI_MACD's sell is disabled but RSI > 0; the buy bar stays an entry only.
    bars = make_bars([100 - t for t in range(20)] + [85])
    entries, exits = run("Dynamic_RSI_MACD", bars, momentum_fast=2, momentum_slow=3, rsi_sell=0)
    assert 20 in entries.tolist()
    assert 20 not in exits.tolist()


# --- registry behaviour ----------------------------------------------------------------------------------


def test_all_strategies_registered() -> None:
    assert set(ALL) <= set(list_strategies())


def test_unknown_strategy_suggests_a_name() -> None:
    with pytest.raises(StrategyError, match="Did you mean 'SMA_Crossover'"):
        get_strategy("SMA_Crosover")


def test_unknown_parameter_suggests_a_name() -> None:
    with pytest.raises(StrategyError, match="Did you mean 'fast'"):
        resolve_params(get_strategy("SMA_Crossover"), {"fsat": 5})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fast": 1}, "outside"),
        ({"slow": 5000}, "outside"),
        ({"fast": 2.5}, "must be an integer"),
        ({"fast": "ten"}, "not a number"),
    ],
)
def test_bad_values_are_rejected(params: dict[str, Any], message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        resolve_params(get_strategy("SMA_Crossover"), params)


@pytest.mark.parametrize(
    ("name", "params", "constraint"),
    [
        ("SMA_Crossover", {"fast": 30, "slow": 10}, "fast < slow"),
        ("RSI_MeanReversion", {"lower": 50, "upper": 50}, "lower < upper"),
        ("Static_Donchian_Supertrend", {"ma_medium": 30}, "ma_short < ma_medium < ma_long"),
        ("Dynamic_RSI_MACD", {"momentum_fast": 20}, "momentum_fast < momentum_slow"),
    ],
)
def test_constraint_violation(name: str, params: dict[str, float], constraint: str) -> None:
    with pytest.raises(StrategyError, match=constraint):
        resolve_params(get_strategy(name), params)


def test_expand_grid_skips_invalid_combinations() -> None:
    grid = {"fast": range(5, 51, 5), "slow": range(10, 201, 5)}
    table, skipped = expand_grid(get_strategy("SMA_Crossover"), grid)
    # 10 x 39 = 390 pairs; fast >= slow happens for slow = 10..50 step 5 with fast >= slow: 1+2+...+9 = 45.
    assert len(table["fast"]) == 345 and skipped == 45
    assert (table["fast"] < table["slow"]).all()
    assert table["fast"].dtype == np.int64


@pytest.mark.parametrize("name", ALL)
def test_parameters_are_documented_and_defaults_valid(name: str) -> None:
    strategy = get_strategy(name)
    assert strategy.description
    for param in strategy.params:
        assert param.doc, f"{name}.{param.name} has no doc"
        assert param.low <= param.default <= param.high
    assert resolve_params(strategy) == strategy.defaults()


# --- the vectorised contract -----------------------------------------------------------------------------

GRIDS: dict[str, dict[str, list[Any]]] = {
    "SMA_Crossover": {"fast": [3, 5, 10], "slow": [8, 20, 30]},
    "RSI_MeanReversion": {"period": [5, 14], "lower": [25, 35], "upper": [60, 75]},
    "Donchian_Breakout": {"entry_period": [10, 20], "exit_period": [5, 10, 20]},
    "Static_Donchian_Supertrend": {"channel_period": [10, 20], "buy_threshold": [50, 70]},
    "Dynamic_RSI_MACD": {"rsi_period": [7, 14], "rsi_buy_max": [50, 60]},
    "Hybrid_VCP_Momentum": {"contraction_window": [10, 15], "buy_threshold": [45, 65]},
    "Simple_MA_Crossover": {"min_buy_conditions": [2, 3, 4], "ma_long": [20, 30]},
}


def single(strategy: Strategy, bars: BarArrays, combo: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    table = {k: np.asarray([v]) for k, v in combo.items()}
    return strategy.signals(bars, table)


@pytest.mark.parametrize("name", ALL)
def test_grid_equals_one_combination_at_a_time(name: str) -> None:
    strategy = get_strategy(name)
    table, _ = expand_grid(strategy, GRIDS[name])
    m = len(next(iter(table.values())))
    bars = random_bars()
    entries, exits = strategy.signals(bars, table)
    assert entries.shape == exits.shape == (len(bars), m)
    assert entries.dtype == exits.dtype == np.bool_
    assert entries.any() and exits.any()
    for column, combo in enumerate(table_rows(table)):
        one_entries, one_exits = single(strategy, random_bars(), combo)  # fresh bars: no shared memo
        np.testing.assert_array_equal(entries[:, column], one_entries[:, 0], err_msg=f"{combo}")
        np.testing.assert_array_equal(exits[:, column], one_exits[:, 0], err_msg=f"{combo}")


@pytest.mark.parametrize("name", ALL)
def test_no_signal_inside_the_warmup(name: str) -> None:
    strategy = get_strategy(name)
    table, _ = expand_grid(strategy, GRIDS[name])
    bars = random_bars(seed=9)
    entries, exits = strategy.signals(bars, table)
    warmup = strategy.warmup(table)
    assert warmup.shape == (entries.shape[1],)
    for column, bars_needed in enumerate(warmup.tolist()):
        assert bars_needed > 0
        assert not entries[:bars_needed, column].any()
        assert not exits[:bars_needed, column].any()


def test_sma_signals_are_exact_crosses_on_random_data() -> None:
    bars = random_bars(seed=21)
    fast_avg = pd.Series(bars.close).rolling(5).mean().to_numpy()
    slow_avg = pd.Series(bars.close).rolling(20).mean().to_numpy()
    prev_fast, prev_slow = np.roll(fast_avg, 1), np.roll(slow_avg, 1)
    expected_entries = (fast_avg > slow_avg) & (prev_fast <= prev_slow)
    expected_exits = (fast_avg < slow_avg) & (prev_fast >= prev_slow)
    expected_entries[:20] = expected_exits[:20] = False
    entries, exits = run("SMA_Crossover", bars, fast=5, slow=20)
    assert entries.tolist() == np.flatnonzero(expected_entries).tolist()
    assert exits.tolist() == np.flatnonzero(expected_exits).tolist()


def test_empty_table_gives_empty_columns() -> None:
    strategy = get_strategy("SMA_Crossover")
    bars = random_bars(50)
    entries, exits = strategy.signals(
        bars, {"fast": np.asarray([], dtype=np.int64), "slow": np.asarray([], dtype=np.int64)}
    )
    assert entries.shape == exits.shape == (50, 0)
