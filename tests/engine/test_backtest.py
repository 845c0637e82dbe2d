"""Public entry points: run_backtest, run_sweep, filters, portfolio mode, config validation, compat API."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtesting_modules import (
    ConfigError,
    DataError,
    KellyBacktester,
    StrategyConfig,
    StrategyError,
    create_integrated_backtester,
    rank_sweep,
    run_backtest,
    run_portfolio_backtest,
    run_single_strategy_backtest,
    run_sweep,
    synthetic_bars,
)

NO_FILTERS: dict[str, Any] = {"filters": None, "min_volume": 0.0}


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return synthetic_bars("KRW-ETH", periods=3000, freq="1h", seed=11)


@pytest.mark.parametrize(
    ("strategy", "grid", "config"),
    [
        ("SMA_Crossover", {"fast": [5, 10, 20], "slow": [10, 30, 60]}, {}),
        (
            "SMA_Crossover",
            {"fast": [5, 15], "slow": [20, 40]},
            {"stop_loss_pct": 0.02, "take_profit_pct": 0.04, "fill": "close", "max_holding_bars": 48},
        ),
        ("RSI_MeanReversion", {"period": [7, 14], "lower": [25, 30]}, {"position_size_method": "kelly"}),
        ("Donchian_Breakout", {"entry_period": [10, 20], "exit_period": [5, 10]}, {"take_profit_pct": 0.05}),
        ("Dynamic_RSI_MACD", {"rsi_period": [7, 10]}, {"position_size_method": "fixed"}),
        (  # exchange order rules: ticks, and entries capped at 0.1 % of a bar's volume (partial fills)
            "SMA_Crossover",
            {"fast": [5, 15], "slow": [20, 40]},
            {"market_rules": "upbit_krw", "max_volume_participation": 0.001, "stop_loss_pct": 0.02},
        ),
        (  # a minimum order reached after losses: every later entry is skipped
            "SMA_Crossover",
            {"fast": [5, 10], "slow": [20, 30]},
            {
                "tick_table": "upbit_krw",
                "min_order_value": 9_000_000.0,
                "position_size_method": "percent",
                "position_size_value": 1.0,
            },
        ),
    ],
)
def test_every_sweep_row_equals_run_backtest(
    bars: pd.DataFrame, strategy: str, grid: dict[str, list[float]], config: dict[str, Any]
) -> None:
    cfg = StrategyConfig(**{**NO_FILTERS, **config})
    # A tiny block size forces several dense blocks, so block boundaries are exercised too.
    frame = run_sweep(bars, strategy, grid, cfg, block_cells=len(bars) * 2)
    assert frame.attrs["combinations"] == len(frame)
    for _, row in frame.iterrows():
        params = {k: row[k] for k in grid}
        single = run_backtest(bars, strategy, params, cfg)
        for name, value in single.metrics.items():
            got = row[name]
            assert (math.isnan(value) and math.isnan(got)) or got == pytest.approx(
                value, rel=1e-9, abs=1e-12
            ), (
                name,
                params,
            )


def test_sweep_skips_and_counts_constraint_violations(bars: pd.DataFrame) -> None:
    frame = run_sweep(
        bars, "SMA_Crossover", {"fast": [10, 20, 30], "slow": [15, 25]}, StrategyConfig(**NO_FILTERS)
    )
    assert frame.attrs["skipped"] == 3  # (20,15), (30,15), (30,25)
    assert len(frame) == 3
    assert (frame["fast"] < frame["slow"]).all()


def test_rank_sweep_orders_by_metric_direction(bars: pd.DataFrame) -> None:
    frame = run_sweep(
        bars, "SMA_Crossover", {"fast": [5, 10], "slow": [30, 60]}, StrategyConfig(**NO_FILTERS)
    )
    ranked = rank_sweep(frame, "sharpe")
    assert list(ranked["sharpe"]) == sorted(frame["sharpe"], reverse=True)
    with pytest.raises(ConfigError, match="Did you mean 'sharpe'"):
        rank_sweep(frame, "sharp")


def test_result_shapes_and_end_of_data(bars: pd.DataFrame) -> None:
    result = run_backtest(bars, "SMA_Crossover", {"fast": 5, "slow": 10}, StrategyConfig(**NO_FILTERS))
    assert list(result.trades.columns[:2]) == ["entry_time", "exit_time"]
    assert {"entry_price", "exit_price", "size", "fees", "pnl", "return_pct", "exit_reason"} <= set(
        result.trades
    )
    assert len(result.equity) == len(bars)
    assert result.metrics["trades"] == len(result.trades)
    final = result.config.initial_cash + result.trades["pnl"].sum()
    assert result.equity.iloc[-1] == pytest.approx(final)
    assert result.metrics["total_return"] == pytest.approx(final / result.config.initial_cash - 1)


def test_price_filter_blocks_all_entries_outside_range(bars: pd.DataFrame) -> None:
    high = float(bars["close"].max()) + 1
    cfg = StrategyConfig(filters={"min_price": high}, min_volume=0.0)
    result = run_backtest(bars, "SMA_Crossover", {"fast": 5, "slow": 10}, cfg)
    assert result.trades.empty
    assert any("block" in note for note in result.info.notes)


def test_excluded_symbol_takes_no_trades_either_notation(bars: pd.DataFrame) -> None:
    btc = bars.copy()
    btc.attrs["symbol"] = "KRW-BTC"
    cfg = StrategyConfig(filters={"exclude_symbols": ["BTC-KRW"]}, min_volume=0.0)
    result = run_backtest(btc, "SMA_Crossover", {"fast": 5, "slow": 10}, cfg)
    assert result.trades.empty
    assert "exclude_symbols" in result.info.notes[0]


def test_volume_ratio_filter_only_enters_on_volume_spikes(bars: pd.DataFrame) -> None:
    cfg = StrategyConfig(filters={"volume_ma_ratio": 1.5}, min_volume=0.0, fill="close")
    result = run_backtest(bars, "SMA_Crossover", {"fast": 5, "slow": 10}, cfg)
    volume = bars["volume"]
    ratio = volume / volume.rolling(20).mean()
    assert not result.trades.empty
    assert (ratio.loc[result.trades["entry_time"]] >= 1.5).all()


def test_too_few_bars_names_the_need(bars: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="needs at least 202 bars"):
        run_backtest(
            bars.iloc[:100], "SMA_Crossover", {"fast": 10, "slow": 200}, StrategyConfig(**NO_FILTERS)
        )


def test_unknown_strategy_and_parameter_suggest_names(bars: pd.DataFrame) -> None:
    with pytest.raises(StrategyError, match="Did you mean 'SMA_Crossover'"):
        run_backtest(bars, "SMA_Crosover")
    with pytest.raises(StrategyError, match="Did you mean 'fast'"):
        run_backtest(bars, "SMA_Crossover", {"fats": 3})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("stop_loss_pct", 1.0, r"stop_loss_pct=1.0 is outside \(0.0, 1.0\)"),
        ("stop_loss_pct", 0.0, "stop_loss_pct"),
        ("take_profit_pct", 5.0, "take_profit_pct"),
        ("commission_rate", 0.02, r"commission_rate=0.02 is outside \[0.0, 0.01\]"),
        ("position_size_method", "martingale", "'fixed' \\(currency\\), 'percent'"),
        ("position_size_value", 1.5, "position_size_value"),
        ("max_positions", 0, "max_positions=0 must be an integer >= 1"),
        ("fill", "open", "fill='open' is not one of"),
        ("initial_cash", -5, "initial_cash"),
        ("filters", {"min_prce": 10}, r"filters has unknown key\(s\) \['min_prce'\]"),
        ("market_rules", "upbit", "market_rules='upbit' is not a known preset. Did you mean 'upbit_krw'"),
        ("max_volume_participation", 2, r"max_volume_participation=2 is outside \(0.0, 1.0\]"),
        ("technical_indicators", {"rsi_period": 14}, "technical_indicators=.* is no longer accepted"),
    ],
)
def test_config_validation_names_field(field: str, value: Any, message: str) -> None:
    overrides = {field: value}
    if field == "position_size_value":
        overrides["position_size_method"] = "percent"
    with pytest.raises(ConfigError, match=message):
        StrategyConfig(**overrides)


def test_config_defaults_are_the_originals() -> None:
    cfg = StrategyConfig()
    assert cfg.initial_cash == 10_000_000
    assert (cfg.position_size_method, cfg.position_size_value) == ("fixed", 0.1)
    assert (cfg.stop_loss_pct, cfg.take_profit_pct, cfg.max_positions) == (0.08, None, 10)
    assert (cfg.commission_rate, cfg.slippage_rate, cfg.min_volume) == (0.0005, 0.001, 1e6)
    assert cfg.filters is not None
    assert cfg.filters["exclude_symbols"] == ["USDT-KRW", "BTC-KRW"]
    assert StrategyConfig(stop_loss_pct=None, take_profit_pct=None).stop_loss_pct is None
    # Fields added later change nothing by default; the two never-read originals are gone (None).
    assert (cfg.market_rules, cfg.min_order_value, cfg.tick_table, cfg.max_volume_participation) == (
        None,
    ) * 4
    assert (cfg.technical_indicators, cfg.timezone_settings) == (None, None)


def _portfolio_bars() -> dict[str, pd.DataFrame]:
    return {s: synthetic_bars(s, periods=1500, freq="1h", seed=5) for s in ("KRW-ETH", "KRW-XRP", "KRW-SOL")}


def test_portfolio_respects_max_positions_and_shared_cash() -> None:
    cfg = StrategyConfig(
        **NO_FILTERS, max_positions=2, position_size_method="percent", position_size_value=0.5
    )
    result = run_portfolio_backtest(_portfolio_bars(), "SMA_Crossover", {"fast": 5, "slow": 20}, cfg)
    trades = result.trades
    assert set(trades["symbol"]) <= {"KRW-ETH", "KRW-XRP", "KRW-SOL"}
    timeline = result.equity.index
    open_count = np.zeros(len(timeline), dtype=int)
    for entry, exit_ in zip(trades["entry_bar"], trades["exit_bar"], strict=True):
        open_count[entry:exit_] += 1
    assert open_count.max() <= 2
    assert result.equity.iloc[-1] == pytest.approx(cfg.initial_cash + trades["pnl"].sum())


@pytest.mark.parametrize(
    "rules",
    [{}, {"market_rules": "upbit_krw", "max_volume_participation": 0.001}, {"min_order_value": 9_900_000.0}],
    ids=["no rules", "ticks and partial fills", "minimum order"],
)
def test_portfolio_of_one_symbol_equals_single_backtest(bars: pd.DataFrame, rules: dict[str, Any]) -> None:
    cfg = StrategyConfig(
        **NO_FILTERS,
        stop_loss_pct=0.02,
        take_profit_pct=0.03,
        position_size_method="percent",
        position_size_value=1.0,
        **rules,
    )
    single = run_backtest(bars, "SMA_Crossover", {"fast": 5, "slow": 20}, cfg)
    portfolio = run_portfolio_backtest({"KRW-ETH": bars}, "SMA_Crossover", {"fast": 5, "slow": 20}, cfg)
    assert portfolio.trades["entry_bar"].tolist() == single.trades["entry_bar"].tolist()
    assert portfolio.trades["exit_bar"].tolist() == single.trades["exit_bar"].tolist()
    np.testing.assert_allclose(portfolio.trades["pnl"], single.trades["pnl"], rtol=1e-9)
    np.testing.assert_allclose(portfolio.equity.to_numpy(), single.equity.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(
        portfolio.trades["filled_fraction"], single.trades["filled_fraction"], rtol=1e-12
    )
    if rules:
        skipped = single.extras["skipped_orders"]
        assert portfolio.extras["skipped_orders"]["bar"].tolist() == skipped["bar"].tolist()
        assert len(skipped) > 0 or (single.trades["filled_fraction"] < 1).any()


def test_portfolio_ranks_entries_by_turnover_when_slots_are_short() -> None:
    frames = _portfolio_bars()
    cfg = StrategyConfig(
        **NO_FILTERS, max_positions=1, position_size_method="percent", position_size_value=1.0
    )
    result = run_portfolio_backtest(frames, "SMA_Crossover", {"fast": 5, "slow": 20}, cfg)
    assert len(result.trades) > 0
    entries = result.trades["entry_bar"].to_numpy()
    exits = result.trades["exit_bar"].to_numpy()
    assert (entries[1:] >= exits[:-1]).all()  # one slot: never two positions at once


def test_integrated_backtester_returns_original_field_names(bars: pd.DataFrame) -> None:
    backtester = create_integrated_backtester()
    backtester.add_session("s1", bars)
    out = backtester.run_single_strategy_backtest("Dynamic_RSI_MACD", StrategyConfig(**NO_FILTERS), "s1")
    for name in (
        "win_rate",
        "avg_return",
        "mdd",
        "sharpe_ratio",
        "sortino_ratio",
        "profit_factor",
        "kelly_fraction",
    ):
        assert name in out
    assert out["session_id"] == "s1"
    assert out["total_trades"] == len(out["trades"])
    with pytest.raises(DataError, match="Did you mean 's1'"):
        backtester.run_single_strategy_backtest("Dynamic_RSI_MACD", None, "s2")
    direct = run_single_strategy_backtest("Dynamic_RSI_MACD", StrategyConfig(**NO_FILTERS), "x", bars=bars)
    assert direct["total_trades"] == out["total_trades"]


def test_kelly_backtester_sizes_with_kelly(bars: pd.DataFrame) -> None:
    kb = KellyBacktester(StrategyConfig(**NO_FILTERS, kelly_min_trades=5), scale=0.25)
    result = kb.run(bars, "SMA_Crossover", {"fast": 5, "slow": 10})
    assert result.config.position_size_method == "kelly"
    report = kb.kelly_report(result)
    assert report["kelly_quarter"] == pytest.approx(report["kelly_fraction"] / 4)
