"""End to end on the embedded default: a moto server on 127.0.0.1, worker and collector processes running
the real handlers. Each test gets its own stack (queues, table, bucket) under a fresh prefix.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backtesting_modules.jobs.messages import encode_job
from backtesting_modules.jobs.planner import Job, batch_id, plan_jobs
from backtesting_modules.jobs.runner import JobStatus, run_job
from backtesting_modules.jobs.spec import BatchSpec, parse_spec
from backtesting_modules.names import StackNames
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.records import BatchRecord
from backtesting_modules.pipeline.store import Store
from opslib.batch.bars import PreparedData, load_symbol_bars
from opslib.batch.submitter import Submitter
from opslib.local.emulator import Emulator
from opslib.local.pollers import wait_until
from opslib.local.testbed import Testbed

SPEC = {
    "name": "e2e",
    "job_type": "PARAMETER_OPTIMIZATION",
    "symbols": ["KRW-BTC", "KRW-ETH", "KRW-XRP"],
    "data": {"source": "synthetic", "seed": 7, "periods": 3000, "freq": "1h"},
    "config": {"filters": None, "min_volume": 0.0},
    "strategies": [
        {"name": "SMA_Crossover", "grid": {"fast": "5:25:5", "slow": "30:90:15"}},
        {"name": "Donchian_Breakout", "grid": {"entry_period": "10:40:10", "exit_period": [5, 10]}},
    ],
    "ranking": {"metric": "sharpe", "top": 1000, "min_trades": 0},
}
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    server = Emulator().start()
    saved = dict(os.environ)
    os.environ.update(server.environ())
    yield server
    server.stop()
    os.environ.clear()
    os.environ.update(saved)


@dataclass
class LocalBatch:
    """A batch registered on its own testbed (`opslib.local.testbed`), driven step by step so tests can
    interfere with it."""

    bed: Testbed
    spec: BatchSpec
    batch: str
    jobs: list[Job]
    prepared: PreparedData

    @property
    def store(self) -> Store:
        return self.bed.store

    @property
    def clients(self) -> ClientFactory:
        return self.bed.clients

    @property
    def names(self) -> StackNames:
        return self.bed.names

    @property
    def urls(self) -> dict[str, str]:
        return self.bed.urls

    def start_workers(self, count: int, faults: str = "") -> list[Any]:
        return self.bed.start_workers(count, faults)

    def start_collector(self, faults: str = "") -> None:
        self.bed.start_collector(faults)

    def send(self, jobs: list[Job], copies: int = 1) -> None:
        self.bed.send([encode_job(job) for job in jobs for _ in range(copies)])

    def wait_complete(self, timeout_s: float = 120.0) -> BatchRecord:
        assert wait_until(lambda: self.store.get_batch(self.batch).complete, timeout_s), self.store.get_batch(
            self.batch
        )
        return self.store.get_batch(self.batch)

    def summary(self) -> dict[str, Any]:
        return self.store.get_summary(self.store.get_batch(self.batch))

    def in_queues(self) -> int:
        """Messages still waiting or in flight in the job and result queues."""
        return sum(self.bed.messages(q) for q in (self.names.job_queue, self.names.result_queue))

    def dead_letters(self) -> int:
        return self.bed.messages(self.names.dead_letter_queue, in_flight=False)


@pytest.fixture
def local(emulator: Emulator, tmp_path: Path) -> Iterator[LocalBatch]:
    # A small inline limit: some results travel inline, the larger ones through S3.
    bed = Testbed.create(emulator, f"e2e{next(_prefixes)}", tmp_path, inline_result_limit=2000)
    spec = parse_spec(SPEC)
    submitter = Submitter(bed.clients, bed.names, bed.urls)
    prepared = submitter.prepare(spec)
    batch = batch_id(spec, prepared.refs, salt=bed.config.prefix)
    jobs = plan_jobs(spec, batch, refs=prepared.refs, bars=3000, target_seconds=0.02)
    submitter.register(spec, batch, jobs, prepared)
    yield LocalBatch(bed, spec, batch, jobs, prepared)
    bed.stop()


def rows_by_key(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        f"{r['strategy']}|{r['symbol']}|{json.dumps(r['params'], sort_keys=True)}": r["metrics"] for r in rows
    }


def sequential_rows(spec: BatchSpec, jobs: list[Job]) -> list[dict[str, Any]]:
    bars = {s: load_symbol_bars(spec, s) for s in spec.symbols}
    rows: list[dict[str, Any]] = []
    for job in jobs:
        rows += [dict(r) for r in run_job(job, {s: bars[s] for s in job.symbols}).rows]
    return rows


def test_batch_equals_the_same_jobs_run_sequentially(local: LocalBatch) -> None:
    assert len(local.jobs) >= 6
    local.start_workers(2)
    local.start_collector()
    local.send(local.jobs)
    batch = local.wait_complete()
    summary = local.summary()
    expected = rows_by_key(sequential_rows(local.spec, local.jobs))
    got = rows_by_key(summary["ranking"]["top"])
    assert got == expected
    assert (batch.succeeded, batch.failed, batch.backtests) == (len(local.jobs), 0, len(expected))
    assert summary["backtests"] == len(expected) and summary["failures"] == []
    assert local.dead_letters() == 0


def test_every_message_delivered_twice_changes_no_count(local: LocalBatch) -> None:
    local.start_workers(2)
    local.start_collector()
    local.send(local.jobs, copies=2)
    batch = local.wait_complete()
    assert (batch.succeeded, batch.failed) == (len(local.jobs), 0)
    expected = len(rows_by_key(sequential_rows(local.spec, local.jobs)))
    assert batch.backtests == expected
    # Every copy processed (job and result queues empty, nothing in flight): the counts must not move.
    assert wait_until(lambda: local.in_queues() == 0, 60)
    again = local.store.get_batch(local.batch)
    assert (again.succeeded, again.failed, again.backtests) == (len(local.jobs), 0, expected)


def test_retryable_faults_are_redelivered_and_succeed(local: LocalBatch) -> None:
    # Each worker process fails its first two S3 reads: jobs fail, return after the visibility timeout,
    # and succeed on a later attempt (maxReceiveCount 3 leaves room for it).
    local.start_workers(2, faults="s3.GetObject=1")
    local.start_collector()
    local.send(local.jobs)
    batch = local.wait_complete()
    assert (batch.succeeded, batch.failed) == (len(local.jobs), 0)
    attempts = [j.attempts for j in local.store.list_jobs(local.batch)]
    assert max(attempts) >= 2  # at least one job really was redelivered
    assert local.dead_letters() == 0


def test_missing_bars_fail_once_and_go_to_the_dlq(local: LocalBatch) -> None:
    missing = local.prepared.refs["KRW-XRP"].key
    local.clients.client("s3").delete_object(Bucket=local.names.bucket, Key=missing)
    poisoned = [j for j in local.jobs if "KRW-XRP" in j.symbols]
    local.start_workers(2)
    local.start_collector()
    local.send(local.jobs)
    batch = local.wait_complete()
    assert (batch.succeeded, batch.failed) == (len(local.jobs) - len(poisoned), len(poisoned))
    failures = local.summary()["failures"]
    assert len(failures) == len(poisoned)
    assert all(missing in f["error"] and f["attempts"] == 1 for f in failures)
    assert wait_until(lambda: local.dead_letters() == len(poisoned), 10)


def test_a_job_that_always_fails_retryably_ends_failed_once_in_the_dlq(local: LocalBatch) -> None:
    # Every S3 read fails in every worker: each job exhausts maxReceiveCount, is reported FAILED on its last
    # attempt, and the redrive policy moves it to the DLQ.
    jobs = local.jobs[:2]
    local.start_workers(2, faults="s3.GetObject=1000")
    local.start_collector()
    local.send(jobs)
    assert wait_until(lambda: local.store.get_batch(local.batch).failed == 2, 60)
    failed = [j for j in local.store.list_jobs(local.batch) if j.status is JobStatus.FAILED]
    assert len(failed) == 2
    assert all("gave up after 3 attempts" in str(j.error) for j in failed)
    assert wait_until(lambda: local.dead_letters() == 2, 30)  # moved on the receive after the last attempt


def test_a_worker_killed_mid_batch_loses_nothing(local: LocalBatch) -> None:
    # The victim's S3 reads take 5 s; once it has marked a job RUNNING it is stuck reading that job's bars,
    # so it provably holds the message when it is killed.
    (victim,) = local.start_workers(1, faults="s3.GetObject=delay:5")
    local.start_collector()
    local.send(local.jobs)

    def held_by_victim() -> bool:
        return any(
            j.status is JobStatus.RUNNING and (j.worker or "").endswith(f":{victim.pid}")
            for j in local.store.list_jobs(local.batch)
        )

    assert wait_until(held_by_victim, 30, every_s=0.05)
    os.kill(victim.pid, signal.SIGKILL)
    (survivor,) = local.start_workers(1)
    batch = local.wait_complete()
    assert (batch.succeeded, batch.failed) == (len(local.jobs), 0)
    # The job the victim held came back after the visibility timeout and ran again.
    assert max(j.attempts for j in local.store.list_jobs(local.batch)) >= 2
    assert survivor.is_alive() and not victim.is_alive()


def test_resubmitting_a_finished_batch_reuses_its_results(local: LocalBatch) -> None:
    local.start_workers(1)
    local.start_collector()
    local.send(local.jobs)
    local.wait_complete()
    submitter = Submitter(local.clients, local.names, local.urls)
    assert submitter.register(local.spec, local.batch, local.jobs, local.prepared) is False  # not a new batch
    assert submitter.pending(local.batch, local.jobs) == []  # nothing to recompute
    partial = local.jobs[:2]
    assert submitter.pending(local.batch, local.jobs + partial) == []


def test_priority_jobs_are_taken_before_waiting_normal_jobs(local: LocalBatch) -> None:
    normal, urgent = local.jobs[:-1], local.jobs[-1]
    local.send(normal)  # all queued before any worker runs
    sqs = local.clients.client("sqs")
    sqs.send_message(QueueUrl=local.urls[local.names.priority_queue], MessageBody=encode_job(urgent))
    local.start_workers(1)
    local.start_collector()
    local.wait_complete()
    finished = sorted(local.store.list_jobs(local.batch), key=lambda j: str(j.finished_at))
    order = [j.job_id for j in finished]
    assert order.index(urgent.job_id) <= 1  # the first or second job done, though it was sent last
