"""Lambda deploy plans against moto: create with alias and mappings, no change twice, exact config change,
code change only when the package hash differs, rollback."""

from __future__ import annotations

from dataclasses import replace

import pytest

from opslib.deploy.functions import ALIAS, plan_function, plan_rollback
from opslib.deploy.plan import DeployContext, apply_plan
from opslib.deploy.queues import plan_queues
from opslib.deploy.roles import plan_roles
from opslib.errors import DeployError
from tests.script_loader import load_script, run_main


@pytest.fixture
def ctx(deploy_ctx: DeployContext) -> DeployContext:
    """Queues and the two roles exist: a function's environment and role point at them."""
    apply_plan(plan_queues(deploy_ctx) + plan_roles(deploy_ctx), deploy_ctx.clients, echo=lambda _: None)
    return deploy_ctx


def apply(ctx: DeployContext, key: str, sha: str = "a" * 40) -> None:
    apply_plan(plan_function(ctx, key, layer_arn=None, git_sha=sha), ctx.clients, echo=lambda _: None)


def test_worker_created_with_alias_and_mappings_then_no_change(ctx: DeployContext) -> None:
    plan = plan_function(ctx, "worker", layer_arn=None, git_sha="a" * 40)
    assert [c.action for c in plan.changes] == ["create", "create", "create"]  # function + 2 mappings
    apply(ctx, "worker")
    client = ctx.clients.client("lambda")
    fn = client.get_function(FunctionName=ctx.names.worker_function)["Configuration"]
    assert (fn["MemorySize"], fn["Timeout"], fn["Handler"]) == (1769, 300, "handler.handler")
    assert fn["Environment"]["Variables"]["TABLE_NAME"] == ctx.names.table
    # One vCPU at 1,769 MB: numpy's BLAS runs one thread (two had slowed local workers ~4x).
    assert fn["Environment"]["Variables"]["OPENBLAS_NUM_THREADS"] == "1"
    assert client.get_alias(FunctionName=ctx.names.worker_function, Name=ALIAS)["FunctionVersion"] == "1"
    alias_arn = f"{ctx.function_arn(ctx.names.worker_function)}:{ALIAS}"
    mappings = client.list_event_source_mappings(FunctionName=alias_arn)["EventSourceMappings"]
    assert len(mappings) == 2
    assert all(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)
    assert plan_function(ctx, "worker", layer_arn=None, git_sha="b" * 40).is_empty


def test_a_changed_memory_plans_exactly_that_and_moves_the_alias(ctx: DeployContext) -> None:
    apply(ctx, "worker")
    bigger = replace(ctx, config=replace(ctx.config, worker=replace(ctx.config.worker, memory_mb=3008)))
    plan = plan_function(bigger, "worker", layer_arn=None, git_sha="b" * 40)
    assert len(plan.changes) == 1 and dict(plan.changes[0].diff) == {"MemorySize": (1769, 3008)}
    assert [c.operation for c in plan.changes[0].calls] == [
        "update_function_configuration",
        "publish_version",
        "update_alias",
    ]
    apply_plan(plan, ctx.clients, echo=lambda _: None)
    client = ctx.clients.client("lambda")
    assert client.get_alias(FunctionName=ctx.names.worker_function, Name=ALIAS)["FunctionVersion"] == "2"
    assert plan_function(bigger, "worker", layer_arn=None, git_sha="c" * 40).is_empty


def test_a_changed_batch_size_updates_the_mapping(ctx: DeployContext) -> None:
    apply(ctx, "collector")
    larger = replace(ctx, config=replace(ctx.config, collector=replace(ctx.config.collector, batch_size=25)))
    plan = plan_function(larger, "collector", layer_arn=None, git_sha="a" * 40)
    assert [c.calls[0].operation for c in plan.changes] == ["update_event_source_mapping"]
    assert dict(plan.changes[0].diff) == {"BatchSize": (10, 25)}
    apply_plan(plan, ctx.clients, echo=lambda _: None)
    assert plan_function(larger, "collector", layer_arn=None, git_sha="a" * 40).is_empty


def test_rollback_moves_the_alias_back(ctx: DeployContext) -> None:
    apply(ctx, "worker")
    bigger = replace(ctx, config=replace(ctx.config, worker=replace(ctx.config.worker, memory_mb=2048)))
    apply_plan(
        plan_function(bigger, "worker", layer_arn=None, git_sha="b" * 40), ctx.clients, echo=lambda _: None
    )
    plan = plan_rollback(ctx, "worker")
    assert dict(plan.changes[0].diff) == {"FunctionVersion": ("2", "1")}
    apply_plan(plan, ctx.clients, echo=lambda _: None)
    client = ctx.clients.client("lambda")
    assert client.get_alias(FunctionName=ctx.names.worker_function, Name=ALIAS)["FunctionVersion"] == "1"
    with pytest.raises(DeployError, match="nothing earlier"):
        plan_rollback(ctx, "worker")


def test_reserved_concurrency_is_applied_and_changed_exactly(ctx: DeployContext) -> None:
    apply(ctx, "collector")
    client = ctx.clients.client("lambda")
    assert (
        client.get_function_concurrency(FunctionName=ctx.names.collector_function)[
            "ReservedConcurrentExecutions"
        ]
        == 5
    )
    more = replace(
        ctx, config=replace(ctx.config, collector=replace(ctx.config.collector, reserved_concurrency=8))
    )
    plan = plan_function(more, "collector", layer_arn=None, git_sha="a" * 40)
    assert [dict(c.diff) for c in plan.changes] == [{"ReservedConcurrentExecutions": (5, 8)}]


def test_the_rollback_flag_moves_the_alias(ctx: DeployContext, capsys: pytest.CaptureFixture[str]) -> None:
    script = load_script("deploy_worker")
    assert run_main(script, capsys, "--yes", "--git-sha", "a" * 40)[0] == 0
    bigger = replace(ctx, config=replace(ctx.config, worker=replace(ctx.config.worker, memory_mb=2048)))
    apply_plan(
        plan_function(bigger, "worker", layer_arn=None, git_sha="b" * 40), ctx.clients, echo=lambda _: None
    )
    code, out, _ = run_main(script, capsys, "--rollback", "--yes")
    assert code == 0 and "roll back to version 1" in out
    alias = ctx.clients.client("lambda").get_alias(FunctionName=ctx.names.worker_function, Name=ALIAS)
    assert alias["FunctionVersion"] == "1"
