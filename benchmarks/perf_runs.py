"""The runs `performance.py` compares, each measured on this machine in the same process tree:

- sequential: the batch's jobs run with `run_job`, one after another, in one process (bars in memory);
- vectorised: each (strategy, symbol) grid as one `run_sweep` call in one process (no job split at all);
- distributed: the batch through the local pipeline (`LocalRuntime`: moto server, N worker processes, one
  collector) with `execute_batch`, exactly as `run_batch.py` runs it, the runtime already up (like warm
  Lambda containers; its start-up is measured separately).

Every run returns a `Sample`: wall time, backtests, the engine seconds inside it, and for distributed runs
the per-job timeline (queue wait, latency) and the CPU seconds each process role used.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from backtesting_modules.backtest import run_sweep
from backtesting_modules.config import StrategyConfig
from backtesting_modules.jobs.planner import DEFAULT_TARGET_SECONDS, Job, plan_jobs, throughput_for
from backtesting_modules.jobs.planner import batch_id as compute_batch_id
from backtesting_modules.jobs.runner import run_job
from backtesting_modules.jobs.spec import BatchSpec, JobType, parse_spec
from opslib.batch.bars import load_symbol_bars
from opslib.batch.execute import execute_batch
from opslib.local.runtime import LocalRuntime

ROLES = ("worker", "collector", "emulator", "driver", "machine_busy", "machine_idle")


@dataclass
class Sample:
    mode: str
    wall_s: float
    backtests: int
    jobs: int
    engine_s: float  # seconds spent inside the engine, summed over jobs
    workers: int = 1
    latency_s: list[float] = field(default_factory=list)  # per job: sent → counted
    queue_wait_s: list[float] = field(default_factory=list)  # per job: sent → started
    job_engine_s: list[float] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)  # by role, during the run

    @property
    def rate(self) -> float:
        return self.backtests / self.wall_s if self.wall_s > 0 else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN without values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


# ------------------------------------------------------------------------------------------------ specs


def scaled_spec(backtests: int, *, name: str = "scale", periods: int = 8760) -> BatchSpec:
    """An SMA-crossover sweep of exactly `backtests` backtests (every combination valid: fast < slow) over
    1 to 4 seeded synthetic symbols of `periods` hourly bars."""
    symbols = ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL"]
    n_symbols = 4 if backtests >= 4_000 and backtests % 4 == 0 else 1
    per_symbol = backtests // n_symbols
    fast = min(per_symbol, 100)
    while per_symbol % fast:
        fast -= 1
    slow = per_symbol // fast
    return parse_spec(
        {
            "name": f"{name}-{backtests}",
            "job_type": "PARAMETER_OPTIMIZATION",
            "symbols": symbols[:n_symbols],
            "data": {"source": "synthetic", "seed": 11, "periods": periods, "freq": "1h"},
            "config": {"filters": None},
            "strategies": [
                {"name": "SMA_Crossover", "grid": {"fast": f"2:{1 + fast}:1", "slow": f"200:{199 + slow}:1"}}
            ],
            "limits": {"max_backtests": max(backtests, 1)},
        }
    )


def target_seconds_for(spec: BatchSpec, bars: int, jobs: int | None) -> float:
    """The planner's job-size target that splits `spec` into about `jobs` jobs (None: the default)."""
    if jobs is None:
        return DEFAULT_TARGET_SECONDS
    per_symbol = max(1, spec.strategies[0].grid_size // max(1, math.ceil(jobs / len(spec.symbols))))
    return per_symbol * bars / throughput_for(spec.strategies[0].name)  # the rate the planner sizes by


# ------------------------------------------------------------------------------------------------- runs


def load_bars(spec: BatchSpec) -> dict[str, pd.DataFrame]:
    return {s: load_symbol_bars(spec, s) for s in spec.symbols}


def planned_jobs(spec: BatchSpec, bars: dict[str, pd.DataFrame], target_s: float | None) -> list[Job]:
    n_bars = min(len(b) for b in bars.values())
    return plan_jobs(
        spec, compute_batch_id(spec), bars=n_bars, target_seconds=target_s or DEFAULT_TARGET_SECONDS
    )


def run_sequential(
    spec: BatchSpec, bars: dict[str, pd.DataFrame], target_s: float = DEFAULT_TARGET_SECONDS
) -> Sample:
    jobs = planned_jobs(spec, bars, target_s)
    started = time.perf_counter()
    results = [run_job(job, {s: bars[s] for s in job.symbols}) for job in jobs]
    wall = time.perf_counter() - started
    engine = [r.engine_seconds for r in results]
    return Sample(
        "sequential", wall, sum(r.backtests for r in results), len(jobs), sum(engine), 1, [], [], engine
    )


def run_vectorised(spec: BatchSpec, bars: dict[str, pd.DataFrame]) -> Sample | None:
    """Each strategy's whole grid per symbol as one `run_sweep` (PARAMETER_OPTIMIZATION only)."""
    if spec.job_type is not JobType.PARAMETER_OPTIMIZATION:
        return None
    config = StrategyConfig(**dict(spec.config))
    started = time.perf_counter()
    backtests = 0
    for item in spec.strategies:
        grid = {name: list(values) for name, values in item.grid}
        for symbol in spec.symbols:
            backtests += len(run_sweep(bars[symbol], item.name, grid, config, fixed=item.params_dict()))
    wall = time.perf_counter() - started
    return Sample("vectorised", wall, backtests, 0, wall)


def run_distributed(
    runtime: LocalRuntime, spec: BatchSpec, target_s: float = DEFAULT_TARGET_SECONDS
) -> Sample:
    """One batch through the running local pipeline; a fresh batch each time, every job run (no reuse)."""
    before = runtime.cpu_seconds()
    started = time.perf_counter()
    outcome = execute_batch(
        runtime.submitter(),
        spec,
        salt=str(time.time_ns()),
        reuse=False,
        depth=max(2, 2 * runtime.workers),
        timeout_s=3600.0,
        alive=runtime.alive,
        target_seconds=target_s,
    )
    batch = outcome.batch_id
    wall = time.perf_counter() - started
    after = runtime.cpu_seconds()
    records = runtime.store().list_jobs(batch)
    if outcome.record.failed:
        raise RuntimeError(f"benchmark batch {batch}: {outcome.record.failed} job(s) failed")
    latency, wait, engine = [], [], []
    for record in records:
        sent = _time(record.sent_at)
        if sent is not None:
            latency.append((_time(record.finished_at) or sent) - sent)
            wait.append((_time(record.started_at) or sent) - sent)
        engine.append(record.duration_s or 0.0)
    return Sample(
        "distributed",
        wall,
        outcome.record.backtests,
        len(records),
        sum(engine),
        runtime.workers,
        latency,
        wait,
        engine,
        {role: after.get(role, 0.0) - before.get(role, 0.0) for role in ROLES},
    )


def _time(value: Any) -> float | None:
    return datetime.fromisoformat(str(value)).timestamp() if value else None
