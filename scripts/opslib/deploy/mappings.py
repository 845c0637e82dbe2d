"""Planning the event source mappings: each queue feeding a function, mapped to its `live` alias.

Every mapping reports batch item failures and takes the function's batch size and window. Its scaling is
one of AWS's two mutually exclusive modes (docs/deploy.md, "Event source mappings"):

- standard mode: `ScalingConfig.MaximumConcurrency` (2-1000), `maximum_concurrency` of the function, except
  the worker's NORMAL job queue, which gets `normal_maximum_concurrency` when set, so that capacity is always
  left for the priority queue's mapping (docs/pipeline.md, "Priority");
- provisioned mode: `ProvisionedPollerConfig` {MinimumPollers, MaximumPollers}, from `provisioned_pollers`.

A setting no longer configured is removed with an empty value (AWS: "To remove the configuration, pass an
empty value"); an update sends only what differs, so a second deploy plans nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from .plan import Call, Change, DeployContext
from .state import LAMBDA_NOT_FOUND, read_or_none

ALIAS = "live"
POLLER_KEYS = ("MinimumPollers", "MaximumPollers")


def mapping_settings(ctx: DeployContext, key: str, queue: str) -> dict[str, Any]:
    """The desired settings of the mapping of `queue` to function `key` ("worker" or "collector"); the
    scaling settings are {} when not configured (removed from a mapping that has them)."""
    settings = ctx.config.function(key)
    concurrency = settings.maximum_concurrency
    if key == "worker" and queue == ctx.names.job_queue and settings.normal_maximum_concurrency is not None:
        concurrency = settings.normal_maximum_concurrency
    pollers = settings.provisioned_pollers
    return {
        "BatchSize": settings.batch_size,
        "MaximumBatchingWindowInSeconds": settings.batching_window_s,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {} if concurrency is None else {"MaximumConcurrency": concurrency},
        "ProvisionedPollerConfig": (
            {} if pollers is None else {"MinimumPollers": pollers.minimum, "MaximumPollers": pollers.maximum}
        ),
    }


def _current(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A live mapping's settings in the shape of `mapping_settings` (absent scaling settings read as {})."""
    pollers = mapping.get("ProvisionedPollerConfig") or {}
    return {
        "BatchSize": mapping.get("BatchSize"),
        "MaximumBatchingWindowInSeconds": mapping.get("MaximumBatchingWindowInSeconds"),
        "FunctionResponseTypes": mapping.get("FunctionResponseTypes"),
        "ScalingConfig": dict(mapping.get("ScalingConfig") or {}),
        "ProvisionedPollerConfig": {k: pollers[k] for k in POLLER_KEYS if k in pollers},
    }


def list_mappings(ctx: DeployContext, function_arn: str, source: str | None = None) -> list[dict[str, Any]]:
    """The mappings of a function (alias) ARN, optionally of one source; [] when the function is absent."""
    lam = ctx.clients.client("lambda")
    params = {"FunctionName": function_arn, **({"EventSourceArn": source} if source else {})}
    found = read_or_none(
        partial(lam.list_event_source_mappings, **params),
        "lambda:ListEventSourceMappings",
        function_arn,
        LAMBDA_NOT_FOUND,
    )
    return list((found or {}).get("EventSourceMappings", []))


def plan_mappings(ctx: DeployContext, key: str, function: str, sources: tuple[str, ...]) -> list[Change]:
    """Create the missing mappings of `sources` (queue names) to `function`'s alias, update the others
    where a setting differs."""
    alias_arn = f"{ctx.function_arn(function)}:{ALIAS}"
    changes = []
    for queue in sources:
        source = ctx.queue_arn(queue)
        desired = mapping_settings(ctx, key, queue)
        resource = f"event source {queue} → {function}:{ALIAS}"
        found = list_mappings(ctx, alias_arn, source)
        if not found:
            create = {k: v for k, v in desired.items() if v != {}}  # a new mapping has no setting to remove
            call = Call(
                "lambda",
                "create_event_source_mapping",
                {"EventSourceArn": source, "FunctionName": alias_arn, "Enabled": True, **create},
            )
            changes.append(Change("create", resource, "map the queue to the alias", (call,)))
            continue
        current = _current(found[0])
        diff = {k: (current[k], v) for k, v in desired.items() if current[k] != v}
        if diff:
            update = {"UUID": found[0]["UUID"], **{k: v for k, (_, v) in diff.items()}}
            call = Call("lambda", "update_event_source_mapping", update)
            changes.append(Change("update", resource, f"set {', '.join(sorted(diff))}", (call,), diff))
    return changes


def teardown_mappings(ctx: DeployContext, function: str) -> list[Change]:
    """Unmap every event source from `function`'s alias."""
    alias_arn = f"{ctx.function_arn(function)}:{ALIAS}"
    return [
        Change(
            "delete",
            f"event source {mapping['EventSourceArn'].rsplit(':', 1)[-1]}",
            f"unmap from {function}",
            (Call("lambda", "delete_event_source_mapping", {"UUID": mapping["UUID"]}),),
        )
        for mapping in list_mappings(ctx, alias_arn)
    ]
