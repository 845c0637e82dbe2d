"""Buy and hold, the benchmark of every backtest; part of `metrics`.

Owns `buy_and_hold` (the benchmark's equity curve: one symbol, or an equal-weight basket of a portfolio's
symbols) and `_Benchmark`, the per-bar returns of that curve reduced to what the sweep needs. The curve is
the same for every column of a sweep, so its returns, mean and variance are computed once per call; the one
per-column quantity of the regression, the sum of r_s × (r_b − mean r_b), is accumulated by the scan over
the bars (`metrics_scan`), and the metrics are read off it in `metrics_formulas`. Definitions and edge
cases: docs/metrics.md. Import from `backtesting_modules.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sim_core import sale_proceeds, units_for_budget

# Benchmark returns whose spread is below this fraction of their size are rounding noise around a constant:
# the benchmark does not vary, and beta (cov / var) would be noise divided by noise.
_FLAT_TOLERANCE = 1e-12


def buy_and_hold(closes: np.ndarray, *, initial_cash: float, cost_rate: float) -> np.ndarray:
    """Equity at each close of buying at the first close and selling at the last, fees on both fills.

    `closes` is (n_bars,) for one symbol, or (n_bars, k) for an equal-weight basket: each symbol gets
    `initial_cash / k`, held as cash until its first finite close (NaN marks bars a symbol does not have),
    bought there, marked at its closes (the last one carried over a missing bar), sold at its last finite
    close and held as cash from then on. The fills use the simulator's fee arithmetic (`sim_core`).
    """
    prices = np.asarray(closes, dtype=np.float64)
    if prices.ndim == 1:
        prices = prices.reshape(-1, 1)
    present = np.isfinite(prices)
    if prices.ndim != 2 or prices.shape[0] == 0 or not present.any(axis=0).all():
        raise ValueError(
            f"closes must be (n_bars,) or (n_bars, k) with a price in every column; got {prices.shape}."
        )
    n_bars, k = prices.shape
    budget = initial_cash / k
    if present.all():  # the usual case (one symbol's bars): no cash waiting, no price to carry over
        units = units_for_budget(budget, prices[0], cost_rate)
        value = units * prices
        value[-1] = sale_proceeds(units, prices[-1], cost_rate)
    else:
        rows = np.arange(n_bars)[:, None]
        columns = np.arange(k)
        first = present.argmax(axis=0)
        last = n_bars - 1 - present[::-1].argmax(axis=0)
        carried = prices[np.maximum.accumulate(np.where(present, rows, 0), axis=0), columns]
        units = units_for_budget(budget, prices[first, columns], cost_rate)
        sold = sale_proceeds(units, prices[last, columns], cost_rate)
        value = np.where(rows < first, budget, np.where(rows < last, units * carried, sold))
    return value[:, 0] if k == 1 else value.sum(axis=1)


@dataclass(frozen=True)
class _Benchmark:
    """The benchmark's per-bar returns r_b as the regression reads them.

    `deviations` are r_b − mean(r_b) (the scan sums r_s × deviation per column, which is the covariance's
    numerator: the strategy's own mean drops out); `variance_sum` is Σ deviation²; `flat` marks a benchmark
    whose returns do not vary (or a single bar), for which beta and alpha are undefined.
    """

    total_return: float
    mean: float
    deviations: np.ndarray
    variance_sum: float
    flat: bool


def _benchmark_returns(benchmark: np.ndarray, n_bars: int, initial_cash: float) -> _Benchmark:
    """The returns of a benchmark curve under the metrics' convention: r_0 = B_0 / initial_cash − 1."""
    curve = np.asarray(benchmark, dtype=np.float64)
    if curve.shape not in {(n_bars,), (n_bars, 1)}:
        raise ValueError(
            f"benchmark must be one equity value per bar ({n_bars}); got shape {curve.shape}. "
            "Build it with buy_and_hold(closes, ...)."
        )
    curve = curve.reshape(-1)
    returns = np.empty(n_bars)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(curve[0], initial_cash, out=returns[:1])
        np.divide(curve[1:], curve[:-1], out=returns[1:])
    returns -= 1.0
    mean = float(returns.mean())
    deviations = returns - mean
    variance_sum = float(np.einsum("i,i->", deviations, deviations))  # no BLAS: see metrics_scan
    scale = float(np.abs(returns).max())
    flat = not variance_sum > n_bars * (_FLAT_TOLERANCE * scale) ** 2  # NaN counts as flat too
    return _Benchmark(float(curve[-1] / initial_cash - 1.0), mean, deviations, variance_sum, flat)
