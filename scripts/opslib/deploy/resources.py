"""Definitions of the pipeline's queues, table and bucket as plain data.

The deploy planners (plan → apply) compare the live stack with these; the embedded default creates its
emulated stack through the same planners (`opslib.local.provision`).
"""

from __future__ import annotations

import json
from typing import Any

from backtesting_modules import names as keys
from backtesting_modules.names import StackNames

from ..stack import StackConfig

TTL_ATTRIBUTE = "ttl"
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}


def table_definition(names: StackNames) -> dict[str, Any]:
    return {
        "TableName": names.table,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": keys.TABLE_HASH, "AttributeType": "S"},
            {"AttributeName": keys.TABLE_RANGE, "AttributeType": "S"},
            {"AttributeName": keys.BATCH_INDEX_HASH, "AttributeType": "S"},
            {"AttributeName": keys.BATCH_INDEX_RANGE, "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": keys.TABLE_HASH, "KeyType": "HASH"},
            {"AttributeName": keys.TABLE_RANGE, "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": keys.BATCH_INDEX,
                "KeySchema": [
                    {"AttributeName": keys.BATCH_INDEX_HASH, "KeyType": "HASH"},
                    {"AttributeName": keys.BATCH_INDEX_RANGE, "KeyType": "RANGE"},
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
        for name in names.work_queues:
            definitions[name] = {**base, "RedrivePolicy": redrive}
    return definitions


def lifecycle_definition(config: StackConfig) -> dict[str, Any]:
    """Batch summaries move to infrequent access after `storage.summaries_to_ia_days`."""
    days = config.storage.summaries_to_ia_days
    return {
        "Rules": [
            {
                "ID": "summaries-to-infrequent-access",
                "Filter": {"Prefix": "summaries/"},
                "Status": "Enabled",
                "Transitions": [{"Days": days, "StorageClass": "STANDARD_IA"}],
            }
        ]
    }
