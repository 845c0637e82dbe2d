"""The deploy units in dependency order, and the teardown plan (their reverse)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from botocore.exceptions import ClientError

from .deploy import Call, Change, DeployContext, Plan
from .functions import ALIAS, function_specs, plan_function
from .layer import plan_layer
from .monitoring import alarm_definitions, dashboard_name, plan_monitoring
from .plans import plan_queues, plan_storage
from .roles import plan_roles, teardown_roles

Planner = Callable[[DeployContext], Plan]


def deploy_units(
    git_sha: str, layer_arn: Callable[[DeployContext], str | None], layer_zip: Path | None = None
) -> list[tuple[str, Planner]]:
    """(unit, planner) in the order they must be applied: later units read what earlier ones created.
    The layer unit is included when a built zip is given."""

    def function(key: str) -> Planner:
        return lambda ctx: plan_function(ctx, key, layer_arn=layer_arn(ctx), git_sha=git_sha)

    layer: list[tuple[str, Planner]] = (
        [("layer", lambda ctx: plan_layer(ctx, layer_zip))] if layer_zip is not None else []
    )
    return [
        ("queues", plan_queues),
        ("storage", plan_storage),
        ("roles", plan_roles),
        *layer,
        ("worker", function("worker")),
        ("collector", function("collector")),
        ("monitoring", plan_monitoring),
    ]


def _exists(call: Callable[[], object]) -> bool:
    try:
        call()
    except ClientError:
        return False
    return True


def plan_teardown(ctx: DeployContext, *, delete_data: bool) -> Plan:
    """Everything the deploy created, in reverse; the bucket (and its data) only with `delete_data`."""
    lam, sqs = ctx.clients.client("lambda"), ctx.clients.client("sqs")
    changes: list[Change] = []
    for spec in function_specs(ctx).values():
        alias_arn = f"{ctx.function_arn(spec.name)}:{ALIAS}"
        for mapping in lam.list_event_source_mappings(FunctionName=alias_arn).get("EventSourceMappings", []):
            changes.append(
                Change(
                    "delete",
                    f"event source {mapping['EventSourceArn'].rsplit(':', 1)[-1]}",
                    f"unmap from {spec.name}",
                    (Call("lambda", "delete_event_source_mapping", {"UUID": mapping["UUID"]}),),
                )
            )
        if _exists(partial(lam.get_function, FunctionName=spec.name)):
            changes.append(
                Change(
                    "delete",
                    f"function {spec.name}",
                    "delete with its versions and alias",
                    (Call("lambda", "delete_function", {"FunctionName": spec.name}),),
                )
            )
    cloudwatch = ctx.clients.client("cloudwatch")
    alarms = [a["AlarmName"] for a in alarm_definitions(ctx)]
    present = [a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNames=alarms)["MetricAlarms"]]
    if present:
        changes.append(
            Change(
                "delete",
                "alarms",
                ", ".join(present),
                (Call("cloudwatch", "delete_alarms", {"AlarmNames": present}),),
            )
        )
    if _exists(lambda: cloudwatch.get_dashboard(DashboardName=dashboard_name(ctx))):
        changes.append(
            Change(
                "delete",
                f"dashboard {dashboard_name(ctx)}",
                "delete",
                (Call("cloudwatch", "delete_dashboards", {"DashboardNames": [dashboard_name(ctx)]}),),
            )
        )
    changes += teardown_roles(ctx)
    names = ctx.names
    for queue in (names.job_queue, names.priority_queue, names.result_queue, names.dead_letter_queue):
        try:
            url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        except ClientError:
            continue
        changes.append(
            Change(
                "delete",
                f"queue {queue}",
                "delete with its messages",
                (Call("sqs", "delete_queue", {"QueueUrl": url}),),
            )
        )
    dynamodb = ctx.clients.client("dynamodb")
    if _exists(lambda: dynamodb.describe_table(TableName=names.table)):
        changes.append(
            Change(
                "delete",
                f"table {names.table}",
                "delete batch and job records",
                (
                    Call(
                        "dynamodb",
                        "delete_table",
                        {"TableName": names.table},
                        waiter=("table_not_exists", {"TableName": names.table}),
                    ),
                ),
            )
        )
    if delete_data:
        changes += _bucket_deletion(ctx)
    return Plan("teardown", tuple(changes))


def _bucket_deletion(ctx: DeployContext) -> list[Change]:
    s3, bucket = ctx.clients.client("s3"), ctx.names.bucket
    if not _exists(lambda: s3.head_bucket(Bucket=bucket)):
        return []
    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
    ]
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
