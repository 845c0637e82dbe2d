"""Job planning: a validated `BatchSpec` split into `Job`s, and the storage key names jobs refer to.

Pure: `plan_jobs` reads nothing and sends nothing; the same spec and batch id always give the same jobs with
the same ids, in the same order.

Chunking. A PARAMETER_OPTIMIZATION job is one (strategy, symbol, timeframe) and a contiguous range
``[start, stop)`` of *cartesian indices* of the strategy's grid (see `spec`: the product of the axes in YAML
order, last axis fastest, the order `expand_grid` enumerates). Combinations in the range that violate a
constraint are skipped by the engine, so a range is sized by its *valid* combinations:

    combos_per_job = clamp(round(target_seconds × throughput / bars), 1, valid combinations)

with `throughput` the engine's sweep speed in bar·combinations per second (default 2e7, about one core on
hourly bars, see benchmarks) and `bars` the bars per symbol (`spec.estimate_bars`). The ranges of one
strategy tile ``[0, grid_size)`` exactly, so every valid combination is run exactly once. MULTI_STRATEGY jobs
run the portfolio (a per-bar loop) over all symbols, sized the same way with `loop_throughput` and
bars × symbols. TIMEZONE_ANALYSIS and PERFORMANCE_COMPARISON jobs carry one parameter set each (a range of
one valid index); SINGLE_STRATEGY jobs carry the one parameter set of their strategy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..names import bars_key, result_key
from ..strategies import get_strategy
from .spec import (
    BatchSpec,
    GridAxes,
    JobType,
    Pairs,
    Priority,
    StrategySpec,
    canonical_json,
    data_hash,
    estimate_bars,
    sha256_hex,
    spec_hash,
    valid_positions,
)

DEFAULT_TARGET_SECONDS = 2.0
DEFAULT_THROUGHPUT = 2.0e7  # bar·combinations per second of `run_sweep` on one core
DEFAULT_LOOP_THROUGHPUT = 1.0e6  # bars per second of the per-bar portfolio loop (one parameter set)
PORTFOLIO_SYMBOL = "PORTFOLIO"
_ID_CHARS = 16


# Re-exported: every storage key is named in backtesting_modules/names.py, the one module that owns names.
__all__ = ["Job", "bars_key", "batch_id", "job_id", "plan_jobs", "result_key"]


# ------------------------------------------------------------------------------------------------ jobs


@dataclass(frozen=True)
class Job:
    """One unit of work: a strategy over its symbols' bars for the cartesian grid range [start, stop)."""

    job_id: str
    batch_id: str
    job_type: JobType
    strategy: str
    symbols: tuple[str, ...]
    timeframe: str
    data_keys: tuple[str, ...]
    grid: GridAxes
    fixed: Pairs
    start: int
    stop: int
    config: Pairs
    ranking_metric: str
    priority: Priority
    attempt: int = 0

    def fixed_params(self) -> dict[str, Any]:
        return dict(self.fixed)

    def config_overrides(self) -> dict[str, Any]:
        return dict(self.config)

    def content(self) -> dict[str, Any]:
        """Everything that decides the job's result (not its ids, priority or attempt): hashed into job_id."""
        return {
            "job_type": self.job_type.value,
            "strategy": self.strategy,
            "symbols": list(self.symbols),
            "timeframe": self.timeframe,
            "data_keys": list(self.data_keys),
            "grid": [[name, list(values)] for name, values in self.grid],
            "fixed": dict(self.fixed),
            "start": self.start,
            "stop": self.stop,
            "config": dict(self.config),
            "ranking_metric": self.ranking_metric,
        }


def batch_id(spec: BatchSpec, salt: str = "") -> str:
    """Deterministic batch id from the spec hash; a salt (e.g. a rerun label) gives a fresh id."""
    return "b-" + sha256_hex(f"{spec_hash(spec)}:{salt}")[:_ID_CHARS]


def job_id(batch: str, content: Mapping[str, Any]) -> str:
    return "j-" + sha256_hex(f"{batch}:{canonical_json(dict(content))}")[:_ID_CHARS]


def chunk_size(valid: int, bars: int, *, target_seconds: float, throughput: float) -> int:
    """Valid combinations per job so that bars × combinations / throughput ≈ target_seconds."""
    wanted = round(target_seconds * throughput / max(1, bars))
    return int(min(max(1, wanted), max(1, valid)))


def compute_ranges(positions: np.ndarray, grid_size: int, per_job: int) -> list[tuple[int, int]]:
    """Tile [0, grid_size) into ranges holding `per_job` valid positions each (the last may hold fewer)."""
    starts = [0, *(int(positions[i]) for i in range(per_job, len(positions), per_job))]
    return list(zip(starts, [*starts[1:], grid_size], strict=True))


def plan_jobs(
    spec: BatchSpec,
    batch: str,
    *,
    target_seconds: float = DEFAULT_TARGET_SECONDS,
    throughput: float = DEFAULT_THROUGHPUT,
    loop_throughput: float = DEFAULT_LOOP_THROUGHPUT,
    bars: int | None = None,
) -> list[Job]:
    """Split `spec` into jobs (see the module docstring); `bars` overrides the bars-per-symbol estimate."""
    n_bars = bars if bars is not None else estimate_bars(spec)
    source = data_hash(spec)
    jobs: list[Job] = []
    for item in spec.strategies:
        for symbols, start, stop in _units(spec, item, n_bars, target_seconds, throughput, loop_throughput):
            jobs.append(_job(spec, batch, item, symbols, (start, stop), source))
    return jobs


def _units(
    spec: BatchSpec, item: StrategySpec, n_bars: int, target: float, throughput: float, loop: float
) -> Iterator[tuple[tuple[str, ...], int, int]]:
    positions = valid_positions(get_strategy(item.name), item.grid, item.params_dict())
    kind = spec.job_type
    if kind is JobType.MULTI_STRATEGY:
        per_job = chunk_size(
            len(positions), n_bars * len(spec.symbols), target_seconds=target, throughput=loop
        )
        for start, stop in compute_ranges(positions, item.grid_size, per_job):
            yield spec.symbols, start, stop
        return
    if kind is JobType.PARAMETER_OPTIMIZATION:
        per_job = chunk_size(len(positions), n_bars, target_seconds=target, throughput=throughput)
        ranges = compute_ranges(positions, item.grid_size, per_job)
    else:  # one parameter set per job
        ranges = [(int(p), int(p) + 1) for p in positions]
    for symbol in spec.symbols:
        for start, stop in ranges:
            yield (symbol,), start, stop


def _job(
    spec: BatchSpec,
    batch: str,
    item: StrategySpec,
    symbols: tuple[str, ...],
    span: tuple[int, int],
    source: str,
) -> Job:
    draft = Job(
        job_id="",
        batch_id=batch,
        job_type=spec.job_type,
        strategy=item.name,
        symbols=symbols,
        timeframe=spec.data.timeframe,
        data_keys=tuple(bars_key(source, s) for s in symbols),
        grid=item.grid,
        fixed=item.params,
        start=span[0],
        stop=span[1],
        config=spec.config,
        ranking_metric=spec.ranking.metric,
        priority=spec.priority,
    )
    return Job(**{**draft.__dict__, "job_id": job_id(batch, draft.content())})
