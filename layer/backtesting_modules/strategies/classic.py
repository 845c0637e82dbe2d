"""The classic textbook strategies (SMA crossover, RSI mean reversion, Donchian breakout) and the helpers
every strategy module uses to turn per-combination rows into the registry's (n_bars, m) signal arrays.

Signals are built as (m, n_bars) C-ordered rows, one per combination, so each combination's work touches
contiguous memory, and returned transposed: an (n_bars, m) view, no copy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ..bars import BarArrays
from ..indicators import cached_rolling_max, cached_rolling_min, cached_rsi, cached_sma
from .registry import Constraint, Param, Strategy, register, table_rows

ColumnFn = Callable[[BarArrays, dict[str, float]], tuple[np.ndarray, np.ndarray]]


def combo_count(params: Mapping[str, np.ndarray]) -> int:
    """m, the number of combinations in a parameter table (1 for a strategy without parameters)."""
    return len(next(iter(params.values()))) if params else 1


def int_param(params: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return np.asarray(params[name]).astype(np.int64)


def finish(entries: np.ndarray, exits: np.ndarray, warmup: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clear each row's warm-up bars and return the (n_bars, m) views of (m, n_bars) rows."""
    for row, bars_needed in enumerate(warmup.tolist()):
        entries[row, :bars_needed] = False
        exits[row, :bars_needed] = False
    return entries.T, exits.T


def crossed_above(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a[t] > b[t] and a[t-1] <= b[t-1]; False wherever a value involved is NaN."""
    out = np.zeros(a.shape[0], dtype=bool)
    out[1:] = np.greater(a[1:], b[1:]) & np.less_equal(a[:-1], b[:-1])
    return out


def crossed_below(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a[t] < b[t] and a[t-1] >= b[t-1]; False wherever a value involved is NaN."""
    return crossed_above(b, a)


def per_combo_signals(
    bars: BarArrays, params: Mapping[str, np.ndarray], column: ColumnFn, warmup: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Signals from a function of one combination (a dict of plain numbers) returning 1-D (entry, exit).

    For strategies whose rules do not gather well across combinations; their indicators are memoised on
    `bars`, so each combination costs only its comparisons.
    """
    m, n = combo_count(params), len(bars)
    entries = np.zeros((m, n), dtype=bool)
    exits = np.zeros((m, n), dtype=bool)
    for row, combo in enumerate(table_rows(dict(params))):
        entries[row], exits[row] = column(bars, combo)
    return finish(entries, exits, warmup)


# --- SMA_Crossover ---------------------------------------------------------------------------------------


def _sma_crossover_warmup(params: Mapping[str, np.ndarray]) -> np.ndarray:
    # Both averages are defined from bar slow-1; a cross also needs the bar before, so bar `slow` is first.
    return np.maximum(int_param(params, "fast"), int_param(params, "slow"))


def _sma_crossover_signals(
    bars: BarArrays, params: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    fast, slow = int_param(params, "fast"), int_param(params, "slow")
    m, n = fast.shape[0], len(bars)
    averages = {w: cached_sma(bars, w) for w in np.unique(np.concatenate([fast, slow])).tolist()}
    entries = np.zeros((m, n), dtype=bool)
    exits = np.zeros((m, n), dtype=bool)
    # Row-sized scratch (not (m, n) matrices): no page faults on fresh memory, and it stays in cache.
    above = np.empty(n, dtype=bool)
    below = np.empty(n, dtype=bool)
    for row, (f, s) in enumerate(zip(fast.tolist(), slow.tolist(), strict=True)):
        np.greater(averages[f], averages[s], out=above)
        np.less(averages[f], averages[s], out=below)
        # On booleans `x[t] > x[t-1]` is `x[t] and not x[t-1]`: a cross in one pass. Where an average is
        # NaN both `above` and `below` are False, so the first defined bar could look like a cross; the
        # warm-up (signals start at bar `slow`) clears it.
        np.greater(above[1:], above[:-1], out=entries[row, 1:])
        np.greater(below[1:], below[:-1], out=exits[row, 1:])
    return finish(entries, exits, _sma_crossover_warmup(params))


SMA_CROSSOVER = register(
    Strategy(
        name="SMA_Crossover",
        description="Long when the fast SMA crosses above the slow SMA, flat when it crosses back below.",
        params=(
            Param("fast", 10, 2, 500, int, "window of the fast simple moving average (bars)"),
            Param("slow", 30, 3, 2000, int, "window of the slow simple moving average (bars)"),
        ),
        signals=_sma_crossover_signals,
        warmup=_sma_crossover_warmup,
        constraints=(Constraint("fast < slow", lambda p: np.less(p["fast"], p["slow"])),),
    )
)


# --- RSI_MeanReversion -----------------------------------------------------------------------------------


def _rsi_warmup(params: Mapping[str, np.ndarray]) -> np.ndarray:
    # RSI(n) is defined from bar n; the entry compares with the bar before.
    return int_param(params, "period") + 1


def _rsi_signals(bars: BarArrays, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    period = int_param(params, "period")
    lower = np.asarray(params["lower"], dtype=np.float64)
    upper = np.asarray(params["upper"], dtype=np.float64)
    m, n = period.shape[0], len(bars)
    entries = np.zeros((m, n), dtype=bool)
    exits = np.empty((m, n), dtype=bool)
    for row in range(m):
        value = cached_rsi(bars, int(period[row]))
        entries[row, 1:] = np.less(value[:-1], lower[row]) & np.greater_equal(value[1:], lower[row])
        np.greater_equal(value, upper[row], out=exits[row])
    return finish(entries, exits, _rsi_warmup(params))


RSI_MEAN_REVERSION = register(
    Strategy(
        name="RSI_MeanReversion",
        description="Long when RSI crosses up through `lower` (leaving oversold), flat when RSI >= `upper`.",
        params=(
            Param("period", 14, 2, 100, int, "RSI window (Wilder smoothing, bars)"),
            Param("lower", 30.0, 1.0, 50.0, float, "oversold level: entry when RSI crosses up through it"),
            Param("upper", 70.0, 50.0, 99.0, float, "overbought level: exit when RSI is at or above it"),
        ),
        signals=_rsi_signals,
        warmup=_rsi_warmup,
        constraints=(Constraint("lower < upper", lambda p: np.less(p["lower"], p["upper"])),),
    )
)


# --- Donchian_Breakout -----------------------------------------------------------------------------------


def _donchian_warmup(params: Mapping[str, np.ndarray]) -> np.ndarray:
    # The channel of the previous n bars exists from bar n.
    return np.maximum(int_param(params, "entry_period"), int_param(params, "exit_period"))


def _breakout_rows(bars: BarArrays, windows: np.ndarray, upward: bool) -> tuple[np.ndarray, np.ndarray]:
    """One signal row per distinct window, and each combination's row number in that table."""
    distinct, which = np.unique(windows, return_inverse=True)
    rows = np.zeros((distinct.shape[0], len(bars)), dtype=bool)
    for i, window in enumerate(distinct.tolist()):
        if upward:
            channel = cached_rolling_max(bars, "high", window)
            np.greater(bars.close[1:], channel[:-1], out=rows[i, 1:])
        else:
            channel = cached_rolling_min(bars, "low", window)
            np.less(bars.close[1:], channel[:-1], out=rows[i, 1:])
    return rows, which


def _donchian_signals(bars: BarArrays, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    entry_rows, entry_of = _breakout_rows(bars, int_param(params, "entry_period"), upward=True)
    exit_rows, exit_of = _breakout_rows(bars, int_param(params, "exit_period"), upward=False)
    return finish(entry_rows[entry_of], exit_rows[exit_of], _donchian_warmup(params))


DONCHIAN_BREAKOUT = register(
    Strategy(
        name="Donchian_Breakout",
        description=(
            "Long when the close breaks above the highest high of the previous `entry_period` bars, "
            "flat when it breaks below the lowest low of the previous `exit_period` bars."
        ),
        params=(
            Param(
                "entry_period", 20, 2, 500, int, "bars in the breakout channel (highest high, bar t excluded)"
            ),
            Param("exit_period", 10, 2, 500, int, "bars in the exit channel (lowest low, bar t excluded)"),
        ),
        signals=_donchian_signals,
        warmup=_donchian_warmup,
    )
)
