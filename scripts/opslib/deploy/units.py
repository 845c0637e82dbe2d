"""The deploy units in dependency order, and the teardown plan: each unit's own teardown, in reverse order.

The layer unit has no teardown: its versions are pruned on publish (`layer.keep_versions`) and a deleted
function no longer references them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .functions import plan_function, teardown_functions
from .layer import plan_layer
from .monitoring import plan_monitoring, teardown_monitoring
from .plan import Change, DeployContext, Plan
from .queues import plan_queues, teardown_queues
from .roles import plan_roles, teardown_roles
from .storage import plan_storage, teardown_storage

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


def plan_teardown(ctx: DeployContext, *, delete_data: bool) -> Plan:
    """Everything the deploy created, in reverse: functions (and their event sources), monitoring, roles,
    queues, the table; the bucket and its data only with `delete_data`."""
    changes: list[Change] = [
        *teardown_functions(ctx),
        *teardown_monitoring(ctx),
        *teardown_roles(ctx),
        *teardown_queues(ctx),
        *teardown_storage(ctx, delete_data=delete_data),
    ]
    return Plan("teardown", tuple(changes))
