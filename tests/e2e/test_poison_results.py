"""A poison result end to end on the embedded default (docs/reliability.md, "poison result"): a result
message the collector cannot decode fails its job with the parse error (or, naming only its batch, is
counted as unreadable), the batch completes without waiting for a timeout, and the message reaches the DLQ.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from backtesting_modules.jobs.messages import encode_job, encode_result
from backtesting_modules.jobs.planner import Job, batch_id, plan_jobs
from backtesting_modules.jobs.runner import JobStatus, run_job
from backtesting_modules.jobs.spec import parse_spec
from backtesting_modules.pipeline.records import BatchRecord
from opslib.batch.bars import load_symbol_bars
from opslib.batch.submitter import Submitter
from opslib.local.emulator import Emulator
from opslib.local.pollers import wait_until
from opslib.local.testbed import Testbed

SPEC = parse_spec(
    {
        "name": "poison-results",
        "job_type": "PARAMETER_OPTIMIZATION",
        "symbols": ["KRW-BTC", "KRW-ETH", "KRW-XRP"],
        "data": {"source": "synthetic", "seed": 11, "periods": 800, "freq": "1h"},
        "config": {"filters": None, "min_volume": 0.0},
        "strategies": [{"name": "SMA_Crossover", "grid": {"fast": "5:25:5", "slow": "30:90:15"}}],
        "ranking": {"metric": "sharpe", "top": 100, "min_trades": 0},
    }
)
COMPLETE_WITHIN_S = 60.0  # far below run_batch's 3,600 s wait: nothing may wait for a timeout
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
class Registered:
    bed: Testbed
    batch: str
    jobs: list[Job]

    def wait_complete(self) -> BatchRecord:
        store = self.bed.store
        assert wait_until(lambda: store.get_batch(self.batch).complete, COMPLETE_WITHIN_S), store.get_batch(
            self.batch
        )
        return store.get_batch(self.batch)

    def send_results(self, bodies: list[str]) -> None:
        self.bed.send(bodies, queue=self.bed.names.result_queue)


@pytest.fixture
def registered(emulator: Emulator, tmp_path: Path) -> Iterator[Registered]:
    bed = Testbed.create(emulator, f"poison{next(_prefixes)}", tmp_path)
    submitter = Submitter(bed.clients, bed.names, bed.urls)
    prepared = submitter.prepare(SPEC)
    batch = batch_id(SPEC, prepared.refs, salt=bed.config.prefix)
    jobs = plan_jobs(SPEC, batch, refs=prepared.refs, bars=prepared.bars, target_seconds=0.02)
    submitter.register(SPEC, batch, jobs, prepared)
    assert len(jobs) >= 3
    yield Registered(bed, batch, jobs)
    bed.stop()


def _truncated_result(job: Job) -> str:
    """The job's real result message, cut in half on its way (not JSON any more; its ids come first)."""
    frames = {symbol: load_symbol_bars(SPEC, symbol) for symbol in job.symbols}
    message, _ = encode_result(run_job(job, frames))
    body = json.dumps(message, allow_nan=False)
    return body[: len(body) // 2]


def test_a_corrupt_result_fails_its_job_with_the_parse_error_and_is_dead_lettered(
    registered: Registered,
) -> None:
    bed, victim, others = registered.bed, registered.jobs[0], registered.jobs[1:]
    corrupt = _truncated_result(victim)
    bed.start_workers(2)
    bed.start_collector()
    bed.send([encode_job(job) for job in others])
    started = time.monotonic()
    registered.send_results([corrupt])

    batch = registered.wait_complete()
    assert time.monotonic() - started < COMPLETE_WITHIN_S
    assert (batch.succeeded, batch.failed, batch.total_jobs) == (len(others), 1, len(registered.jobs))
    jobs = {j.job_id: j for j in bed.store.list_jobs(registered.batch)}
    assert jobs[victim.job_id].status is JobStatus.FAILED
    assert str(jobs[victim.job_id].error).startswith("unreadable result message: body is not valid JSON")
    (failure,) = bed.store.get_summary(batch)["failures"]
    assert failure["job_id"] == victim.job_id and "unreadable result message" in failure["error"]
    # The collector kept failing the record: SQS's redrive policy moved it to the DLQ, intact, counted once.
    assert bed.dead_letters(1, timeout_s=60) == [(corrupt, None)]
    assert wait_until(bed.drained, 30)
    again = bed.store.get_batch(registered.batch)
    assert (again.succeeded, again.failed) == (len(others), 1)


def test_a_corrupt_result_naming_only_its_batch_completes_it_flagged(registered: Registered) -> None:
    bed, others = registered.bed, registered.jobs[1:]
    corrupt = f'{{"version":2,"kind":"result","batch_id":"{registered.batch}","job_id":'
    bed.start_workers(2)
    bed.start_collector()
    registered.send_results([corrupt])
    bed.send([encode_job(job) for job in others])

    batch = registered.wait_complete()
    assert (batch.succeeded, batch.failed) == (len(others), 0)
    summary = bed.store.get_summary(batch)
    assert summary["jobs"]["unreadable"] == 1
    assert "1 unreadable result message(s) named this batch but no job" in summary["failures"][-1]["error"]
    assert bed.dead_letters(1, timeout_s=60) == [(corrupt, None)]
