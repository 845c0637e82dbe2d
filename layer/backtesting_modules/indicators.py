"""Technical indicators as pure numpy functions, and the memo keys under which strategies share them.

This module owns the numerical definition of every indicator a strategy uses. Each function takes 1-D
float64 arrays and returns a float64 array of the input's length, NaN wherever the value is not yet defined
(the warm-up). Leading NaNs in an input (the first bar of `pct_change`, say) are skipped: the warm-up
starts at the first finite value. A NaN inside the data propagates like it does in pandas' ``rolling(n)``
(every window containing it is NaN) and, for the recursive averages, to the end.

Conventions (they matter when comparing with other libraries):

- `sma`, `rolling_std`, `rolling_max`, `rolling_min` use the last n values including the current one, like
  ``pandas.Series.rolling(n)``; the first value is at index n-1.
- `ema`: alpha = 2/(n+1), seeded with the SMA of the first n values at index n-1 (TA-Lib's convention;
  pandas' ``ewm(adjust=False)`` seeds with the first value instead, so early values differ).
- `wilder`, `rsi`, `atr`: Wilder smoothing, alpha = 1/n, seeded with the simple mean of the first n terms,
  then ``avg = (prev * (n-1) + cur) / n``. RSI's first value is at index n (n price changes); RSI is 100
  when the average loss is 0. ATR's first value is at index n: true range needs the previous close, so it
  starts at bar 1 (TA-Lib's convention).
- `bollinger` uses the population standard deviation (ddof=0), as Bollinger defined the bands;
  `rolling_std` defaults to the sample deviation (ddof=1), as pandas does.
- `donchian` channels include the current bar; a strategy that breaks out of the *previous* n bars shifts
  the channel by one bar itself.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .bars import BarArrays

# The recursive averages are evaluated block by block: inside a block of this many values the recursion
# is one small matrix product (exact up to rounding), only the carry between blocks is a Python loop.
_BLOCK = 128
# Upper bound on the elements of one temporary (rows × window) matrix in `rolling_std` (32 MB of float64).
_STD_CHUNK_ELEMENTS = 1 << 22


def _as_float(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def _check_window(n: int) -> int:
    if int(n) != n or n < 1:
        raise ValueError(f"indicator window must be a positive integer, got {n!r}.")
    return int(n)


def _first_finite(x: np.ndarray) -> int:
    """Index of the first finite value (len(x) when there is none)."""
    finite = np.flatnonzero(np.isfinite(x))
    return int(finite[0]) if finite.size else len(x)


def _nan_like(x: np.ndarray) -> np.ndarray:
    return np.full(x.shape[0], np.nan)


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average over the last `n` values (current included)."""
    n = _check_window(n)
    x = _as_float(x)
    out = _nan_like(x)
    start = _first_finite(x)
    tail = x[start:]
    if tail.shape[0] < n:
        return out
    if not np.isfinite(tail).all():
        out[start + n - 1 :] = sliding_window_view(tail, n).mean(axis=1)
        return out
    # A running sum of the values minus the first keeps the sums small: on prices ~1e8 a plain cumsum
    # would lose about seven digits to cancellation.
    base = tail[0]
    sums = np.concatenate(([0.0], np.cumsum(tail - base)))
    out[start + n - 1 :] = (sums[n:] - sums[:-n]) / n + base
    return out


def _recursion_loop(u: np.ndarray, decay: float, y0: float) -> np.ndarray:
    out = np.empty(u.shape[0])
    y = y0
    for i, value in enumerate(u.tolist()):
        y = decay * y + value
        out[i] = y
    return out


def _linear_recursion(u: np.ndarray, decay: float, y0: float) -> np.ndarray:
    """y[i] = decay * y[i-1] + u[i] with y[-1] = y0, for 0 <= decay < 1.

    Within a block of L values y = T @ u_block + decay^(j+1) * carry, with T[j, i] = decay^(j-i) on and below
    the diagonal; only the carry from block to block is sequential (343 steps for 43,800 bars instead of
    43,800). Non-finite input falls back to the plain loop, because 0 * NaN inside the matrix product would
    leak NaN into positions before it.
    """
    size = u.shape[0]
    if size == 0:
        return np.empty(0)
    if not np.isfinite(u).all():
        return _recursion_loop(u, decay, y0)
    blocks = -(-size // _BLOCK)
    padded = np.zeros(blocks * _BLOCK)
    padded[:size] = u
    lags = np.arange(_BLOCK)
    powers = decay ** np.arange(_BLOCK + 1, dtype=np.float64)
    lag_matrix = np.subtract.outer(lags, lags)
    weights = np.where(lag_matrix >= 0, powers[np.clip(lag_matrix, 0, None)], 0.0)
    partial = padded.reshape(blocks, _BLOCK) @ weights.T
    carries = np.empty(blocks)
    carry, block_decay = y0, float(powers[_BLOCK])
    for b, last in enumerate(partial[:, -1].tolist()):
        carries[b] = carry
        carry = block_decay * carry + last
    result = partial + carries[:, None] * powers[None, 1:]
    return result.reshape(-1)[:size]


def _seeded_average(x: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """y = alpha * x + (1 - alpha) * y_prev, seeded with the mean of the first n values after leading NaN."""
    x = _as_float(x)
    out = _nan_like(x)
    start = _first_finite(x)
    if x.shape[0] - start < n:
        return out
    seed = float(np.mean(x[start : start + n]))
    out[start + n - 1] = seed
    out[start + n :] = _linear_recursion(alpha * x[start + n :], 1.0 - alpha, seed)
    return out


def ema(x: np.ndarray, n: int) -> np.ndarray:
    """Exponential moving average, alpha = 2/(n+1), seeded with the SMA of the first n values (TA-Lib)."""
    n = _check_window(n)
    return _seeded_average(x, n, 2.0 / (n + 1))


def wilder(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's smoothing: first value the mean of n terms, then (prev * (n-1) + cur) / n."""
    n = _check_window(n)
    return _seeded_average(x, n, 1.0 / n)


def rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    """Wilder's RSI in [0, 100]; first value at index n; 100 when the average loss is 0."""
    n = _check_window(n)
    close = _as_float(close)
    out = _nan_like(close)
    if close.shape[0] <= n:
        return out
    delta = np.diff(close)
    gain = wilder(np.maximum(delta, 0.0), n)
    loss = wilder(np.maximum(-delta, 0.0), n)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(loss > 0.0, 100.0 * gain / (gain + loss), 100.0)
    out[1:] = np.where(np.isnan(loss), np.nan, value)
    return out


def macd(
    close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(macd, signal, histogram): EMA(fast) - EMA(slow), its EMA(signal), and their difference.

    Each EMA is seeded with its own SMA; the signal line starts `signal - 1` bars after the MACD line.
    """
    line = ema(close, fast) - ema(close, slow)
    signal_line = ema(line, signal)
    return line, signal_line, line - signal_line


def rolling_std(x: np.ndarray, n: int, ddof: int = 1) -> np.ndarray:
    """Standard deviation of the last n values (two passes per window: exact on prices ~1e8)."""
    n = _check_window(n)
    x = _as_float(x)
    out = _nan_like(x)
    if x.shape[0] < n or n - ddof <= 0:
        return out
    windows = sliding_window_view(x, n)
    chunk = max(1, _STD_CHUNK_ELEMENTS // n)
    for begin in range(0, windows.shape[0], chunk):
        stop = min(begin + chunk, windows.shape[0])
        out[n - 1 + begin : n - 1 + stop] = windows[begin:stop].std(axis=1, ddof=ddof)
    return out


def bollinger(close: np.ndarray, n: int = 20, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mid, upper, lower): SMA(n) ± k population standard deviations (ddof=0)."""
    mid = sma(close, n)
    spread = k * rolling_std(close, n, ddof=0)
    return mid, mid + spread, mid - spread


def _rolling_extreme(x: np.ndarray, n: int, maximum: bool) -> np.ndarray:
    """van Herk / Gil-Werman: a window of n straddles at most two aligned blocks of n, so its extreme is
    that of a block's suffix and the next block's prefix. O(len), exact, NaN-propagating like pandas."""
    n = _check_window(n)
    x = _as_float(x)
    size = x.shape[0]
    out = _nan_like(x)
    if size < n:
        return out
    op = np.maximum if maximum else np.minimum
    blocks = -(-size // n)
    padded = np.full(blocks * n, x[-1])
    padded[:size] = x
    grid = padded.reshape(blocks, n)
    prefix = op.accumulate(grid, axis=1).reshape(-1)
    suffix = op.accumulate(grid[:, ::-1], axis=1)[:, ::-1].reshape(-1)
    ends = np.arange(n - 1, size)
    out[n - 1 :] = op(suffix[ends - n + 1], prefix[ends])
    return out


def rolling_max(x: np.ndarray, n: int) -> np.ndarray:
    """Maximum of the last n values (current included)."""
    return _rolling_extreme(x, n, maximum=True)


def rolling_min(x: np.ndarray, n: int) -> np.ndarray:
    """Minimum of the last n values (current included)."""
    return _rolling_extreme(x, n, maximum=False)


def donchian(high: np.ndarray, low: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower): highest high and lowest low of the last n bars, the current bar included."""
    return rolling_max(high, n), rolling_min(low, n)


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """max(high - low, |high - prev close|, |low - prev close|); NaN on the first bar (no previous close)."""
    high, low, close = _as_float(high), _as_float(low), _as_float(close)
    out = _nan_like(close)
    if close.shape[0] > 1:
        previous = close[:-1]
        out[1:] = np.maximum(
            high[1:] - low[1:], np.maximum(np.abs(high[1:] - previous), np.abs(low[1:] - previous))
        )
    return out


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Wilder's average true range; first value at index n (mean of the true ranges of bars 1..n)."""
    return wilder(true_range(high, low, close), n)


def pct_change(x: np.ndarray, n: int = 1) -> np.ndarray:
    """x[t] / x[t-n] - 1 (NaN for the first n values)."""
    n = _check_window(n)
    x = _as_float(x)
    out = _nan_like(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[n:] = x[n:] / x[:-n] - 1.0
    return out


def volume_ratio(volume: np.ndarray, n: int) -> np.ndarray:
    """Volume over its n-bar SMA (current bar included); NaN where that mean is 0."""
    volume = _as_float(volume)
    mean = sma(volume, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean > 0.0, volume / mean, np.nan)


# Memoised accessors: one computation per (indicator, series, window) per BarArrays, whoever asks. The keys
# are shared with the rest of the engine (backtest.py's volume filter uses ("volume_ratio", n) too).


def cached_sma(bars: BarArrays, n: int) -> np.ndarray:
    return bars.memo(("sma", "close", int(n)), lambda: sma(bars.close, int(n)))


def cached_rsi(bars: BarArrays, n: int) -> np.ndarray:
    return bars.memo(("rsi", "close", int(n)), lambda: rsi(bars.close, int(n)))


def cached_rolling_max(bars: BarArrays, field: str, n: int) -> np.ndarray:
    return bars.memo(("rolling_max", field, int(n)), lambda: rolling_max(getattr(bars, field), int(n)))


def cached_rolling_min(bars: BarArrays, field: str, n: int) -> np.ndarray:
    return bars.memo(("rolling_min", field, int(n)), lambda: rolling_min(getattr(bars, field), int(n)))


def cached_pct_change(bars: BarArrays, n: int) -> np.ndarray:
    return bars.memo(("pct_change", "close", int(n)), lambda: pct_change(bars.close, int(n)))


def cached_return_std(bars: BarArrays, n: int) -> np.ndarray:
    """Sample standard deviation of the last n one-bar close returns (first value at index n)."""
    return bars.memo(
        ("rolling_std", "returns", int(n), 1), lambda: rolling_std(cached_pct_change(bars, 1), int(n))
    )


def cached_volume_ratio(bars: BarArrays, n: int) -> np.ndarray:
    return bars.memo(("volume_ratio", int(n)), lambda: volume_ratio(bars.volume, int(n)))
