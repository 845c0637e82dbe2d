"""The embedded default taken apart, for the end-to-end tests and the chaos suite: one stack (queues, table,
bucket under a fresh prefix) on a running emulator, with worker and collector processes started one at a
time, each with its own injected faults, and the queues read back. `LocalRuntime` runs the same pieces
for a whole batch; a `Testbed` lets a test or a chaos scenario interfere between them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.process import BaseProcess
from pathlib import Path

from backtesting_modules.names import StackNames
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.env import HandlerEnv
from backtesting_modules.pipeline.store import Store

from ..stack import StackConfig, load_stack
from .emulator import Emulator
from .pollers import PollerSpec, ProcessGroup, function_poller, wait_until
from .provision import ensure_stack


@dataclass
class Testbed:
    """One stack on a running emulator and the poller processes started on it (stopped by `stop`)."""

    __test__ = False  # a harness, not a test class for pytest to collect

    emulator: Emulator
    config: StackConfig
    clients: ClientFactory
    names: StackNames
    urls: dict[str, str]
    fault_log: Path
    inline_result_limit: int | None = None  # None: the stack's
    group: ProcessGroup = field(default_factory=ProcessGroup)

    @classmethod
    def create(
        cls,
        emulator: Emulator,
        prefix: str,
        work: Path,
        *,
        visibility_timeout_s: int = 3,
        inline_result_limit: int | None = None,
    ) -> Testbed:
        """A stack named by `prefix` (config/stack.yaml otherwise); messages a dead process held come back
        after `visibility_timeout_s`; fault logs go to `work`."""
        os.environ.update(emulator.environ())  # boto3 reads the (fake) credentials from the environment
        config = replace(load_stack(), prefix=prefix)
        clients = ClientFactory(endpoint_url=emulator.endpoint_url, region=config.region)
        names = config.names()
        urls = ensure_stack(clients, config, names, visibility_timeout_s=visibility_timeout_s)
        work.mkdir(parents=True, exist_ok=True)
        fault_log = work / f"{prefix}-faults.log"
        return cls(emulator, config, clients, names, urls, fault_log, inline_result_limit)

    @property
    def store(self) -> Store:
        return Store(self.clients, self.names.table, self.names.bucket)

    def handler_env(self) -> HandlerEnv:
        env = self.config.handler_env(self.names, self.urls)
        if self.inline_result_limit is not None:
            env = replace(env, inline_result_limit=self.inline_result_limit)
        return env

    def poller(self, function: str, faults: str = "") -> PollerSpec:
        """The poller of `function` ("worker": priority then job queue, one message at a time;
        "collector": the result queue, up to 10), as the local runtime starts it."""
        environ = {**self.emulator.environ(), **self.handler_env().to_environ()}
        log = str(self.fault_log)
        return function_poller(function, self.names, self.urls, environ, faults=faults, fault_log=log)

    def start_workers(self, count: int, faults: str = "") -> list[BaseProcess]:
        return self.group.start(self.poller("worker", faults), count=count)

    def start_collector(self, faults: str = "") -> BaseProcess:
        (process,) = self.group.start(self.poller("collector", faults))
        return process

    def stop(self) -> None:
        self.group.stop()

    def send(self, bodies: Sequence[str], queue: str | None = None) -> None:
        """Message bodies to a queue (the job queue by default), in requests of 10."""
        sqs = self.clients.client("sqs")
        url = self.urls[queue or self.names.job_queue]
        for i in range(0, len(bodies), 10):
            entries = [{"Id": str(n), "MessageBody": b} for n, b in enumerate(bodies[i : i + 10])]
            sqs.send_message_batch(QueueUrl=url, Entries=entries)

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
        return all(self.messages(q) == 0 for q in self.names.work_queues)

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
