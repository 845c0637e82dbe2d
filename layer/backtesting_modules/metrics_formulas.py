"""The metric formulas: from the scan's per-column totals and the trade columns to the metric values; part of
`metrics`.

Curve metrics (returns, risk, risk-adjusted) come from a `_CurveScan`; the benchmark metrics from the same
scan and a `_Benchmark`; trade statistics are `np.bincount` sums over the flat trade columns; the Kelly sizing
metrics and the composite score are built on both. Units and edge cases are documented in docs/metrics.md.
Import the metrics from `backtesting_modules.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .metrics_benchmark import _Benchmark
from .metrics_scan import _CurveScan, _longest_drawdown
from .trades import TradeArrays

SECONDS_PER_YEAR = 365 * 86_400  # crypto trades around the clock, every day of the year

# (metric, weight, lower clip, upper clip, divisor) of the composite score. The weights are the original
# system's; clipping each component to a common range is ours, so no single metric can dominate.
_COMPOSITE_PARTS: tuple[tuple[str, float, float, float, float], ...] = (
    ("total_return", 0.35, -1.0, 1.0, 1.0),
    ("win_rate", 0.25, 0.0, 1.0, 1.0),
    ("kelly_fraction", 0.20, -1.0, 1.0, 1.0),
    ("sharpe", 0.15, -1.0, 1.0, 3.0),
    ("drawdown_depth", -0.05, 0.0, 1.0, 1.0),
)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    return np.divide(num, den, out=out, where=den != 0)


# --- curve metrics -----------------------------------------------------------------------------------


def _curve_metrics(
    last: np.ndarray, scan: _CurveScan, n_bars: int, initial_cash: float, bar_seconds: float
) -> dict[str, np.ndarray]:
    annual = math.sqrt(SECONDS_PER_YEAR / bar_seconds)
    years = n_bars * bar_seconds / SECONDS_PER_YEAR
    growth = last / initial_cash
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        cagr = np.where(growth > 0, np.power(np.maximum(growth, 0.0), 1 / years) - 1, -1.0)
        mean = scan.sum_r / n_bars
        # ddof=1: a single bar has no sample standard deviation.
        spread = np.maximum(scan.sum_sq - scan.sum_r * mean, 0.0)
        std = np.sqrt(spread / (n_bars - 1)) if n_bars > 1 else np.full_like(mean, np.nan)
        downside = np.sqrt(scan.down_sq / n_bars)
        max_drawdown = scan.min_ratio - 1.0
        duration = _longest_drawdown(scan, n_bars, last.shape[0])
        return {
            "total_return": growth - 1.0,
            "cagr": cagr,
            "volatility": std * annual,
            "max_drawdown": max_drawdown,
            "max_drawdown_duration": duration,
            "max_drawdown_duration_hours": duration * bar_seconds / 3600,
            "sharpe": _safe_divide(mean, std) * annual,
            "sortino": _safe_divide(mean, downside) * annual,
            "calmar": _safe_divide(cagr, np.abs(max_drawdown)),
            "recovery_factor": _safe_divide(last - initial_cash, scan.max_gap),
        }


def _benchmark_metrics(
    total_return: np.ndarray,
    scan: _CurveScan,
    benchmark: _Benchmark | None,
    n_bars: int,
    bar_seconds: float,
) -> dict[str, np.ndarray]:
    """Buy and hold against the strategy: beta = cov(r, r_b) / var(r_b), alpha = the regression's
    intercept mean(r) − beta·mean(r_b) per bar, annualised × bars_per_year (it is a mean return, which
    scales with time; the √bars_per_year of the Sharpe ratio is for a ratio to a standard deviation)."""
    if benchmark is None:
        names = ("benchmark_return", "excess_return", "alpha", "beta")
        return {name: np.full_like(total_return, np.nan) for name in names}
    benchmark_return = np.full_like(total_return, benchmark.total_return)
    beta, alpha = np.full_like(total_return, np.nan), np.full_like(total_return, np.nan)
    if not benchmark.flat:
        beta = scan.cross / benchmark.variance_sum  # the ddof of cov and var cancels
        alpha = (scan.sum_r / n_bars - beta * benchmark.mean) * (SECONDS_PER_YEAR / bar_seconds)
    return {
        "benchmark_return": benchmark_return,
        "excess_return": total_return - benchmark_return,
        "alpha": alpha,
        "beta": beta,
    }


# --- trade metrics -----------------------------------------------------------------------------------


def _trade_metrics(
    trades: TradeArrays, n_cols: int, n_bars: int, bar_seconds: float
) -> dict[str, np.ndarray]:
    combo = np.asarray(trades.combo, dtype=np.intp)
    if combo.size and (combo.min() < 0 or combo.max() >= n_cols):
        raise ValueError(f"trades.combo must index the {n_cols} equity columns; found {combo.max()}.")
    pnl = np.asarray(trades.pnl, dtype=np.float64)
    ret = np.asarray(trades.return_pct, dtype=np.float64)
    held = (np.asarray(trades.exit_bar) - np.asarray(trades.entry_bar)).astype(np.float64)
    win = pnl > 0

    def total(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(combo, weights=weights, minlength=n_cols).astype(np.float64)

    count, winning = total(), total(win.astype(np.float64))
    losing = count - winning
    gross_profit, gross_loss = total(np.where(win, pnl, 0.0)), total(np.where(pnl < 0, -pnl, 0.0))
    total_pnl, holding = total(pnl), total(held)
    profit_factor = _safe_divide(gross_profit, gross_loss)
    profit_factor[(gross_loss == 0) & (gross_profit > 0)] = np.inf
    avg_holding = _safe_divide(holding, count)
    return {
        "trades": count,
        "winning_trades": winning,
        "losing_trades": losing,
        "win_rate": _safe_divide(winning, count),
        "avg_return": _safe_divide(total(ret), count),
        "avg_win": _safe_divide(total(np.where(win, ret, 0.0)), winning),
        "avg_loss": _safe_divide(total(np.where(win, 0.0, ret)), losing),
        "total_pnl": total_pnl,
        "gross_profit": gross_profit,
        "gross_loss": gross_loss,
        "profit_factor": profit_factor,
        "expectancy": _safe_divide(total_pnl, count),
        "exposure": holding / n_bars,
        "avg_holding_bars": avg_holding,
        "avg_holding_hours": avg_holding * bar_seconds / 3600,
    }


def _kelly_metrics(
    win_rate: np.ndarray, avg_win: np.ndarray, avg_loss: np.ndarray, count: np.ndarray
) -> dict[str, np.ndarray]:
    """Kelly f* = (b p - q) / b = p - q / b with b = avg_win / |avg_loss| on per-trade returns."""
    p, q = win_rate, 1.0 - win_rate
    with np.errstate(divide="ignore", invalid="ignore"):
        b = avg_win / np.abs(avg_loss)  # NaN without winners or without losers; inf if losers average 0
        kelly = p - q / b
    traded = count > 0
    kelly = np.where(traded & np.isnan(avg_loss), p, kelly)  # never lost: stake what the win rate says
    kelly = np.where(traded & np.isnan(avg_win), -1.0, kelly)  # never won: the edge is all against us
    kelly = np.clip(kelly, -1.0, 1.0)
    return {
        "b_value": b,
        "kelly_fraction": kelly,
        "kelly_half": kelly / 2,
        "kelly_quarter": kelly / 4,
        "swing_score": b * p - q,
    }


def _composite_score(metrics: Mapping[str, np.ndarray]) -> np.ndarray:
    parts = {**metrics, "drawdown_depth": np.abs(metrics["max_drawdown"])}
    score = np.zeros_like(metrics["total_return"])
    for name, weight, low, high, divisor in _COMPOSITE_PARTS:
        component = np.clip(parts[name] / divisor, low, high)
        score += weight * np.where(np.isnan(component), 0.0, component)
    return 100.0 * score
