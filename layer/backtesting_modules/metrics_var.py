"""The 5 % Value at Risk (`var_95`) of every equity column without sorting every column; part of `metrics`.

Before the pass over the bars, `_tail_bracket` samples each column's returns for bounds that should enclose
the wanted order statistics; during the pass, `_add_tail` counts the returns below the bracket and keeps the
few inside it; afterwards `_value_at_risk` reads the percentile off those, with an exact fallback for any
column the bracket missed. Import the metrics from `backtesting_modules.metrics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

VAR_LEVEL = 0.05  # var_95 is the 5th percentile of the per-bar returns
_TAIL_SAMPLE = 2048  # bars sampled to bracket the VaR quantile
_TAIL_SIGMAS = 4.5  # bracket half-width in standard errors of the sampled proportion


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


def _count_rows(mask: np.ndarray) -> np.ndarray:
    # uint16 sums: the scan's chunks have at most 65,535 rows (`metrics_scan._MAX_CHUNK_ROWS`).
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


def _value_at_risk(
    tail: _Tail, values: np.ndarray, initial_cash: float, nan_columns: np.ndarray
) -> np.ndarray:
    """The 5th percentile of each column's returns; `nan_columns` (a NaN return) are computed exactly."""
    n_bars, n_cols = values.shape
    k, frac = _tail_rank(n_bars)
    # About 2 * delta * n_bars returns fall inside a bracket; far more means massive ties.
    cap = int(8 * _TAIL_SIGMAS * math.sqrt(VAR_LEVEL * (1 - VAR_LEVEL) / _TAIL_SAMPLE) * n_bars) + 256
    inside = _inside_sorted(tail, n_cols, cap)
    low, low_ok = _order_statistic(tail, inside, k)
    high, high_ok = _order_statistic(tail, inside, min(k + 1, n_bars - 1))
    # numpy's linear interpolation, including its switch of end point for numerical symmetry.
    with np.errstate(invalid="ignore"):  # inf - inf where the bracket missed; recomputed below
        var = np.where(frac >= 0.5, high - (high - low) * (1 - frac), low + (high - low) * frac)
    exact = ~(low_ok & high_ok) | (inside.count > cap) | nan_columns
    for col in np.flatnonzero(exact):
        returns = _returns_at(values[:, col : col + 1], np.arange(n_bars), initial_cash)
        var[col] = np.percentile(returns, VAR_LEVEL * 100)
    return var
