"""Running a batch end to end on any target: `execute_batch` resolves and uploads the bars, registers the
batch, reuses what earlier batches ran, sends the other jobs in waves and follows it to COMPLETE. The
embedded default (`opslib.local.LocalRuntime`) and the deployed stack (`opslib.batch.aws`) hand it a
`Submitter`; nothing here knows which one it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from backtesting_modules.jobs.planner import DEFAULT_TARGET_SECONDS, Job, plan_jobs
from backtesting_modules.jobs.planner import batch_id as compute_batch_id
from backtesting_modules.jobs.spec import BatchSpec
from backtesting_modules.pipeline.records import BatchRecord
from backtesting_modules.pipeline.summary import complete_batch
from backtesting_modules.validation import Fold

from ..errors import BatchIncompleteError, BatchTimeoutError
from .bars import PreparedData
from .submitter import Submitter, largest_first


@dataclass
class BatchOutcome:
    batch_id: str
    jobs: list[Job]
    bars: int  # bars per symbol the jobs were planned on
    record: BatchRecord
    summary: dict[str, Any]
    elapsed_s: float
    reused: int = 0  # jobs whose stored results an earlier batch left


def poll_interval(
    done: int, total: int, elapsed_s: float, least_s: float = 0.05, most_s: float = 1.0
) -> float:
    """How long to wait before reading a running batch's record again: an eighth of the time its remaining
    jobs should take at the rate seen so far, within [least_s, most_s]. Few reads while much is left, and
    the end is noticed within tens of milliseconds instead of a fixed poll's half period."""
    if done <= 0:  # no rate yet: guess that as much time is left as has passed (a tiny batch is quick)
        return min(most_s, max(least_s, elapsed_s / 8))
    remaining_s = max(0, total - done) * elapsed_s / done
    return min(most_s, max(least_s, remaining_s / 8))


def _require_alive(alive: Callable[[], bool], batch_id: str) -> None:
    """Raise when every local poller has exited: nothing would ever finish the batch."""
    if not alive():
        raise BatchIncompleteError(
            f"every local worker process has exited (see the messages above); batch {batch_id} is kept: "
            f"finish it with --resume {batch_id}.",
            batch_id,
        )


def execute_batch(
    submitter: Submitter,
    spec: BatchSpec,
    batch_id: str | None = None,
    *,
    depth: int,
    timeout_s: float,
    salt: str = "",
    reuse: bool = True,
    prepared: PreparedData | None = None,
    alive: Callable[[], bool] = lambda: True,
    on_batch: Callable[[str], None] | None = None,
    on_progress: Callable[[BatchRecord], None] | None = None,
    target_seconds: float = DEFAULT_TARGET_SECONDS,
    folds: Sequence[Fold] | None = None,
) -> BatchOutcome:
    """Resolve (and upload) the spec's bars, register the batch and its jobs, reuse the stored results of
    jobs that ran before (unless `reuse` is False), send the rest in waves of at most `depth` visible
    messages, and wait until the batch is COMPLETE; returns its record and summary.

    The batch id is `batch_id` (a resume: jobs with an outcome are not sent again; its bars must not have
    changed) or derived from the spec and its bars (`salt` gives a fresh one); `on_batch` hears it as soon
    as it is known. `target_seconds` is the planner's engine time per job (a resume must use the value of
    the first run). With `folds` (a validated sweep: `opslib.batch.validation`) the grid is swept on each
    fold's train window.
    """
    started = time.monotonic()
    data = prepared or submitter.prepare(spec)
    batch = batch_id or compute_batch_id(spec, data.refs, salt)
    if on_batch is not None:
        on_batch(batch)
    jobs = plan_jobs(spec, batch, refs=data.refs, bars=data.bars, target_seconds=target_seconds, folds=folds)
    follow = Driving(depth, timeout_s, reuse, alive, on_progress, started)
    return run_planned(submitter, spec, batch, jobs, data, follow)


@dataclass(frozen=True)
class Driving:
    """How a registered batch is driven to COMPLETE (see `execute_batch`)."""

    depth: int
    timeout_s: float
    reuse: bool = True
    alive: Callable[[], bool] = lambda: True
    on_progress: Callable[[BatchRecord], None] | None = None
    started: float = field(default_factory=time.monotonic)


def run_planned(
    submitter: Submitter,
    spec: BatchSpec,
    batch: str,
    jobs: list[Job],
    data: PreparedData,
    driving: Driving,
    *,
    name: str | None = None,
) -> BatchOutcome:
    """Register `jobs` as batch `batch` (named `name`, the spec's name by default), reuse what ran before,
    send the rest and wait until the batch is COMPLETE."""
    created = submitter.register(spec, batch, jobs, data, name=name)
    store = submitter.store
    reused = submitter.reuse(store.get_batch(batch), jobs) if driving.reuse else set()
    record = store.get_batch(batch)
    if not record.complete and record.counted:  # every job reused (or counted before a crash)
        complete_batch(store, batch)
        record = store.get_batch(batch)
    if not record.complete:
        # A new batch has no outcomes yet but the reused ones.
        pending = [j for j in jobs if j.job_id not in reused] if created else submitter.pending(batch, jobs)
        deadline = driving.started + driving.timeout_s
        follow = _Follow(submitter, batch, driving.started, deadline, driving.alive, driving.on_progress)
        submitter.send_in_waves(largest_first(pending), depth=driving.depth, on_tick=follow.tick, poll_s=0.5)
        record = follow.until_complete()
    if not record.complete:
        raise BatchTimeoutError(
            f"batch {batch} did not complete in {driving.timeout_s:.0f} s; finish it with --resume {batch}.",
            batch,
        )
    if driving.on_progress is not None:
        driving.on_progress(record)
    summary = store.get_summary(record)
    elapsed = time.monotonic() - driving.started
    return BatchOutcome(batch, jobs, data.bars, record, summary, elapsed, len(reused))


@dataclass
class _Follow:
    """Following a running batch: progress while its jobs are sent, then polls until it is COMPLETE, the
    deadline passes or every local worker is gone."""

    submitter: Submitter
    batch: str
    started: float
    deadline: float
    alive: Callable[[], bool]
    on_progress: Callable[[BatchRecord], None] | None

    def tick(self) -> bool:
        """Between waves of sends: report, check the workers, say whether to go on."""
        if self.on_progress is not None:
            self.on_progress(self.submitter.store.get_batch(self.batch))
        _require_alive(self.alive, self.batch)
        return time.monotonic() < self.deadline

    def until_complete(self) -> BatchRecord:
        store = self.submitter.store
        record = store.get_batch(self.batch)
        while not record.complete and time.monotonic() < self.deadline:
            _require_alive(self.alive, self.batch)
            time.sleep(poll_interval(record.done, record.total_jobs, time.monotonic() - self.started))
            record = store.get_batch(self.batch)
            if self.on_progress is not None and not record.complete:
                self.on_progress(record)
        return record
