"""The local runtime's worker pool (issue 19): a worker that dies is replaced and the batch finishes at full
width; one that dies at every start is not restarted forever and ends the batch with its --resume message;
handler crashes are logged with their job and traceback and counted; at most `normal_maximum_concurrency`
workers take normal-queue jobs, so a priority job starts at once; and no process the runtime started is
left once it stops, by an exception or by SIGTERM.

Each test runs its own `LocalRuntime` (emulator, stack under a fresh prefix, pollers). Jobs are made slow
with an injected delay on the worker's result send (`sqs.SendMessage=delay:S`), so each takes at least S.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backtesting_modules.jobs.messages import encode_job
from backtesting_modules.jobs.planner import Job, batch_id, plan_jobs
from backtesting_modules.jobs.runner import JobStatus
from backtesting_modules.jobs.spec import parse_spec
from backtesting_modules.pipeline.records import JobRecord
from opslib.batch.execute import execute_batch
from opslib.errors import BatchIncompleteError
from opslib.local.faults import CRASH_EXIT_STATUS
from opslib.local.pollers import wait_until
from opslib.local.runtime import LocalRuntime
from opslib.stack import StackConfig, load_stack

ROOT = Path(__file__).resolve().parents[2]
_prefixes = itertools.count()


def spec_dict(jobs: int) -> dict[str, Any]:
    """SMA_Crossover on one synthetic symbol, `jobs` combinations (even), one job each when planned with a
    tiny target."""
    return {
        "name": f"pool-{jobs}",
        "job_type": "PARAMETER_OPTIMIZATION",
        "symbols": ["KRW-ETH"],
        "data": {"source": "synthetic", "seed": 5, "periods": 1000, "freq": "1h"},
        "config": {"filters": None, "min_volume": 0.0},
        "strategies": [
            {"name": "SMA_Crossover", "grid": {"fast": [5, 10], "slow": list(range(30, 30 + jobs // 2))}}
        ],
        "ranking": {"metric": "sharpe", "top": 1000, "min_trades": 0},
    }


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    saved = dict(os.environ)  # LocalRuntime points boto3 at its emulator through the environment
    yield
    os.environ.clear()
    os.environ.update(saved)


def stack(normal_cap: int | None = None) -> StackConfig:
    config = replace(load_stack(), prefix=f"pool{next(_prefixes)}")
    return replace(config, worker=replace(config.worker, normal_maximum_concurrency=normal_cap))


def register(rt: LocalRuntime, count: int) -> tuple[str, list[Job]]:
    """A batch of `count` one-combination jobs, registered (not sent)."""
    submitter = rt.submitter()
    spec = parse_spec(spec_dict(count))
    prepared = submitter.prepare(spec)
    batch = batch_id(spec, prepared.refs, salt=rt.stack.prefix)
    jobs = plan_jobs(spec, batch, refs=prepared.refs, bars=1000, target_seconds=1e-9)
    assert len(jobs) == count
    submitter.register(spec, batch, jobs, prepared)
    return batch, jobs


def send(rt: LocalRuntime, jobs: list[Job], *, priority: bool = False) -> None:
    names = rt._names()
    url = rt.urls[names.priority_queue if priority else names.job_queue]
    sqs = rt._clients().client("sqs")
    for i in range(0, len(jobs), 10):
        entries = [{"Id": str(n), "MessageBody": encode_job(j)} for n, j in enumerate(jobs[i : i + 10])]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def workers(rt: LocalRuntime) -> list[int]:
    return sorted(pid for pid, role in rt.roles.items() if role == "worker")


def pid_of(record: JobRecord) -> int:
    return int(str(record.worker).rsplit(":", 1)[1])


def at(iso: str | None) -> datetime:
    assert iso is not None
    return datetime.fromisoformat(iso)


def running(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's zombie may wait for a reaper that never comes)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text(encoding="ascii")
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rfind(")") + 2 :].split()[1])
    out: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - out
        out |= frontier
    return out


def started_pids(rt: LocalRuntime) -> list[int]:
    assert rt.emulator.process is not None
    return [rt.emulator.process.pid, *rt.roles]


def test_a_killed_worker_is_replaced_and_the_batch_finishes_at_full_width(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with LocalRuntime(
        stack(), workers=2, visibility_timeout_s=3, worker_faults="sqs.SendMessage=delay:0.3"
    ) as rt:
        batch, jobs = register(rt, 40)
        send(rt, jobs)
        store = rt.store()
        assert wait_until(lambda: store.get_batch(batch).done >= 3, 60)
        victim, survivor = workers(rt)
        killed_at = datetime.now(UTC)
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: len(workers(rt)) == 2 and victim not in workers(rt), 10)
        (replacement,) = set(workers(rt)) - {survivor}
        assert wait_until(lambda: store.get_batch(batch).complete, 120)
        record = store.get_batch(batch)
        assert (record.succeeded, record.failed) == (40, 0)
        after = {pid_of(j) for j in store.list_jobs(batch) if at(j.started_at) > killed_at}
        assert after == {survivor, replacement}  # both ran jobs after the kill: the pool is back to 2
        assert rt.restarts == 1 and rt.alive() and rt.crashes == 0
        started = started_pids(rt)
    assert wait_until(lambda: not any(running(pid) for pid in started), 10)  # a normal exit leaves none
    err = capfd.readouterr().err
    replaced = f"process {victim} exited (exit code -9, SIGKILL); process {replacement} started in its place"
    assert f"local worker {replaced}" in err, err


def test_a_worker_dying_at_every_start_is_not_restarted_forever_and_ends_the_batch(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Each worker exits (status 86) right after its first AWS call, before it polls anything.
    crash = "sqs.GetQueueAttributes=crash-after:1"
    with LocalRuntime(stack(), workers=2, visibility_timeout_s=3, worker_faults=crash) as rt:
        spec = parse_spec(spec_dict(4))
        with pytest.raises(BatchIncompleteError, match=r"--resume b-"):
            execute_batch(rt.submitter(), spec, depth=100, timeout_s=120, alive=rt.alive)
        assert rt.restarts == 2  # two replacements (the limit for two workers), then none
        assert workers(rt) == [] or all(pid in rt.group.abandoned for pid in workers(rt))
        assert "collector" in rt.roles.values()  # the batch ended for want of workers alone
    err = capfd.readouterr().err
    assert err.count(f"(exit code {CRASH_EXIT_STATUS}) and is not replaced") == 2, err


def test_handler_crashes_are_logged_with_their_job_and_counted(capfd: pytest.CaptureFixture[str]) -> None:
    # Each worker's first S3 read fails (a connection error): the handler raises, the job comes back.
    with LocalRuntime(stack(), workers=2, visibility_timeout_s=2, worker_faults="s3.GetObject=1") as rt:
        batch, jobs = register(rt, 6)
        send(rt, jobs)
        store = rt.store()
        assert wait_until(lambda: store.get_batch(batch).complete, 90)
        records = store.list_jobs(batch)
        retried = {j.job_id for j in records if j.attempts >= 2}
        assert 1 <= rt.crashes == len(retried) <= 2  # one per worker that ran a job
        assert rt.failed_records == rt.crashes and rt.restarts == 0
    err = capfd.readouterr().err
    for job_id in retried:
        assert f"the handler raised on job {job_id}; the messages return after the visibility timeout" in err
    assert "Traceback (most recent call last)" in err and "EndpointConnectionError" in err, err


def test_normal_jobs_use_at_most_the_normal_cap_and_a_priority_job_starts_at_once() -> None:
    # Two workers, normal cap 1: the normal jobs run one at a time (each at least 1 s), so the second worker
    # is free for a priority job sent while one is running.
    config = stack(normal_cap=1)
    with LocalRuntime(
        config, workers=2, visibility_timeout_s=30, worker_faults="sqs.SendMessage=delay:1"
    ) as rt:
        batch, jobs = register(rt, 8)
        normal, urgent = jobs[:-1], jobs[-1]
        store = rt.store()
        send(rt, normal)

        def busy() -> JobRecord | None:
            running_jobs = [j for j in store.list_jobs(batch) if j.status is JobStatus.RUNNING]
            return (
                running_jobs[0]
                if len(running_jobs) == 1 and running_jobs[0].job_id != normal[0].job_id
                else None
            )

        assert wait_until(lambda: busy() is not None, 60, every_s=0.05)  # the second normal job has started
        held = busy()
        send(rt, [urgent], priority=True)
        assert wait_until(lambda: store.get_batch(batch).complete, 90)
        records = {j.job_id: j for j in store.list_jobs(batch)}
    starts = sorted(at(records[j.job_id].started_at) for j in normal)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.95, gaps  # never two normal jobs at once
    first = records[urgent.job_id]
    assert held is not None and pid_of(first) != pid_of(held)
    assert (at(first.started_at) - at(first.sent_at)).total_seconds() < 0.8  # did not wait for the normal job
    assert at(first.started_at) < starts[-1]  # and went before the normal jobs still queued


def test_an_exception_in_the_block_stops_every_process() -> None:
    with pytest.raises(KeyboardInterrupt), LocalRuntime(stack(), workers=2) as rt:
        started = started_pids(rt)
        assert len(started) == 4
        raise KeyboardInterrupt
    assert wait_until(lambda: not any(running(pid) for pid in started), 10)
    assert rt.group._thread is None and rt.group.processes == []


DRIVER = """
import json, sys, time
from dataclasses import replace
from opslib.cli import Terminated, on_sigterm
from opslib.local.runtime import LocalRuntime
from opslib.stack import load_stack

on_sigterm()  # as run_batch.py does: SIGTERM unwinds the `with` block
try:
    with LocalRuntime(replace(load_stack(), prefix=sys.argv[1]), workers=2) as rt:
        print(json.dumps({"workers": [p for p, r in rt.roles.items() if r == "worker"]}), flush=True)
        while True:
            time.sleep(0.1)
except Terminated:
    sys.exit(143)
"""


def start_driver() -> subprocess.Popen[str]:
    """DRIVER in its own session: what it started is found below its pid, and can be killed as a group."""
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, f"pool{next(_prefixes)}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=ROOT,
    )


def test_sigterm_to_the_driver_leaves_no_process_behind() -> None:
    driver = start_driver()
    try:
        assert driver.stdout is not None and driver.stderr is not None
        victim = json.loads(driver.stdout.readline())["workers"][0]
        before = descendants(driver.pid)
        os.kill(victim, signal.SIGKILL)  # a replacement is among what must be stopped
        assert wait_until(
            lambda: victim not in descendants(driver.pid) and len(descendants(driver.pid)) >= len(before), 15
        )
        seen = before | descendants(driver.pid)
        assert len(seen - {victim}) >= 4  # the emulator, two workers (one a replacement), the collector
        os.kill(driver.pid, signal.SIGTERM)
        _, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 143, err
    assert f"local worker process {victim} exited (exit code -9, SIGKILL); process" in err, err
    assert wait_until(lambda: not any(running(pid) for pid in seen), 10), [p for p in seen if running(p)]


def test_sigkill_of_the_driver_takes_the_emulator_and_the_pollers_with_it() -> None:
    # SIGKILL runs no cleanup: the kernel's parent-death signal (opslib/local/lifetime.py) stops the
    # emulator and every poller, so no orphan keeps the port, the queues or a core.
    driver = start_driver()
    started: set[int] = set()
    try:
        assert driver.stdout is not None
        json.loads(driver.stdout.readline())
        started = descendants(driver.pid)
        assert len(started) >= 4  # the emulator, two workers, the collector
        os.kill(driver.pid, signal.SIGKILL)
        driver.communicate(timeout=30)
        assert wait_until(lambda: not any(running(pid) for pid in started), 15), [
            p for p in started if running(p)
        ]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        for pid in started:
            if running(pid):  # an orphan left by a failure above: not left to the next test
                os.kill(pid, signal.SIGKILL)
