"""Lambda deploy plans against moto: create with alias and mappings, no change twice, exact config change,
code change only when the package hash differs, rollback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from moto import mock_aws

from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.names import ConfigurationError
from opslib.deploy import DeployContext, apply_plan
from opslib.functions import ALIAS, plan_function, plan_rollback
from opslib.plans import plan_queues
from opslib.stack import load_stack


@pytest.fixture
def ctx(monkeypatch: pytest.MonkeyPatch) -> Iterator[DeployContext]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "ap-northeast-2",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        config = load_stack()
        clients = ClientFactory(region=config.region)
        account = clients.client("sts").get_caller_identity()["Account"]
        context = DeployContext(clients, config, config.names(account_id=account), config.region, account)
        apply_plan(plan_queues(context), clients, echo=lambda _: None)
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "sts:AssumeRole",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                }
            ],
        }
        for function in (context.names.worker_function, context.names.collector_function):
            clients.client("iam").create_role(
                RoleName=context.names.role(function), AssumeRolePolicyDocument=json.dumps(trust)
            )
        yield context


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
    assert client.get_alias(FunctionName=ctx.names.worker_function, Name=ALIAS)["FunctionVersion"] == "1"
    alias_arn = f"{ctx.function_arn(ctx.names.worker_function)}:{ALIAS}"
    mappings = client.list_event_source_mappings(FunctionName=alias_arn)["EventSourceMappings"]
    assert len(mappings) == 2
    assert all(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)
    assert plan_function(ctx, "worker", layer_arn=None, git_sha="b" * 40).is_empty


def test_a_changed_memory_plans_exactly_that_and_moves_the_alias(ctx: DeployContext) -> None:
    apply(ctx, "worker")
    bigger = replace(ctx, config=replace(ctx.config, worker={**ctx.config.worker, "memory_mb": 3008}))
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
    larger = replace(ctx, config=replace(ctx.config, collector={**ctx.config.collector, "batch_size": 25}))
    plan = plan_function(larger, "collector", layer_arn=None, git_sha="a" * 40)
    assert [c.calls[0].operation for c in plan.changes] == ["update_event_source_mapping"]
    assert dict(plan.changes[0].diff) == {"BatchSize": (10, 25)}


def test_rollback_moves_the_alias_back(ctx: DeployContext) -> None:
    apply(ctx, "worker")
    bigger = replace(ctx, config=replace(ctx.config, worker={**ctx.config.worker, "memory_mb": 2048}))
    apply_plan(
        plan_function(bigger, "worker", layer_arn=None, git_sha="b" * 40), ctx.clients, echo=lambda _: None
    )
    plan = plan_rollback(ctx, "worker")
    assert dict(plan.changes[0].diff) == {"FunctionVersion": ("2", "1")}
    apply_plan(plan, ctx.clients, echo=lambda _: None)
    client = ctx.clients.client("lambda")
    assert client.get_alias(FunctionName=ctx.names.worker_function, Name=ALIAS)["FunctionVersion"] == "1"
    with pytest.raises(ConfigurationError, match="nothing earlier"):
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
        ctx, config=replace(ctx.config, collector={**ctx.config.collector, "reserved_concurrency": 8})
    )
    plan = plan_function(more, "collector", layer_arn=None, git_sha="a" * 40)
    assert [dict(c.diff) for c in plan.changes] == [{"ReservedConcurrentExecutions": (5, 8)}]
