"""Running a batch end to end on any target: `execute_batch` uploads bars, registers the batch, sends its
jobs in waves and follows it to COMPLETE. The embedded default (`opslib.local.LocalRuntime`) and the
deployed stack (`opslib.batch.aws`) hand it a `Submitter`; nothing here knows which one it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backtesting_modules.jobs.planner import DEFAULT_TARGET_SECONDS, Job, plan_jobs
from backtesting_modules.jobs.spec import BatchSpec
from backtesting_modules.pipeline.records import BatchRecord

from ..errors import BatchIncompleteError
from .submitter import Submitter, largest_first


@dataclass
class BatchOutcome:
    batch_id: str
    jobs: list[Job]
    bars: int  # bars per symbol the jobs were planned on
    record: BatchRecord
    summary: dict[str, Any]
    elapsed_s: float


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
    batch_id: str,
    *,
    depth: int,
    timeout_s: float,
    alive: Callable[[], bool] = lambda: True,
    on_progress: Callable[[BatchRecord], None] | None = None,
    target_seconds: float = DEFAULT_TARGET_SECONDS,
) -> BatchOutcome:
    """Upload bars, register the batch and its jobs, send the pending jobs in waves of at most `depth`
    visible messages, and wait until the batch is COMPLETE; returns its record and summary.

    Resuming is the same call with an existing `batch_id`: jobs with an outcome are not sent again.
    `target_seconds` is the planner's engine time per job (a resume must use the value of the first run).
    """
    started = time.monotonic()
    deadline = started + timeout_s
    n_bars = submitter.upload_bars(spec)
    jobs = plan_jobs(spec, batch_id, bars=n_bars, target_seconds=target_seconds)
    created = submitter.register(spec, batch_id, jobs)
    store = submitter.store

    def tick() -> bool:
        if on_progress is not None:
            on_progress(store.get_batch(batch_id))
        _require_alive(alive, batch_id)
        return time.monotonic() < deadline

    record = store.get_batch(batch_id)
    if not record.complete:
        pending = jobs if created else submitter.pending(batch_id, jobs)  # a new batch has no outcomes yet
        submitter.send_in_waves(largest_first(pending), depth=depth, on_tick=tick, poll_s=0.5)
        record = store.get_batch(batch_id)
        while not record.complete and time.monotonic() < deadline:
            _require_alive(alive, batch_id)
            time.sleep(poll_interval(record.done, record.total_jobs, time.monotonic() - started))
            record = store.get_batch(batch_id)
            if on_progress is not None and not record.complete:
                on_progress(record)
    if not record.complete:
        raise BatchIncompleteError(
            f"batch {batch_id} did not complete in {timeout_s:.0f} s; finish it with --resume {batch_id}.",
            batch_id,
        )
    if on_progress is not None:
        on_progress(record)
    summary = store.get_summary(record)
    return BatchOutcome(batch_id, jobs, n_bars, record, summary, time.monotonic() - started)
