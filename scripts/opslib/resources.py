"""Definitions of the pipeline's queues, table and bucket as plain data, and their idempotent creation.

The local runtime creates its emulated stack from these definitions; the deploy scripts (plan → apply) use
the same ones against AWS.
"""

from __future__ import annotations

import json
from typing import Any

from backtesting_modules.pipeline import names as keys
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.names import StackNames

from .stack import StackConfig

TTL_ATTRIBUTE = "ttl"


def table_definition(names: StackNames) -> dict[str, Any]:
    return {
        "TableName": names.table,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
            {"AttributeName": "GSI1PK", "AttributeType": "S"},
            {"AttributeName": "GSI1SK", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": keys.BATCH_INDEX,
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }


def queue_definitions(
    config: StackConfig, names: StackNames, dlq_arn: str | None
) -> dict[str, dict[str, str]]:
    """Attributes per queue name; the DLQ first (its ARN goes into the others' redrive policy)."""
    q = config.queues
    base = {
        "VisibilityTimeout": str(q.visibility_timeout_s),
        "MessageRetentionPeriod": str(q.retention_s),
        "ReceiveMessageWaitTimeSeconds": str(q.receive_wait_s),
        "SqsManagedSseEnabled": "true",
    }
    definitions = {
        names.dead_letter_queue: {
            "MessageRetentionPeriod": str(q.dlq_retention_s),
            "SqsManagedSseEnabled": "true",
        }
    }
    if dlq_arn is not None:
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": q.max_receive_count})
        for name in (names.job_queue, names.priority_queue, names.result_queue):
            definitions[name] = {**base, "RedrivePolicy": redrive}
    return definitions


def ensure_stack(
    clients: ClientFactory, config: StackConfig, names: StackNames, *, visibility_timeout_s: int | None = None
) -> dict[str, str]:
    """Create (or find) queues, table and bucket; returns queue name → URL. Safe to run twice."""
    sqs = clients.client("sqs")
    urls: dict[str, str] = {}
    dlq_defs = queue_definitions(config, names, None)
    for name, attributes in dlq_defs.items():
        urls[name] = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=urls[names.dead_letter_queue], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    for name, defined in queue_definitions(config, names, dlq_arn).items():
        if name == names.dead_letter_queue:
            continue
        attributes = dict(defined)
        if visibility_timeout_s is not None:
            attributes["VisibilityTimeout"] = str(visibility_timeout_s)
        urls[name] = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    dynamodb = clients.client("dynamodb")
    if names.table not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(**table_definition(names))
        dynamodb.get_waiter("table_exists").wait(TableName=names.table)
        # Job records expire (their `ttl` attribute); batch records have none and stay.
        dynamodb.update_time_to_live(
            TableName=names.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
    s3 = clients.client("s3")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if names.bucket not in existing:
        region = clients.region or config.region
        location = (
            {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        s3.create_bucket(Bucket=names.bucket, **location)
    return urls
