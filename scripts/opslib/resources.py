"""Definitions of the pipeline's queues, table and bucket as plain data, and their idempotent creation.

The local runtime creates its emulated stack from these definitions; the deploy scripts (plan → apply) use
the same ones against AWS.
"""

from __future__ import annotations

import json
from dataclasses import replace
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
    """Create or update queues, table and bucket through the deploy planners (plan → apply), the same path
    the deploy scripts take, for the local emulator (plain HTTP: no TLS-only bucket policy); returns queue
    name → URL. Safe to run twice."""
    from .deploy import DeployContext, apply_plan  # noqa: PLC0415 - deploy imports this module
    from .plans import plan_queues, plan_storage  # noqa: PLC0415

    if visibility_timeout_s is not None:
        config = replace(config, queues=replace(config.queues, visibility_timeout_s=visibility_timeout_s))
    account = clients.client("sts").get_caller_identity()["Account"]
    ctx = DeployContext(clients, config, names, clients.region or config.region, account, enforce_tls=False)
    apply_plan(plan_queues(ctx) + plan_storage(ctx), clients, echo=lambda _: None)
    sqs = clients.client("sqs")
    queues = (names.dead_letter_queue, names.job_queue, names.priority_queue, names.result_queue)
    return {name: sqs.get_queue_url(QueueName=name)["QueueUrl"] for name in queues}
