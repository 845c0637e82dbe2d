"""The worker's event source mappings: the normal queue capped below the priority queue (priority served
first), provisioned mode set, changed and removed like every other setting, and both validated."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.stub import Stubber

from opslib.deploy.functions import ALIAS, plan_function
from opslib.deploy.plan import DeployContext, Plan, apply_plan
from opslib.deploy.queues import plan_queues
from opslib.deploy.roles import plan_roles
from opslib.errors import StackConfigError
from opslib.stack import DEFAULT_STACK, FunctionSettings, ProvisionedPollers, load_stack

SHA = "a" * 40
PROVISIONED = ProvisionedPollers(minimum=2, maximum=20)


@pytest.fixture
def ctx(deploy_ctx: DeployContext) -> DeployContext:
    apply_plan(plan_queues(deploy_ctx) + plan_roles(deploy_ctx), deploy_ctx.clients, echo=lambda _: None)
    return deploy_ctx


def with_worker(ctx: DeployContext, **settings: Any) -> DeployContext:
    return replace(ctx, config=replace(ctx.config, worker=replace(ctx.config.worker, **settings)))


def plan(ctx: DeployContext) -> Plan:
    return plan_function(ctx, "worker", layer_arn=None, git_sha=SHA)


def apply(ctx: DeployContext) -> None:
    apply_plan(plan(ctx), ctx.clients, echo=lambda _: None)


def live(ctx: DeployContext) -> dict[str, dict[str, Any]]:
    """Queue name → its mapping to the worker's alias."""
    alias = f"{ctx.function_arn(ctx.names.worker_function)}:{ALIAS}"
    found = ctx.clients.client("lambda").list_event_source_mappings(FunctionName=alias)["EventSourceMappings"]
    return {m["EventSourceArn"].rsplit(":", 1)[-1]: m for m in found}


def mapping_changes(p: Plan) -> dict[str, dict[str, tuple[Any, Any]]]:
    return {c.resource.split()[2]: dict(c.diff) for c in p.changes if c.resource.startswith("event source")}


def test_the_normal_queue_is_capped_below_the_priority_queue_then_no_change(ctx: DeployContext) -> None:
    apply(ctx)
    mappings = live(ctx)
    assert mappings[ctx.names.job_queue]["ScalingConfig"] == {"MaximumConcurrency": 900}
    assert mappings[ctx.names.priority_queue]["ScalingConfig"] == {"MaximumConcurrency": 1000}
    assert plan(ctx).is_empty


def test_a_changed_or_removed_normal_cap_updates_only_the_normal_mapping(ctx: DeployContext) -> None:
    apply(ctx)
    lower = with_worker(ctx, normal_maximum_concurrency=800)
    assert mapping_changes(plan(lower)) == {
        ctx.names.job_queue: {"ScalingConfig": ({"MaximumConcurrency": 900}, {"MaximumConcurrency": 800})}
    }
    apply(lower)
    assert plan(lower).is_empty
    unset = with_worker(ctx, normal_maximum_concurrency=None)  # then the normal queue takes the maximum
    assert mapping_changes(plan(unset)) == {
        ctx.names.job_queue: {"ScalingConfig": ({"MaximumConcurrency": 800}, {"MaximumConcurrency": 1000})}
    }
    apply(unset)
    assert plan(unset).is_empty


def test_provisioned_mode_is_set_changed_and_removed(ctx: DeployContext) -> None:
    apply(ctx)
    provisioned = with_worker(
        ctx, maximum_concurrency=None, normal_maximum_concurrency=None, provisioned_pollers=PROVISIONED
    )
    changes = mapping_changes(plan(provisioned))
    assert changes[ctx.names.priority_queue] == {
        "ScalingConfig": ({"MaximumConcurrency": 1000}, {}),  # exclusive with provisioned mode: removed
        "ProvisionedPollerConfig": ({}, {"MinimumPollers": 2, "MaximumPollers": 20}),
    }
    assert set(changes) == {ctx.names.job_queue, ctx.names.priority_queue}
    apply(provisioned)
    assert live(provisioned)[ctx.names.job_queue]["ProvisionedPollerConfig"] == {
        "MinimumPollers": 2,
        "MaximumPollers": 20,
    }
    assert plan(provisioned).is_empty
    more = with_worker(provisioned, provisioned_pollers=ProvisionedPollers(minimum=5, maximum=40))
    update = [c for c in plan(more).changes if c.resource.startswith("event source")]
    assert [sorted(c.calls[0].params) for c in update] == [["ProvisionedPollerConfig", "UUID"]] * 2
    apply(more)
    assert plan(more).is_empty
    apply(ctx)  # back to standard mode with the stack file's caps
    assert live(ctx)[ctx.names.job_queue]["ScalingConfig"] == {"MaximumConcurrency": 900}
    assert not live(ctx)[ctx.names.job_queue].get("ProvisionedPollerConfig")
    assert plan(ctx).is_empty


def test_a_new_mapping_in_provisioned_mode_sends_no_empty_setting(ctx: DeployContext) -> None:
    provisioned = with_worker(
        ctx, maximum_concurrency=None, normal_maximum_concurrency=None, provisioned_pollers=PROVISIONED
    )
    creates = [c.calls[0] for c in plan(provisioned).changes if c.resource.startswith("event source")]
    assert all(call.operation == "create_event_source_mapping" for call in creates) and len(creates) == 2
    assert all("ScalingConfig" not in call.params for call in creates)
    assert all(call.params["ProvisionedPollerConfig"]["MaximumPollers"] == 20 for call in creates)
    apply(provisioned)
    assert plan(provisioned).is_empty


def test_the_update_calls_have_the_shape_botocore_validates(ctx: DeployContext) -> None:
    """Stubber checks every parameter against Lambda's service model before answering."""
    apply(ctx)
    provisioned = with_worker(
        ctx, maximum_concurrency=None, normal_maximum_concurrency=None, provisioned_pollers=PROVISIONED
    )
    update = plan(provisioned)
    lam = ctx.clients.client("lambda")
    with Stubber(lam) as stubber:
        for change in update.changes:
            for call in change.calls:
                stubber.add_response(call.operation, {}, dict(call.params))
        apply_plan(update, ctx.clients, echo=lambda _: None)
        stubber.assert_no_pending_responses()


# --- validation -------------------------------------------------------------------------------------------


def stack_file(tmp_path: Path, section: str = "worker", **settings: Any) -> Path:
    raw = yaml.safe_load(DEFAULT_STACK.read_text(encoding="utf-8"))
    for key, value in settings.items():
        if value is None:
            raw[section].pop(key, None)
        else:
            raw[section][key] = value
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_the_stack_file_loads_with_its_priority_cap() -> None:
    worker = load_stack().worker
    assert worker.normal_maximum_concurrency is not None and worker.maximum_concurrency is not None
    assert worker.normal_maximum_concurrency < worker.maximum_concurrency
    assert worker.provisioned_pollers is None


@pytest.mark.parametrize(
    ("section", "settings", "message"),
    [
        (
            "worker",
            {"normal_maximum_concurrency": 1},
            r"worker\.normal_maximum_concurrency=1: AWS accepts 2-1000",
        ),
        ("worker", {"normal_maximum_concurrency": 1001}, "AWS accepts 2-1000"),
        ("worker", {"maximum_concurrency": 1}, r"worker\.maximum_concurrency=1: AWS accepts 2-1000"),
        (
            "worker",
            {"normal_maximum_concurrency": 950, "maximum_concurrency": 900},
            "at most maximum_concurrency",
        ),
        ("worker", {"reserved_concurrency": 900}, r"normal_maximum_concurrency=900 must be below reserved"),
        ("collector", {"normal_maximum_concurrency": 3}, "only the worker reads a priority queue"),
        (
            "worker",
            {"provisioned_pollers": {"minimum": 1, "maximum": 20}},
            r"worker\.provisioned_pollers\.minimum=1: AWS accepts 2-200",
        ),
        ("worker", {"provisioned_pollers": {"minimum": 201, "maximum": 300}}, "minimum=201"),
        (
            "worker",
            {"provisioned_pollers": {"minimum": 2, "maximum": 10001}},
            r"maximum=10001: AWS accepts 2-10000",
        ),
        ("worker", {"provisioned_pollers": {"minimum": 30, "maximum": 20}}, "must not exceed maximum"),
        ("worker", {"provisioned_pollers": {"minimum": 2, "maximum": 20}}, "mutually exclusive"),
        ("worker", {"provisioned_pollers": {"minimum": 2}}, r"worker\.provisioned_pollers="),
        ("worker", {"provisioned_pollers": "2-20"}, r"worker\.provisioned_pollers="),
    ],
)
def test_invalid_scaling_settings_are_refused_naming_the_field(
    tmp_path: Path, section: str, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(StackConfigError, match=message):
        load_stack(stack_file(tmp_path, section, **settings))


def test_provisioned_mode_loads_without_the_concurrency_caps(tmp_path: Path) -> None:
    path = stack_file(
        tmp_path,
        maximum_concurrency=None,
        normal_maximum_concurrency=None,
        provisioned_pollers={"minimum": 2, "maximum": 20},
    )
    worker = load_stack(path).worker
    assert worker.provisioned_pollers == PROVISIONED
    assert FunctionSettings(memory_mb=128, timeout_s=3).problems("worker") == []
