"""The original system's entry points, kept so existing Makenaide code keeps working.

- `create_integrated_backtester(...)` returns an `IntegratedBacktester` whose
  `run_single_strategy_backtest(strategy_name, config, session_id)` backtests a registered strategy on the
  bars of a data session and returns the original result fields (win_rate, avg_return, mdd,
  sharpe_ratio, ...).
- `KellyBacktester` runs a strategy with Kelly position sizing and reports the Kelly statistics.

A *session* is a named set of bars (one symbol or several). The original loaded sessions from its database;
here they are registered explicitly (`add_session`) or supplied by a `data_provider(session_id)` callable,
and an unknown session is an error rather than a silent fallback to random data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import pandas as pd

from .backtest import BacktestResult, run_backtest
from .config import StrategyConfig
from .errors import DataError, did_you_mean
from .metrics import legacy_metrics
from .portfolio import run_portfolio_backtest

SessionBars = pd.DataFrame | Mapping[str, pd.DataFrame]
DataProvider = Callable[[str], SessionBars]


class IntegratedBacktester:
    """Runs registered strategies on named data sessions (see module docstring)."""

    def __init__(
        self,
        sessions: Mapping[str, SessionBars] | None = None,
        data_provider: DataProvider | None = None,
    ) -> None:
        self._sessions: dict[str, SessionBars] = dict(sessions or {})
        self._provider = data_provider

    def add_session(self, session_id: str, bars: SessionBars) -> None:
        """Register bars (a frame, or a mapping symbol -> frame for a portfolio run) under `session_id`."""
        self._sessions[session_id] = bars

    def load_session(self, session_id: str) -> SessionBars:
        if session_id in self._sessions:
            return self._sessions[session_id]
        if self._provider is not None:
            bars = self._provider(session_id)
            self._sessions[session_id] = bars
            return bars
        raise DataError(
            f"unknown data session {session_id!r}.{did_you_mean(session_id, self._sessions)} "
            "Register its bars with add_session(session_id, bars) or pass data_provider= to "
            "create_integrated_backtester()."
        )

    def run_backtest(
        self,
        strategy_name: str,
        config: StrategyConfig | None = None,
        session_id: str = "default",
        params: Mapping[str, Any] | None = None,
    ) -> BacktestResult:
        """The full result object (metrics, trades, equity) of one strategy on one session."""
        bars = self.load_session(session_id)
        if isinstance(bars, pd.DataFrame):
            return run_backtest(bars, strategy_name, params, config)
        return run_portfolio_backtest(bars, strategy_name, params, config)

    def run_single_strategy_backtest(
        self,
        strategy_name: str,
        config: StrategyConfig | None = None,
        session_id: str = "default",
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The original call: a dict with the original metric names plus strategy, session and trades."""
        result = self.run_backtest(strategy_name, config, session_id, params)
        return {
            "strategy_name": strategy_name,
            "session_id": session_id,
            "params": result.params,
            **legacy_metrics(result.metrics),
            "trades": result.trades.to_dict("records"),
        }


def create_integrated_backtester(
    sessions: Mapping[str, SessionBars] | None = None,
    data_provider: DataProvider | None = None,
) -> IntegratedBacktester:
    """Factory kept from the original API."""
    return IntegratedBacktester(sessions, data_provider)


def run_single_strategy_backtest(
    strategy_name: str,
    config: StrategyConfig | None = None,
    session_id: str = "default",
    *,
    bars: SessionBars | None = None,
) -> dict[str, Any]:
    """Module-level shortcut: backtest `strategy_name` on `bars` (registered as `session_id`)."""
    if bars is None:
        raise DataError("run_single_strategy_backtest needs bars=: pass a bar DataFrame (see load_bars).")
    return IntegratedBacktester({session_id: bars}).run_single_strategy_backtest(
        strategy_name, config, session_id
    )


class KellyBacktester:
    """Backtests with Kelly sizing (`position_size_method="kelly"`) and reports the Kelly statistics."""

    def __init__(self, config: StrategyConfig | None = None, scale: float = 0.5) -> None:
        base = config or StrategyConfig()
        self.config = replace(base, position_size_method="kelly", kelly_scale=scale)

    def run(
        self, bars: pd.DataFrame, strategy_name: str, params: Mapping[str, Any] | None = None
    ) -> BacktestResult:
        return run_backtest(bars, strategy_name, params, self.config)

    def kelly_report(self, result: BacktestResult) -> dict[str, float]:
        m = result.metrics
        keys = ("kelly_fraction", "kelly_half", "kelly_quarter", "b_value", "win_rate", "avg_win", "avg_loss")
        return {k: m[k] for k in keys}
