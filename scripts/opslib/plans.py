"""Planners for the queues and the storage (table and bucket): current state in, `Plan` out.

They only read (describe/get calls); what to create or change comes from `resources.py`, the same definitions
the local runtime uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from .deploy import Call, Change, DeployContext, Plan
from .iam import bucket_policy_tls_only
from .resources import TTL_ATTRIBUTE, queue_definitions, table_definition

PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
SUMMARY_IA_DAYS = 30


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _normalise(key: str, value: Any) -> Any:
    return json.loads(value) if key == "RedrivePolicy" and isinstance(value, str) else str(value)


# --- queues -----------------------------------------------------------------------------------------------


def plan_queues(ctx: DeployContext) -> Plan:
    """The DLQ first, then job, priority and result queues with the redrive policy to it."""
    sqs = ctx.clients.client("sqs")
    dlq_arn = ctx.queue_arn(ctx.names.dead_letter_queue)
    changes = []
    for name, desired in queue_definitions(ctx.config, ctx.names, dlq_arn).items():
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            if _code(exc) not in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}:
                raise
            call = Call(
                "sqs",
                "create_queue",
                {"QueueName": name, "Attributes": dict(desired), "tags": {"project": ctx.names.prefix}},
            )
            changes.append(Change("create", f"queue {name}", "create with its settings", (call,)))
            continue
        current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        diff = {
            key: (current.get(key), value)
            for key, value in desired.items()
            if _normalise(key, current.get(key)) != _normalise(key, value)
        }
        if diff:
            update = {key: value for key, (_, value) in diff.items()}
            call = Call("sqs", "set_queue_attributes", {"QueueUrl": url, "Attributes": update})
            changes.append(Change("update", f"queue {name}", f"set {', '.join(sorted(diff))}", (call,), diff))
    return Plan("queues", tuple(changes))


# --- table ------------------------------------------------------------------------------------------------


def plan_table(ctx: DeployContext) -> Plan:
    dynamodb = ctx.clients.client("dynamodb")
    table = ctx.names.table
    pitr = bool(ctx.config.storage.get("point_in_time_recovery", False))
    ttl_call = Call(
        "dynamodb",
        "update_time_to_live",
        {"TableName": table, "TimeToLiveSpecification": {"Enabled": True, "AttributeName": TTL_ATTRIBUTE}},
    )
    pitr_call = Call(
        "dynamodb",
        "update_continuous_backups",
        {"TableName": table, "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": pitr}},
    )
    try:
        dynamodb.describe_table(TableName=table)
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
        calls = [
            Call(
                "dynamodb",
                "create_table",
                table_definition(ctx.names),
                waiter=("table_exists", {"TableName": table}),
            ),
            ttl_call,
        ]
        if pitr:
            calls.append(pitr_call)
        return Plan(
            "table", (Change("create", f"table {table}", "create with TTL on job records", tuple(calls)),)
        )
    changes = []
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if (
        ttl.get("TimeToLiveStatus") not in {"ENABLED", "ENABLING"}
        or ttl.get("AttributeName") != TTL_ATTRIBUTE
    ):
        diff = {"ttl": (ttl.get("AttributeName"), TTL_ATTRIBUTE)}
        changes.append(Change("update", f"table {table}", "enable TTL", (ttl_call,), diff))
    backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    status = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus") == "ENABLED"
    if status != pitr:
        changes.append(
            Change(
                "update",
                f"table {table}",
                "point-in-time recovery",
                (pitr_call,),
                {"point_in_time_recovery": (status, pitr)},
            )
        )
    return Plan("table", tuple(changes))


# --- bucket -----------------------------------------------------------------------------------------------


def lifecycle(ctx: DeployContext) -> dict[str, Any]:
    days = int(ctx.config.storage.get("summaries_to_ia_days", SUMMARY_IA_DAYS))
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


def _bucket_settings(ctx: DeployContext) -> list[tuple[str, Any, Callable[[], Any], Call]]:
    """(setting, desired, reader of the current value, call that sets it)."""
    s3, bucket = ctx.clients.client("s3"), ctx.names.bucket
    policy = bucket_policy_tls_only(bucket)

    def read(getter: Callable[[], Any]) -> Callable[[], Any]:
        def current() -> Any:
            try:
                return getter()
            except ClientError:
                return None  # not configured yet

        return current

    settings = [
        (
            "public access block",
            PUBLIC_ACCESS_BLOCK,
            read(lambda: s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]),
            Call(
                "s3",
                "put_public_access_block",
                {"Bucket": bucket, "PublicAccessBlockConfiguration": PUBLIC_ACCESS_BLOCK},
            ),
        ),
        (
            "default encryption",
            ENCRYPTION,
            read(
                lambda: {
                    "Rules": [
                        {"ApplyServerSideEncryptionByDefault": r["ApplyServerSideEncryptionByDefault"]}
                        for r in s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
                            "Rules"
                        ]
                    ]
                }
            ),
            Call(
                "s3",
                "put_bucket_encryption",
                {"Bucket": bucket, "ServerSideEncryptionConfiguration": ENCRYPTION},
            ),
        ),
        (
            "TLS-only policy",
            policy,
            read(lambda: json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])),
            Call("s3", "put_bucket_policy", {"Bucket": bucket, "Policy": json.dumps(policy)}),
        ),
        (
            "lifecycle",
            lifecycle(ctx),
            read(lambda: {"Rules": s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}),
            Call(
                "s3",
                "put_bucket_lifecycle_configuration",
                {"Bucket": bucket, "LifecycleConfiguration": lifecycle(ctx)},
            ),
        ),
    ]
    return [s for s in settings if ctx.enforce_tls or s[0] != "TLS-only policy"]


def plan_bucket(ctx: DeployContext) -> Plan:
    s3, bucket = ctx.clients.client("s3"), ctx.names.bucket
    settings = _bucket_settings(ctx)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
            raise
        location = (
            {}
            if ctx.region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": ctx.region}}
        )
        calls = (
            Call(
                "s3",
                "create_bucket",
                {"Bucket": bucket, **location},
                waiter=("bucket_exists", {"Bucket": bucket}),
            ),
            *[s[3] for s in settings],
        )
        summary = "create with public access block, encryption, TLS-only policy, lifecycle"
        return Plan("bucket", (Change("create", f"bucket {bucket}", summary, calls),))
    changes = []
    for name, desired, current, call in settings:
        value = current()
        if value != desired:
            changes.append(
                Change("update", f"bucket {bucket}", f"set {name}", (call,), {name: (value, desired)})
            )
    return Plan("bucket", tuple(changes))


def plan_storage(ctx: DeployContext) -> Plan:
    return Plan("storage", plan_table(ctx).changes + plan_bucket(ctx).changes)
