"""The monitoring unit: the CloudWatch dashboard and alarms of the pipeline, planned and torn down like every
other resource."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from .plan import Call, Change, DeployContext, Plan
from .state import CLOUDWATCH_NOT_FOUND, exists, read, read_or_none


def dashboard_name(ctx: DeployContext) -> str:
    return f"{ctx.names.prefix}-backtesting"


def _widget(title: str, metrics: list[list[Any]], stat: str = "Sum", period: int = 60) -> dict[str, Any]:
    return {
        "type": "metric",
        "width": 12,
        "height": 6,
        "properties": {
            "title": title,
            "metrics": metrics,
            "stat": stat,
            "period": period,
            "view": "timeSeries",
        },
    }


def dashboard_body(ctx: DeployContext) -> dict[str, Any]:
    names, ns = ctx.names, ctx.config.metric_namespace
    queues = names.work_queues
    functions = [names.worker_function, names.collector_function]
    widgets = [
        _widget(
            "Queue depth",
            [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q] for q in queues],
            stat="Maximum",
        ),
        _widget(
            "Age of oldest message (s)",
            [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", q] for q in queues],
            stat="Maximum",
        ),
        _widget(
            "Dead-letter queue depth",
            [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", names.dead_letter_queue]],
            stat="Maximum",
        ),
        _widget(
            "Lambda duration (ms)",
            [["AWS/Lambda", "Duration", "FunctionName", f] for f in functions],
            stat="Average",
        ),
        _widget(
            "Lambda errors and throttles",
            [["AWS/Lambda", m, "FunctionName", f] for f in functions for m in ("Errors", "Throttles")],
        ),
        _widget(
            "Lambda concurrency",
            [["AWS/Lambda", "ConcurrentExecutions", "FunctionName", f] for f in functions],
            stat="Maximum",
        ),
        _widget("Jobs succeeded and failed", [[ns, "JobsSucceeded"], [ns, "JobsFailed"]]),
        _widget("Backtests per minute", [[ns, "BacktestsRun"]]),
    ]
    return {"widgets": widgets}


def alarm_definitions(ctx: DeployContext) -> list[dict[str, Any]]:
    names, alarms = ctx.names, ctx.config.alarms
    common = {"EvaluationPeriods": 1, "TreatMissingData": "notBreaching", "ActionsEnabled": True}
    return [
        {
            **common,
            "AlarmName": f"{names.prefix}-dlq-not-empty",
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Statistic": "Maximum",
            "Period": 300,
            "Dimensions": [{"Name": "QueueName", "Value": names.dead_letter_queue}],
            "Threshold": 0.0,
            "ComparisonOperator": "GreaterThanThreshold",
            "AlarmDescription": "Messages in the DLQ: jobs failed for good; see the batch report's failures.",
        },
        {
            **common,
            "AlarmName": f"{names.prefix}-worker-errors",
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Statistic": "Sum",
            "Period": 300,
            "Dimensions": [{"Name": "FunctionName", "Value": names.worker_function}],
            "Threshold": float(alarms.worker_errors),
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "AlarmDescription": "Worker invocations failing (retryable errors are retried; check the logs).",
        },
        {
            **common,
            "AlarmName": f"{names.prefix}-oldest-job-age",
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateAgeOfOldestMessage",
            "Statistic": "Maximum",
            "Period": 300,
            "Dimensions": [{"Name": "QueueName", "Value": names.job_queue}],
            "Threshold": float(alarms.oldest_message_age_s),
            "ComparisonOperator": "GreaterThanThreshold",
            "AlarmDescription": "Jobs wait too long: workers fall behind (concurrency limit, throttling).",
        },
    ]


_ALARM_FIELDS = (
    "Namespace",
    "MetricName",
    "Statistic",
    "Period",
    "Dimensions",
    "Threshold",
    "ComparisonOperator",
    "EvaluationPeriods",
    "TreatMissingData",
    "AlarmDescription",
)


def _alarms(ctx: DeployContext, names: list[str]) -> list[dict[str, Any]]:
    """The alarms of these names that exist (DescribeAlarms lists the found ones; absent is no error)."""
    cloudwatch = ctx.clients.client("cloudwatch")
    found = read(
        partial(cloudwatch.describe_alarms, AlarmNames=names),
        "cloudwatch:DescribeAlarms",
        ctx.cloudwatch_arn("alarm", f"{ctx.names.prefix}-*"),
    )
    return list(found["MetricAlarms"])


def plan_monitoring(ctx: DeployContext) -> Plan:
    cloudwatch = ctx.clients.client("cloudwatch")
    changes = []
    body = dashboard_body(ctx)
    found = read_or_none(
        partial(cloudwatch.get_dashboard, DashboardName=dashboard_name(ctx)),
        "cloudwatch:GetDashboard",
        ctx.cloudwatch_arn("dashboard", dashboard_name(ctx)),
        CLOUDWATCH_NOT_FOUND,
    )
    current = None if found is None else json.loads(found["DashboardBody"])
    if current != body:
        call = Call(
            "cloudwatch",
            "put_dashboard",
            {"DashboardName": dashboard_name(ctx), "DashboardBody": json.dumps(body)},
        )
        action = "create" if current is None else "update"
        changes.append(
            Change(action, f"dashboard {dashboard_name(ctx)}", f"{len(body['widgets'])} widgets", (call,))
        )
    definitions = alarm_definitions(ctx)
    existing = {a["AlarmName"]: a for a in _alarms(ctx, [d["AlarmName"] for d in definitions])}
    for alarm in definitions:
        found = existing.get(alarm["AlarmName"])
        diff = (
            {}
            if found is None
            else {k: (found.get(k), alarm[k]) for k in _ALARM_FIELDS if found.get(k) != alarm[k]}
        )
        if found is None or diff:
            call = Call("cloudwatch", "put_metric_alarm", alarm)
            changes.append(
                Change(
                    "create" if found is None else "update",
                    f"alarm {alarm['AlarmName']}",
                    alarm["AlarmDescription"],
                    (call,),
                    diff,
                )
            )
    return Plan("monitoring", tuple(changes))


def teardown_monitoring(ctx: DeployContext) -> list[Change]:
    """Delete the alarms that exist and the dashboard."""
    cloudwatch = ctx.clients.client("cloudwatch")
    changes = []
    alarms = [a["AlarmName"] for a in alarm_definitions(ctx)]
    present = [a["AlarmName"] for a in _alarms(ctx, alarms)]
    if present:
        changes.append(
            Change(
                "delete",
                "alarms",
                ", ".join(present),
                (Call("cloudwatch", "delete_alarms", {"AlarmNames": present}),),
            )
        )
    if exists(
        partial(cloudwatch.get_dashboard, DashboardName=dashboard_name(ctx)),
        "cloudwatch:GetDashboard",
        ctx.cloudwatch_arn("dashboard", dashboard_name(ctx)),
        CLOUDWATCH_NOT_FOUND,
    ):
        changes.append(
            Change(
                "delete",
                f"dashboard {dashboard_name(ctx)}",
                "delete",
                (Call("cloudwatch", "delete_dashboards", {"DashboardNames": [dashboard_name(ctx)]}),),
            )
        )
    return changes
