"""`run_sets` and `valid_sets`: a list of parameter sets backtested at once is, row for row, `run_backtest`
of each set, and `run_sweep` when the sets are a grid's product; sets violating a constraint are reported,
not run."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtesting_modules import (
    METRIC_NAMES,
    StrategyConfig,
    StrategyError,
    TradeWindow,
    get_strategy,
    list_strategies,
    run_backtest,
    run_sets,
    run_sweep,
    synthetic_bars,
    valid_sets,
)
from backtesting_modules.strategies import Strategy, resolve_params

N_BARS = 2600  # every Param's whole range fits: SMA_Crossover's slow goes up to 2000
NO_FILTERS: dict[str, Any] = {"filters": None, "min_volume": 0.0}
CONFIGS = {
    "plain": StrategyConfig(**NO_FILTERS, stop_loss_pct=0.05),
    "upbit_krw": StrategyConfig(**NO_FILTERS, market_rules="upbit_krw"),
}
# Two or three axes per strategy; where the strategy has constraints, some combinations violate them.
GRIDS: dict[str, dict[str, list[float]]] = {
    "SMA_Crossover": {"fast": [5, 20, 40], "slow": [10, 30]},
    "RSI_MeanReversion": {"period": [7, 14], "lower": [30.0, 50.0], "upper": [50.0, 70.0]},
    "Donchian_Breakout": {"entry_period": [10, 20], "exit_period": [5, 10]},
    "Static_Donchian_Supertrend": {"ma_short": [5, 12], "ma_medium": [10, 15], "buy_threshold": [50, 60]},
    "Dynamic_RSI_MACD": {"rsi_period": [7, 14], "momentum_fast": [6, 16], "momentum_slow": [14, 20]},
    "Hybrid_VCP_Momentum": {"contraction_window": [10, 15], "ma_long": [8, 15], "buy_threshold": [40, 55]},
    "Simple_MA_Crossover": {"ma_short": [3, 12], "ma_medium": [10, 15], "min_buy_conditions": [3, 4]},
}


def _grid(strategy: Strategy) -> dict[str, list[float]]:
    """GRIDS' entry, or (a strategy registered elsewhere, by a test) its first two parameters at the
    default and halfway to the top of the range."""
    if strategy.name in GRIDS:
        return GRIDS[strategy.name]
    return {p.name: [p.default, p.kind((p.default + p.high) / 2)] for p in strategy.params[:2]}


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return synthetic_bars("KRW-ETH", periods=N_BARS, freq="1h", seed=11)


def _window(bars: pd.DataFrame) -> TradeWindow:
    return TradeWindow(bars.index[600], bars.index[2400])


def _allowed(strategy: Strategy, values: Mapping[str, Any]) -> bool:
    """The registry's own verdict (resolve_params raises on a violated constraint), not valid_sets'."""
    try:
        resolve_params(strategy, values)
    except StrategyError:
        return False
    return True


# Values that violate a constraint of each strategy that has one.
BREAKS: dict[str, dict[str, float]] = {
    "SMA_Crossover": {"fast": 40, "slow": 20},
    "RSI_MeanReversion": {"lower": 50.0, "upper": 50.0},
    "Static_Donchian_Supertrend": {"ma_short": 30, "ma_medium": 20},
    "Dynamic_RSI_MACD": {"momentum_fast": 20, "momentum_slow": 10},
    "Hybrid_VCP_Momentum": {"momentum_short": 30, "momentum_long": 10},
    "Simple_MA_Crossover": {"ma_medium": 50, "ma_long": 40},
}


def _draw_sets(strategy: Strategy, seed: int, valid: int = 6, invalid: int = 2) -> list[dict[str, Any]]:
    """`valid` sets that satisfy the constraints, drawn uniformly within each Param's range (every other one
    within the middle of the ranges around the defaults, so that more of them trade), and (for a strategy
    in BREAKS) `invalid` random ones made to violate a constraint; shuffled."""
    rng = np.random.default_rng(seed)

    def draw(narrow: bool) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for p in strategy.params:
            low, high = ((p.low + p.default) / 2, (p.default + p.high) / 2) if narrow else (p.low, p.high)
            values[p.name] = (
                int(rng.integers(math.ceil(low), math.floor(high) + 1))
                if p.kind is int
                else float(rng.uniform(low, high))
            )
        return values

    sets: list[dict[str, Any]] = []
    while len(sets) < valid:
        values = draw(narrow=len(sets) % 2 == 1)
        if _allowed(strategy, values):
            sets.append(values)
    if strategy.name in BREAKS:
        sets += [{**draw(narrow=False), **BREAKS[strategy.name]} for _ in range(invalid)]
    return [sets[i] for i in rng.permutation(len(sets))]


def _assert_row_is(row: pd.Series, metrics: Mapping[str, float], what: Any) -> None:
    for name, value in metrics.items():
        got = float(row[name])
        assert (math.isnan(value) and math.isnan(got)) or got == pytest.approx(value, rel=1e-9, abs=1e-12), (
            name,
            what,
        )


@pytest.mark.parametrize("scenario", ["plain", "upbit_krw", "window_and_periods"])
@pytest.mark.parametrize("name", list_strategies())
def test_random_sets_equal_run_backtest_of_each(bars: pd.DataFrame, name: str, scenario: str) -> None:
    strategy = get_strategy(name)
    sets = _draw_sets(strategy, seed=sum(map(ord, name + scenario)))
    config = CONFIGS["upbit_krw" if scenario == "upbit_krw" else "plain"]
    window = _window(bars) if scenario == "window_and_periods" else None
    freq = "1D" if scenario != "plain" else None
    # Three combinations per dense block: block boundaries, and blocks ending in combinations without trades.
    frame = run_sets(bars, name, sets, config, window=window, period_returns=freq, block_cells=3 * N_BARS)

    allowed = [_allowed(strategy, s) for s in sets]
    assert len(frame) == len(sets)
    assert list(frame.columns) == [*strategy.param_names, *METRIC_NAMES]
    assert frame.attrs["skipped_indices"] == [i for i, ok in enumerate(allowed) if not ok]
    assert (frame.attrs["combinations"], frame.attrs["skipped"]) == (sum(allowed), allowed.count(False))
    assert valid_sets(name, sets).tolist() == allowed
    returns = frame.attrs.get("period_returns")
    assert (returns is None) == (freq is None)
    for i, (values, ok) in enumerate(zip(sets, allowed, strict=True)):
        row = frame.iloc[i]
        assert {k: row[k] for k in values} == pytest.approx(values)
        if not ok:
            assert row[list(METRIC_NAMES)].isna().all()
            assert returns is None or np.isnan(returns.values[:, i]).all()
            continue
        single = run_backtest(bars, name, values, config, window=window)
        _assert_row_is(row, single.metrics, (i, values))
        if returns is not None:
            own = single.period_returns("1D").values[:, 0]
            np.testing.assert_allclose(returns.values[:, i], own, rtol=1e-6, atol=1e-9)


def _product(grid: Mapping[str, list[float]]) -> list[dict[str, float]]:
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]


@pytest.mark.parametrize("scenario", ["plain", "upbit_krw", "window_and_periods"])
@pytest.mark.parametrize("name", list_strategies())
def test_the_product_of_a_grid_as_sets_is_run_sweep(bars: pd.DataFrame, name: str, scenario: str) -> None:
    grid = _grid(get_strategy(name))
    config = CONFIGS["upbit_krw" if scenario == "upbit_krw" else "plain"]
    options: dict[str, Any] = {"block_cells": 3 * N_BARS}
    if scenario == "window_and_periods":
        options.update(window=_window(bars), period_returns="1D")
    sweep = run_sweep(bars, name, grid, config, **options)
    sets = run_sets(bars, name, _product(grid), config, **options)

    kept = sets.drop(index=sets.attrs["skipped_indices"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, sweep, check_exact=True)
    assert {k: v for k, v in sets.attrs.items() if k not in ("skipped_indices", "period_returns")} == {
        k: v for k, v in sweep.attrs.items() if k != "period_returns"
    }
    assert len(sets.attrs["skipped_indices"]) == sweep.attrs["skipped"]
    if "period_returns" in options:
        kept_returns = np.delete(sets.attrs["period_returns"].values, sets.attrs["skipped_indices"], axis=1)
        np.testing.assert_array_equal(kept_returns, sweep.attrs["period_returns"].values)

    # In another order, as a table of columns: the same rows, in the order given.
    order = np.random.default_rng(3).permutation(len(sets))
    table = {k: np.asarray([s[k] for s in _product(grid)])[order] for k in grid}
    shuffled = run_sets(bars, name, table, config, **options)
    expected = sets.iloc[order].reset_index(drop=True)
    pd.testing.assert_frame_equal(shuffled, expected, rtol=1e-9, atol=1e-12)


def test_violating_sets_are_never_backtested(bars: pd.DataFrame) -> None:
    sma = get_strategy("SMA_Crossover")
    seen: list[tuple[int, int]] = []

    def spy(arrays: Any, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        seen.extend(zip(params["fast"].tolist(), params["slow"].tolist(), strict=True))
        return sma.signals(arrays, params)

    strategy = dataclasses.replace(sma, signals=spy)
    sets = [{"fast": 30, "slow": 10}, {"fast": 5, "slow": 20}, {"fast": 20, "slow": 20}, {"fast": 8}]
    frame = run_sets(bars, strategy, sets, CONFIGS["plain"])
    assert seen == [(5, 20), (8, 30)]
    assert frame.attrs["skipped_indices"] == [0, 2]
    assert frame.loc[[0, 2], "sharpe"].isna().all()
    assert frame.loc[[1, 3], "trades"].gt(0).all()


def test_every_set_violating_gives_rows_of_nan(bars: pd.DataFrame) -> None:
    sets = [{"fast": 30, "slow": 10}, {"fast": 40}]
    frame = run_sets(bars, "SMA_Crossover", sets, CONFIGS["plain"], period_returns="1D")
    assert frame[["fast", "slow"]].to_dict("records") == [{"fast": 30, "slow": 10}, {"fast": 40, "slow": 30}]
    assert frame[list(METRIC_NAMES)].isna().all().all()
    assert (frame.attrs["combinations"], frame.attrs["skipped"], frame.attrs["skipped_indices"]) == (
        0,
        2,
        [0, 1],
    )
    assert frame.attrs["period_returns"].values.shape == (len(bars) // 24 + 1, 2)
    assert np.isnan(frame.attrs["period_returns"].values).all()


def test_an_empty_list(bars: pd.DataFrame) -> None:
    frame = run_sets(bars, "Hybrid_VCP_Momentum", [], CONFIGS["plain"], period_returns="1D")
    strategy = get_strategy("Hybrid_VCP_Momentum")
    assert frame.empty
    assert list(frame.columns) == [*strategy.param_names, *METRIC_NAMES]
    assert frame.dtypes["high_period"] == np.int64 and frame.dtypes["sharpe"] == np.float64
    assert (frame.attrs["combinations"], frame.attrs["skipped"], frame.attrs["skipped_indices"]) == (0, 0, [])
    assert frame.attrs["period_returns"].values.shape[1] == 0
    assert valid_sets(strategy, []).shape == (0,)


@pytest.mark.parametrize("name", list_strategies())
def test_a_list_of_one_is_run_backtest(bars: pd.DataFrame, name: str) -> None:
    frame = run_sets(bars, name, [{}], CONFIGS["plain"])
    single = run_backtest(bars, name, None, CONFIGS["plain"])
    assert len(frame) == 1 and frame.attrs["skipped_indices"] == []
    assert frame.iloc[0][get_strategy(name).param_names].to_dict() == pytest.approx(single.params)
    _assert_row_is(frame.iloc[0], single.metrics, name)
    assert frame.attrs["info"] == single.info.to_dict()


def test_omitted_values_come_from_fixed_then_the_defaults(bars: pd.DataFrame) -> None:
    sets = [{"period": 9}, {"period": 14, "upper": 80.0}]
    frame = run_sets(bars, "RSI_MeanReversion", sets, CONFIGS["plain"], fixed={"upper": 65})
    assert frame[["period", "lower", "upper"]].to_dict("records") == [
        {"period": 9, "lower": 30.0, "upper": 65.0},
        {"period": 14, "lower": 30.0, "upper": 80.0},
    ]
    single = run_backtest(bars, "RSI_MeanReversion", {"period": 9, "upper": 65}, CONFIGS["plain"])
    _assert_row_is(frame.iloc[0], single.metrics, "fixed")


def test_a_grid_whose_last_combination_never_trades(bars: pd.DataFrame) -> None:
    # The equity curves of a block whose last combinations have no trade (here lower=2: RSI never that low).
    grid = {"lower": [30.0, 2.0]}
    frame = run_sweep(bars, "RSI_MeanReversion", grid, CONFIGS["plain"])
    assert frame["trades"].tolist()[1] == 0
    for i, lower in enumerate(grid["lower"]):
        single = run_backtest(bars, "RSI_MeanReversion", {"lower": lower}, CONFIGS["plain"])
        _assert_row_is(frame.iloc[i], single.metrics, lower)


def test_valid_sets_needs_no_bars_and_takes_either_form() -> None:
    as_list = [{"fast": 10, "slow": 30}, {"fast": 40}, {"slow": 12}, {"fast": 2, "slow": 3}]
    as_table = {"fast": [10, 40, 10, 2], "slow": np.array([30, 30, 12, 3])}
    assert valid_sets("SMA_Crossover", as_list).tolist() == [True, False, True, True]
    assert valid_sets("SMA_Crossover", as_table).tolist() == [True, False, True, True]
    assert valid_sets("SMA_Crossover", [{"fast": 40}], fixed={"slow": 50}).tolist() == [True]
    assert valid_sets("Donchian_Breakout", [{"entry_period": 5, "exit_period": 50}]).tolist() == [True]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ([{"fast": 10}, {"fast": 1}], r"SMA_Crossover, set 1: parameter fast=1 is outside \[2, 500\]"),
        ({"fast": [10, 12.5]}, r"set 1: parameter fast=12.5 must be an integer"),
        ([{"fast": 10}, {"slow": "many"}], r"set 1: parameter slow='many' is not a number"),
        ([{"fast": 10}, {"fats": 3}], r"set 1: no parameter 'fats'. Did you mean 'fast'\?"),
        ({"slow": [30], "fats": [3]}, r"table of sets: no parameter 'fats'. Did you mean 'fast'"),
        ({"fast": [5, 6], "slow": [30]}, r"differ in length \(\{'fast': 2, 'slow': 1\}\)"),
        ({"fast": 5, "slow": 30}, r"must be a sequence \(one value per set\)"),
        ({}, "has no column"),
        ([{"fast": 5}, (5, 30)], r"set 1: \(5, 30\) is not a mapping"),
    ],
)
def test_bad_sets_are_refused_naming_the_set_and_the_fix(bars: pd.DataFrame, sets: Any, message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        valid_sets("SMA_Crossover", sets)
    with pytest.raises(StrategyError, match=message):
        run_sets(bars, "SMA_Crossover", sets, CONFIGS["plain"])
