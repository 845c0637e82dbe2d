"""Emulator benchmark: server CPU per request of the embedded default's emulator (scripts/opslib/
emulator_server.py) against moto's server as shipped (`python -m moto.server`), in the same run.

The requests are the ones one job costs in the pipeline (docs/benchmarks.md), made by the pipeline's own
`Store` on the stack `ensure_stack` creates, whose table already holds `--items` job records (a 1,000-job
batch by default): moto's own TransactWriteItems copies the whole table for each entry, so its cost grows
with the table; ours backs up only the named items.

    python benchmarks/emulator.py [--requests 100] [--items 1000] [--json]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from tabulate import tabulate

from backtesting_modules.jobs.runner import JobStatus
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.records import BatchRecord, JobOutcome, JobRecord
from backtesting_modules.pipeline.store import Store, now_iso
from opslib.local.emulator import Emulator
from opslib.local.provision import ensure_stack
from opslib.local.runtime import process_cpu_seconds
from opslib.stack import load_stack

BATCH = "bench"


def _prepare(clients: ClientFactory, items: int) -> tuple[Store, str]:
    """The stack as the local runtime creates it, and a batch of `items` pending job records."""
    stack = load_stack()
    names = stack.names()
    urls = ensure_stack(clients, stack, names)
    store = Store(clients, names.table, names.bucket)
    store.create_batch(BatchRecord(BATCH, name=BATCH, created_at=now_iso(), total_jobs=items))
    jobs = [JobRecord(f"j{i:06d}", strategy="SMA_Crossover", symbols=("KRW-BTC",)) for i in range(items)]
    store.put_pending_jobs(BATCH, jobs)
    return store, urls[names.job_queue]


def _operations(store: Store, queue: str, items: int) -> dict[str, Callable[[int], Any]]:
    """The pipeline's own calls (`Store`), each on another job, and the SQS and CloudWatch requests."""
    sqs, cloudwatch = store.clients.client("sqs"), store.clients.client("cloudwatch")
    rng = np.random.default_rng(0)
    body = base64.b64encode(rng.random(4175 * 20).tobytes())  # a job's stored result, ~0.9 MB
    digest = {"top": [{"params": {"fast": i}, "metrics": list(range(20))} for i in range(50)]}
    outcome = JobOutcome(JobStatus.SUCCEEDED, backtests=4175, duration_s=1.0)

    def job(i: int) -> str:
        return f"j{i % items:06d}"

    def receive_and_delete(_: int) -> None:
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(digest)[:600])
        for m in sqs.receive_message(QueueUrl=queue, AttributeNames=["All"]).get("Messages", []):
            entry = {"Id": "0", "ReceiptHandle": m["ReceiptHandle"]}
            sqs.delete_message_batch(QueueUrl=queue, Entries=[entry])

    return {
        "DynamoDB UpdateItem (mark running)": lambda i: store.mark_running(BATCH, job(i), "host:1"),
        "DynamoDB TransactWriteItems (count a job)": lambda i: store.record_outcome(BATCH, job(i), outcome),
        "DynamoDB GetItem (batch record)": lambda i: store.get_batch(BATCH),
        "S3 PutObject (result body, 0.9 MB)": lambda i: store.put_result_body(f"r/{i}", body),
        "S3 PutObject (digest)": lambda i: store.put_json(f"d/{i}", digest),
        "S3 GetObject (digest)": lambda i: store.get_json(f"d/{i}"),
        "SQS send + receive + delete": receive_and_delete,
        "SQS GetQueueAttributes": lambda i: sqs.get_queue_attributes(
            QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"]
        ),
        "CloudWatch PutMetricData": lambda i: cloudwatch.put_metric_data(
            Namespace="Bench", MetricData=[{"MetricName": "Jobs", "Value": 1.0, "Unit": "Count"}]
        ),
    }


def measure(stock: bool, requests: int, items: int) -> dict[str, float]:
    """Server CPU milliseconds per request, by operation."""
    server = Emulator(stock=stock).start()
    try:
        os.environ.update(server.environ())
        clients = ClientFactory(endpoint_url=server.endpoint_url, region="ap-northeast-2")
        store, queue = _prepare(clients, items)
        pid = server.process.pid if server.process else 0
        costs = {}
        for name, operation in _operations(store, queue, items).items():
            operation(0)  # warm: the first call of a service loads its backend
            before = process_cpu_seconds(pid)
            for i in range(1, requests + 1):
                operation(i)
            after = process_cpu_seconds(pid)
            if before is None or after is None:
                raise SystemExit("this benchmark reads /proc/<pid>/stat: run it on Linux")
            costs[name] = 1000.0 * (after - before) / requests
        return costs
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=100, help="requests per operation (default 100)")
    parser.add_argument("--items", type=int, default=1000, help="job records in the table (default 1000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    stock = measure(True, args.requests, args.items)
    ours = measure(False, args.requests, args.items)
    rows = [[name, stock[name], ours[name], stock[name] / max(ours[name], 1e-9)] for name in stock]
    print(f"# Emulator: server CPU per request, {args.items:,} job records in the table\n")
    print(
        tabulate(
            rows,
            headers=["request", "moto.server (ms)", "emulator_server (ms)", "ratio"],
            floatfmt=("", ".2f", ".2f", ".1f"),
            tablefmt="github",
        )
    )
    print(f"\n{time.perf_counter() - started:.0f} s; CPU from /proc, {args.requests} requests each.")
    if args.json:
        print(json.dumps({"items": args.items, "stock_ms": stock, "ours_ms": ours}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
