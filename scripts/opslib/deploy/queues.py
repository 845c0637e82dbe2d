"""The queues unit: the dead-letter queue first, then the job, priority and result queues with a redrive
policy to it. Plans compare the live attributes with `resources.queue_definitions`."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from .plan import Call, Change, DeployContext, Plan
from .resources import queue_definitions
from .state import SQS_NOT_FOUND, read, read_or_none


def _normalise(key: str, value: Any) -> Any:
    return json.loads(value) if key == "RedrivePolicy" and isinstance(value, str) else str(value)


def plan_queues(ctx: DeployContext) -> Plan:
    """The DLQ first, then job, priority and result queues with the redrive policy to it."""
    sqs = ctx.clients.client("sqs")
    dlq_arn = ctx.queue_arn(ctx.names.dead_letter_queue)
    changes = []
    for name, desired in queue_definitions(ctx.config, ctx.names, dlq_arn).items():
        arn = ctx.queue_arn(name)
        found = read_or_none(
            partial(sqs.get_queue_url, QueueName=name), "sqs:GetQueueUrl", arn, SQS_NOT_FOUND
        )
        if found is None:
            call = Call(
                "sqs",
                "create_queue",
                {"QueueName": name, "Attributes": dict(desired), "tags": {"project": ctx.names.prefix}},
            )
            changes.append(Change("create", f"queue {name}", "create with its settings", (call,)))
            continue
        url = found["QueueUrl"]
        current = read(
            partial(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["All"]),
            "sqs:GetQueueAttributes",
            arn,
        )["Attributes"]
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


def teardown_queues(ctx: DeployContext) -> list[Change]:
    """Delete the four queues (and the messages in them)."""
    sqs = ctx.clients.client("sqs")
    changes = []
    for queue in ctx.names.queues:
        arn = ctx.queue_arn(queue)
        found = read_or_none(
            partial(sqs.get_queue_url, QueueName=queue), "sqs:GetQueueUrl", arn, SQS_NOT_FOUND
        )
        if found is None:
            continue
        url = found["QueueUrl"]
        changes.append(
            Change(
                "delete",
                f"queue {queue}",
                "delete with its messages",
                (Call("sqs", "delete_queue", {"QueueUrl": url}),),
            )
        )
    return changes
