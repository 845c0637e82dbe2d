"""The clean run (`run_job` in-process) and the audit of a batch against it, job by job: what is *lost*
and what is counted twice (see benchmarks/chaos.py)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backtesting_modules.jobs.planner import Job
from backtesting_modules.jobs.results import compute_rows, encode_result_body
from backtesting_modules.jobs.runner import JobStatus, run_job
from backtesting_modules.jobs.spec import BatchSpec
from backtesting_modules.pipeline.records import JobRecord
from backtesting_modules.pipeline.store import Store
from opslib.batch.bars import load_symbol_bars


def _canonical(value: Any) -> str:
    """JSON with sorted keys and NaN/inf as null, so rows from messages, S3 and memory compare equal."""

    def plain(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return json.dumps(plain(value), sort_keys=True)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def row_key(row: Mapping[str, Any]) -> str:
    return f"{row['strategy']}|{row['symbol']}|{_canonical(row['params'])}"


@dataclass(frozen=True)
class CleanJob:
    """What the clean run gives for one job: its stored body, best row, rows and backtests."""

    body: bytes
    best: str
    rows: dict[str, str]  # row key → canonical metrics, of the rows a summary ranks (ranking metric set)
    backtests: int


@dataclass
class CleanRun:
    """`run_job` in-process for a spec's jobs, once; results depend on a job's content, not on its ids, so
    one run serves every batch of the spec (the bodies, which name the ids, are encoded per batch)."""

    spec: BatchSpec
    results: dict[str, Any] = field(default_factory=dict)  # canonical job content → JobResult

    def expected(self, jobs: Sequence[Job]) -> dict[str, CleanJob]:
        bars = {s: load_symbol_bars(self.spec, s) for s in self.spec.symbols}
        out = {}
        for job in jobs:
            key = _canonical(job.content())
            if key not in self.results:
                self.results[key] = run_job(job, {s: bars[s] for s in job.symbols})
            result = self.results[key]
            out[job.job_id] = CleanJob(
                body=encode_result_body(job.job_id, result.columns),
                best=_canonical(result.best),
                rows={
                    row_key(r): _canonical(r["metrics"])
                    for r in compute_rows(result.columns)
                    if _finite(r["metrics"].get(job.ranking_metric))
                },
                backtests=result.backtests,
            )
        return out


@dataclass(frozen=True)
class Audit:
    status: str
    counters: tuple[int, int, int]  # the batch record's succeeded, failed, backtests
    expected_counters: tuple[int, int, int]
    terminal: int  # job records with a terminal status
    lost: dict[str, str]  # job id → why it does not have its clean outcome (see the module docstring)
    duplicates: int
    failures: dict[str, str]  # job id → error, as the summary reports them
    summary_rows: int
    expected_summary_rows: int  # the clean run's rows with a value for the ranking metric

    @property
    def clean(self) -> bool:
        return (
            not self.lost
            and self.duplicates == 0
            and self.counters == self.expected_counters
            and self.summary_rows == self.expected_summary_rows
        )


def audit_batch(
    store: Store,
    batch: str,
    clean: Mapping[str, CleanJob],
    poisoned: Mapping[str, str] | None = None,
    dead_letters: Sequence[str] = (),
) -> Audit:
    """Every job of `batch` against the clean run; `poisoned` maps job ids to a fragment their error must
    contain. Reads the batch record, the job records, every stored result body and the summary."""
    poisoned = poisoned or {}
    record = store.get_batch(batch)
    jobs = {j.job_id: j for j in store.list_jobs(batch)}
    summary = store.get_summary(record) if record.summary_key else None
    top = summary["ranking"]["top"] if summary else []
    summary_rows = Counter(row_key(r) for r in top)
    metrics = {row_key(r): _canonical(r["metrics"]) for r in top}
    failures = summary["failures"] if summary else []
    lost: dict[str, str] = {}
    for job_id, want in clean.items():
        job = jobs.get(job_id, JobRecord(job_id, status=JobStatus.PENDING))
        status = job.status
        if job_id in poisoned:
            if status is not JobStatus.FAILED or poisoned[job_id] not in str(job.error):
                lost[job_id] = f"{status}, not FAILED with {poisoned[job_id]!r}: {job.error}"
        elif status is not JobStatus.SUCCEEDED:
            lost[job_id] = f"{status}: {job.error}"
        elif store.get_bytes(str(job.result_key)) != want.body:
            lost[job_id] = "stored result body differs from the clean run's"
        elif _canonical(job.best) != want.best:
            lost[job_id] = "best row differs from the clean run's"
        elif {k: metrics.get(k) for k in want.rows} != want.rows:
            lost[job_id] = "summary rows differ from the clean run's"
    terminal = sum(1 for j in jobs.values() if j.terminal)
    succeeded, failed = record.succeeded, record.failed
    backtests = record.backtests
    clean_backtests = sum(c.backtests for j, c in clean.items() if j not in poisoned)
    dead_ids = Counter(_job_id_of(body) for body in dead_letters)
    duplicates = (
        max(0, succeeded + failed - terminal)
        + (1 if backtests > clean_backtests else 0)
        + sum(n - 1 for n in summary_rows.values())
        + len(failures)
        - len({f["job_id"] for f in failures})
        + sum(n - 1 for k, n in dead_ids.items() if k is not None)
    )
    return Audit(
        status=str(record.status),
        counters=(succeeded, failed, backtests),
        expected_counters=(len(clean) - len(poisoned), len(poisoned), clean_backtests),
        terminal=terminal,
        lost=lost,
        duplicates=duplicates,
        failures={str(f["job_id"]): str(f["error"]) for f in failures},
        summary_rows=len(top),
        expected_summary_rows=sum(len(c.rows) for j, c in clean.items() if j not in poisoned),
    )


def _job_id_of(body: str) -> str | None:
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return str(raw["job_id"]) if isinstance(raw, dict) and "job_id" in raw else None
