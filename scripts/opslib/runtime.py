"""Running a batch end to end: on the embedded default (`LocalRuntime`: emulator, stack, worker and
collector processes) or on a deployed stack, with the same `execute_batch`.

`run_batch.py` runs one batch per runtime; the benchmarks keep one runtime up across many batches (like
warm Lambda containers) and read the per-process CPU time it accounts, to say which part of the pipeline
limits a run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from botocore.exceptions import ClientError

from backtesting_modules.jobs.planner import DEFAULT_TARGET_SECONDS, Job, plan_jobs
from backtesting_modules.jobs.spec import BatchSpec
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.names import ConfigurationError, HandlerEnv, StackNames
from backtesting_modules.pipeline.store import Store

from .batch import Submitter, fetch_summary, largest_first
from .local import Emulator, PollerSpec, ProcessGroup
from .resources import ensure_stack
from .stack import StackConfig

POLL_WAIT_S = 1  # the pollers' SQS long-poll wait
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux /proc); None where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, idle) CPU seconds of the whole machine since boot, all cores (Linux /proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            ticks = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal (guest is in user)
    return busy / CLOCK_TICKS, idle / CLOCK_TICKS


@dataclass
class LocalRuntime:
    """The embedded default, up for as long as the `with` block: a moto server on 127.0.0.1, the stack
    created from config/stack.yaml, `workers` worker processes and one collector process."""

    stack: StackConfig
    workers: int = 2
    visibility_timeout_s: int = 60
    emulator: Emulator = field(default_factory=Emulator)
    group: ProcessGroup = field(default_factory=ProcessGroup)
    clients: ClientFactory | None = None
    names: StackNames | None = None
    urls: dict[str, str] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)  # pid → "worker" / "collector"

    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> LocalRuntime:
        self.emulator.start()
        try:
            os.environ.update(self.emulator.environ())
            self.clients = ClientFactory(endpoint_url=self.emulator.endpoint_url, region=self.stack.region)
            self.names = self.stack.names()
            self.urls = ensure_stack(
                self.clients, self.stack, self.names, visibility_timeout_s=self.visibility_timeout_s
            )
            self.start_pollers(self.workers)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.group.stop()
        self.roles.clear()
        self.emulator.stop()

    def start_pollers(self, workers: int) -> None:
        """(Re)start `workers` worker processes and the collector; they poll until stopped."""
        if self.group.processes:
            self.group.stop()
            # A poller stopped during a long poll leaves its receive pending in the emulator, which would
            # hand the next message to a dead client (it then returns only after the visibility timeout).
            # The emulator cannot cancel it: let the pending receives (1 s long polls) run out first.
            time.sleep(POLL_WAIT_S + 0.5)
        self.roles.clear()
        names = self._names()
        env = HandlerEnv(
            table=names.table,
            bucket=names.bucket,
            result_queue_url=self.urls[names.result_queue],
            max_receive_count=self.stack.queues.max_receive_count,
            metric_namespace=self.stack.metric_namespace,
            inline_result_limit=self.stack.inline_limit_bytes,
        ).to_environ()
        environ = {
            **self.emulator.environ(),
            **env,
            "DEAD_LETTER_QUEUE_URL": self.urls[names.dead_letter_queue],
        }
        job_queues = (self.urls[names.priority_queue], self.urls[names.job_queue])
        worker = PollerSpec("worker", job_queues, environ, batch_size=1, wait_s=POLL_WAIT_S)
        for process in self.group.start(worker, count=workers):
            self.roles[process.pid or 0] = "worker"
        collector = PollerSpec(
            "collector", (self.urls[names.result_queue],), environ, batch_size=10, wait_s=1
        )
        for process in self.group.start(collector):
            self.roles[process.pid or 0] = "collector"
        self.workers = workers

    def store(self) -> Store:
        names = self._names()
        return Store(self._clients(), names.table, names.bucket)

    def submitter(self) -> Submitter:
        return Submitter(self._clients(), self._names(), self.urls)

    def alive(self) -> bool:
        """False when every poller process has exited (nothing would ever finish the batch)."""
        return not self.group.processes or len(self.group.dead()) < len(self.group.processes)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by role: emulator, worker (all), collector, driver (this process), and
        the whole machine's busy and idle seconds (what other processes took shows as the difference)."""
        out = {"emulator": 0.0, "worker": 0.0, "collector": 0.0}
        process = self.emulator.process
        if process is not None:
            out["emulator"] = process_cpu_seconds(process.pid) or 0.0
        for pid, role in self.roles.items():
            out[role] += process_cpu_seconds(pid) or 0.0
        times = os.times()
        out["driver"] = times.user + times.system
        machine = machine_cpu_seconds()
        if machine is not None:
            out["machine_busy"], out["machine_idle"] = machine
        return out

    def _clients(self) -> ClientFactory:
        if self.clients is None:
            raise ConfigurationError("the local runtime is not started")
        return self.clients

    def _names(self) -> StackNames:
        if self.names is None:
            raise ConfigurationError("the local runtime is not started")
        return self.names


def deployed_submitter(clients: ClientFactory, stack: StackConfig) -> Submitter:
    """A submitter for the stack deployed in the credentials' account and region."""
    account = clients.client("sts").get_caller_identity()["Account"]
    names = stack.names(account_id=account)
    sqs = clients.client("sqs")
    urls = {}
    for name in (names.job_queue, names.priority_queue, names.result_queue, names.dead_letter_queue):
        try:
            urls[name] = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            raise ConfigurationError(
                f"queue {name} not found: the stack is not deployed in this account/region; "
                "deploy it with scripts/deploy_all.py (or use --target local)."
            ) from exc
    return Submitter(clients, names, urls)


@dataclass
class BatchOutcome:
    batch_id: str
    jobs: list[Job]
    bars: int  # bars per symbol the jobs were planned on
    record: dict[str, Any]
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


def _require_alive(alive: Callable[[], bool]) -> None:
    """Raise when every local poller has exited: nothing would ever finish the batch."""
    if not alive():
        raise ConfigurationError("every local worker process has exited; see the messages above.")


def execute_batch(
    submitter: Submitter,
    spec: BatchSpec,
    batch_id: str,
    *,
    depth: int,
    timeout_s: float,
    alive: Callable[[], bool] = lambda: True,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
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
        _require_alive(alive)
        return time.monotonic() < deadline

    record = store.get_batch(batch_id)
    if record["status"] != "COMPLETE":
        pending = jobs if created else submitter.pending(batch_id, jobs)  # a new batch has no outcomes yet
        submitter.send_in_waves(largest_first(pending), depth=depth, on_tick=tick, poll_s=0.5)
        record = store.get_batch(batch_id)
        while record["status"] != "COMPLETE" and time.monotonic() < deadline:
            _require_alive(alive)
            done = int(record["succeeded"]) + int(record["failed"])
            time.sleep(poll_interval(done, int(record["total_jobs"]), time.monotonic() - started))
            record = store.get_batch(batch_id)
            if on_progress is not None and record["status"] != "COMPLETE":
                on_progress(record)
    if record["status"] != "COMPLETE":
        raise ConfigurationError(
            f"batch {batch_id} did not complete within {timeout_s:.0f} s; resume it with --resume {batch_id}."
        )
    if on_progress is not None:
        on_progress(record)
    summary = fetch_summary(store, record)
    return BatchOutcome(batch_id, jobs, n_bars, record, summary, time.monotonic() - started)
