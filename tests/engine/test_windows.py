"""Trade windows (no look-ahead, warm-up before the window, every trade inside it) and per-period returns."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtesting_modules import (
    ConfigError,
    DataError,
    PeriodReturns,
    StrategyConfig,
    TradeWindow,
    compute_period_returns,
    get_strategy,
    rank_sweep,
    run_backtest,
    run_sweep,
    synthetic_bars,
)
from backtesting_modules.bars import BarArrays
from backtesting_modules.strategies import Strategy

NO_FILTERS: dict[str, Any] = {"filters": None, "min_volume": 0.0}
RULES: dict[str, dict[str, Any]] = {"no rules": {}, "upbit_krw": {"market_rules": "upbit_krw"}}
FILLS = ("next_open", "close")
FIRST, STOP = 900, 2100  # the window of the synthetic bars, as positions


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return synthetic_bars("KRW-ETH", periods=3000, freq="1h", seed=11)


@pytest.fixture(scope="module")
def window(bars: pd.DataFrame) -> TradeWindow:
    return TradeWindow(bars.index[FIRST], bars.index[STOP])


def config(fill: str, rules: str, **extra: Any) -> StrategyConfig:
    return StrategyConfig(**{**NO_FILTERS, "fill": fill, **RULES[rules], **extra})


def entries_from(name: str, first: int) -> Strategy:
    """`name` with its entry signals before bar `first` removed: a run on bars[:stop] restricted to entries
    at or after the window's start."""
    base = get_strategy(name)

    def signals(bars: BarArrays, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        entries, exits = base.signals(bars, params)
        entries = entries.copy()
        entries[:first] = False
        return entries, exits

    return Strategy(
        f"{name}_from_{first}", base.description, base.params, signals, base.warmup, base.constraints
    )


def fixed_signals(entries: list[int], exits: list[int]) -> Strategy:
    """A strategy without parameters whose signals are on the given bars."""

    def signals(bars: BarArrays, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        on = np.zeros((len(bars), 2), dtype=bool)
        on[[bar for bar in entries if bar < len(bars)], 0] = True
        on[[bar for bar in exits if bar < len(bars)], 1] = True
        return on[:, :1], on[:, 1:]

    return Strategy("fixed", "signals on given bars", (), signals, lambda params: np.zeros(1, np.int64))


def hourly(rows: list[tuple[float, float, float, float]], start: str = "2024-01-01") -> pd.DataFrame:
    index = pd.date_range(start, periods=len(rows), freq="1h", tz="UTC", name="timestamp")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index)
    frame["volume"] = 1_000.0
    return frame


# --- the trading rules of a window, on a small grid of bars ------------------------------------------------


@dataclass(frozen=True)
class WindowCase:
    name: str
    fill: str
    window: tuple[int, int]  # positions of start and stop
    entries: list[int]
    exits: list[int]
    expected: list[tuple[int, int, str]]  # (entry bar, exit bar, exit reason)


# Bar b opens at 100 + b and closes at 100.5 + b, so a price says which bar and which end of it.
GRID_ROWS = [(100.0 + b, 101.5 + b, 99.0 + b, 100.5 + b) for b in range(10)]
WINDOW_CASES = [
    # Without a window (bars[:8]): 1 -> 2..4 (signal exit), 4 -> 5..7 (end of data).
    WindowCase(
        "signal before start is not taken", "next_open", (3, 8), [1, 4, 7], [3], [(5, 7, "END_OF_DATA")]
    ),
    # The signal on bar 1 would fill on bar 2, inside the window: it is still a signal from before it.
    WindowCase(
        "the signal bar decides, not the fill", "next_open", (2, 8), [1, 4], [3], [(5, 7, "END_OF_DATA")]
    ),
    WindowCase(
        "close fills enter on the signal bar", "close", (3, 8), [1, 4, 7], [3], [(4, 7, "END_OF_DATA")]
    ),
    WindowCase("signal on the first bar of the window", "close", (4, 9), [4], [6], [(4, 6, "SIGNAL")]),
    # The exit signal on bar 9 is at the stop: never read; the position closes at bar 8's close.
    WindowCase("exit after stop is never seen", "next_open", (0, 9), [2], [9], [(3, 8, "END_OF_DATA")]),
    # Bar 8 is the window's last: a signal on it has nothing left to fill on.
    WindowCase("signal on the last bar is not filled", "next_open", (5, 9), [8], [], []),
]


@pytest.mark.parametrize("case", WINDOW_CASES, ids=lambda case: case.name)
def test_window_rules_on_a_small_grid(case: WindowCase) -> None:
    frame = hourly(GRID_ROWS)
    cfg = StrategyConfig(
        **NO_FILTERS, fill=case.fill, stop_loss_pct=None, commission_rate=0.0, slippage_rate=0.0
    )
    window = TradeWindow(frame.index[case.window[0]], frame.index[case.window[1]])
    result = run_backtest(frame, fixed_signals(case.entries, case.exits), None, cfg, window=window)
    got = list(
        zip(result.trades["entry_bar"], result.trades["exit_bar"], result.trades["exit_reason"], strict=True)
    )
    assert got == case.expected
    for entry, exit_, reason in case.expected:
        row = result.trades[result.trades["entry_bar"] == entry].iloc[0]
        assert row["entry_price"] == (
            GRID_ROWS[entry][0] if case.fill == "next_open" else GRID_ROWS[entry][3]
        )
        if reason == "END_OF_DATA":
            assert row["exit_price"] == GRID_ROWS[exit_][3]
    assert list(result.equity.index) == list(frame.index[case.window[0] : case.window[1]])


# --- equivalences ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("rules", RULES)
def test_window_trades_are_the_run_before_stop_restricted_to_entries_from_start(
    bars: pd.DataFrame, window: TradeWindow, fill: str, rules: str
) -> None:
    cfg = config(fill, rules, stop_loss_pct=0.03, position_size_method="percent", position_size_value=1.0)
    params = {"fast": 10, "slow": 60}
    windowed = run_backtest(bars, "SMA_Crossover", params, cfg, window=window)
    restricted = run_backtest(bars.iloc[:STOP], entries_from("SMA_Crossover", FIRST), params, cfg)
    assert len(windowed.trades) > 3
    pd.testing.assert_frame_equal(windowed.trades, restricted.trades, check_exact=True)
    pd.testing.assert_series_equal(windowed.equity, restricted.equity.iloc[FIRST:], check_exact=True)
    assert (windowed.trades["entry_time"] >= window.start).all()
    assert (windowed.trades["exit_time"] < window.stop).all()
    if rules != "no rules":
        pd.testing.assert_frame_equal(windowed.extras["skipped_orders"], restricted.extras["skipped_orders"])


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("rules", RULES)
def test_every_windowed_sweep_row_equals_run_backtest(
    bars: pd.DataFrame, window: TradeWindow, fill: str, rules: str
) -> None:
    cfg = config(fill, rules, take_profit_pct=0.05, position_size_method="kelly")
    grid = {"fast": [5, 10, 20], "slow": [30, 90]}
    # A tiny block size forces several signal and metric blocks.
    frame = run_sweep(bars, "SMA_Crossover", grid, cfg, window=window, period_returns="1D", block_cells=6000)
    returns = frame.attrs["period_returns"]
    assert returns.values.shape == (len(returns.ends), len(frame))
    for row in range(len(frame)):
        params = {name: frame[name].iloc[row] for name in grid}
        single = run_backtest(bars, "SMA_Crossover", params, cfg, window=window)
        for name, value in single.metrics.items():
            got = frame[name].iloc[row]
            assert (math.isnan(value) and math.isnan(got)) or got == pytest.approx(
                value, rel=1e-9, abs=1e-12
            ), (
                name,
                params,
            )
        own = single.period_returns("1D")
        pd.testing.assert_index_equal(own.starts, returns.starts)
        np.testing.assert_allclose(returns.values[:, row], own.values[:, 0], rtol=1e-6, atol=1e-7)
    assert frame.attrs["info"] == run_backtest(bars, "SMA_Crossover", {}, cfg, window=window).info.to_dict()


def test_bars_at_or_after_stop_change_nothing(bars: pd.DataFrame, window: TradeWindow) -> None:
    changed = bars.copy()
    later = changed.index >= window.stop
    changed.loc[later, ["open", "high", "low", "close"]] *= 1.7
    changed.loc[later, "volume"] *= 3.0
    cfg = config("next_open", "upbit_krw", stop_loss_pct=0.02)
    params = {"fast": 5, "slow": 30}
    before = run_backtest(bars, "SMA_Crossover", params, cfg, window=window)
    after = run_backtest(changed, "SMA_Crossover", params, cfg, window=window)
    pd.testing.assert_frame_equal(before.trades, after.trades, check_exact=True)
    pd.testing.assert_series_equal(before.equity, after.equity, check_exact=True)
    assert before.metrics == pytest.approx(after.metrics, nan_ok=True, rel=0, abs=0)
    assert before.info == after.info
    grid = {"fast": [5, 10], "slow": [30, 60]}
    sweep_before = run_sweep(bars, "SMA_Crossover", grid, cfg, window=window, period_returns="6h")
    sweep_after = run_sweep(changed, "SMA_Crossover", grid, cfg, window=window, period_returns="6h")
    pd.testing.assert_frame_equal(sweep_before, sweep_after, check_exact=True)
    np.testing.assert_array_equal(
        sweep_before.attrs["period_returns"].values, sweep_after.attrs["period_returns"].values
    )


def test_a_window_of_every_bar_is_the_plain_run(bars: pd.DataFrame) -> None:
    cfg = config("next_open", "no rules", stop_loss_pct=0.02)
    plain = run_backtest(bars, "SMA_Crossover", {"fast": 10, "slow": 30}, cfg)
    everything = run_backtest(
        bars, "SMA_Crossover", {"fast": 10, "slow": 30}, cfg, window=TradeWindow(None, None)
    )
    pd.testing.assert_frame_equal(plain.trades, everything.trades, check_exact=True)
    pd.testing.assert_series_equal(plain.equity, everything.equity, check_exact=True)
    assert plain.metrics == pytest.approx(everything.metrics, nan_ok=True, rel=0, abs=0)
    assert everything.info.notes[0].startswith("Trade window [(first bar), (after the last bar))")
    assert "0 earlier bar(s)" in everything.info.notes[0]


# --- warm-up ----------------------------------------------------------------------------------------------


def crossing_bars() -> pd.DataFrame:
    """Closes fall steadily for 500 bars, then jump: the 5-bar mean crosses the 200-bar mean on bar 500."""
    closes = np.concatenate([np.linspace(200.0, 150.0, 500), np.full(300, 400.0)])
    opens = np.concatenate([[200.0], closes[:-1]])
    rows = [
        (o, max(o, c) + 0.5, min(o, c) - 0.5, c) for o, c in zip(opens.tolist(), closes.tolist(), strict=True)
    ]
    return hourly(rows)


@pytest.mark.parametrize(("fill", "entry_bar"), [("close", 500), ("next_open", 501)])
def test_indicators_warm_up_before_the_window(fill: str, entry_bar: int) -> None:
    frame = crossing_bars()
    cfg = StrategyConfig(**NO_FILTERS, fill=fill)
    params = {"fast": 5, "slow": 200}
    window = TradeWindow(frame.index[500], None)
    result = run_backtest(frame, "SMA_Crossover", params, cfg, window=window)
    assert result.trades["entry_time"].iloc[0] == frame.index[entry_bar]
    assert result.metrics["exposure"] > 0.9
    assert "500 earlier bar(s) served as warm-up" in result.info.notes[0]
    # The same bars cut to the window cannot trade until their own 200-bar average exists.
    cold = run_backtest(frame.iloc[500:], "SMA_Crossover", params, cfg)
    assert cold.trades.empty or (cold.trades["entry_time"] >= frame.index[700]).all()


# --- what a windowed run reports -------------------------------------------------------------------------


def test_window_metrics_and_info_describe_the_window(bars: pd.DataFrame, window: TradeWindow) -> None:
    cfg = config("next_open", "no rules")
    result = run_backtest(bars, "SMA_Crossover", {"fast": 10, "slow": 30}, cfg, window=window)
    inside = bars.iloc[FIRST:STOP]
    info = result.info
    assert (info.start, info.end, info.n_bars) == (inside.index[0], inside.index[-1], STOP - FIRST)
    assert f"{FIRST:,} earlier bar(s) served as warm-up" in info.notes[0]
    assert result.equity.index.equals(inside.index)
    # Buy and hold over the window: bought at its first close, sold at its last, fees on both.
    f = cfg.cost_rate
    units = cfg.initial_cash / (inside["close"].iloc[0] * (1 + f))
    benchmark = units * inside["close"].iloc[-1] * (1 - f) / cfg.initial_cash - 1
    assert result.metrics["benchmark_return"] == pytest.approx(benchmark, rel=1e-12)
    assert result.metrics["total_return"] == pytest.approx(result.equity.iloc[-1] / cfg.initial_cash - 1)
    held = (result.trades["exit_bar"] - result.trades["entry_bar"]).sum()
    assert result.metrics["exposure"] == pytest.approx(held / (STOP - FIRST))


@pytest.mark.parametrize(
    ("start", "stop", "problem"),
    [
        ("2021-01-01 05:00", "2021-01-01 06:00", "holds 1 bar(s)"),
        ("2030-01-01", None, "holds 0 bar(s)"),
        ("2021-02-01", "2021-01-15", "its start is not before its stop"),
        ("2021-02-01", "2021-02-01", "its start is not before its stop"),
    ],
)
def test_a_window_without_two_bars_is_a_data_error(
    bars: pd.DataFrame, start: str, stop: str | None, problem: str
) -> None:
    window = TradeWindow.from_strings(start, stop)
    with pytest.raises(DataError) as raised:
        run_backtest(
            bars, "SMA_Crossover", {"fast": 5, "slow": 10}, StrategyConfig(**NO_FILTERS), window=window
        )
    message = str(raised.value)
    assert problem in message
    assert window.describe() in message
    assert f"the bars run from {bars.index[0].isoformat()} to {bars.index[-1].isoformat()}" in message


def test_trade_window_is_utc_and_round_trips() -> None:
    seoul = TradeWindow.from_strings("2024-01-01T09:00+09:00", None)
    assert seoul.start == pd.Timestamp("2024-01-01 00:00", tz="UTC")
    naive = TradeWindow(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01"))
    assert naive.start is not None and str(naive.start.tz) == "UTC"
    assert naive.to_dict() == {"start": "2024-01-01T00:00:00+00:00", "stop": "2024-02-01T00:00:00+00:00"}
    assert TradeWindow.from_dict(naive.to_dict()) == naive
    assert TradeWindow.from_strings("2024-01-01", "2024-02-01") == naive
    with pytest.raises(DataError, match="not a date"):
        TradeWindow.from_strings("yesterday-ish", None)


# --- per-period returns ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodCase:
    name: str
    stamps: list[str]
    equity: list[list[float]]  # one row per bar, one column per curve
    freq: str
    starts: list[str]
    ends: list[str]
    expected: list[list[float]]  # one row per period


PERIOD_CASES = [
    PeriodCase(
        "two UTC days",
        ["2024-01-01 22:00", "2024-01-01 23:00", "2024-01-02 00:00", "2024-01-02 01:00"],
        [[100.0], [110.0], [99.0], [108.9]],
        "1D",
        ["2024-01-01", "2024-01-02"],
        ["2024-01-02", "2024-01-03"],
        [[0.1], [-0.01]],  # 110 / 100 (initial cash) - 1, then 108.9 / 110 - 1
    ),
    PeriodCase(
        "a bin without bars is left out",
        ["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 09:00"],
        [[101.0], [102.0], [91.8]],
        "4h",
        ["2024-01-01 00:00", "2024-01-01 08:00"],
        ["2024-01-01 04:00", "2024-01-01 12:00"],
        [[0.02], [-0.1]],
    ),
    PeriodCase(
        "two curves, one period per bar",
        ["2024-01-01 00:00", "2024-01-01 01:00"],
        [[100.0, 100.0], [120.0, 90.0]],
        "1h",
        ["2024-01-01 00:00", "2024-01-01 01:00"],
        ["2024-01-01 01:00", "2024-01-01 02:00"],
        [[0.0, 0.0], [0.2, -0.1]],
    ),
]


@pytest.mark.parametrize("case", PERIOD_CASES, ids=lambda case: case.name)
def test_period_returns_by_hand(case: PeriodCase) -> None:
    index = pd.DatetimeIndex(pd.to_datetime(case.stamps, utc=True))
    got = compute_period_returns(np.asarray(case.equity), index, case.freq, 100.0)
    assert got.values.dtype == np.float32
    np.testing.assert_allclose(got.values, np.asarray(case.expected, dtype=np.float32), rtol=1e-6)
    assert list(got.starts) == list(pd.to_datetime(case.starts, utc=True))
    assert list(got.ends) == list(pd.to_datetime(case.ends, utc=True))


@pytest.mark.parametrize("freq", ["1D", "7D", "6h", "90min"])
def test_period_returns_match_pandas_resample_on_the_epoch_grid(bars: pd.DataFrame, freq: str) -> None:
    result = run_backtest(bars, "SMA_Crossover", {"fast": 10, "slow": 30}, config("next_open", "no rules"))
    got = result.period_returns(freq)
    # On naive UTC times: pandas ignores `origin` for days on a zoned index (it starts at the first day).
    naive = result.equity.tz_convert(None)
    last = naive.resample(freq, origin="epoch", closed="left", label="left").last().dropna()
    expected = last / last.shift(1, fill_value=result.config.initial_cash) - 1
    assert list(got.starts) == list(expected.index.tz_localize("UTC"))
    np.testing.assert_allclose(got.values[:, 0], expected.to_numpy(np.float32), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("use_window", [False, True])
def test_sweep_period_returns_compound_to_the_total_return(
    bars: pd.DataFrame, window: TradeWindow, use_window: bool
) -> None:
    cfg = config("next_open", "no rules", position_size_method="percent", position_size_value=1.0)
    grid = {"fast": [5, 10, 20], "slow": [30, 60]}
    frame = run_sweep(
        bars, "SMA_Crossover", grid, cfg, window=window if use_window else None, period_returns="1D"
    )
    returns: PeriodReturns = frame.attrs["period_returns"]
    assert returns.values.dtype == np.float32
    assert returns.values.shape == (len(returns.ends), len(frame))
    growth = np.prod(1.0 + returns.values.astype(np.float64), axis=0)
    np.testing.assert_allclose(growth, 1.0 + frame["total_return"].to_numpy(), rtol=1e-5)
    inside = bars.iloc[FIRST:STOP] if use_window else bars
    days = inside.index.floor("1D").unique()
    assert list(returns.starts) == list(days)
    assert list(returns.ends) == list(days + pd.Timedelta("1D"))


def test_period_returns_follow_rows_by_label(bars: pd.DataFrame) -> None:
    cfg = config("next_open", "no rules")
    frame = run_sweep(bars, "SMA_Crossover", {"fast": [5, 10], "slow": [30, 60]}, cfg, period_returns="1D")
    ranked = rank_sweep(frame, "sharpe")
    kept: PeriodReturns = ranked.attrs["period_returns"]
    assert kept is frame.attrs["period_returns"]  # shared, not copied
    aligned = kept.select(ranked.index)
    np.testing.assert_array_equal(aligned.values[:, 0], kept.values[:, ranked.index[0]])
    assert not kept.values.flags.writeable
    assert aligned.to_frame().shape == (len(kept.starts), len(frame))


@pytest.mark.parametrize("freq", ["ME", "W", "B", "QE", "not-a-frequency", "0h"])
def test_calendar_or_unknown_period_frequencies_are_refused(bars: pd.DataFrame, freq: str) -> None:
    with pytest.raises(ConfigError, match="period_returns="):
        run_sweep(bars, "SMA_Crossover", {"fast": [5]}, StrategyConfig(**NO_FILTERS), period_returns=freq)


def test_a_sweep_without_rows_still_has_its_periods(bars: pd.DataFrame, window: TradeWindow) -> None:
    grid = {"fast": [40], "slow": [20]}  # fast < slow fails: no combination is run
    frame = run_sweep(
        bars, "SMA_Crossover", grid, StrategyConfig(**NO_FILTERS), window=window, period_returns="1D"
    )
    returns: PeriodReturns = frame.attrs["period_returns"]
    assert len(frame) == 0
    assert returns.values.shape == (bars.iloc[FIRST:STOP].index.floor("1D").nunique(), 0)
