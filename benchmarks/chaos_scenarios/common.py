"""What every chaos scenario shares: the spec (one SMA_Crossover combination per job), a registered batch
sent and followed step by step (`ChaosBatch`), and what a scenario reports (`ScenarioResult`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backtesting_modules.jobs.data_refs import DataRef
from backtesting_modules.jobs.planner import Job, batch_id, plan_jobs
from backtesting_modules.jobs.runner import JobStatus
from backtesting_modules.jobs.spec import BatchSpec, parse_spec
from backtesting_modules.pipeline.records import BatchRecord
from opslib.batch.submitter import Submitter
from opslib.local.pollers import wait_until
from opslib.local.testbed import Testbed

from .audit import Audit, CleanRun, audit_batch

ONE_COMBINATION = 1e-9
VISIBILITY_TIMEOUT_S = 3  # how soon a message a dead process held comes back
FAST_AXIS = list(range(5, 25))  # 20 values, all below every slow value: every combination is valid


def batch_timeout(jobs: int) -> float:
    """How long a scenario waits for a state before it gives up: generous (a loaded 2-core machine runs
    about 10 of these jobs a second), so that only a stuck batch times out."""
    return 60.0 + 1.0 * jobs


class ChaosError(RuntimeError):
    """A scenario could not reach the state it waits for (the message says which, and the batch's state)."""


def chaos_spec_dict(
    jobs: int, *, job_type: str = "PARAMETER_OPTIMIZATION", bars: int = 1000
) -> dict[str, Any]:
    """SMA_Crossover on one synthetic symbol, a grid of at least `jobs` combinations (a multiple of 20), as
    a spec file holds it; with `ONE_COMBINATION` (or a job type with one parameter set per job) each
    combination is one job."""
    slow = list(range(30, 30 + math.ceil(jobs / len(FAST_AXIS))))
    return {
        "name": f"chaos-{jobs}",
        "job_type": job_type,
        "symbols": ["KRW-ETH"],
        "data": {"source": "synthetic", "seed": 11, "periods": bars, "freq": "1h"},
        "config": {"filters": None, "min_volume": 0.0},
        "strategies": [{"name": "SMA_Crossover", "grid": {"fast": FAST_AXIS, "slow": slow}}],
        "ranking": {"metric": "sharpe", "top": 100_000, "min_trades": 0},  # every row, whatever its trades
        "limits": {"max_backtests": 100_000},
    }


def chaos_spec(jobs: int, *, job_type: str = "PARAMETER_OPTIMIZATION", bars: int = 1000) -> BatchSpec:
    return parse_spec(chaos_spec_dict(jobs, job_type=job_type, bars=bars))


def plan(spec: BatchSpec, batch: str, refs: Mapping[str, DataRef]) -> list[Job]:
    bars = spec.data.periods or 0
    return plan_jobs(spec, batch, refs=refs, bars=bars, target_seconds=ONE_COMBINATION)


@dataclass
class ChaosBatch:
    """A registered batch on a `Testbed`, sent and followed step by step so a scenario can interfere."""

    stack: Testbed
    spec: BatchSpec
    batch_id: str
    jobs: list[Job]
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)

    @classmethod
    def register(cls, stack: Testbed, spec: BatchSpec, salt: str) -> ChaosBatch:
        submitter = Submitter(stack.clients, stack.names, stack.urls)
        prepared = submitter.prepare(spec)
        batch = batch_id(spec, prepared.refs, salt=f"{stack.config.prefix}:{salt}")
        jobs = plan(spec, batch, prepared.refs)
        submitter.register(spec, batch, jobs, prepared)
        return cls(stack, spec, batch, jobs)

    def send(self, bodies: Sequence[str]) -> None:
        self.stack.send(bodies)

    def record(self) -> BatchRecord:
        return self.stack.store.get_batch(self.batch_id)

    def counted(self) -> int:
        record = self.record()
        return record.done

    def wait(self, condition: Callable[[], bool], what: str, timeout_s: float | None = None) -> float:
        """Wait until `condition` holds (by default for as long as the whole batch may take); returns the
        wall-clock time (time.time()) it was seen to hold."""
        timeout_s = timeout_s or batch_timeout(len(self.jobs))
        if not wait_until(condition, timeout_s, every_s=0.2):
            raise ChaosError(
                f"batch {self.batch_id}: {what} not reached in {timeout_s:.0f} s: {self.record()}"
            )
        return time.time()

    def wait_counted(self, n: int, timeout_s: float | None = None) -> float:
        return self.wait(lambda: self.counted() >= n, f"{n} jobs counted", timeout_s)

    def wait_complete(self, timeout_s: float | None = None) -> float:
        return self.wait(lambda: self.record().complete, "COMPLETE", timeout_s)

    def held_by(self, pid: int) -> str | None:
        """The job a worker process has marked RUNNING (its record names the process), if any."""
        for job in self.stack.store.list_jobs(self.batch_id):
            if job.status is JobStatus.RUNNING and (job.worker or "").endswith(f":{pid}"):
                return job.job_id
        return None

    def finished_at(self, job_id: str) -> float:
        job = next(j for j in self.stack.store.list_jobs(self.batch_id) if j.job_id == job_id)
        return _timestamp(job.finished_at)

    def audit(
        self, clean: CleanRun, poisoned: Mapping[str, str] | None = None, dead_letters: Sequence[str] = ()
    ) -> Audit:
        return audit_batch(self.stack.store, self.batch_id, clean.expected(self.jobs), poisoned, dead_letters)


@dataclass
class ScenarioResult:
    name: str
    fault: str
    jobs: int
    affected: str  # how many jobs (or requests) the fault hit, as measured
    audit: Audit
    recover_s: float | None  # see RECOVERY for what it measures per scenario
    wall_s: float
    details: dict[str, Any] = field(default_factory=dict)


RECOVERY = {
    "clean": "-",
    "duplicates": "batch COMPLETE → the last duplicate consumed (each copy processed, none counted twice)",
    "worker-kills": "SIGKILL → the job the victim held counted (worst of the kills)",
    "collector-crashes": "crash → counting again (first crash) / batch COMPLETE (crash after the last count)",
    "poison": "a poisoned job started → reported FAILED (worst; first attempt, no retry)",
    "retryable": "failed read → the job redelivered and counted / the batch COMPLETE (worst)",
    "emulator-restart": "new emulator started (state restored) → batch COMPLETE",
}


def _timestamp(iso: Any) -> float:
    return datetime.fromisoformat(str(iso)).timestamp()


def _elapsed(batch: ChaosBatch) -> float:
    return time.monotonic() - batch.started
