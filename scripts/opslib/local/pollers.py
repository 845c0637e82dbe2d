"""Local processes that poll SQS and call the real Lambda handlers with real SQS event shapes.

What Lambda's SQS event source mapping does, the poller does too: it receives up to `batch_size` messages
(priority queue first), calls the handler, deletes the records that succeeded and leaves the ones listed in
`batchItemFailures`, which return after the visibility timeout; the queue's redrive policy moves a message
to the DLQ after `maxReceiveCount` receives. A killed poller loses nothing: its messages return the same way.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import ModuleType
from typing import Any

from backtesting_modules.names import StackNames
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.env import BLAS_THREAD_VARIABLES

from ..errors import LocalSetupError
from .emulator import LOCAL_CREDENTIALS
from .faults import FaultInjector
from .lifetime import die_with_parent

ROOT = Path(__file__).resolve().parents[3]
POLL_WAIT_S = 1  # the pollers' SQS long-poll wait (short: a stopped poller's pending receive runs out fast)


def load_handler(function: str) -> ModuleType:
    """Import `lambdas/<function>/handler.py` the way Lambda does: by file, as module `handler`."""
    path = ROOT / "lambdas" / function / "handler.py"
    spec = importlib.util.spec_from_file_location(f"lambda_{function}_handler", path)
    if spec is None or spec.loader is None:
        raise LocalSetupError(f"no handler at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A message as Lambda's SQS event source delivers it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {  # Lambda's shape: lower-case keys (the collector reads batch_id, job_id)
            name: {"stringValue": value.get("StringValue"), "dataType": value.get("DataType", "String")}
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


@dataclass
class LambdaContext:
    """The parts of Lambda's context object the handlers read."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 1769
    invoked_function_arn: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@dataclass(frozen=True)
class PollerSpec:
    """One poller process: its function, its queues (the first has priority), the handler's environment,
    and the faults to inject into its AWS calls (`faults.FaultInjector`; the chaos suite and tests only)."""

    function: str
    queue_urls: tuple[str, ...]
    environ: Mapping[str, str]
    batch_size: int = 1
    wait_s: int = POLL_WAIT_S
    faults: str = ""
    fault_log: str | None = None


def function_poller(
    function: str,
    names: StackNames,
    urls: Mapping[str, str],
    environ: Mapping[str, str],
    *,
    faults: str = "",
    fault_log: str | None = None,
) -> PollerSpec:
    """The poller of `function` as the stack's event source mappings feed it: the worker takes one job at a
    time, priority queue first; the collector up to 10 results."""
    if function == "worker":
        jobs = (urls[names.priority_queue], urls[names.job_queue])
        return PollerSpec("worker", jobs, environ, batch_size=1, faults=faults, fault_log=fault_log)
    results = (urls[names.result_queue],)
    return PollerSpec("collector", results, environ, batch_size=10, faults=faults, fault_log=fault_log)


class NormalSlots:
    """At most `limit` workers on NORMAL-queue jobs at once, as the worker's `normal_maximum_concurrency`
    caps the normal queue's event source mapping on AWS (the others take only priority jobs, or wait). A
    worker holds a slot, under its pid, from the normal queue's receive until its handler returns; the
    supervisor frees the slots of a worker that died (`release`), so a SIGKILL cannot leak one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.holders = mp.get_context("spawn").Array("i", limit)  # pids; 0: free

    def acquire(self, pid: int) -> bool:
        with self.holders.get_lock():
            for i in range(self.limit):
                if self.holders[i] == 0:
                    self.holders[i] = pid
                    return True
        return False

    def release(self, pid: int) -> None:
        with self.holders.get_lock():
            for i in range(self.limit):
                if self.holders[i] == pid:
                    self.holders[i] = 0

    def held(self) -> list[int]:
        with self.holders.get_lock():
            return [pid for pid in self.holders[:] if pid]


@dataclass
class PollerShared:
    """What the poller processes of a group share with the driver: counters (handler invocations that
    raised, records left for redelivery) and the normal-queue slots. Without counters nothing is counted."""

    counters: Any = None  # a spawn-context Array("i", 2): [crashes, failed records]
    normal_slots: NormalSlots | None = None

    @classmethod
    def create(cls) -> PollerShared:
        return cls(mp.get_context("spawn").Array("i", 2))

    def count(self, *, crashes: int = 0, records: int = 0) -> None:
        if self.counters is None:
            return
        with self.counters.get_lock():
            self.counters[0] += crashes
            self.counters[1] += records

    def read(self) -> tuple[int, int]:
        """(crashes, failed records) so far."""
        if self.counters is None:
            return 0, 0
        with self.counters.get_lock():
            return int(self.counters[0]), int(self.counters[1])


def _queue_arns(clients: ClientFactory, urls: tuple[str, ...]) -> dict[str, str]:
    sqs = clients.client("sqs")
    return {
        url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for url in urls
    }


def _receive_from(sqs: Any, spec: PollerSpec, url: str, wait_s: int) -> list[dict[str, Any]]:
    return list(
        sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=spec.batch_size,
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
    )


def _receive(
    sqs: Any, spec: PollerSpec, slots: NormalSlots | None = None
) -> tuple[str, list[dict[str, Any]], bool] | None:
    """Priority queues first (no wait), then the last (normal) queue with a short long-poll: (queue, its
    messages, whether a normal slot is held for them). With `slots`, the normal queue is read only while
    this process holds one of them; without a free slot it long-polls the first (priority) queue instead."""
    *priority, normal = spec.queue_urls
    for url in priority:
        messages = _receive_from(sqs, spec, url, 0)
        if messages:
            return url, messages, False
    if slots is None or slots.acquire(os.getpid()):
        messages = _receive_from(sqs, spec, normal, spec.wait_s)
        if messages:
            return normal, messages, slots is not None
        if slots is not None:
            slots.release(os.getpid())
        return None
    if not priority:  # nothing else to wait on (no poller is set up this way)
        time.sleep(spec.wait_s)
        return None
    messages = _receive_from(sqs, spec, priority[0], spec.wait_s)
    return (priority[0], messages, False) if messages else None


def _die_with_parent() -> None:
    """SIGTERM this poller when the thread that started it ends (`lifetime.die_with_parent`), and leave at
    once if the driver died before that was asked."""
    if not die_with_parent():
        return
    parent = mp.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the driver died before the prctl
        sys.exit(0)


def _job_ids(messages: list[dict[str, Any]]) -> str:
    """The jobs of `messages` for a log line: the `job_id` of each body, else its message id."""
    out = []
    for m in messages:
        try:
            body = json.loads(m["Body"])
            out.append(f"job {body['job_id']}")
        except (ValueError, RecursionError, TypeError, KeyError):
            out.append(f"message {m['MessageId']}")
    return ", ".join(out)


def _invoke(handler: ModuleType, spec: PollerSpec, event: dict[str, Any], shared: PollerShared) -> set[str]:
    """Call the handler as Lambda does; the message ids to leave for redelivery (all of them when it
    raises: Lambda then logs the traceback and counts an error, and so does this, on stderr)."""
    messages = event["Records"]
    try:
        response = handler.handler(event, LambdaContext(spec.function)) or {}
    except Exception:
        shared.count(crashes=1, records=len(messages))
        print(
            f"{spec.function} {os.getpid()}: the handler raised on "
            f"{_job_ids([_as_message(r) for r in messages])}; the messages return after the visibility "
            f"timeout:\n{traceback.format_exc()}",
            file=sys.stderr,
            flush=True,
        )
        return {r["messageId"] for r in messages}
    failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    if failed:
        shared.count(records=len(failed))
        ids = _job_ids([_as_message(r) for r in messages if r["messageId"] in failed])
        print(
            f"{spec.function} {os.getpid()}: {len(failed)} of {len(messages)} records failed and return "
            f"after the visibility timeout: {ids}",
            file=sys.stderr,
            flush=True,
        )
    return failed


def _as_message(record: dict[str, Any]) -> dict[str, Any]:
    return {"Body": record["body"], "MessageId": record["messageId"]}


def poll_forever(spec: PollerSpec, shared: PollerShared | None = None) -> None:
    """Entry point of a poller process: receive, invoke the handler, delete what succeeded. `shared`: the
    counters and normal-queue slots of the process group (`ProcessGroup`)."""
    _die_with_parent()
    shared = shared or PollerShared()
    os.environ.update(spec.environ)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's: it stops the pollers (SIGTERM)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked since the spawn: now ignored
    if spec.faults:
        FaultInjector(spec.faults, spec.fault_log).install()  # before any client is built
    clients = ClientFactory.from_environ()
    handler = load_handler(spec.function)
    arns = _queue_arns(clients, spec.queue_urls)
    sqs = clients.client("sqs")
    region = clients.region or LOCAL_CREDENTIALS["AWS_REGION"]
    # Deletes go out from a thread while the next receive is already on its way, as the event source
    # mapping's pollers delete apart from the function; a delete lost to a crash only means a redelivery.
    deleter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delete")
    while True:
        received = _receive(sqs, spec, shared.normal_slots)
        if received is None:
            continue
        url, messages, held = received
        event = {"Records": [sqs_record(m, arns[url], region) for m in messages]}
        try:
            failed = _invoke(handler, spec, event, shared)
        finally:
            if held and shared.normal_slots is not None:
                shared.normal_slots.release(os.getpid())
        done = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if m["MessageId"] not in failed
        ]
        if done:
            deleter.submit(sqs.delete_message_batch, QueueUrl=url, Entries=done).add_done_callback(
                _report_delete_failure
            )


def _report_delete_failure(future: Future[Any]) -> None:
    if future.exception() is not None:
        print(
            f"deleting processed messages failed (they will be redelivered): {future.exception()}",
            file=sys.stderr,
        )


# A poller stands for one Lambda container with one vCPU: one BLAS thread (`pipeline.env.ONE_BLAS_THREAD`
# says why), set around the spawn so the child has it before numpy loads; values the user set win.


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    added = [name for name in BLAS_THREAD_VARIABLES if name not in os.environ]
    for name in added:
        os.environ[name] = "1"
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread while it spawns a poller. The child inherits the mask through its exec,
    so a Ctrl-C while it imports (spawn runs the driver's main module again, seconds with its imports) stays
    pending until `poll_forever` ignores it, instead of a KeyboardInterrupt traceback. The driver still
    gets the Ctrl-C: another of its threads takes the signal, and Python runs the handler in the main one."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@dataclass
class ProcessGroup:
    """Poller processes started together and stopped together (also on Ctrl-C), and what they share
    (`PollerShared`: the handler-crash counters; the normal-queue slots, `limit_normal`). Nothing replaces a
    process that exits: the chaos suite kills processes and starts their successors itself. The local
    runtime's `runtime.SupervisedGroup` replaces them, as Lambda keeps its concurrency."""

    processes: list[BaseProcess] = field(default_factory=list)
    specs: dict[int, PollerSpec] = field(default_factory=dict)  # pid → the spec it was started with
    shared: PollerShared | None = None  # created with the first process
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def _shared(self) -> PollerShared:
        if self.shared is None:
            self.shared = PollerShared.create()
        return self.shared

    def limit_normal(self, limit: int | None) -> None:
        """At most `limit` of the worker processes started from now on on normal-queue jobs at once
        (None: no limit). Workers are the pollers with a priority queue before the normal one."""
        self._shared().normal_slots = NormalSlots(limit) if limit is not None else None

    def start(self, spec: PollerSpec, count: int = 1) -> list[BaseProcess]:
        with self._lock:
            return [self._spawn(spec) for _ in range(count)]

    def _spawn(self, spec: PollerSpec) -> BaseProcess:
        shared = self._shared()
        if len(spec.queue_urls) < 2:
            shared = replace(shared, normal_slots=None)
        context = mp.get_context("spawn")
        with single_threaded_blas(), sigint_blocked():
            process = context.Process(target=poll_forever, args=(spec, shared), daemon=True)
            process.start()
        self.processes.append(process)
        self.specs[process.pid or 0] = spec
        return process

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 5 s); an interrupt on the way still kills them."""
        try:
            for process in self.processes:
                if process.is_alive():
                    process.terminate()
            for process in self.processes:
                process.join(timeout=5)
        finally:
            for process in self.processes:
                if process.is_alive():
                    process.kill()
                    process.join(timeout=1)
            self.processes.clear()

    def alive(self) -> bool:
        """False once every process of some function has exited: nothing would ever finish a batch (True
        with no processes)."""
        return self._every_function(lambda p: p.is_alive())

    def _every_function(self, up: Callable[[BaseProcess], bool]) -> bool:
        with self._lock:
            running: dict[str, bool] = {}
            for process in self.processes:
                function = self.specs[process.pid or 0].function
                running[function] = running.get(function, False) or up(process)
            return all(running.values())

    def roles(self) -> dict[int, str]:
        """pid → function of the processes in the group."""
        with self._lock:
            return {p.pid or 0: self.specs[p.pid or 0].function for p in self.processes}

    def counts(self) -> tuple[int, int]:
        """(handler invocations that raised, records left for redelivery) over the group's life."""
        return self.shared.read() if self.shared is not None else (0, 0)

    def dead(self) -> list[BaseProcess]:
        return [p for p in self.processes if not p.is_alive()]


def wait_until(condition: Callable[[], bool], timeout_s: float, every_s: float = 0.2) -> bool:
    """Poll `condition` until it holds or time runs out (for progress on emulated resources, which
    offer no waiters)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return condition()
