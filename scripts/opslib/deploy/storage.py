"""The storage unit: the table (TTL on job records, point-in-time recovery as configured) and the bucket
(public access block, default encryption, TLS-only policy, lifecycle), planned and torn down.

Planners only read (describe/get calls); what to create or change comes from `resources.py`, the same
definitions the embedded default uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from .iam import bucket_policy_tls_only
from .plan import Call, Change, DeployContext, Plan
from .resources import ENCRYPTION, PUBLIC_ACCESS_BLOCK, TTL_ATTRIBUTE, lifecycle_definition, table_definition
from .state import (
    DYNAMODB_NOT_FOUND,
    S3_BUCKET_NOT_FOUND,
    S3_ENCRYPTION_ABSENT,
    S3_LIFECYCLE_ABSENT,
    S3_POLICY_ABSENT,
    S3_PUBLIC_ACCESS_BLOCK_ABSENT,
    exists,
    read,
    read_or_none,
)

# --- table ------------------------------------------------------------------------------------------------


def plan_table(ctx: DeployContext) -> Plan:
    dynamodb = ctx.clients.client("dynamodb")
    table = ctx.names.table
    pitr = ctx.config.storage.point_in_time_recovery
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
    arn = ctx.table_arn(table)
    if not exists(
        partial(dynamodb.describe_table, TableName=table), "dynamodb:DescribeTable", arn, DYNAMODB_NOT_FOUND
    ):
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
    ttl = read(partial(dynamodb.describe_time_to_live, TableName=table), "dynamodb:DescribeTimeToLive", arn)[
        "TimeToLiveDescription"
    ]
    if (
        ttl.get("TimeToLiveStatus") not in {"ENABLED", "ENABLING"}
        or ttl.get("AttributeName") != TTL_ATTRIBUTE
    ):
        diff = {"ttl": (ttl.get("AttributeName"), TTL_ATTRIBUTE)}
        changes.append(Change("update", f"table {table}", "enable TTL", (ttl_call,), diff))
    backups = read(
        partial(dynamodb.describe_continuous_backups, TableName=table),
        "dynamodb:DescribeContinuousBackups",
        arn,
    )["ContinuousBackupsDescription"]
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


class _BucketSetting(NamedTuple):
    """One setting of the bucket: its name in plans, the desired value, a reader of the current value (None
    when not configured yet), and the call that sets it."""

    name: str
    desired: Any
    current: Callable[[], Any]
    call: Call


# setting → the IAM permission of its Get call, and the codes S3 answers while it is not configured.
_READS = {
    "public access block": ("s3:GetBucketPublicAccessBlock", S3_PUBLIC_ACCESS_BLOCK_ABSENT),
    "default encryption": ("s3:GetEncryptionConfiguration", S3_ENCRYPTION_ABSENT),
    "TLS-only policy": ("s3:GetBucketPolicy", S3_POLICY_ABSENT),
    "lifecycle": ("s3:GetLifecycleConfiguration", S3_LIFECYCLE_ABSENT),
}


def _or_none(setting: str, bucket: str, getter: Callable[[], Any]) -> Callable[[], Any]:
    """`getter` as a reader that returns None where S3 answers that the setting is not configured; a
    refused or throttled read stops the plan."""
    action, absent = _READS[setting]
    return partial(read_or_none, getter, action, f"arn:aws:s3:::{bucket}", absent)


def _current_encryption(s3: Any, bucket: str) -> dict[str, Any]:
    """The bucket's default encryption, in the shape of `ENCRYPTION` (only the fields it sets)."""
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    return {
        "Rules": [
            {"ApplyServerSideEncryptionByDefault": r["ApplyServerSideEncryptionByDefault"]} for r in rules
        ]
    }


def _bucket_settings(ctx: DeployContext) -> list[_BucketSetting]:
    """The bucket's settings in the order they are applied (the TLS-only policy only with `enforce_tls`)."""
    s3, bucket = ctx.clients.client("s3"), ctx.names.bucket
    policy = bucket_policy_tls_only(bucket)
    settings = [
        _BucketSetting(
            "public access block",
            PUBLIC_ACCESS_BLOCK,
            _or_none(
                "public access block",
                bucket,
                lambda: s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
            ),
            Call(
                "s3",
                "put_public_access_block",
                {"Bucket": bucket, "PublicAccessBlockConfiguration": PUBLIC_ACCESS_BLOCK},
            ),
        ),
        _BucketSetting(
            "default encryption",
            ENCRYPTION,
            _or_none("default encryption", bucket, lambda: _current_encryption(s3, bucket)),
            Call(
                "s3",
                "put_bucket_encryption",
                {"Bucket": bucket, "ServerSideEncryptionConfiguration": ENCRYPTION},
            ),
        ),
        _BucketSetting(
            "TLS-only policy",
            policy,
            _or_none(
                "TLS-only policy", bucket, lambda: json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
            ),
            Call("s3", "put_bucket_policy", {"Bucket": bucket, "Policy": json.dumps(policy)}),
        ),
        _BucketSetting(
            "lifecycle",
            lifecycle_definition(ctx.config),
            _or_none(
                "lifecycle",
                bucket,
                lambda: {"Rules": s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]},
            ),
            Call(
                "s3",
                "put_bucket_lifecycle_configuration",
                {"Bucket": bucket, "LifecycleConfiguration": lifecycle_definition(ctx.config)},
            ),
        ),
    ]
    return [s for s in settings if ctx.enforce_tls or s.name != "TLS-only policy"]


def plan_bucket(ctx: DeployContext) -> Plan:
    bucket = ctx.names.bucket
    settings = _bucket_settings(ctx)
    if not _bucket_exists(ctx):
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
            *[s.call for s in settings],
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


def _bucket_exists(ctx: DeployContext) -> bool:
    """HeadBucket answers a bare status: 404 absent; 403 refused (our permission, or a name another account
    holds), which stops the plan."""
    s3, bucket = ctx.clients.client("s3"), ctx.names.bucket
    return exists(
        partial(s3.head_bucket, Bucket=bucket), "s3:ListBucket", f"arn:aws:s3:::{bucket}", S3_BUCKET_NOT_FOUND
    )


def plan_storage(ctx: DeployContext) -> Plan:
    return Plan("storage", plan_table(ctx).changes + plan_bucket(ctx).changes)


def teardown_storage(ctx: DeployContext, *, delete_data: bool) -> list[Change]:
    """Delete the table (batch and job records); the bucket and its data only with `delete_data`."""
    dynamodb = ctx.clients.client("dynamodb")
    table = ctx.names.table
    changes = []
    if exists(
        partial(dynamodb.describe_table, TableName=table),
        "dynamodb:DescribeTable",
        ctx.table_arn(table),
        DYNAMODB_NOT_FOUND,
    ):
        changes.append(
            Change(
                "delete",
                f"table {table}",
                "delete batch and job records",
                (
                    Call(
                        "dynamodb",
                        "delete_table",
                        {"TableName": table},
                        waiter=("table_not_exists", {"TableName": table}),
                    ),
                ),
            )
        )
    if delete_data:
        changes += _bucket_deletion(ctx)
    return changes


def _bucket_deletion(ctx: DeployContext) -> list[Change]:
    s3, bucket = ctx.clients.client("s3"), ctx.names.bucket
    if not _bucket_exists(ctx):
        return []
    keys = read(
        lambda: [
            obj["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for obj in page.get("Contents", [])
        ],
        "s3:ListBucket",
        f"arn:aws:s3:::{bucket}",
    )
    calls = [
        Call(
            "s3",
            "delete_objects",
            {"Bucket": bucket, "Delete": {"Objects": [{"Key": k} for k in keys[i : i + 1000]]}},
        )
        for i in range(0, len(keys), 1000)
    ]
    calls.append(Call("s3", "delete_bucket", {"Bucket": bucket}))
    return [Change("delete", f"bucket {bucket}", f"delete {len(keys)} objects and the bucket", tuple(calls))]
