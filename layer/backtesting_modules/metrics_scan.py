"""One pass over the equity curves: every per-column total the curve metrics need; part of `metrics`.

The bars are read in cache-sized row chunks, so no (n_bars, m) temporary is ever allocated: each chunk adds
its returns' moments, its deepest drawdown, its largest currency gap, its under-water flips, its VaR tail
(`metrics_var`) and, given a benchmark (`metrics_benchmark`), the covariance numerator of its returns with
the benchmark's to a `_CurveScan`. Import the metrics from `backtesting_modules.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .metrics_var import _add_tail, _Tail, _tail_bracket

_CHUNK_CELLS = 1 << 16  # 512 KiB per float64 scratch buffer: a chunk's passes stay in L2 cache
_MAX_CHUNK_ROWS = 65_535  # per-chunk counts are summed as uint16
_ROW_LOOP_MIN_COLUMNS = 32  # below this, accumulate along axis 0 beats a Python loop over rows


@dataclass
class _CurveScan:
    """Per-column totals of one pass over the bars; `flips` are flat positions (bar * m + column)
    where the curve goes under water or regains its peak; `cross` is Σ r_t × (r_b,t − mean r_b) against
    the benchmark's returns (zeros without a benchmark)."""

    sum_r: np.ndarray
    sum_sq: np.ndarray
    down_sq: np.ndarray
    min_ratio: np.ndarray
    max_gap: np.ndarray
    tail: _Tail
    cross: np.ndarray
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


def _scan_curves(values: np.ndarray, initial_cash: float, deviations: np.ndarray | None = None) -> _CurveScan:
    """The per-column totals; `deviations` are the benchmark's per-bar returns minus their mean."""
    n_bars, n_cols = values.shape
    rows = min(n_bars, _MAX_CHUNK_ROWS, max(16, _CHUNK_CELLS // n_cols))
    scratch = _Scratch.allocate(rows, n_cols)
    zeros = np.zeros(n_cols)
    lo, hi = _tail_bracket(values, initial_cash)
    count = np.zeros(n_cols, np.int64)
    tail = _Tail(lo, hi, count, count.copy())
    scan = _CurveScan(zeros.copy(), zeros.copy(), zeros.copy(), np.ones(n_cols), zeros.copy(), tail, zeros)
    prev = np.full(n_cols, initial_cash)
    peak = prev.copy()
    under = np.zeros(n_cols, bool)
    for start in range(0, n_bars, rows):
        chunk = _contiguous(values[start : start + rows], scratch.rows)
        size = chunk.shape[0]
        returns = _chunk_returns(chunk, prev, scratch.returns[:size])
        _add_moments(scan, returns, scratch.work[:size])
        if deviations is not None:
            # One more read of the cached returns. einsum, not `@`: `@` calls the multithreaded BLAS, whose
            # threads keep spinning after each call; with other processes on the cores (the local runtime's
            # workers) that slowed the whole call by a third. No step of the metrics calls BLAS.
            scan.cross += np.einsum("i,ij->j", deviations[start : start + size], returns)
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
