"""Trade rules, one small bar grid per scenario with the expected trades written out by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtesting_modules.bars import BarArrays
from backtesting_modules.config import StrategyConfig
from backtesting_modules.reference import reference_backtest
from backtesting_modules.simulation import SimSettings, equity_curves, simulate
from backtesting_modules.trades import ExitReason, OrderSkip

FLAT = (100.0, 101.0, 99.0, 100.0)


def make_bars(rows: list[tuple[float, float, float, float]], volume: np.ndarray | float = 1.0) -> BarArrays:
    index = pd.date_range("2024-01-01", periods=len(rows), freq="1h", tz="UTC")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index)
    frame["volume"] = volume
    return BarArrays.from_frame(frame)


def settings(**overrides: Any) -> SimSettings:
    base: dict[str, Any] = {
        "initial_cash": 1000.0,
        "position_size_method": "percent",
        "position_size_value": 1.0,
        "stop_loss_pct": None,
        "take_profit_pct": None,
        "commission_rate": 0.0,
        "slippage_rate": 0.0,
        "filters": None,
        "min_volume": 0.0,
    }
    base.update(overrides)
    return SimSettings.from_config(StrategyConfig(**base))


def signal(n: int, bars_on: list[int]) -> np.ndarray:
    out = np.zeros((n, 1), dtype=bool)
    out[bars_on, 0] = True
    return out


@dataclass
class Case:
    name: str
    rows: list[tuple[float, float, float, float]]
    entries: list[int]
    exits: list[int]
    config: dict[str, Any]
    # (entry_bar, exit_bar, entry_price, exit_price, reason)
    expected: list[tuple[int, int, float, float, ExitReason]]
    mask: list[bool] | None = field(default=None)


CASES = [
    Case(
        "next-open fills for entry and exit",
        [FLAT, FLAT, (102, 104, 101, 103), (103, 106, 102, 105), (107, 108, 106, 107), FLAT],
        [1],
        [3],
        {},
        [(2, 4, 102.0, 107.0, ExitReason.SIGNAL)],
    ),
    Case(
        "close fills on the signal bar",
        [FLAT, (100, 101, 99, 101), (102, 104, 101, 103), (103, 106, 102, 105), FLAT],
        [1],
        [3],
        {"fill": "close"},
        [(1, 3, 101.0, 105.0, ExitReason.SIGNAL)],
    ),
    Case(
        "stop loss inside a bar fills at the stop level",
        [FLAT, FLAT, (100, 101, 99, 100), (95, 96, 85, 88), FLAT],
        [1],
        [],
        {"stop_loss_pct": 0.1},
        [(2, 3, 100.0, 90.0, ExitReason.STOP_LOSS)],
    ),
    Case(
        "a gap through the stop fills at the open",
        [FLAT, FLAT, (100, 101, 99, 100), (80, 82, 78, 81), FLAT],
        [1],
        [],
        {"stop_loss_pct": 0.1},
        [(2, 3, 100.0, 80.0, ExitReason.STOP_LOSS)],
    ),
    Case(
        "stop and target in one bar: the stop wins",
        [FLAT, FLAT, (100, 101, 99, 100), (100, 115, 85, 100), FLAT],
        [1],
        [],
        {"stop_loss_pct": 0.1, "take_profit_pct": 0.1},
        [(2, 3, 100.0, 90.0, ExitReason.STOP_LOSS)],
    ),
    Case(
        "take profit inside a bar fills at the target",
        [FLAT, FLAT, (100, 101, 99, 100), (104, 112, 103, 111), FLAT],
        [1],
        [],
        {"take_profit_pct": 0.1},
        [(2, 3, 100.0, 110.0, ExitReason.TAKE_PROFIT)],
    ),
    Case(
        "a gap through the target fills at the open",
        [FLAT, FLAT, (100, 101, 99, 100), (120, 125, 119, 121), FLAT],
        [1],
        [],
        {"take_profit_pct": 0.1, "stop_loss_pct": 0.1},
        [(2, 3, 100.0, 120.0, ExitReason.TAKE_PROFIT)],
    ),
    Case(
        "no stop on the entry bar itself",
        [FLAT, FLAT, (100, 101, 50, 100), FLAT, FLAT],
        [1],
        [],
        {"stop_loss_pct": 0.1},
        [(2, 4, 100.0, 100.0, ExitReason.END_OF_DATA)],
    ),
    Case(
        "an exit signal at the open comes before an intrabar stop",
        [FLAT, FLAT, (100, 101, 99, 100), (100, 101, 99, 100), (98, 99, 80, 85), FLAT],
        [1],
        [3],
        {"stop_loss_pct": 0.1},
        [(2, 4, 100.0, 98.0, ExitReason.SIGNAL)],
    ),
    Case(
        "maximum holding time exits at the open",
        [FLAT, FLAT, (100, 101, 99, 100), FLAT, (104, 105, 103, 104), FLAT],
        [1],
        [],
        {"max_holding_bars": 2},
        [(2, 4, 100.0, 104.0, ExitReason.MAX_HOLD)],
    ),
    Case(
        "maximum holding time with close fills",
        [FLAT, FLAT, FLAT, (100, 101, 99, 106), FLAT],
        [1],
        [],
        {"max_holding_bars": 2, "fill": "close"},
        [(1, 3, 100.0, 106.0, ExitReason.MAX_HOLD)],
    ),
    Case(
        "an open position is closed at the last close",
        [FLAT, FLAT, (100, 101, 99, 100), (100, 101, 99, 107)],
        [1],
        [],
        {},
        [(2, 3, 100.0, 107.0, ExitReason.END_OF_DATA)],
    ),
    Case(
        "entry and exit on the same bar cancel the entry",
        [FLAT, FLAT, FLAT, FLAT],
        [1],
        [1],
        {},
        [],
    ),
    Case(
        "entries while in a position are ignored; re-entry after the exit",
        [FLAT, FLAT, FLAT, FLAT, FLAT, FLAT, FLAT],
        [0, 1, 3],
        [2],
        {},
        [(1, 3, 100.0, 100.0, ExitReason.SIGNAL), (4, 6, 100.0, 100.0, ExitReason.END_OF_DATA)],
    ),
    Case(
        "re-entry on the bar a stop fired: fill on the next open",
        [FLAT, FLAT, (100, 101, 99, 100), (95, 96, 85, 88), (89, 90, 88, 89), FLAT],
        [1, 3],
        [],
        {"stop_loss_pct": 0.1},
        [(2, 3, 100.0, 90.0, ExitReason.STOP_LOSS), (4, 5, 89.0, 100.0, ExitReason.END_OF_DATA)],
    ),
    Case(
        "a signal on the last bar is never filled",
        [FLAT, FLAT, FLAT],
        [2],
        [],
        {},
        [],
    ),
    Case(
        "the entry mask (filters) blocks entries on masked bars",
        [FLAT, FLAT, FLAT, FLAT, FLAT],
        [0, 2],
        [],
        {},
        [(3, 4, 100.0, 100.0, ExitReason.END_OF_DATA)],
        mask=[False, True, True, True, True],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_trade_rules(case: Case) -> None:
    bars = make_bars(case.rows)
    n = len(case.rows)
    sim = settings(**case.config)
    mask = np.asarray(case.mask) if case.mask is not None else None
    trades = simulate(bars, signal(n, case.entries), signal(n, case.exits), sim, mask).trades
    vector = simulate(bars, signal(n, case.entries), signal(n, case.exits), sim, mask, scalar_below=0).trades
    assert vector.exit_bar.tolist() == trades.exit_bar.tolist()
    np.testing.assert_array_equal(vector.pnl, trades.pnl)
    got = [
        (int(e), int(x), float(p), float(q), ExitReason(int(r)))
        for e, x, p, q, r in zip(
            trades.entry_bar,
            trades.exit_bar,
            trades.entry_price,
            trades.exit_price,
            trades.exit_reason,
            strict=True,
        )
    ]
    assert [(e, x, r) for e, x, _, _, r in got] == [(e, x, r) for e, x, _, _, r in case.expected]
    np.testing.assert_allclose([g[2:4] for g in got], [c[2:4] for c in case.expected], rtol=1e-12)
    ref = reference_backtest(bars, signal(n, case.entries)[:, 0], signal(n, case.exits)[:, 0], sim, mask)
    assert ref.entry_bar.tolist() == trades.entry_bar.tolist()
    assert ref.exit_bar.tolist() == trades.exit_bar.tolist()
    np.testing.assert_allclose(ref.exit_price, trades.exit_price)


def test_fees_and_slippage_on_both_fills() -> None:
    bars = make_bars([FLAT, FLAT, (100, 101, 99, 100), (110, 111, 109, 110), FLAT])
    sim = settings(commission_rate=0.001, slippage_rate=0.002)
    trades = simulate(bars, signal(5, [1]), signal(5, [2]), sim).trades
    units = 1000.0 / (100.0 * 1.003)
    assert trades.size[0] == pytest.approx(units)
    assert trades.fees[0] == pytest.approx(units * 100 * 0.003 + units * 110 * 0.003)
    assert trades.pnl[0] == pytest.approx(units * 110 * 0.997 - 1000.0)
    assert trades.return_pct[0] == pytest.approx(110 * 0.997 / (100 * 1.003) - 1)


@pytest.mark.parametrize(
    ("method", "value", "budget"),
    [("fixed", 250.0, 250.0), ("fixed", 0.1, 100.0), ("fixed", 5000.0, 1000.0), ("percent", 0.5, 500.0)],
)
def test_position_sizing_budget(method: str, value: float, budget: float) -> None:
    bars = make_bars([FLAT, FLAT, FLAT, FLAT])
    sim = settings(position_size_method=method, position_size_value=value)
    trades = simulate(bars, signal(4, [0]), signal(4, []), sim).trades
    assert trades.size[0] * trades.entry_price[0] == pytest.approx(budget)


def test_percent_sizing_compounds_on_equity() -> None:
    rows = [FLAT, FLAT, (100, 101, 99, 100), (110, 111, 109, 110), (110, 111, 109, 110), FLAT, FLAT]
    bars = make_bars(rows)
    sim = settings(position_size_value=0.5)
    trades = simulate(bars, signal(7, [1, 4]), signal(7, [2]), sim).trades
    first_pnl = 500.0 / 100 * 10
    assert trades.pnl[0] == pytest.approx(first_pnl)
    assert trades.size[1] * trades.entry_price[1] == pytest.approx(0.5 * (1000 + first_pnl))


def test_equity_curve_marks_position_at_each_close() -> None:
    rows = [FLAT, FLAT, (100, 101, 99, 102), (102, 106, 101, 105), (107, 108, 106, 107), FLAT]
    bars = make_bars(rows)
    sim = settings(commission_rate=0.001)
    out = simulate(bars, signal(6, [1]), signal(6, [3]), sim)
    equity = equity_curves(bars, out.trades, 1, sim)[:, 0]
    units = 1000 / (100 * 1.001)
    expected = [1000, 1000, 1000 - units * 100 * 1.001 + units * 102, 1000 - 1000 + units * 105]
    np.testing.assert_allclose(equity[:4], expected)
    final = 1000 + units * 107 * 0.999 - 1000
    np.testing.assert_allclose(equity[4:], [final, final])


def random_bars(n: int, seed: int, *, random_volume: bool = False) -> BarArrays:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.standard_t(4, n) * 0.01))
    opens = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.004, n))
    high = np.maximum(opens, close) * np.exp(np.abs(rng.normal(0, 0.01, n)))
    low = np.minimum(opens, close) * np.exp(-np.abs(rng.normal(0, 0.01, n)))
    # Random volumes (units), one bar in ten without any: participation caps and skips both happen.
    volume = rng.uniform(0, 400, n) * (rng.random(n) > 0.1) if random_volume else 1.0
    return make_bars(list(zip(opens, high, low, close, strict=True)), volume)


CONFIGS: list[dict[str, Any]] = [
    {},
    {"fill": "close"},
    {"stop_loss_pct": 0.02, "take_profit_pct": 0.03, "commission_rate": 0.0005, "slippage_rate": 0.001},
    {"stop_loss_pct": 0.015, "take_profit_pct": 0.015, "fill": "close", "max_holding_bars": 7},
    {"max_holding_bars": 3, "position_size_method": "fixed", "position_size_value": 300.0},
    {
        "position_size_method": "kelly",
        "position_size_value": 0.3,
        "kelly_min_trades": 5,
        "stop_loss_pct": 0.02,
    },
    {"position_size_method": "kelly", "kelly_scale": 1.0, "kelly_min_trades": 3, "kelly_floor": 0.0},
]


@pytest.mark.parametrize("scalar_below", [0, 6, 10**9], ids=["vector", "mixed", "scalar"])
@pytest.mark.parametrize("config", CONFIGS, ids=[str(c) for c in CONFIGS])
def test_vectorised_simulation_equals_reference_loop(config: dict[str, Any], scalar_below: int) -> None:
    bars = random_bars(600, seed=3)
    rng = np.random.default_rng(11)
    entries = rng.random((600, 12)) < 0.05
    exits = rng.random((600, 12)) < 0.05
    mask = rng.random(600) < 0.8
    sim = settings(**config)
    out = simulate(bars, entries, exits, sim, mask, scalar_below=scalar_below)
    equity = equity_curves(bars, out.trades, 12, sim)
    for k in range(12):
        ref = reference_backtest(bars, entries[:, k], exits[:, k], sim, mask)
        got = out.trades.for_combo(k)
        assert got.entry_bar.tolist() == ref.entry_bar.tolist(), k
        assert got.exit_bar.tolist() == ref.exit_bar.tolist(), k
        assert got.exit_reason.tolist() == ref.exit_reason.tolist(), k
        np.testing.assert_allclose(got.pnl, ref.pnl, rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(got.size, ref.size, rtol=1e-9)
        final_cash = sim.initial_cash + ref.pnl.sum()
        assert equity[-1, k] == pytest.approx(final_cash, rel=1e-9)


# The exchange order rules on prices around 100 (the Upbit bands 10-100 and 100-1,000: ticks 0.1 and 1),
# 1,000 of cash and random volumes: ticks on every fill, minimum orders reached mid-run (percent sizing after
# losses, Kelly) or from the start (fixed), partial fills and bars without volume.
RULE_CONFIGS: list[dict[str, Any]] = [
    {
        "tick_table": "upbit_krw",
        "stop_loss_pct": 0.02,
        "take_profit_pct": 0.03,
        "commission_rate": 0.0005,
        "slippage_rate": 0.001,
    },
    {"tick_table": "upbit_krw", "fill": "close", "max_holding_bars": 5, "stop_loss_pct": 0.015},
    {"min_order_value": 480.0, "position_size_value": 0.5, "stop_loss_pct": 0.02, "commission_rate": 0.0005},
    {"max_volume_participation": 0.05, "take_profit_pct": 0.02, "fill": "close"},
    {
        "market_rules": "upbit_krw",
        "min_order_value": 300.0,
        "position_size_method": "kelly",
        "position_size_value": 0.4,
        "kelly_min_trades": 3,
        "stop_loss_pct": 0.02,
        "commission_rate": 0.0005,
    },
    {
        "market_rules": "upbit_krw",
        "min_order_value": 260.0,
        "position_size_method": "fixed",
        "position_size_value": 250.0,
    },
]


@pytest.mark.parametrize("scalar_below", [0, 6, 10**9], ids=["vector", "mixed", "scalar"])
@pytest.mark.parametrize("config", RULE_CONFIGS, ids=[str(c) for c in RULE_CONFIGS])
def test_order_rules_vectorised_equals_reference_loop(config: dict[str, Any], scalar_below: int) -> None:
    bars = random_bars(600, seed=3, random_volume=True)
    rng = np.random.default_rng(11)
    entries = rng.random((600, 12)) < 0.05
    exits = rng.random((600, 12)) < 0.05
    mask = rng.random(600) < 0.8
    sim = settings(**config)
    out = simulate(bars, entries, exits, sim, mask, scalar_below=scalar_below)
    equity = equity_curves(bars, out.trades, 12, sim)
    for k in range(12):
        skipped: list[tuple[int, int, float]] = []
        ref = reference_backtest(bars, entries[:, k], exits[:, k], sim, mask, skipped=skipped)
        got = out.trades.for_combo(k)
        assert got.entry_bar.tolist() == ref.entry_bar.tolist(), k
        assert got.exit_bar.tolist() == ref.exit_bar.tolist(), k
        assert got.exit_reason.tolist() == ref.exit_reason.tolist(), k
        np.testing.assert_allclose(got.entry_price, ref.entry_price, rtol=1e-12)
        np.testing.assert_allclose(got.exit_price, ref.exit_price, rtol=1e-12)
        np.testing.assert_allclose(got.filled_fraction, ref.filled_fraction, rtol=1e-12)
        np.testing.assert_allclose(got.pnl, ref.pnl, rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(got.size, ref.size, rtol=1e-9)
        skips = out.skipped.for_combo(k)
        assert list(zip(skips.bar.tolist(), skips.reason.tolist(), strict=True)) == [
            (b, r) for b, r, _ in skipped
        ]
        np.testing.assert_allclose(skips.order_value, [v for _, _, v in skipped], rtol=1e-9)
        final_cash = sim.initial_cash + ref.pnl.sum()
        assert equity[-1, k] == pytest.approx(final_cash, rel=1e-9)
    # Every rule did something somewhere (the configs are chosen so), and prices sit on the tick grid.
    if sim.ticks is not None:
        assert np.all(np.abs(out.trades.exit_price * 10 - np.round(out.trades.exit_price * 10)) < 1e-6)
    if sim.min_order_value is not None:
        assert out.skipped.count(OrderSkip.MIN_ORDER_VALUE) > 0
    if sim.max_participation is not None and len(out.trades):  # the last config never trades
        assert (out.trades.filled_fraction < 1).any() and out.skipped.count(OrderSkip.NO_VOLUME) > 0
