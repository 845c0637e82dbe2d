"""Performance metrics of equity curves and trade lists, for one backtest or a whole sweep at once.

Owns the metric definitions (names, formulas, units and edge cases; see docs/metrics.md), the ranking
direction of every metric (`HIGHER_IS_BETTER`) and the mapping to the original system's field names
(`legacy_metrics`).

`compute_metrics` works on an (n_bars, m) equity array, one column per parameter combination, and
returns one float64 array of length m per metric. The curve statistics come from a single pass over
the bars in cache-sized row chunks, so no (n_bars, m) temporary is ever allocated; the trade statistics
are `np.bincount` sums over the flat trade columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError
from .trades import TradeArrays

SECONDS_PER_YEAR = 365 * 86_400  # crypto trades around the clock, every day of the year
VAR_LEVEL = 0.05  # var_95 is the 5th percentile of the per-bar returns

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
# holds tie up less capital; more trades make the other statistics more trustworthy.
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

# (metric, weight, lower clip, upper clip, divisor) of the composite score. The weights are the original
# system's; clipping each component to a common range is ours, so no single metric can dominate.
_COMPOSITE_PARTS: tuple[tuple[str, float, float, float, float], ...] = (
    ("total_return", 0.35, -1.0, 1.0, 1.0),
    ("win_rate", 0.25, 0.0, 1.0, 1.0),
    ("kelly_fraction", 0.20, -1.0, 1.0, 1.0),
    ("sharpe", 0.15, -1.0, 1.0, 3.0),
    ("drawdown_depth", -0.05, 0.0, 1.0, 1.0),
)

_CHUNK_CELLS = 1 << 16  # 512 KiB per float64 scratch buffer: a chunk's passes stay in L2 cache
_MAX_CHUNK_ROWS = 65_535  # per-chunk counts are summed as uint16
_ROW_LOOP_MIN_COLUMNS = 32  # below this, accumulate along axis 0 beats a Python loop over rows
_TAIL_SAMPLE = 2048  # bars sampled to bracket the VaR quantile
_TAIL_SIGMAS = 4.5  # bracket half-width in standard errors of the sampled proportion


def compute_metrics(
    equity: np.ndarray, trades: TradeArrays, *, initial_cash: float, bar_seconds: float
) -> dict[str, np.ndarray]:
    """Every metric of `METRIC_NAMES` for each column of `equity` (a float64 array of length m each).

    `equity` is (n_bars, m): the equity of m parameter combinations marked at each bar's close (a 1-D
    curve is one column); it is not modified. `trades.combo` indexes its columns.
    """
    values = _as_columns(equity)
    _check_scalars(initial_cash, bar_seconds)
    n_bars, n_cols = values.shape
    scan = _scan_curves(values, float(initial_cash))
    out = _curve_metrics(values[-1], scan, n_bars, float(initial_cash), float(bar_seconds))
    out["var_95"] = _value_at_risk(scan, values, float(initial_cash))
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


# --- one pass over the equity curves -------------------------------------------------------------------


@dataclass
class _Tail:
    """What pins down two order statistics of the returns per column without sorting the column.

    `lo` <= `hi` bracket the wanted order statistics (from a sample). Knowing how many returns fall
    below `lo`, only the few returns inside [lo, hi] need sorting. Exact zeros inside are counted, not
    kept: a strategy out of the market has long flat runs of 0 returns.
    """

    lo: np.ndarray
    hi: np.ndarray
    below: np.ndarray
    zeros: np.ndarray
    positions: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)


@dataclass
class _CurveScan:
    """Per-column totals of one pass over the bars; `flips` are flat positions (bar * m + column)
    where the curve goes under water or regains its peak."""

    sum_r: np.ndarray
    sum_sq: np.ndarray
    down_sq: np.ndarray
    min_ratio: np.ndarray
    max_gap: np.ndarray
    tail: _Tail
    flips: list[np.ndarray] = field(default_factory=list)


@dataclass
class _Scratch:
    """Chunk-sized buffers reused by every chunk, so the pass allocates nothing per bar."""

    returns: np.ndarray
    work: np.ndarray
    peak: np.ndarray
    rows: np.ndarray  # contiguous copy of a chunk whose rows are strided in the input
    flags: np.ndarray  # under-water flags with the previous chunk's last row on top
    masks: tuple[np.ndarray, np.ndarray]

    @classmethod
    def allocate(cls, rows: int, cols: int) -> _Scratch:
        shape = (rows, cols)
        masks = (np.empty(shape, bool), np.empty(shape, bool))
        flags = np.empty((rows + 1, cols), bool)
        return cls(np.empty(shape), np.empty(shape), np.empty(shape), np.empty(shape), flags, masks)


def _scan_curves(values: np.ndarray, initial_cash: float) -> _CurveScan:
    n_bars, n_cols = values.shape
    rows = min(n_bars, _MAX_CHUNK_ROWS, max(16, _CHUNK_CELLS // n_cols))
    scratch = _Scratch.allocate(rows, n_cols)
    zeros = np.zeros(n_cols)
    lo, hi = _tail_bracket(values, initial_cash)
    count = np.zeros(n_cols, np.int64)
    tail = _Tail(lo, hi, count, count.copy())
    scan = _CurveScan(zeros.copy(), zeros.copy(), zeros.copy(), np.ones(n_cols), zeros, tail)
    prev = np.full(n_cols, initial_cash)
    peak = prev.copy()
    under = np.zeros(n_cols, bool)
    for start in range(0, n_bars, rows):
        chunk = _contiguous(values[start : start + rows], scratch.rows)
        size = chunk.shape[0]
        returns = _chunk_returns(chunk, prev, scratch.returns[:size])
        _add_moments(scan, returns, scratch.work[:size])
        _add_tail(scan.tail, returns, scratch.masks, start * n_cols)
        peaks = _running_peak(chunk, peak, scratch.peak[:size])
        under = _add_drawdown(scan, chunk, peaks, under, scratch, start * n_cols)
        peak = peaks[-1].copy()
        prev = chunk[-1].copy()  # the chunk may live in a scratch buffer the next chunk overwrites
    return scan


def _contiguous(chunk: np.ndarray, buffer: np.ndarray) -> np.ndarray:
    """`chunk` itself if its rows are contiguous, else a copy in `buffer`.

    Sweeps hand over the equity column-major (each combination's curve contiguous), so a block of rows
    is many short strided runs. Every later step reads the chunk three or four times; gathering it once
    into a cache-resident buffer is cheaper than striding each time (about 15 % of the whole call).
    """
    if chunk.flags.c_contiguous:
        return chunk
    out = buffer[: chunk.shape[0]]
    np.copyto(out, chunk)
    return out


def _chunk_returns(chunk: np.ndarray, prev: np.ndarray, out: np.ndarray) -> np.ndarray:
    """r_t = E_t / E_{t-1} - 1, with `prev` the last equity before the chunk."""
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(chunk[0], prev, out=out[0])
        np.divide(chunk[1:], chunk[:-1], out=out[1:])
    return np.subtract(out, 1.0, out=out)


def _add_moments(scan: _CurveScan, returns: np.ndarray, work: np.ndarray) -> None:
    # Raw sums (not deviations) so one pass suffices. The mean of per-bar returns is small next to their
    # standard deviation, so the cancellation in sum_sq - sum_r * mean loses only a few of 16 digits.
    scan.sum_r += returns.sum(axis=0)
    scan.sum_sq += np.einsum("ij,ij->j", returns, returns)
    np.fmin(returns, 0.0, out=work)
    scan.down_sq += np.einsum("ij,ij->j", work, work)


def _running_peak(chunk: np.ndarray, carry: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Running maximum of the equity down the rows, starting from `carry` (initial cash or last peak)."""
    if chunk.shape[1] < _ROW_LOOP_MIN_COLUMNS:
        np.maximum.accumulate(chunk, axis=0, out=out)
        return np.maximum(out, carry, out=out)
    # Accumulate along axis 0 walks each column with a large stride; a loop over rows is ~5x faster.
    peak = carry
    maximum = np.maximum
    for i in range(chunk.shape[0]):
        peak = maximum(peak, chunk[i], out=out[i])
    return out


def _add_drawdown(
    scan: _CurveScan, chunk: np.ndarray, peaks: np.ndarray, under: np.ndarray, scratch: _Scratch, offset: int
) -> np.ndarray:
    """Deepest drawdown and largest currency gap of the chunk; records under-water flips."""
    size = chunk.shape[0]
    ratio = np.divide(chunk, peaks, out=scratch.work[:size])
    np.minimum(scan.min_ratio, ratio.min(axis=0), out=scan.min_ratio)
    flags = scratch.flags[: size + 1]
    flags[0] = under
    np.less(ratio, 1.0, out=flags[1:])  # E < peak exactly when E / peak < 1 (peak > 0)
    flip = np.not_equal(flags[1:], flags[:-1], out=scratch.masks[0][:size])
    found = np.flatnonzero(flip)
    if found.size:
        scan.flips.append(found + offset)
    gap = np.subtract(peaks, chunk, out=scratch.work[:size])
    np.maximum(scan.max_gap, gap.max(axis=0), out=scan.max_gap)
    return flags[size].copy()


def _count_rows(mask: np.ndarray) -> np.ndarray:
    return np.add.reduce(mask.view(np.uint8), axis=0, dtype=np.uint16)


def _add_tail(tail: _Tail, returns: np.ndarray, masks: tuple[np.ndarray, ...], offset: int) -> None:
    size, n_cols = returns.shape
    below, inside = (mask[:size] for mask in masks)
    tail.below += _count_rows(np.less(returns, tail.lo, out=below))
    np.less_equal(returns, tail.hi, out=inside)
    # lo <= r <= hi: at most hi and not below lo (True > False is the only True of `greater`).
    found = np.flatnonzero(np.greater(inside, below, out=inside))
    if not found.size:
        return
    values = returns.ravel()[found]
    zero = values == 0
    if zero.any():
        tail.zeros += np.bincount(found[zero] % n_cols, minlength=n_cols)
        found, values = found[~zero], values[~zero]
    tail.positions.append(found + offset)
    tail.values.append(values)


# --- VaR: the 5th percentile of the returns without sorting every column ------------------------------


def _tail_rank(n_bars: int) -> tuple[int, float]:
    """numpy's linear percentile sits between order statistics k and k + 1 at fraction `frac`."""
    position = (n_bars - 1) * VAR_LEVEL
    k = math.floor(position)
    return k, position - k


def _returns_at(values: np.ndarray, rows: np.ndarray, initial_cash: float) -> np.ndarray:
    prev = values[np.maximum(rows - 1, 0)]
    prev[rows == 0] = initial_cash
    with np.errstate(divide="ignore", invalid="ignore"):
        return values[rows] / prev - 1.0


def _tail_bracket(values: np.ndarray, initial_cash: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-column bounds expected to enclose order statistics k and k + 1 of the returns.

    Short curves use every bar (exact bounds). Long ones use a fixed-seed random sample of bars and widen
    the sampled quantile by `_TAIL_SIGMAS` standard errors; a miss only costs an exact fallback.
    """
    n_bars = values.shape[0]
    if n_bars <= 2 * _TAIL_SAMPLE:
        rows, delta = np.arange(n_bars), 0.0
    else:
        rows = np.sort(np.random.default_rng(0).choice(n_bars, _TAIL_SAMPLE, replace=False))
        delta = _TAIL_SIGMAS * math.sqrt(VAR_LEVEL * (1 - VAR_LEVEL) / _TAIL_SAMPLE) + 1 / _TAIL_SAMPLE
    size = rows.shape[0]
    lo_pos = math.floor(max(VAR_LEVEL - delta, 0.0) * (size - 1)) if delta else _tail_rank(size)[0]
    hi_pos = min(math.floor(min(VAR_LEVEL + delta, 1.0) * (size - 1)) + 1, size - 1)
    # Partitioning the transposed copy is contiguous per column, unlike partitioning along axis 0.
    sample = np.ascontiguousarray(_returns_at(values, rows, initial_cash).T)
    sample.partition(sorted({lo_pos, hi_pos}), axis=1)
    return sample[:, lo_pos].copy(), sample[:, hi_pos].copy()


@dataclass(frozen=True)
class _Inside:
    """The nonzero returns inside each column's bracket, sorted, as rows of a +inf-padded matrix."""

    sorted: np.ndarray
    count: np.ndarray
    negative: np.ndarray


def _inside_sorted(tail: _Tail, n_cols: int, cap: int) -> _Inside:
    if not tail.positions:
        none = np.zeros(n_cols, np.int64)
        return _Inside(np.full((n_cols, 1), np.inf), none, none)
    columns = np.concatenate(tail.positions) % n_cols
    values = np.concatenate(tail.values)
    count = np.bincount(columns, minlength=n_cols)
    negative = np.bincount(columns[values < 0], minlength=n_cols)
    if count.max() > cap:  # columns with far more go to the exact fallback
        keep = count[columns] <= cap
        columns, values = columns[keep], values[keep]
    # A stable sort groups by column; small integer keys take numpy's radix sort.
    small = np.int16 if n_cols <= np.iinfo(np.int16).max else np.int64
    order = np.argsort(columns.astype(small), kind="stable")
    columns, values = columns[order], values[order]
    kept = np.bincount(columns, minlength=n_cols)
    rank = np.arange(columns.shape[0]) - (np.cumsum(kept) - kept)[columns]
    padded = np.full((n_cols, max(1, int(kept.max(initial=0)))), np.inf)
    padded[columns, rank] = values
    padded.sort(axis=1)
    return _Inside(padded, count, negative)


def _order_statistic(tail: _Tail, inside: _Inside, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k-th smallest return per column and whether the bracket really contained it.

    Inside the bracket the order is: negative returns, then the zeros, then positive returns.
    """
    rank = k - tail.below
    after_zeros = rank - tail.zeros
    pick = np.clip(np.where(rank < inside.negative, rank, after_zeros), 0, inside.sorted.shape[1] - 1)
    value = inside.sorted[np.arange(rank.shape[0]), pick]
    is_zero = (rank >= inside.negative) & (rank < inside.negative + tail.zeros)
    return np.where(is_zero, 0.0, value), (rank >= 0) & (rank < inside.count + tail.zeros)


def _value_at_risk(scan: _CurveScan, values: np.ndarray, initial_cash: float) -> np.ndarray:
    n_bars, n_cols = values.shape
    k, frac = _tail_rank(n_bars)
    # About 2 * delta * n_bars returns fall inside a bracket; far more means massive ties.
    cap = int(8 * _TAIL_SIGMAS * math.sqrt(VAR_LEVEL * (1 - VAR_LEVEL) / _TAIL_SAMPLE) * n_bars) + 256
    inside = _inside_sorted(scan.tail, n_cols, cap)
    low, low_ok = _order_statistic(scan.tail, inside, k)
    high, high_ok = _order_statistic(scan.tail, inside, min(k + 1, n_bars - 1))
    # numpy's linear interpolation, including its switch of end point for numerical symmetry.
    with np.errstate(invalid="ignore"):  # inf - inf where the bracket missed; recomputed below
        var = np.where(frac >= 0.5, high - (high - low) * (1 - frac), low + (high - low) * frac)
    exact = ~(low_ok & high_ok) | (inside.count > cap) | np.isnan(scan.sum_r)
    for col in np.flatnonzero(exact):
        returns = _returns_at(values[:, col : col + 1], np.arange(n_bars), initial_cash)
        var[col] = np.percentile(returns, VAR_LEVEL * 100)
    return var


# --- curve metrics -----------------------------------------------------------------------------------


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    return np.divide(num, den, out=out, where=den != 0)


def _longest_drawdown(scan: _CurveScan, n_bars: int, n_cols: int) -> np.ndarray:
    """Bars from the peak bar to the bar that regains it (or to the last bar), longest per column.

    Flips alternate within a column: going under water at bar a (peak bar a - 1), then regaining at q.
    """
    longest = np.zeros(n_cols)
    if not scan.flips:
        return longest
    bars, columns = np.divmod(np.concatenate(scan.flips), n_cols)
    small = np.int16 if n_cols <= np.iinfo(np.int16).max else np.int64
    order = np.argsort(columns.astype(small), kind="stable")
    bars, columns = bars[order], columns[order]
    counts = np.bincount(columns, minlength=n_cols)
    rank = np.arange(bars.shape[0]) - (np.cumsum(counts) - counts)[columns]
    starts = np.flatnonzero(rank % 2 == 0)
    recovered = rank[starts] + 1 < counts[columns[starts]]
    end = np.where(recovered, bars[np.minimum(starts + 1, bars.shape[0] - 1)], n_bars - 1)
    np.maximum.at(longest, columns[starts], end - bars[starts] + 1)
    return longest


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
