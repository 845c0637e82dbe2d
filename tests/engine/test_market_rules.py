"""Exchange order rules: the tick table, config validation and presets, and small bar grids with the expected
trades and skipped entries, run through every simulator (vectorised, scalar, reference, portfolio, timezone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtesting_modules import (
    ConfigError,
    StrategyConfig,
    TimezoneBacktester,
    run_backtest,
    run_portfolio_backtest,
    run_sweep,
    synthetic_bars,
)
from backtesting_modules.bars import BarArrays
from backtesting_modules.market_rules import TICK_TABLES, round_price, round_prices
from backtesting_modules.reference import reference_backtest
from backtesting_modules.simulation import SimSettings, equity_curves, simulate
from backtesting_modules.strategies import Param, Strategy, list_strategies, register
from backtesting_modules.trades import ExitReason, OrderSkip

UPBIT = TICK_TABLES["upbit_krw"]

# --- the tick table ------------------------------------------------------------------------------------

TICK_CASES = [
    # price, buy (rounded up), sell (rounded down)
    (2_500_000.4, 2_501_000.0, 2_500_000.0),
    (2_000_000.0, 2_000_000.0, 2_000_000.0),
    (1_234_567.0, 1_235_000.0, 1_234_000.0),
    (777_777.0, 778_000.0, 777_500.0),
    (123_456.0, 123_500.0, 123_400.0),
    (55_555.0, 55_600.0, 55_550.0),
    (10_000.0, 10_000.0, 10_000.0),  # on a tick: unchanged, not 10,010
    (10_003.0, 10_010.0, 10_000.0),
    (9_999.0, 10_000.0, 9_995.0),  # rounding up may land on the next band's lower bound
    (7_777.0, 7_780.0, 7_775.0),
    (5_000.0, 5_000.0, 5_000.0),
    (1_234.5, 1_235.0, 1_234.0),
    (123.45, 124.0, 123.0),
    (100.0, 100.0, 100.0),
    (99.99, 100.0, 99.9),
    (12.345, 12.4, 12.3),
    (1.2345, 1.24, 1.23),
    (0.3, 0.3, 0.3),  # not exact in binary, on a tick all the same
    (0.12345, 0.124, 0.123),
    (0.012345, 0.0124, 0.0123),
    (0.0012345, 0.00124, 0.00123),
    (0.00012345, 0.000124, 0.000123),
    (0.000012345, 0.0000124, 0.0000123),
    (0.0000012345, 0.00000124, 0.00000123),
]


@pytest.mark.parametrize(("price", "buy", "sell"), TICK_CASES, ids=[str(c[0]) for c in TICK_CASES])
def test_upbit_tick_rounding(price: float, buy: float, sell: float) -> None:
    assert round_prices(np.asarray([price]), UPBIT, up=True)[0] == buy
    assert round_prices(np.asarray([price]), UPBIT, up=False)[0] == sell
    assert round_price(price, UPBIT, up=True) == buy
    assert round_price(price, UPBIT, up=False) == sell


def test_tick_rounding_properties_on_random_prices() -> None:
    rng = np.random.default_rng(5)
    prices = 10 ** rng.uniform(-7, 8, 20_000)
    up, down = round_prices(prices, UPBIT, up=True), round_prices(prices, UPBIT, up=False)
    assert (down <= prices * (1 + 1e-9)).all() and (up >= prices * (1 - 1e-9)).all()
    tick = UPBIT.tick[np.searchsorted(UPBIT.lower, prices, side="right") - 1]
    assert (up - down <= tick * (1 + 1e-6)).all()
    # Already on a tick: rounding again changes nothing, in either direction.
    for rounded in (up, down):
        np.testing.assert_array_equal(round_prices(rounded, UPBIT, up=True), rounded)
        np.testing.assert_array_equal(round_prices(rounded, UPBIT, up=False), rounded)
    # The scalar version (scalar simulators) gives bit-identical results.
    sample = prices[:2000].tolist()
    assert [round_price(p, UPBIT, up=True) for p in sample] == up[:2000].tolist()
    assert [round_price(p, UPBIT, up=False) for p in sample] == down[:2000].tolist()


# --- configuration -------------------------------------------------------------------------------------


def test_rules_are_off_by_default_and_the_preset_fills_in_unset_fields() -> None:
    assert not StrategyConfig().order_rules().active
    rules = StrategyConfig(market_rules="upbit_krw").order_rules()
    assert (rules.min_order_value, rules.ticks, rules.max_participation) == (5000.0, UPBIT, 0.1)
    mine = StrategyConfig(market_rules="upbit_krw", min_order_value=10_000, max_volume_participation=0.5)
    assert (mine.order_rules().min_order_value, mine.order_rules().max_participation) == (10_000.0, 0.5)
    settings = SimSettings.from_config(StrategyConfig(tick_table="upbit_krw"))
    assert settings.ticks is UPBIT and settings.min_order_value is None and not settings.sizing_rules


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"market_rules": "upbit"}, r"market_rules='upbit' is not a known preset. Did you mean 'upbit_krw'"),
        ({"market_rules": "binance"}, r"Known presets: \['upbit_krw'\]"),
        ({"tick_table": "upbit_kr"}, r"tick_table='upbit_kr' is not a known tick table. Did you mean"),
        ({"min_order_value": -1}, r"min_order_value=-1 is outside \[0.0, inf\)"),
        ({"min_order_value": "lots"}, "min_order_value='lots' is not a number"),
        ({"max_volume_participation": 0.0}, r"max_volume_participation=0.0 is outside \(0.0, 1.0\]"),
        ({"max_volume_participation": 1.5}, r"max_volume_participation=1.5 is outside \(0.0, 1.0\]"),
        ({"technical_indicators": {"rsi_period": 14}}, r"technical_indicators=.*params.*grid"),
        ({"timezone_settings": {"enabled": True}}, r"timezone_settings=.*TIMEZONE_ANALYSIS.*--timezone"),
    ],
)
def test_rule_fields_are_validated_with_field_value_and_range(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        StrategyConfig(**overrides)


# --- small bar grids with the expected trades, through every simulator ---------------------------------

FLAT = (10_000.0, 10_050.0, 9_950.0, 10_000.0)
BASE: dict[str, Any] = {
    "initial_cash": 100_000.0,
    "position_size_method": "percent",
    "position_size_value": 1.0,
    "stop_loss_pct": None,
    "commission_rate": 0.0,
    "slippage_rate": 0.0,
    "filters": None,
    "min_volume": 0.0,
}


def _bitmask_signals(bars: BarArrays, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Bit i of `entries` / `exits` set: a signal on bar i (one column per parameter set)."""
    n, m = len(bars), len(params["entries"])
    bits = (1 << np.arange(n, dtype=np.int64))[:, None]
    entries = (np.asarray(params["entries"], dtype=np.int64)[None, :] & bits) != 0
    exits = (np.asarray(params["exits"], dtype=np.int64)[None, :] & bits) != 0
    assert entries.shape == (n, m)
    return entries, exits


if "Test_Bitmask_Signals" not in list_strategies():
    register(
        Strategy(
            name="Test_Bitmask_Signals",
            description="entry and exit signals on the bars whose bits are set (tests only)",
            params=(
                Param("entries", 0, 0, 2**30, int, "bit i: an entry signal on bar i"),
                Param("exits", 0, 0, 2**30, int, "bit i: an exit signal on bar i"),
            ),
            signals=_bitmask_signals,
            warmup=lambda p: np.zeros(len(p["entries"]), dtype=np.int64),
        )
    )


@dataclass
class Case:
    name: str
    rows: list[tuple[float, float, float, float]]
    entries: list[int]
    exits: list[int]
    config: dict[str, Any]
    # (entry_bar, exit_bar, entry_price, exit_price, reason, filled fraction)
    expected: list[tuple[int, int, float, float, ExitReason, float]]
    skipped: list[tuple[int, OrderSkip]] = field(default_factory=list)  # (fill bar, reason)
    volume: list[float] | None = None


CASES = [
    Case(
        "ticks: a buy rounds up, a sale rounds down",
        [
            FLAT,
            FLAT,
            (10_003, 10_100, 10_000, 10_050),
            (10_050, 10_500, 10_040, 10_480),
            (10_497, 10_500, 10_400, 10_450),
            FLAT,
        ],
        [1],
        [3],
        {"tick_table": "upbit_krw"},
        [(2, 4, 10_010.0, 10_490.0, ExitReason.SIGNAL, 1.0)],
    ),
    Case(
        "ticks: a stop level between ticks sells on the tick below it",
        [FLAT, FLAT, (10_000, 10_050, 9_990, 10_000), (9_900, 9_950, 9_600, 9_700), FLAT],
        [1],
        [],
        {"tick_table": "upbit_krw", "stop_loss_pct": 0.0333},
        [(2, 3, 10_000.0, 9_665.0, ExitReason.STOP_LOSS, 1.0)],
    ),
    Case(
        "ticks: a target between ticks sells on the tick below it",
        [FLAT, FLAT, (10_000, 10_050, 9_990, 10_000), (10_100, 10_400, 10_050, 10_200), FLAT],
        [1],
        [],
        {"tick_table": "upbit_krw", "take_profit_pct": 0.0333},
        [(2, 3, 10_000.0, 10_330.0, ExitReason.TAKE_PROFIT, 1.0)],
    ),
    Case(
        "ticks with close fills round the closes",
        [FLAT, (10_000, 10_050, 9_990, 10_004), FLAT, (10_000, 10_500, 9_990, 10_496), FLAT],
        [1],
        [3],
        {"tick_table": "upbit_krw", "fill": "close"},
        [(1, 3, 10_010.0, 10_490.0, ExitReason.SIGNAL, 1.0)],
    ),
    Case(
        "min order value: an order below it is never placed",
        [FLAT] * 6,
        [1, 3],
        [],
        {"min_order_value": 5_000, "position_size_method": "fixed", "position_size_value": 4_000.0},
        [],
        [(2, OrderSkip.MIN_ORDER_VALUE), (4, OrderSkip.MIN_ORDER_VALUE)],
    ),
    Case(
        "min order value after a loss: the trade stands, every later entry is skipped",
        [FLAT, FLAT, FLAT, FLAT, (4_000, 4_050, 3_950, 4_000), (4_000, 4_050, 3_950, 4_000), FLAT, FLAT],
        [1, 4, 5],
        [3],
        {"min_order_value": 5_000, "initial_cash": 10_000.0},
        [(2, 4, 10_000.0, 4_000.0, ExitReason.SIGNAL, 1.0)],
        [(5, OrderSkip.MIN_ORDER_VALUE), (6, OrderSkip.MIN_ORDER_VALUE)],
    ),
    Case(
        "participation caps a fill (partial); a position below the minimum is still sold",
        [FLAT, FLAT, FLAT, FLAT, (11_000, 11_050, 10_950, 11_000), FLAT],
        [1],
        [3],
        {"max_volume_participation": 0.1, "min_order_value": 5_000},
        [(2, 4, 10_000.0, 11_000.0, ExitReason.SIGNAL, 0.003)],  # 0.03 units of the 10 ordered: 330 KRW
        volume=[1_000, 1_000, 0.3, 1_000, 1_000, 1_000],
    ),
    Case(
        "no volume on the fill bar: not filled, the next signal fills",
        [FLAT] * 5,
        [1, 2],
        [],
        {"max_volume_participation": 0.5},
        [(3, 4, 10_000.0, 10_000.0, ExitReason.END_OF_DATA, 1.0)],
        [(2, OrderSkip.NO_VOLUME)],
        volume=[1_000, 1_000, 0, 1_000, 1_000],
    ),
    Case(
        "the upbit_krw preset: ticks, minimum order and participation together",
        [FLAT, FLAT, (10_003, 10_100, 10_000, 10_050), FLAT, (10_497, 10_500, 10_400, 10_450), FLAT],
        [1],
        [3],
        {"market_rules": "upbit_krw"},
        [(2, 4, 10_010.0, 10_490.0, ExitReason.SIGNAL, 5 * 10_010 / 100_000)],  # 0.1 × 50 units of 9.99
        volume=[50] * 6,
    ),
]


def frame_of(case: Case) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(case.rows), freq="1h", tz="UTC")
    out = pd.DataFrame(case.rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    out["volume"] = case.volume if case.volume is not None else 1_000.0
    out.attrs["symbol"] = "KRW-TEST"
    return out


def signal(n: int, bars_on: list[int]) -> np.ndarray:
    out = np.zeros((n, 1), dtype=bool)
    out[bars_on, 0] = True
    return out


def _rows(entry: Any, exit_: Any, entry_price: Any, exit_price: Any, reason: Any, filled: Any) -> list[tuple]:
    return [
        (
            int(e),
            int(x),
            float(p),
            float(q),
            ExitReason(int(r)) if not isinstance(r, str) else ExitReason[r],
            float(f),
        )
        for e, x, p, q, r, f in zip(entry, exit_, entry_price, exit_price, reason, filled, strict=True)
    ]


def _check(got: list[tuple], case: Case, who: str) -> None:
    assert [g[:2] + g[4:5] for g in got] == [e[:2] + e[4:5] for e in case.expected], who
    np.testing.assert_allclose(
        [g[2:4] for g in got], [e[2:4] for e in case.expected], rtol=1e-12, err_msg=who
    )
    np.testing.assert_allclose([g[5] for g in got], [e[5] for e in case.expected], rtol=1e-12, err_msg=who)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rules_in_every_simulator(case: Case) -> None:
    frame = frame_of(case)
    bars = BarArrays.from_frame(frame)
    n = len(bars)
    config = StrategyConfig(**{**BASE, **case.config})
    sim = SimSettings.from_config(config)
    entries, exits = signal(n, case.entries), signal(n, case.exits)
    expected_skips = [(bar, reason.name) for bar, reason in case.skipped]
    for scalar_below in (0, 10**9):
        out = simulate(bars, entries, exits, sim, scalar_below=scalar_below)
        t = out.trades
        _check(
            _rows(t.entry_bar, t.exit_bar, t.entry_price, t.exit_price, t.exit_reason, t.filled_fraction),
            case,
            f"simulate {scalar_below}",
        )
        assert [
            (int(b), OrderSkip(int(r)).name) for b, r in zip(out.skipped.bar, out.skipped.reason, strict=True)
        ] == expected_skips
        final = equity_curves(bars, t, 1, sim)[-1, 0]
        assert final == pytest.approx(config.initial_cash + t.pnl.sum(), rel=1e-12)
    skipped: list[tuple[int, int, float]] = []
    ref = reference_backtest(bars, entries[:, 0], exits[:, 0], sim, skipped=skipped)
    _check(
        _rows(
            ref.entry_bar, ref.exit_bar, ref.entry_price, ref.exit_price, ref.exit_reason, ref.filled_fraction
        ),
        case,
        "reference",
    )
    assert [(b, OrderSkip(r).name) for b, r, _ in skipped] == expected_skips

    params = {"entries": sum(1 << b for b in case.entries), "exits": sum(1 << b for b in case.exits)}
    single = run_backtest(frame, "Test_Bitmask_Signals", params, config)
    portfolio = run_portfolio_backtest({"KRW-TEST": frame}, "Test_Bitmask_Signals", params, config)
    zoned = TimezoneBacktester(config, scale_by_condition=False, style_exits=False).run(
        frame, "Test_Bitmask_Signals", params
    )
    for who, result in (("run_backtest", single), ("portfolio", portfolio), ("timezone", zoned.result)):
        tr = result.trades
        _check(
            _rows(
                tr.entry_bar, tr.exit_bar, tr.entry_price, tr.exit_price, tr.exit_reason, tr.filled_fraction
            ),
            case,
            who,
        )
        got_skips = (
            result.extras["skipped_orders"]
            if "skipped_orders" in result.extras
            else pd.DataFrame({"bar": [], "reason": []})
        )
        assert list(zip(got_skips["bar"].astype(int), got_skips["reason"], strict=True)) == expected_skips, (
            who
        )
        np.testing.assert_allclose(
            result.equity.to_numpy(), single.equity.to_numpy(), rtol=1e-12, err_msg=who
        )


def test_notes_say_what_the_rules_did() -> None:
    case = next(c for c in CASES if c.name.startswith("min order value after a loss"))
    params = {"entries": sum(1 << b for b in case.entries), "exits": sum(1 << b for b in case.exits)}
    result = run_backtest(
        frame_of(case), "Test_Bitmask_Signals", params, StrategyConfig(**{**BASE, **case.config})
    )
    notes = " ".join(result.info.notes)
    assert "exchange order rules: minimum order value 5,000." in notes
    assert (
        "2 entries not placed: order value after fees below the minimum (2024-01-01 05:00, 2024-01-01 06:00)"
        in notes
    )
    preset = next(c for c in CASES if c.name.startswith("the upbit_krw preset"))
    params = {"entries": sum(1 << b for b in preset.entries), "exits": sum(1 << b for b in preset.exits)}
    result = run_backtest(
        frame_of(preset), "Test_Bitmask_Signals", params, StrategyConfig(**{**BASE, **preset.config})
    )
    notes = " ".join(result.info.notes)
    assert "exchange order rules (market_rules=upbit_krw)" in notes and "upbit_krw price ticks" in notes
    assert "1 of 1 entries partially filled" in notes
    plain = run_backtest(frame_of(preset), "Test_Bitmask_Signals", params, StrategyConfig(**BASE))
    assert plain.info.notes == () and plain.extras == {}


def test_sweep_rows_with_rules_equal_single_backtests() -> None:
    bars = synthetic_bars("KRW-ETH", periods=1500, freq="1h", seed=3)
    config = StrategyConfig(
        **{**BASE, "initial_cash": 200_000.0, "stop_loss_pct": 0.02, "market_rules": "upbit_krw"}
    )
    grid = {"fast": [5, 10], "slow": [20, 40]}
    frame = run_sweep(bars, "SMA_Crossover", grid, config, block_cells=len(bars) * 2)
    for _, row in frame.iterrows():
        single = run_backtest(bars, "SMA_Crossover", {"fast": row["fast"], "slow": row["slow"]}, config)
        assert row["total_return"] == pytest.approx(single.metrics["total_return"], rel=1e-12)
        assert row["trades"] == single.metrics["trades"]
    assert any("exchange order rules" in note for note in frame.attrs["info"]["notes"])
