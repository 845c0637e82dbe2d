"""Performance metrics of equity curves and trade lists, for one backtest or a whole sweep at once.

The public entry point of the metrics: it owns the metric table (`METRIC_NAMES`, in report order), the
ranking direction of every metric (`HIGHER_IS_BETTER`), the mapping to the original system's field names
(`legacy_metrics`) and `compute_metrics`. The metric definitions (formulas, units and edge cases; see
docs/metrics.md) live in `metrics_formulas`; the per-column totals they read come from `metrics_scan`, the
VaR from `metrics_var`, and the buy-and-hold benchmark (`buy_and_hold`) from `metrics_benchmark`.

`compute_metrics` works on an (n_bars, m) equity array, one column per parameter combination, and
returns one float64 array of length m per metric. The curve statistics come from a single pass over
the bars in cache-sized row chunks, so no (n_bars, m) temporary is ever allocated; the trade statistics
are `np.bincount` sums over the flat trade columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .errors import ConfigError
from .metrics_benchmark import _benchmark_returns, buy_and_hold
from .metrics_formulas import (
    SECONDS_PER_YEAR,
    _benchmark_metrics,
    _composite_score,
    _curve_metrics,
    _kelly_metrics,
    _trade_metrics,
)
from .metrics_scan import _scan_curves
from .metrics_var import VAR_LEVEL, _value_at_risk
from .trades import TradeArrays

__all__ = [
    "HIGHER_IS_BETTER",
    "LEGACY_NAMES",
    "METRIC_NAMES",
    "SECONDS_PER_YEAR",
    "VAR_LEVEL",
    "buy_and_hold",
    "compute_metrics",
    "legacy_metrics",
]

METRIC_NAMES: tuple[str, ...] = (
    # returns
    "total_return",
    "cagr",
    # risk
    "volatility",
    "max_drawdown",
    "max_drawdown_duration",
    "max_drawdown_duration_hours",
    "var_95",
    # risk-adjusted
    "sharpe",
    "sortino",
    "calmar",
    "recovery_factor",
    # against buy and hold of the same bars
    "benchmark_return",
    "excess_return",
    "alpha",
    "beta",
    # trades
    "trades",
    "winning_trades",
    "losing_trades",
    "win_rate",
    "avg_return",
    "avg_win",
    "avg_loss",
    "total_pnl",
    "gross_profit",
    "gross_loss",
    "profit_factor",
    "expectancy",
    "exposure",
    "avg_holding_bars",
    "avg_holding_hours",
    # position sizing
    "b_value",
    "kelly_fraction",
    "kelly_half",
    "kelly_quarter",
    "swing_score",
    # summary
    "composite_score",
)

# Ranking direction of every metric. Drawdown and VaR are negative numbers, so larger (closer to 0) is
# better. The neutral ones lean towards less risk or more evidence: fewer bars in the market and shorter
# holds tie up less capital; more trades make the other statistics more trustworthy. `beta` is neutral too and
# leans the same way: lower means less of the result comes from the market (a long-only strategy's beta is
# about 0 to 1, so lower is also closer to market-neutral). `benchmark_return` is the same for every
# combination of a sweep; across a batch it ranks the markets, not the strategies.
HIGHER_IS_BETTER: dict[str, bool] = {
    "total_return": True,
    "cagr": True,
    "volatility": False,
    "max_drawdown": True,
    "max_drawdown_duration": False,
    "max_drawdown_duration_hours": False,
    "var_95": True,
    "sharpe": True,
    "sortino": True,
    "calmar": True,
    "recovery_factor": True,
    "benchmark_return": True,
    "excess_return": True,
    "alpha": True,
    "beta": False,
    "trades": True,
    "winning_trades": True,
    "losing_trades": False,
    "win_rate": True,
    "avg_return": True,
    "avg_win": True,
    "avg_loss": True,
    "total_pnl": True,
    "gross_profit": True,
    "gross_loss": False,
    "profit_factor": True,
    "expectancy": True,
    "exposure": False,
    "avg_holding_bars": False,
    "avg_holding_hours": False,
    "b_value": True,
    "kelly_fraction": True,
    "kelly_half": True,
    "kelly_quarter": True,
    "swing_score": True,
    "composite_score": True,
}

# The original system's field name -> ours, in the original's order.
LEGACY_NAMES: dict[str, str] = {
    "total_trades": "trades",
    "winning_trades": "winning_trades",
    "losing_trades": "losing_trades",
    "win_rate": "win_rate",
    "avg_return": "avg_return",
    "total_return": "total_return",
    "avg_win": "avg_win",
    "avg_loss": "avg_loss",
    "volatility": "volatility",
    "mdd": "max_drawdown",
    "sharpe_ratio": "sharpe",
    "sortino_ratio": "sortino",
    "profit_factor": "profit_factor",
    "kelly_fraction": "kelly_fraction",
    "kelly_half": "kelly_half",
    "kelly_quarter": "kelly_quarter",
    "b_value": "b_value",
    "swing_score": "swing_score",
    "var_95": "var_95",
    "avg_holding_time": "avg_holding_hours",
    "calmar_ratio": "calmar",
    "recovery_factor": "recovery_factor",
    "composite_score": "composite_score",
}


def compute_metrics(
    equity: np.ndarray,
    trades: TradeArrays,
    *,
    initial_cash: float,
    bar_seconds: float,
    benchmark: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every metric of `METRIC_NAMES` for each column of `equity` (a float64 array of length m each).

    `equity` is (n_bars, m): the equity of m parameter combinations marked at each bar's close (a 1-D
    curve is one column); it is not modified. `trades.combo` indexes its columns. `benchmark` is the
    buy-and-hold equity over the same bars from the same initial cash (`buy_and_hold`); without it
    `benchmark_return`, `excess_return`, `alpha` and `beta` are NaN.
    """
    values = _as_columns(equity)
    _check_scalars(initial_cash, bar_seconds)
    n_bars, n_cols = values.shape
    bench = _benchmark_returns(benchmark, n_bars, float(initial_cash)) if benchmark is not None else None
    scan = _scan_curves(values, float(initial_cash), bench.deviations if bench is not None else None)
    out = _curve_metrics(values[-1], scan, n_bars, float(initial_cash), float(bar_seconds))
    out.update(_benchmark_metrics(out["total_return"], scan, bench, n_bars, float(bar_seconds)))
    out["var_95"] = _value_at_risk(scan.tail, values, float(initial_cash), np.isnan(scan.sum_r))
    out.update(_trade_metrics(trades, n_cols, n_bars, float(bar_seconds)))
    out.update(_kelly_metrics(out["win_rate"], out["avg_win"], out["avg_loss"], out["trades"]))
    out["composite_score"] = _composite_score(out)
    return {name: out[name] for name in METRIC_NAMES}


def legacy_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """`metrics` of one backtest under the original system's field names (mdd, sharpe_ratio, ...)."""
    return {legacy: float(metrics[ours]) for legacy, ours in LEGACY_NAMES.items()}


# --- input checks -------------------------------------------------------------------------------------


def _as_columns(equity: np.ndarray) -> np.ndarray:
    values = np.asarray(equity, dtype=np.float64)
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    if values.ndim != 2:
        raise ValueError(f"equity must be 1-D or (n_bars, m); got shape {values.shape}.")
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"equity needs at least one bar and one column; got shape {values.shape}.")
    return values


def _check_scalars(initial_cash: float, bar_seconds: float) -> None:
    if not (math.isfinite(initial_cash) and initial_cash > 0):
        raise ConfigError(f"initial_cash must be a positive number; got {initial_cash!r}.")
    if not (math.isfinite(bar_seconds) and bar_seconds > 0):
        raise ConfigError(f"bar_seconds must be a positive number of seconds; got {bar_seconds!r}.")
