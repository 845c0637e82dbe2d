"""Local processes that poll SQS and call the real Lambda handlers with real SQS event shapes.

What Lambda's SQS event source mapping does, the poller does too: it receives up to `batch_size` messages
(priority queue first), calls the handler, deletes the records that succeeded and leaves the ones listed in
`batchItemFailures`, which return after the visibility timeout; the queue's redrive policy moves a message
to the DLQ after `maxReceiveCount` receives. A killed poller loses nothing: its messages return the same way.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing as mp
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from backtesting_modules.names import StackNames
from backtesting_modules.pipeline.clients import ClientFactory

from ..errors import LocalSetupError
from .emulator import LOCAL_CREDENTIALS
from .faults import FaultInjector

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
        "messageAttributes": {},
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


def _queue_arns(clients: ClientFactory, urls: tuple[str, ...]) -> dict[str, str]:
    sqs = clients.client("sqs")
    return {
        url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for url in urls
    }


def _receive(sqs: Any, spec: PollerSpec) -> tuple[str, list[dict[str, Any]]] | None:
    """Priority queue first (no wait), then the others with a short long-poll on the last."""
    for i, url in enumerate(spec.queue_urls):
        last = i == len(spec.queue_urls) - 1
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=spec.batch_size,
            WaitTimeSeconds=spec.wait_s if last else 0,
            AttributeNames=["All"],
        ).get("Messages", [])
        if messages:
            return url, messages
    return None


def poll_forever(spec: PollerSpec) -> None:
    """Entry point of a poller process: receive, invoke the handler, delete what succeeded."""
    os.environ.update(spec.environ)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's: it stops the pollers (SIGTERM)
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
        received = _receive(sqs, spec)
        if received is None:
            continue
        url, messages = received
        event = {"Records": [sqs_record(m, arns[url], region) for m in messages]}
        try:
            response = handler.handler(event, LambdaContext(spec.function)) or {}
        except Exception:
            response = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
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


# A poller stands for one Lambda container with one vCPU: its numpy must not start a BLAS thread per core.
# With OpenBLAS's default, two worker processes on two cores slowed each other's engine ~4x (the indicators'
# block matmul); the pool is sized when numpy loads, so the variables must be in the child's environment
# before it imports anything: they are set around the spawn (values already set by the user win).
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


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


@dataclass
class ProcessGroup:
    """Poller processes started together and stopped together (also on Ctrl-C)."""

    processes: list[mp.process.BaseProcess] = field(default_factory=list)

    def start(self, spec: PollerSpec, count: int = 1) -> list[mp.process.BaseProcess]:
        context = mp.get_context("spawn")
        started: list[mp.process.BaseProcess] = []
        with single_threaded_blas():
            for _ in range(count):
                process = context.Process(target=poll_forever, args=(spec,), daemon=True)
                process.start()
                started.append(process)
        self.processes += started
        return started

    def stop(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        self.processes.clear()

    def dead(self) -> list[mp.process.BaseProcess]:
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
