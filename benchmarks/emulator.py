"""Emulator benchmark: server CPU per request of the embedded default's emulator (scripts/opslib/
emulator_server.py) against moto's server as shipped (`python -m moto.server`), in the same run.

The requests are the ones one job costs in the pipeline (docs/benchmarks.md), on a table that already holds
`--items` job records (the size of a 1,000-job batch by default): moto's own TransactWriteItems copies the
whole table for each entry, so its cost grows with the table; ours backs up only the named items.

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

from backtesting_modules.pipeline.clients import ClientFactory
from opslib.local import Emulator
from opslib.runtime import process_cpu_seconds

TABLE, BUCKET, QUEUE = "bench-jobs", "bench-results", "bench-queue"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _job(i: int) -> dict[str, Any]:
    """A job record shaped like the pipeline's (about a dozen attributes)."""
    return {
        "PK": _s("BATCH#bench"),
        "SK": _s(f"JOB#{i:06d}"),
        "job_id": _s(f"j{i:06d}"),
        "status": _s("PENDING"),
        "attempts": {"N": "0"},
        "strategy": _s("SMA_Crossover"),
        "symbols": _s("KRW-BTC"),
        "backtests": {"N": "4175"},
        "ttl": {"N": "1900000000"},
        "worker": _s("host:1234"),
        "started_at": _s("2026-11-24T00:00:00.000+00:00"),
        "sent_at": _s("2026-11-24T00:00:00.000+00:00"),
    }


def _prepare(clients: ClientFactory, items: int) -> str:
    dynamodb = clients.client("dynamodb")
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName=TABLE, Item={"PK": _s("BATCH#bench"), "SK": _s("META"), "n": {"N": "0"}})
    for start in range(0, items, 25):
        requests = [{"PutRequest": {"Item": _job(i)}} for i in range(start, min(items, start + 25))]
        dynamodb.batch_write_item(RequestItems={TABLE: requests})
    clients.client("s3").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": clients.region or "ap-northeast-2"}
    )
    return str(clients.client("sqs").create_queue(QueueName=QUEUE)["QueueUrl"])


def _operations(clients: ClientFactory, queue: str, items: int) -> dict[str, Callable[[int], Any]]:
    dynamodb, s3, sqs = clients.client("dynamodb"), clients.client("s3"), clients.client("sqs")
    cloudwatch = clients.client("cloudwatch")
    rng = np.random.default_rng(0)
    body = base64.b64encode(rng.random(4175 * 20).tobytes())  # a job's stored result, ~0.9 MB
    digest = json.dumps({"top": [{"params": {"fast": i}, "metrics": list(range(20))} for i in range(50)]})
    meta = {"PK": _s("BATCH#bench"), "SK": _s("META")}

    def job_key(i: int) -> dict[str, Any]:
        return {"PK": _s("BATCH#bench"), "SK": _s(f"JOB#{i % items:06d}")}

    def receive_and_delete(_: int) -> None:
        sqs.send_message(QueueUrl=queue, MessageBody=digest[:600])
        for m in sqs.receive_message(QueueUrl=queue, AttributeNames=["All"]).get("Messages", []):
            sqs.delete_message_batch(
                QueueUrl=queue, Entries=[{"Id": "0", "ReceiptHandle": m["ReceiptHandle"]}]
            )

    return {
        "DynamoDB UpdateItem (mark running)": lambda i: dynamodb.update_item(
            TableName=TABLE,
            Key=job_key(i),
            UpdateExpression="SET #s = :r ADD attempts :one",
            ConditionExpression="attribute_exists(SK)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":r": _s("RUNNING"), ":one": {"N": "1"}},
        ),
        "DynamoDB TransactWriteItems (count a job)": lambda i: dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": job_key(i),
                        "UpdateExpression": "SET #s = :ok",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":ok": _s("SUCCEEDED")},
                    }
                },
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": meta,
                        "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
            ]
        ),
        "DynamoDB GetItem (batch record)": lambda i: dynamodb.get_item(
            TableName=TABLE, Key=meta, ConsistentRead=True
        ),
        "S3 PutObject (result body, 0.9 MB)": lambda i: s3.put_object(Bucket=BUCKET, Key=f"r/{i}", Body=body),
        "S3 PutObject (digest)": lambda i: s3.put_object(Bucket=BUCKET, Key=f"d/{i}", Body=digest.encode()),
        "S3 GetObject (digest)": lambda i: s3.get_object(Bucket=BUCKET, Key=f"d/{i}")["Body"].read(),
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
        queue = _prepare(clients, items)
        pid = server.process.pid if server.process else 0
        costs = {}
        for name, operation in _operations(clients, queue, items).items():
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
