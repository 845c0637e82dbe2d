"""`run_job(job, bars) -> JobResult`: one job run with the engine, pure (no I/O, no clock but a timer).

Owns the job's result record, the classification of failures (deterministic ones are not retried) and the
mapping of a job's cartesian grid range onto engine calls. A range ``[start, stop)`` of the grid's product is
split into at most 2 × axes sub-grids (a mixed-radix range is a union of boxes), each run with `run_sweep`;
so a job's rows are exactly the `run_sweep` rows of those combinations, in sweep order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from ..backtest import run_backtest, run_sweep
from ..config import StrategyConfig
from ..errors import BacktestError
from ..metrics import HIGHER_IS_BETTER, METRIC_NAMES
from ..param_sets import run_sets
from ..portfolio import run_portfolio_backtest
from ..strategies import Strategy, get_strategy
from ..timezone import SessionGate, TimezoneBacktester
from ..windows import TradeWindow
from .planner import PORTFOLIO_SYMBOL, Job
from .results import (
    ResultColumns,
    best_index,
    compute_columns,
    compute_columns_from_frame,
    compute_rows,
    concat_columns,
    count_rows,
    empty_columns,
    plain,
    row_at,
)
from .spec import GridAxes, JobError, JobType, combo_table, timeframe_delta

Row = dict[str, Any]
PeriodReturnsTuple = tuple[str, pd.DatetimeIndex, np.ndarray]
_HOUR_FIELDS = ("trades", "win_rate", "avg_return", "total_pnl", "profit_factor", "kelly_fraction")


class JobStatus(StrEnum):
    """Where a job is: registered, running, or done either way (terminal)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobFailed(JobError):
    """A job that cannot succeed as given (unknown strategy, missing or bad data): retrying will not help."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def is_retryable(exc: BaseException) -> bool:
    """False for deterministic failures (bad job, bad data, engine validation); True for everything else.

    An error carrying a `retryable` attribute decides for itself; any other engine error (`BacktestError`)
    is deterministic; anything unexpected (network, memory, timeouts, bugs) is worth another attempt and
    ends in the DLQ if it keeps failing.
    """
    flag = getattr(exc, "retryable", None)
    if isinstance(flag, bool):
        return flag
    return not isinstance(exc, BacktestError)


@dataclass(frozen=True)
class JobResult:
    """The outcome of a job: one row per backtest, held as columns (JSON-ready: NaN and inf are None),
    and the best row by the ranking metric."""

    job_id: str
    batch_id: str
    status: JobStatus
    columns: ResultColumns
    backtests: int
    engine_seconds: float
    ranking_metric: str
    best: Row | None
    # A validated sweep's per-period returns of every row: (period, period starts, T x rows float32).
    period_returns: PeriodReturnsTuple | None = None

    @cached_property
    def rows(self) -> tuple[Row, ...]:
        """The rows as objects (for reading and tests; the pipeline moves `columns`)."""
        return tuple(compute_rows(self.columns))


def run_job(job: Job, bars: Mapping[str, pd.DataFrame]) -> JobResult:
    """Run `job` on `bars` ({symbol: frame}); deterministic failures raise `JobFailed` (not retryable)."""
    frames = _job_bars(job, bars)
    started = time.perf_counter()
    try:
        strategy = get_strategy(job.strategy)
        config = StrategyConfig(**job.config_overrides())
        columns, returns = _dispatch(job, strategy, config, frames)
    except JobFailed:
        raise
    except (BacktestError, TypeError) as exc:
        raise JobFailed(f"job {job.job_id} ({job.strategy} on {', '.join(job.symbols)}): {exc}") from exc
    elapsed = time.perf_counter() - started
    higher = HIGHER_IS_BETTER.get(job.ranking_metric, True)
    best = best_index(columns, job.ranking_metric, higher, job.min_trades)
    return JobResult(
        job_id=job.job_id,
        batch_id=job.batch_id,
        status=JobStatus.SUCCEEDED,
        columns=columns,
        backtests=_count_backtests(job, count_rows(columns)),
        engine_seconds=elapsed,
        ranking_metric=job.ranking_metric,
        best=row_at(columns, best) if best is not None else None,
        period_returns=returns,
    )


def _count_backtests(job: Job, rows: int) -> int:
    if job.job_type is JobType.PERFORMANCE_COMPARISON:
        return rows // 2  # the ungated and gated rows of one parameter set count as one backtest
    return rows


def _job_bars(job: Job, bars: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    missing = [s for s in job.symbols if s not in bars]
    if missing:
        raise JobFailed(
            f"job {job.job_id}: no bars for {missing} (data keys {list(job.data_keys)}); upload the bars for "
            "these symbols before submitting the batch."
        )
    return {s: bars[s] for s in job.symbols}


def _dispatch(
    job: Job, strategy: Strategy, config: StrategyConfig, frames: dict[str, pd.DataFrame]
) -> tuple[ResultColumns, PeriodReturnsTuple | None]:
    if job.job_type is JobType.PARAMETER_OPTIMIZATION:
        (symbol,) = job.symbols
        return _sweep_columns(job, frames[symbol], config, symbol)
    if job.window is not None or job.period_returns is not None:
        raise JobFailed(
            f"job {job.job_id}: a window or period returns belong to PARAMETER_OPTIMIZATION jobs, not "
            f"{job.job_type.value}; plan_jobs never writes them there."
        )
    return compute_columns(_loop_rows(job, strategy, config, frames)), None


def _loop_rows(
    job: Job, strategy: Strategy, config: StrategyConfig, frames: dict[str, pd.DataFrame]
) -> list[Row]:
    params_list = list(_param_sets(job, strategy))
    if job.job_type is JobType.MULTI_STRATEGY:
        return [
            _row(
                job.strategy, PORTFOLIO_SYMBOL, p, run_portfolio_backtest(frames, strategy, p, config).metrics
            )
            for p in params_list
        ]
    (symbol,) = job.symbols
    frame = frames[symbol]
    if job.job_type is JobType.SINGLE_STRATEGY:
        return [
            _row(job.strategy, symbol, p, run_backtest(frame, strategy, p, config).metrics)
            for p in params_list
        ]
    tester = TimezoneBacktester(config, gate=SessionGate.makenaide())
    rows: list[Row] = []
    for params in params_list:
        if job.job_type is JobType.TIMEZONE_ANALYSIS:
            outcome = tester.run(frame, job.strategy, params)
            rows.append(_row(job.strategy, symbol, params, outcome.result.metrics, _hour_summary(outcome)))
        else:
            plain, gated, _ = tester.compare(frame, job.strategy, params)
            rows.append(_row(job.strategy, symbol, params, plain.metrics, {"variant": "ungated"}))
            rows.append(_row(job.strategy, symbol, params, gated.result.metrics, {"variant": "gated"}))
    return rows


def _param_sets(job: Job, strategy: Strategy) -> Iterator[dict[str, Any]]:
    """The valid parameter sets of the job's range, in sweep order (only the grid and fixed parameters)."""
    table, valid = combo_table(strategy, job.grid, job.fixed_params(), job.start, job.stop)
    names = [name for name, _ in job.grid] + [n for n in job.fixed_params() if n not in dict(job.grid)]
    for i in np.flatnonzero(valid):
        yield {n: table[n][i].item() for n in names}


def _sweep_columns(
    job: Job, frame: pd.DataFrame, config: StrategyConfig, symbol: str
) -> tuple[ResultColumns, PeriodReturnsTuple | None]:
    fixed = job.fixed_params()
    window = TradeWindow.from_strings(*job.window) if job.window is not None else None
    # The period is spelled like a timeframe (1d, 4h); pandas spells its bins 1D, 4h.
    freq = to_offset(timeframe_delta(job.period_returns)).freqstr if job.period_returns else None
    if job.sets is not None:  # a search's trials: explicit sets, in their order
        return _set_columns(job, frame, config, symbol, window, freq)
    parts, returns = [], []
    for box in compute_boxes(job.grid, job.start, job.stop):
        sweep = run_sweep(frame, job.strategy, box, config, fixed=fixed, window=window, period_returns=freq)
        metrics = [m for m in METRIC_NAMES if m in sweep.columns]
        parts.append(
            compute_columns_from_frame(sweep, job.strategy, symbol, list(box) + list(fixed), metrics)
        )
        if job.period_returns is not None:
            returns.append(sweep.attrs["period_returns"])
    columns = concat_columns(parts) if parts else empty_columns()
    if job.period_returns is None or not returns:
        return columns, None
    values = np.concatenate([r.values for r in returns], axis=1)  # every box has the same periods
    return columns, (job.period_returns, returns[0].starts, values)


def _set_columns(
    job: Job,
    frame: pd.DataFrame,
    config: StrategyConfig,
    symbol: str,
    window: TradeWindow | None,
    freq: str | None,
) -> tuple[ResultColumns, PeriodReturnsTuple | None]:
    sets = [dict(s) for s in job.sets or ()]
    fixed = job.fixed_params()
    swept = run_sets(frame, job.strategy, sets, config, fixed=fixed, window=window, period_returns=freq)
    names = [n for n in get_strategy(job.strategy).param_names if n in swept.columns]
    metrics = [m for m in METRIC_NAMES if m in swept.columns]
    columns = compute_columns_from_frame(swept, job.strategy, symbol, names, metrics)
    kept = swept.attrs.get("period_returns")
    if job.period_returns is None or kept is None:
        return columns, None
    return columns, (job.period_returns, kept.starts, kept.values)


def sweep_rows(sweep: pd.DataFrame, strategy: str, symbol: str, param_names: list[str]) -> list[Row]:
    """`run_sweep` output as job rows (parameters as given in the job, metrics JSON-ready)."""
    metric_names = [m for m in METRIC_NAMES if m in sweep.columns]
    return compute_rows(compute_columns_from_frame(sweep, strategy, symbol, param_names, metric_names))


def compute_boxes(grid: GridAxes, start: int, stop: int) -> list[dict[str, list[Any]]]:
    """Sub-grids whose products, concatenated in order, enumerate cartesian indices [start, stop) exactly."""
    if not grid:
        return [{}] if start == 0 and stop >= 1 else []
    boxes: list[dict[str, list[Any]]] = []
    _boxes(grid, 0, [], start, stop, boxes)
    return boxes


def _boxes(
    grid: GridAxes, axis: int, prefix: list[Any], lo: int, hi: int, out: list[dict[str, list[Any]]]
) -> None:
    if lo >= hi:
        return
    name, values = grid[axis]
    inner = math.prod(len(v) for _, v in grid[axis + 1 :])

    def emit(first: int, last: int) -> None:  # values[first:last] on this axis, every value after it
        picked = [*prefix, (name, list(values[first:last]))]
        out.append({**dict(picked), **{n: list(v) for n, v in grid[axis + 1 :]}})

    first, last = lo // inner, (hi - 1) // inner
    if first == last and (lo % inner or hi - first * inner < inner):
        _boxes(
            grid, axis + 1, [*prefix, (name, [values[first]])], lo - first * inner, hi - first * inner, out
        )
        return
    full_from = first
    if lo % inner:
        _boxes(grid, axis + 1, [*prefix, (name, [values[first]])], lo - first * inner, inner, out)
        full_from = first + 1
    full_to = last + 1 if hi % inner == 0 else last
    if full_from < full_to:
        emit(full_from, full_to)
    if hi % inner:
        _boxes(grid, axis + 1, [*prefix, (name, [values[last]])], 0, hi - last * inner, out)


def _hour_summary(outcome: Any) -> dict[str, Any]:
    """A timezone run's session tables (by local and UTC entry hour, region, market condition): what the
    batch report aggregates across jobs (trades, win rate, average return, P&L merge by trade counts)."""
    analysis = outcome.trade_analysis

    def table(frame: pd.DataFrame, key: str) -> list[dict[str, Any]]:
        return [
            {key: plain(label), **{f: plain(row[f]) for f in _HOUR_FIELDS}} for label, row in frame.iterrows()
        ]

    return {
        "zone": analysis.zone,
        "by_hour_local": table(analysis.by_hour_local, "hour"),
        "by_hour_utc": table(analysis.by_hour_utc, "hour"),
        "by_region": table(analysis.by_region, "region"),
        "by_condition": table(analysis.by_condition, "condition"),
        "activity_correlation": plain(analysis.activity_correlation),
    }


def _row(
    strategy: str,
    symbol: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    extras: Mapping[str, Any] | None = None,
) -> Row:
    return {
        "strategy": strategy,
        "symbol": symbol,
        "params": {k: plain(v) for k, v in params.items()},
        "metrics": {k: plain(v) for k, v in metrics.items()},
        "extras": dict(extras or {}),
    }
