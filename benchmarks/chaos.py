"""Chaos on the local runtime: batches of hundreds of tiny jobs run through the real handlers (moto server,
worker and collector processes) while faults are injected, and every outcome is audited against a clean run.

Scenarios (each on its own stack, a fresh prefix on one emulator; `emulator-restart` on its own emulator):

- `duplicates`: every job message delivered twice, the copies shuffled;
- `worker-kills`: a worker SIGKILLed mid-batch, twice: while it reads bars, then while it sends a result;
- `collector-crashes`: the collector exits right after a counting transaction, before deleting its
  messages: once mid-batch, once right after the last count (before the summary);
- `poison`: 5 % of the jobs poisoned (malformed body, unknown strategy, bars missing in S3), plus a body
  that names no job;
- `retryable`: S3 read errors (the job is redelivered) and throttling of DynamoDB, SQS and S3 (botocore
  retries);
- `emulator-restart`: the run stopped mid-batch (the emulator saves its state), a new emulator restores it
  and the same batch is resumed.

The audit (`audit_batch`) compares every job with `run_job` run in-process: a job is *lost* when it has no
terminal outcome or when its stored result body, its best row or its summary rows differ from the clean
run's (for a poisoned job: when it is not FAILED with its error); a *duplicate* is an outcome counted more
than once (batch counters above the job records, a backtest count above the clean run's, a row or failure
repeated in the summary, a job twice in the DLQ).

    python benchmarks/chaos.py [--jobs 500] [--repeat 1] [--workers 2] [--scenario NAME ...] [--json]

tests/chaos runs the same scenarios at 200 jobs with exact assertions; this prints the markdown table
docs/reliability.md quotes: fault, jobs affected, results lost, duplicates, time to recover, wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from backtesting_modules.jobs.messages import encode_job, job_message
from backtesting_modules.jobs.planner import Job, batch_id, plan_jobs
from backtesting_modules.jobs.results import compute_rows, encode_result_body
from backtesting_modules.jobs.runner import run_job
from backtesting_modules.jobs.spec import BatchSpec, count_backtests, data_hash, parse_spec
from backtesting_modules.pipeline.clients import CRASH_EXIT_STATUS, FAULT_LOG_ENV, FAULTS_ENV, ClientFactory
from backtesting_modules.pipeline.names import HandlerEnv, StackNames, bars_key
from backtesting_modules.pipeline.store import TERMINAL, Store
from opslib.batch.bars import load_symbol_bars
from opslib.batch.execute import execute_batch
from opslib.batch.submitter import Submitter
from opslib.local.emulator import Emulator
from opslib.local.pollers import PollerSpec, ProcessGroup, wait_until
from opslib.local.provision import ensure_stack
from opslib.local.runtime import LocalRuntime
from opslib.stack import StackConfig, load_stack

# The planner's engine seconds per job: far below one combination's time, so every job is one combination.
ONE_COMBINATION = 1e-9
VISIBILITY_TIMEOUT_S = 3  # how soon a message a dead process held comes back
FAST_AXIS = list(range(5, 25))  # 20 values, all below every slow value: every combination is valid
SCENARIOS = ("duplicates", "worker-kills", "collector-crashes", "poison", "retryable", "emulator-restart")
RETRYABLE_WORKER_FAULTS = "s3.GetObject=1,dynamodb.UpdateItem=throttle:50,sqs.SendMessage=throttle:50"
RETRYABLE_COLLECTOR_FAULTS = (
    "s3.GetObject=1,dynamodb.TransactWriteItems=throttle:50,s3.PutObject=throttle:100"
)
POISON_KINDS = ("malformed", "unknown-strategy", "missing-bars", "corrupt-bars")
# Bodies that name no job: they can only go to the DLQ (once, sent by the worker with the error).
UNREADABLE = ("{not json: a body that names no job", "[" * 100_000)


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
        "ranking": {"metric": "sharpe", "top": 100_000},
        "limits": {"max_backtests": 100_000},
    }


def chaos_spec(jobs: int, *, job_type: str = "PARAMETER_OPTIMIZATION", bars: int = 1000) -> BatchSpec:
    return parse_spec(chaos_spec_dict(jobs, job_type=job_type, bars=bars))


def plan(spec: BatchSpec, batch: str) -> list[Job]:
    bars = spec.data.periods or 0
    return plan_jobs(spec, batch, bars=bars, target_seconds=ONE_COMBINATION)


# ------------------------------------------------------------------------------------------- clean run


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
                body=encode_result_body(job.batch_id, job.job_id, result.columns),
                best=_canonical(result.best),
                rows={
                    row_key(r): _canonical(r["metrics"])
                    for r in compute_rows(result.columns)
                    if _finite(r["metrics"].get(job.ranking_metric))
                },
                backtests=result.backtests,
            )
        return out


# ----------------------------------------------------------------------------------------------- audit


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
    jobs = {str(j["job_id"]): j for j in store.list_jobs(batch)}
    summary = store.get_json(str(record["summary_key"])) if record.get("summary_key") else None
    top = summary["ranking"]["top"] if summary else []
    summary_rows = Counter(row_key(r) for r in top)
    metrics = {row_key(r): _canonical(r["metrics"]) for r in top}
    failures = summary["failures"] if summary else []
    lost: dict[str, str] = {}
    for job_id, want in clean.items():
        job = jobs.get(job_id, {})
        status = job.get("status")
        if job_id in poisoned:
            if status != "FAILED" or poisoned[job_id] not in str(job.get("error")):
                lost[job_id] = f"{status}, not FAILED with {poisoned[job_id]!r}: {job.get('error')}"
        elif status != "SUCCEEDED":
            lost[job_id] = f"{status}: {job.get('error')}"
        elif store.get_bytes(str(job["result_key"])) != want.body:
            lost[job_id] = "stored result body differs from the clean run's"
        elif _canonical(json.loads(str(job["best"]))) != want.best:
            lost[job_id] = "best row differs from the clean run's"
        elif {k: metrics.get(k) for k in want.rows} != want.rows:
            lost[job_id] = "summary rows differ from the clean run's"
    terminal = sum(1 for j in jobs.values() if j.get("status") in TERMINAL)
    succeeded, failed = int(record["succeeded"]), int(record["failed"])
    backtests = int(record["backtests"])
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
        status=str(record["status"]),
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


# --------------------------------------------------------------------------------------------- harness


@dataclass
class ChaosStack:
    """One scenario's queues, table and bucket (a fresh prefix) on a running emulator, and the poller
    processes the scenario starts, each with its own faults."""

    emulator: Emulator
    config: StackConfig
    clients: ClientFactory
    names: StackNames
    urls: dict[str, str]
    fault_log: Path
    group: ProcessGroup = field(default_factory=ProcessGroup)

    @classmethod
    def create(
        cls, emulator: Emulator, prefix: str, work: Path, visibility_timeout_s: int = VISIBILITY_TIMEOUT_S
    ) -> ChaosStack:
        os.environ.update(emulator.environ())  # boto3 reads the (fake) credentials from the environment
        config = replace(load_stack(), prefix=prefix)
        clients = ClientFactory(endpoint_url=emulator.endpoint_url, region=config.region, faults=None)
        names = config.names()
        urls = ensure_stack(clients, config, names, visibility_timeout_s=visibility_timeout_s)
        work.mkdir(parents=True, exist_ok=True)
        return cls(emulator, config, clients, names, urls, work / f"{prefix}-faults.log")

    @property
    def store(self) -> Store:
        return Store(self.clients, self.names.table, self.names.bucket)

    def environ(self, faults: str = "") -> dict[str, str]:
        env = HandlerEnv(
            table=self.names.table,
            bucket=self.names.bucket,
            result_queue_url=self.urls[self.names.result_queue],
            max_receive_count=self.config.queues.max_receive_count,
            metric_namespace=self.config.metric_namespace,
            inline_result_limit=self.config.inline_limit_bytes,
        ).to_environ()
        return {
            **self.emulator.environ(),
            **env,
            "DEAD_LETTER_QUEUE_URL": self.urls[self.names.dead_letter_queue],
            FAULTS_ENV: faults,
            FAULT_LOG_ENV: str(self.fault_log),
        }

    def start_workers(self, count: int, faults: str = "") -> list[Any]:
        queues = (self.urls[self.names.priority_queue], self.urls[self.names.job_queue])
        return self.group.start(PollerSpec("worker", queues, self.environ(faults)), count=count)

    def start_collector(self, faults: str = "") -> Any:
        queue = (self.urls[self.names.result_queue],)
        (process,) = self.group.start(PollerSpec("collector", queue, self.environ(faults), batch_size=10))
        return process

    def stop(self) -> None:
        self.group.stop()

    def messages(self, queue: str, *, in_flight: bool = True) -> int:
        """Messages waiting in `queue`, plus those received and not deleted yet when `in_flight`."""
        names = ["ApproximateNumberOfMessages"]
        if in_flight:
            names.append("ApproximateNumberOfMessagesNotVisible")
        attrs = self.clients.client("sqs").get_queue_attributes(
            QueueUrl=self.urls[queue], AttributeNames=names
        )
        return sum(int(attrs["Attributes"][n]) for n in names)

    def drained(self) -> bool:
        """No message waiting or in flight in the job, priority and result queues."""
        queues = (self.names.job_queue, self.names.priority_queue, self.names.result_queue)
        return all(self.messages(q) == 0 for q in queues)

    def dead_letters(self, expected: int, timeout_s: float = 30.0) -> list[tuple[str, str | None]]:
        """The DLQ's messages once it holds `expected` (read, not deleted: hidden for 10 minutes), as
        (body, the `error` attribute a worker sends with it; None for a message SQS moved there itself)."""
        queue = self.names.dead_letter_queue
        wait_until(lambda: self.messages(queue, in_flight=False) >= expected, timeout_s)
        out: list[tuple[str, str | None]] = []
        sqs = self.clients.client("sqs")
        while True:
            got = sqs.receive_message(
                QueueUrl=self.urls[queue],
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                VisibilityTimeout=600,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                return out
            for m in got:
                error = m.get("MessageAttributes", {}).get("error", {}).get("StringValue")
                out.append((m["Body"], error))

    def faults(self) -> list[tuple[int, str, float]]:
        """Injected faults so far: (pid, "service.Operation kind", time.time()), from the fault log."""
        if not self.fault_log.exists():
            return []
        lines = self.fault_log.read_text(encoding="utf-8").splitlines()
        return [(int(pid), f"{op} {kind}", float(t)) for pid, op, kind, t in (x.split() for x in lines)]

    def injected(self, pid: int | None = None) -> Counter[str]:
        """Injected faults so far, as "service.Operation kind" → count (of one process, or all)."""
        return Counter(fault for p, fault, _ in self.faults() if pid is None or p == pid)


@dataclass
class ChaosBatch:
    """A registered batch on a `ChaosStack`, sent and followed step by step so a scenario can interfere."""

    stack: ChaosStack
    spec: BatchSpec
    batch_id: str
    jobs: list[Job]
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)

    @classmethod
    def register(cls, stack: ChaosStack, spec: BatchSpec, salt: str) -> ChaosBatch:
        submitter = Submitter(stack.clients, stack.names, stack.urls)
        submitter.upload_bars(spec)
        batch = batch_id(spec, salt=f"{stack.config.prefix}:{salt}")
        jobs = plan(spec, batch)
        submitter.register(spec, batch, jobs)
        return cls(stack, spec, batch, jobs)

    def send(self, bodies: Sequence[str]) -> None:
        sqs = self.stack.clients.client("sqs")
        url = self.stack.urls[self.stack.names.job_queue]
        for i in range(0, len(bodies), 10):
            entries = [{"Id": str(n), "MessageBody": b} for n, b in enumerate(bodies[i : i + 10])]
            sqs.send_message_batch(QueueUrl=url, Entries=entries)

    def record(self) -> dict[str, Any]:
        return self.stack.store.get_batch(self.batch_id)

    def counted(self) -> int:
        record = self.record()
        return int(record["succeeded"]) + int(record["failed"])

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
        return self.wait(lambda: self.record()["status"] == "COMPLETE", "COMPLETE", timeout_s)

    def held_by(self, pid: int) -> str | None:
        """The job a worker process has marked RUNNING (its record names the process), if any."""
        for job in self.stack.store.list_jobs(self.batch_id):
            if job.get("status") == "RUNNING" and str(job.get("worker", "")).endswith(f":{pid}"):
                return str(job["job_id"])
        return None

    def finished_at(self, job_id: str) -> float:
        job = next(j for j in self.stack.store.list_jobs(self.batch_id) if j["job_id"] == job_id)
        return _timestamp(job["finished_at"])

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


# ------------------------------------------------------------------------------------------- scenarios


def run_clean(stack: ChaosStack, spec: BatchSpec, clean: CleanRun, workers: int = 2) -> ScenarioResult:
    batch = ChaosBatch.register(stack, spec, "clean")
    stack.start_workers(workers)
    stack.start_collector()
    batch.send([encode_job(j) for j in batch.jobs])
    batch.wait_complete()
    audit = batch.audit(clean)
    return ScenarioResult("clean", "none", len(batch.jobs), "0", audit, None, _elapsed(batch))


def run_duplicates(stack: ChaosStack, spec: BatchSpec, clean: CleanRun, workers: int = 2) -> ScenarioResult:
    batch = ChaosBatch.register(stack, spec, "duplicates")
    stack.start_workers(workers)
    stack.start_collector()
    copies = [encode_job(j) for j in batch.jobs] * 2
    random.Random(7).shuffle(copies)  # some copies side by side (two workers race), some far apart
    batch.send(copies)
    complete = batch.wait_complete()
    wall = _elapsed(batch)
    drained = batch.wait(stack.drained, "every copy consumed")
    audit = batch.audit(clean)
    return ScenarioResult(
        "duplicates",
        "every message delivered twice",
        len(batch.jobs),
        f"{len(batch.jobs)} (each twice)",
        audit,
        drained - complete,
        wall,
        {"messages_sent": len(copies), "batch_id": batch.batch_id, "jobs": batch.jobs},
    )


@dataclass(frozen=True)
class Kill:
    job_id: str  # the job the victim held
    killed_at: float  # time.time()
    counted: int  # jobs counted when it was killed
    exitcode: int | None


def _kill_when_stuck(batch: ChaosBatch, fault: str) -> Kill:
    """Start a worker whose `fault` (a delay) makes it hang inside its first job; SIGKILL it there."""
    stack = batch.stack
    (victim,) = stack.start_workers(1, faults=fault)
    stuck = f"{fault.split('=', maxsplit=1)[0]} delay"
    batch.wait(lambda: stack.injected(victim.pid)[stuck] > 0, "the victim stuck in its job", 60)
    job_id = batch.held_by(victim.pid)
    if job_id is None:
        raise ChaosError(f"worker {victim.pid} is stuck ({stuck}) but holds no RUNNING job")
    os.kill(victim.pid, signal.SIGKILL)
    killed = time.time()
    victim.join(10)
    return Kill(job_id, killed, batch.counted(), victim.exitcode)


def run_worker_kills(stack: ChaosStack, spec: BatchSpec, clean: CleanRun, workers: int = 1) -> ScenarioResult:
    batch = ChaosBatch.register(stack, spec, "worker-kills")
    stack.start_workers(workers)
    stack.start_collector()
    batch.send([encode_job(j) for j in batch.jobs])
    total = len(batch.jobs)
    kills: list[Kill] = []
    # The first victim hangs reading its bars (before the job ran), the second sending its result (after).
    for fraction, fault in ((0.25, "s3.GetObject=delay:60"), (0.5, "sqs.SendMessage=delay:60")):
        batch.wait_counted(int(total * fraction))
        kills.append(_kill_when_stuck(batch, fault))
    batch.wait_complete()
    wall = _elapsed(batch)
    audit = batch.audit(clean)
    records = {j["job_id"]: j for j in stack.store.list_jobs(batch.batch_id)}
    recover = max(batch.finished_at(k.job_id) - k.killed_at for k in kills)
    return ScenarioResult(
        "worker-kills",
        "worker SIGKILLed mid-batch, twice",
        total,
        f"{len(kills)} held by the victims",
        audit,
        recover,
        wall,
        {"kills": kills, "held_attempts": [int(records[k.job_id]["attempts"]) for k in kills]},
    )


def run_collector_crashes(
    stack: ChaosStack, spec: BatchSpec, clean: CleanRun, workers: int = 2
) -> ScenarioResult:
    """The collector exits right after a successful TransactWriteItems (the result stored and counted, the
    message not deleted): first after a third of the jobs, then — restarted — right after the last count,
    before the summary. A third collector gets the redelivered messages, counts nothing, completes."""
    batch = ChaosBatch.register(stack, spec, "collector-crashes")
    total = len(batch.jobs)
    stack.start_workers(workers)
    crash = "dynamodb.TransactWriteItems=crash-after:{}"
    first = stack.start_collector(faults=crash.format(total // 3))
    batch.send([encode_job(j) for j in batch.jobs])
    results = stack.names.result_queue
    exits, counts, in_flight, recover = [], [], [], []
    first.join(batch_timeout(total))
    crashed = time.time()
    if first.exitcode != CRASH_EXIT_STATUS:
        raise ChaosError(f"the first collector did not crash (exit code {first.exitcode}): {batch.record()}")
    exits.append(first.exitcode)
    counts.append(batch.counted())
    in_flight.append(stack.messages(results) - stack.messages(results, in_flight=False))
    second = stack.start_collector(faults=crash.format(total - counts[0]))
    resumed = batch.wait(lambda: batch.counted() > counts[0], "counting after the first crash")
    recover.append(resumed - crashed)
    second.join(batch_timeout(total))
    crashed = time.time()
    if second.exitcode != CRASH_EXIT_STATUS:
        raise ChaosError(
            f"the second collector did not crash (exit code {second.exitcode}): {batch.record()}"
        )
    exits.append(second.exitcode)
    counts.append(batch.counted())
    in_flight.append(stack.messages(results) - stack.messages(results, in_flight=False))
    status_after_last_count = batch.record()["status"]
    stack.start_collector()
    recover.append(batch.wait_complete() - crashed)
    wall = _elapsed(batch)
    audit = batch.audit(clean)
    return ScenarioResult(
        "collector-crashes",
        "collector killed between counting and deleting, twice",
        total,
        f"{sum(in_flight)} results redelivered",
        audit,
        max(recover),
        wall,
        {
            "exit_codes": exits,
            "counted_at_crash": counts,
            "in_flight_at_crash": in_flight,
            "status_after_last_count": status_after_last_count,
        },
    )


def poison_body(job: Job, kind: str, keys: Mapping[str, str]) -> tuple[str, str]:
    """A job message that cannot succeed, and a fragment of the error it must be reported with; `keys` are
    the bars keys of the missing and the corrupt object."""
    message: dict[str, Any] = dict(job_message(job))
    if kind == "malformed":
        message["start"] = "zero"
        return json.dumps(message), "start: expected integer, got str"
    if kind == "unknown-strategy":
        message["strategy"] = "No_Such_Strategy"
        return json.dumps(message), "No_Such_Strategy"
    message["data_keys"] = [keys[kind]]
    return json.dumps(message), keys[kind]


def run_poison(
    stack: ChaosStack, spec: BatchSpec, clean: CleanRun, workers: int = 2, share: float = 0.05
) -> ScenarioResult:
    batch = ChaosBatch.register(stack, spec, "poison")
    total = len(batch.jobs)
    step = max(1, round(1 / share))
    keys = {
        kind: bars_key(data_hash(spec), f"KRW-{kind.upper()}") for kind in ("missing-bars", "corrupt-bars")
    }
    stack.store.put_bytes(keys["corrupt-bars"], b"PK\x03\x04 not an npz: truncated on upload")
    bodies: list[str] = []
    poisoned: dict[str, str] = {}
    for i, job in enumerate(batch.jobs):
        if i % step == step // 2:
            body, error = poison_body(job, POISON_KINDS[len(poisoned) % len(POISON_KINDS)], keys)
            poisoned[job.job_id] = error
            bodies.append(body)
        else:
            bodies.append(encode_job(job))
    bodies += UNREADABLE
    stack.start_workers(workers)
    stack.start_collector()
    batch.send(bodies)
    batch.wait_complete()
    wall = _elapsed(batch)
    dead = stack.dead_letters(len(poisoned) + len(UNREADABLE))
    audit = batch.audit(clean, poisoned, [body for body, _ in dead])
    records = {j["job_id"]: j for j in stack.store.list_jobs(batch.batch_id)}
    reported = max(
        _timestamp(records[j]["finished_at"]) - _timestamp(records[j]["started_at"])
        for j in poisoned
        if records[j].get("started_at")  # a malformed body is never marked running
    )
    return ScenarioResult(
        "poison",
        f"{len(poisoned) / total:.0%} poison jobs ({', '.join(POISON_KINDS)})",
        total,
        f"{len(poisoned)} poisoned + {len(UNREADABLE)} unreadable",
        audit,
        reported,
        wall,
        {
            "batch_id": batch.batch_id,
            "poisoned": poisoned,
            "dead_letters": dead,
            "attempts": {j: int(records[j]["attempts"]) for j in poisoned},
        },
    )


def run_retryable(
    stack: ChaosStack, spec: BatchSpec, clean: CleanRun, workers: int = 2, clean_wall_s: float | None = None
) -> ScenarioResult:
    batch = ChaosBatch.register(stack, spec, "retryable")
    workers_started = stack.start_workers(workers, faults=RETRYABLE_WORKER_FAULTS)
    collector = stack.start_collector(faults=RETRYABLE_COLLECTOR_FAULTS)
    batch.send([encode_job(j) for j in batch.jobs])
    complete = batch.wait_complete()
    wall = _elapsed(batch)
    audit = batch.audit(clean)
    redelivered = [j["job_id"] for j in stack.store.list_jobs(batch.batch_id) if int(j["attempts"]) > 1]
    injected = stack.injected()
    throttled = sum(n for k, n in injected.items() if k.endswith("throttle"))
    # Recovery: from each worker's failed read to the last redelivered job counted, and from the
    # collector's failed summary read to the batch COMPLETE.
    errors = {pid: t for pid, fault, t in stack.faults() if fault == "s3.GetObject error"}
    first_worker_error = min((errors[p.pid] for p in workers_started if p.pid in errors), default=None)
    recover = [complete - errors[collector.pid]] if collector.pid in errors else []
    if redelivered and first_worker_error is not None:
        recover.append(max(batch.finished_at(j) for j in redelivered) - first_worker_error)
    return ScenarioResult(
        "retryable",
        "S3 read errors and throttling (DynamoDB, SQS, S3)",
        len(batch.jobs),
        f"{len(redelivered)} redelivered, {throttled} requests throttled",
        audit,
        max(recover, default=None),
        wall,
        {"redelivered": redelivered, "injected": dict(injected), "clean_wall_s": clean_wall_s},
    )


class Interrupted(Exception):
    """Raised from the progress callback to stop a run mid-batch, as Ctrl-C would."""


def run_emulator_restart(
    spec: BatchSpec,
    clean: CleanRun,
    state_dir: Path,
    *,
    workers: int = 2,
    at: float = 0.6,
    prefix: str | None = None,
    resume: Callable[[str], dict[str, Any]] | None = None,
) -> ScenarioResult:
    """A batch run like run_batch.py (LocalRuntime, an emulator keeping its state in `state_dir`,
    `execute_batch`), stopped once `at` of its jobs are counted; a new runtime restores the state and the
    same batch id is resumed — by `execute_batch` again, or by `resume(batch_id)` (e.g. run_batch.py
    --resume) when given. `spec` must plan the same jobs with `execute_batch`'s default target; `prefix`
    defaults to config/stack.yaml's, the one run_batch.py uses."""
    config = load_stack() if prefix is None else replace(load_stack(), prefix=prefix)
    batch = batch_id(spec, salt="restart")
    limit = batch_timeout(count_backtests(spec))
    started = time.monotonic()

    def interrupt(record: Mapping[str, Any]) -> None:
        if int(record["succeeded"]) + int(record["failed"]) >= at * int(record["total_jobs"]):
            raise Interrupted

    emulator = Emulator(state_dir=state_dir, fresh=True, region=config.region)
    with LocalRuntime(config, workers, VISIBILITY_TIMEOUT_S, emulator) as rt:
        try:
            execute_batch(rt.submitter(), spec, batch, depth=10_000, timeout_s=limit, on_progress=interrupt)
        except Interrupted:
            rt.group.stop()  # what leaving the block does first: the state saved next is what is read here
            kept = sorted(j["job_id"] for j in rt.store().list_jobs(batch) if j.get("status") in TERMINAL)
        else:
            raise ChaosError(f"batch {batch} completed before the restart: give it more jobs")
    restarted = time.time()
    details: dict[str, Any] = {"kept": kept}
    if resume is not None:
        details["resume"] = resume(batch)
        with restored_store(state_dir, config) as store:
            return _restart_result(store, batch, spec, clean, restarted, started, details)
    emulator = Emulator(state_dir=state_dir, region=config.region)
    with LocalRuntime(config, workers, VISIBILITY_TIMEOUT_S, emulator) as rt:
        execute_batch(rt.submitter(), spec, batch, depth=10_000, timeout_s=limit, alive=rt.alive)
        details["restored"] = dict(emulator.timings)
        return _restart_result(rt.store(), batch, spec, clean, restarted, started, details)


@contextmanager
def restored_store(state_dir: Path, config: StackConfig) -> Iterator[Store]:
    """The stack's store on an emulator restored from `state_dir` (read-only: it saves nothing back)."""
    emulator = Emulator(state_dir=state_dir, read_only=True, region=config.region).start()
    try:
        os.environ.update(emulator.environ())
        names = config.names()
        clients = ClientFactory(endpoint_url=emulator.endpoint_url, region=config.region, faults=None)
        yield Store(clients, names.table, names.bucket)
    finally:
        emulator.stop()


def _restart_result(
    store: Store,
    batch: str,
    spec: BatchSpec,
    clean: CleanRun,
    restarted: float,
    started: float,
    details: dict[str, Any],
) -> ScenarioResult:
    record = store.get_batch(batch)
    jobs = plan_jobs(spec, batch, bars=spec.data.periods)
    audit = audit_batch(store, batch, clean.expected(jobs))
    finished = _timestamp(record["finished_at"])
    records = store.list_jobs(batch)
    details["attempts"] = {str(j["job_id"]): int(j["attempts"]) for j in records}
    return ScenarioResult(
        "emulator-restart",
        "emulator stopped mid-batch and restarted from its saved state",
        len(jobs),
        f"{len(jobs) - len(details['kept'])} without an outcome at the stop",
        audit,
        finished - restarted,
        time.monotonic() - started,
        details,
    )


# ------------------------------------------------------------------------------------------------ main


def render_table(results: Sequence[ScenarioResult]) -> str:
    lines = [
        "| fault | jobs | jobs affected | results lost | duplicates | time to recover | wall time |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        recover = f"{r.recover_s:.1f} s" if r.recover_s is not None else "-"
        lines.append(
            f"| {r.fault} | {r.jobs:,} | {r.affected} | {len(r.audit.lost)} | {r.audit.duplicates} | "
            f"{recover} | {r.wall_s:.1f} s |"
        )
    notes = [f"- {r.name}: {RECOVERY[r.name]}" for r in results if r.name != "clean"]
    return "\n".join([*lines, "", "Time to recover:", *notes])


@contextmanager
def running_emulator() -> Iterator[Emulator]:
    emulator = Emulator().start()
    saved = dict(os.environ)
    try:
        yield emulator
    finally:
        emulator.stop()
        os.environ.clear()
        os.environ.update(saved)


def run_scenarios(
    names: Sequence[str], jobs: int, workers: int, work: Path, repeat: int = 1
) -> list[ScenarioResult]:
    """A clean batch, then each scenario, `repeat` times; every scenario on an emulator of its own: moto
    keeps every table copy a TransactWriteItems makes (about 2.5 MB per transaction on a 500-job table), so
    a shared emulator would grow by gigabytes."""
    spec = chaos_spec(jobs)
    clean = CleanRun(spec)
    results: list[ScenarioResult] = []
    for n in range(repeat):
        baseline = run_on_stack(f"chaos{n}-clean", work, lambda s: run_clean(s, spec, clean, workers))
        results.append(baseline)

        def retryable(s: ChaosStack, wall: float = baseline.wall_s) -> ScenarioResult:
            return run_retryable(s, spec, clean, workers, wall)

        scenarios: dict[str, Callable[[ChaosStack], ScenarioResult]] = {
            "duplicates": lambda s: run_duplicates(s, spec, clean, workers),
            "worker-kills": lambda s: run_worker_kills(s, spec, clean, max(1, workers - 1)),
            "collector-crashes": lambda s: run_collector_crashes(s, spec, clean, workers),
            "poison": lambda s: run_poison(s, spec, clean, workers),
            "retryable": retryable,
        }
        for name in names:
            if name in scenarios:
                results.append(run_on_stack(f"chaos{n}-{name}", work, scenarios[name]))
    if "emulator-restart" in names:
        # One job per parameter set whatever the planner's target: the resumed run plans the same jobs.
        restart_spec = chaos_spec(jobs, job_type="TIMEZONE_ANALYSIS")
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(dir=work) as state:
                results.append(
                    run_emulator_restart(restart_spec, CleanRun(restart_spec), Path(state), workers=workers)
                )
    return results


def run_on_stack(prefix: str, work: Path, scenario: Callable[[ChaosStack], ScenarioResult]) -> ScenarioResult:
    """`scenario` on a stack of its own, on an emulator of its own."""
    with running_emulator() as emulator:
        stack = ChaosStack.create(emulator, prefix, work)
        try:
            return scenario(stack)
        finally:
            stack.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=500, help="jobs per batch (default 500)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each scenario (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: all")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    if args.jobs < 20 or args.workers < 1 or args.repeat < 1:
        parser.exit(2, f"{parser.prog}: error: --jobs >= 20, --workers >= 1 and --repeat >= 1\n")
    with tempfile.TemporaryDirectory(prefix="chaos-") as work:
        results = run_scenarios(args.scenario or SCENARIOS, args.jobs, args.workers, Path(work), args.repeat)
    if args.json:
        rows = [
            {
                "scenario": r.name,
                "fault": r.fault,
                "jobs": r.jobs,
                "affected": r.affected,
                "lost": len(r.audit.lost),
                "duplicates": r.audit.duplicates,
                "counters": r.audit.counters,
                "expected_counters": r.audit.expected_counters,
                "recover_s": r.recover_s,
                "wall_s": r.wall_s,
            }
            for r in results
        ]
        print(json.dumps(rows))
    else:
        print(render_table(results))
    return 0 if all(r.audit.clean for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
