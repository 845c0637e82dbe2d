"""TimezoneBacktester: gating, condition sizing, style stops, take-profit ladders and holding limits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtesting_modules import ConfigError, DataError, StrategyConfig, run_backtest, synthetic_bars
from backtesting_modules.bars import BarArrays
from backtesting_modules.simulation import SimSettings, simulate
from backtesting_modules.strategies import Param, Strategy, get_strategy, list_strategies, register
from backtesting_modules.timezone import (
    SessionGate,
    TimezoneBacktester,
    TimezoneSettings,
    TradingStyle,
)

FLAT = (100.0, 101.0, 99.0, 100.0)
PLAIN = {"filters": None, "min_volume": 0.0, "position_size_method": "percent", "position_size_value": 1.0}


def _fixed_signals(bars: BarArrays, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    n, m = len(bars), len(params["entry_bar"])
    entries = np.zeros((n, m), dtype=bool)
    exits = np.zeros((n, m), dtype=bool)
    for k in range(m):
        entries[int(params["entry_bar"][k]), k] = True
        if params["exit_bar"][k] >= 0:
            exits[int(params["exit_bar"][k]), k] = True
    return entries, exits


if "Test_Fixed_Signals" not in list_strategies():
    register(
        Strategy(
            name="Test_Fixed_Signals",
            description="one entry signal and optionally one exit signal at given bars (tests only)",
            params=(
                Param("entry_bar", 1, 0, 10_000, int, "bar of the entry signal"),
                Param("exit_bar", -1, -1, 10_000, int, "bar of the exit signal (-1: none)"),
            ),
            signals=_fixed_signals,
            warmup=lambda p: np.zeros(len(p["entry_bar"]), dtype=np.int64),
        )
    )


def frame(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(rows), freq="1h", tz="UTC")
    out = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index)
    out["volume"] = 1.0
    return out


def uniform_styles(stop: float, ladder: tuple[tuple[float, float], ...], hours: float) -> TimezoneSettings:
    names = ("momentum", "conservative", "institutional", "value", "tech")
    return TimezoneSettings(styles={name: TradingStyle(name, stop, ladder, hours) for name in names})


LADDER = ((0.05, 0.5), (0.10, 0.5))


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (  # half at +5 % intrabar, the other half on a gap over +10 %
            [FLAT, FLAT, FLAT, (101, 106, 100, 104), (104, 108, 103, 107), (112, 113, 111, 112), FLAT],
            {
                "exit_bar": 5,
                "exit_reason": "TAKE_PROFIT",
                "pnl": 5 * 105 + 5 * 112 - 1000,
                "partial_exits": 2,
            },
        ),
        (  # half at +5 %, then the stop takes the rest
            [FLAT, FLAT, FLAT, (101, 106, 100, 104), (100, 101, 89, 90), FLAT],
            {"exit_bar": 4, "exit_reason": "STOP_LOSS", "pnl": 5 * 105 + 5 * 90 - 1000, "partial_exits": 1},
        ),
        (  # stop and first rung inside one bar: the stop wins for the whole position
            [FLAT, FLAT, FLAT, (100, 106, 89, 95), FLAT],
            {"exit_bar": 3, "exit_reason": "STOP_LOSS", "pnl": 10 * 90 - 1000, "partial_exits": 0},
        ),
        (  # half sold, the rest closed at the end of data
            [FLAT, FLAT, FLAT, (101, 106, 100, 104), (104, 104, 103, 103)],
            {
                "exit_bar": 4,
                "exit_reason": "END_OF_DATA",
                "pnl": 5 * 105 + 5 * 103 - 1000,
                "partial_exits": 1,
            },
        ),
    ],
    ids=["ladder", "rung-then-stop", "stop-wins", "rung-then-end"],
)
def test_take_profit_ladder_partial_exits(rows: list[tuple[float, ...]], expected: dict[str, Any]) -> None:
    tb = TimezoneBacktester(
        StrategyConfig(**PLAIN, initial_cash=1000.0, commission_rate=0.0, slippage_rate=0.0),
        uniform_styles(0.10, LADDER, 1000.0),
        scale_by_condition=False,
    )
    out = tb.run(frame(rows), "Test_Fixed_Signals", {"entry_bar": 1})
    trades = out.result.trades
    assert len(trades) == 1
    trade = trades.iloc[0]
    assert trade["entry_bar"] == 2 and trade["entry_price"] == 100.0
    for key, value in expected.items():
        assert trade[key] == pytest.approx(value), key
    assert out.result.equity.iloc[-1] == pytest.approx(1000 + expected["pnl"])


def test_style_max_hold_converts_hours_to_bars() -> None:
    rows = [FLAT] * 12
    tb = TimezoneBacktester(
        StrategyConfig(**PLAIN, initial_cash=1000.0),
        uniform_styles(0.5, ((4.0, 1.0),), 3.0),
        scale_by_condition=False,
    )
    trade = tb.run(frame(rows), "Test_Fixed_Signals", {"entry_bar": 1}).result.trades.iloc[0]
    assert (trade["entry_bar"], trade["exit_bar"], trade["exit_reason"]) == (2, 5, "MAX_HOLD")


@pytest.mark.parametrize(
    "rules",
    [{}, {"market_rules": "upbit_krw", "max_volume_participation": 0.001}, {"min_order_value": 9_900_000.0}],
    ids=["no rules", "ticks and partial fills", "minimum order"],
)
@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_without_gate_scaling_or_styles_it_is_the_engine(fill: str, rules: dict[str, Any]) -> None:
    bars = synthetic_bars("KRW-ETH", periods=3000, seed=4)
    cfg = StrategyConfig(
        **PLAIN, stop_loss_pct=0.03, take_profit_pct=0.05, max_holding_bars=40, fill=fill, **rules
    )
    tz = TimezoneBacktester(cfg, scale_by_condition=False, style_exits=False).run(
        bars, "SMA_Crossover", {"fast": 5, "slow": 20}
    )
    plain = run_backtest(bars, "SMA_Crossover", {"fast": 5, "slow": 20}, cfg)
    for column in ("entry_bar", "exit_bar", "exit_reason"):
        assert tz.result.trades[column].tolist() == plain.trades[column].tolist()
    np.testing.assert_allclose(tz.result.equity.to_numpy(), plain.equity.to_numpy(), rtol=1e-12)
    for column in ("entry_price", "exit_price", "filled_fraction"):
        np.testing.assert_allclose(tz.result.trades[column], plain.trades[column], rtol=1e-12)
    if rules:
        skipped = plain.extras["skipped_orders"]
        assert tz.result.extras["skipped_orders"]["bar"].tolist() == skipped["bar"].tolist()
        assert len(skipped) > 0 or (plain.trades["filled_fraction"] < 1).any()


def test_makenaide_gate_removes_exactly_the_entries_outside_the_run_hours() -> None:
    bars = synthetic_bars("KRW-ETH", periods=3000, seed=4)
    cfg = StrategyConfig(**PLAIN, stop_loss_pct=0.03)
    tb = TimezoneBacktester(cfg, gate=SessionGate.makenaide(), scale_by_condition=False, style_exits=False)
    gated = tb.run(bars, "SMA_Crossover", {"fast": 5, "slow": 20}).result.trades
    hours = set(gated["entry_time"].dt.tz_convert("Asia/Seoul").dt.hour)
    assert hours <= {2, 9, 15, 18, 21, 23}
    assert len(gated) > 10
    # The same rules with the gate as an entry mask, through the engine's own simulator.
    arrays = BarArrays.from_frame(bars)
    decision = arrays.index + pd.Timedelta(hours=1)
    mask = np.isin(np.asarray(decision.tz_convert("Asia/Seoul").hour), [2, 9, 15, 18, 21, 23])
    entries, exits = get_strategy("SMA_Crossover").signals(
        arrays, {"fast": np.array([5]), "slow": np.array([20])}
    )
    expected = simulate(arrays, entries, exits, SimSettings.from_config(cfg), mask).trades
    assert gated["entry_bar"].tolist() == expected.entry_bar.tolist()
    assert gated["exit_bar"].tolist() == expected.exit_bar.tolist()


def test_activity_gate_blocks_low_scores() -> None:
    bars = synthetic_bars("KRW-ETH", periods=3000, seed=4)
    tb = TimezoneBacktester(StrategyConfig(**PLAIN), gate=SessionGate(min_activity=60.0))
    out = tb.run(bars, "SMA_Crossover", {"fast": 5, "slow": 20})
    decision = out.result.trades["entry_time"]  # next-open fills: placed at the fill bar's open
    scores = out.sessions.loc[decision, "activity_score"]
    assert (scores >= 60.0).all()


def test_position_is_scaled_by_the_condition_multiplier() -> None:
    bars = synthetic_bars("KRW-ETH", periods=2000, seed=9)
    cfg = StrategyConfig(**PLAIN, commission_rate=0.0, slippage_rate=0.0)
    out = TimezoneBacktester(cfg, style_exits=False).run(bars, "SMA_Crossover", {"fast": 5, "slow": 20})
    trades = out.result.trades
    first = trades.iloc[0]
    multiplier = out.sessions.loc[first["entry_time"], "position_multiplier"]
    assert 0.2 <= multiplier < 1.0
    assert first["size"] * first["entry_price"] == pytest.approx(cfg.initial_cash * multiplier)


def test_daily_bars_are_rejected_with_a_fix() -> None:
    daily = synthetic_bars("KRW-ETH", periods=400, freq="1D", seed=1)
    with pytest.raises(DataError, match="intraday bars"):
        TimezoneBacktester(StrategyConfig(**PLAIN)).run(daily, "SMA_Crossover", {"fast": 5, "slow": 20})


def test_compare_reports_gated_against_ungated() -> None:
    bars = synthetic_bars("KRW-ETH", periods=3000, seed=4)
    tb = TimezoneBacktester(StrategyConfig(**PLAIN), gate=SessionGate.makenaide())
    plain, gated, table = tb.compare(bars, "SMA_Crossover", {"fast": 5, "slow": 20})
    assert len(gated.result.trades) < len(plain.trades)
    row = table.set_index("metric").loc["trades"]
    assert row["ungated"] == len(plain.trades) and row["gated"] == len(gated.result.trades)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_activity": 120}, "min_activity=120"),
        ({"allowed_hours": (25,)}, "allowed_hours"),
        ({"allowed_hours": ()}, "allowed_hours"),
    ],
)
def test_gate_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SessionGate(**kwargs)
