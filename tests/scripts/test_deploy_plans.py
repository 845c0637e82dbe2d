"""Deploy planners against moto: create from nothing, no change on a second run, exactly a changed setting."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from opslib.deploy.layer import plan_layer
from opslib.deploy.monitoring import plan_monitoring
from opslib.deploy.plan import DeployContext, apply_plan
from opslib.deploy.policy_check import validate_policy
from opslib.deploy.queues import plan_queues
from opslib.deploy.roles import plan_roles
from opslib.deploy.storage import plan_storage
from opslib.errors import DeployError
from tests.script_loader import load_script, run_main


@pytest.fixture
def ctx(deploy_ctx: DeployContext) -> DeployContext:
    return deploy_ctx


def test_queues_from_nothing_then_no_change(ctx: DeployContext) -> None:
    plan = plan_queues(ctx)
    assert [c.action for c in plan.changes] == ["create"] * 4
    assert plan.changes[0].resource.endswith("-dlq")  # the DLQ exists before the redrive points at it
    apply_plan(plan, ctx.clients, echo=lambda _: None)
    again = plan_queues(ctx)
    assert again.is_empty and "no changes" in again.render_text()
    sqs = ctx.clients.client("sqs")
    url = sqs.get_queue_url(QueueName=ctx.names.job_queue)["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "1800"
    assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"] == ctx.queue_arn(
        ctx.names.dead_letter_queue
    )


def test_a_changed_visibility_timeout_plans_exactly_that(ctx: DeployContext) -> None:
    apply_plan(plan_queues(ctx), ctx.clients, echo=lambda _: None)
    changed = replace(
        ctx, config=replace(ctx.config, queues=replace(ctx.config.queues, visibility_timeout_s=2400))
    )
    plan = plan_queues(changed)
    assert len(plan.changes) == 3  # job, priority and result queues; the DLQ has no visibility setting
    assert all(dict(c.diff) == {"VisibilityTimeout": ("1800", "2400")} for c in plan.changes)
    apply_plan(plan, ctx.clients, echo=lambda _: None)
    assert plan_queues(changed).is_empty


def test_storage_from_nothing_is_secure_then_no_change(ctx: DeployContext) -> None:
    plan = plan_storage(ctx)
    assert [c.action for c in plan.changes] == ["create", "create"]
    apply_plan(plan, ctx.clients, echo=lambda _: None)
    assert plan_storage(ctx).is_empty
    s3 = ctx.clients.client("s3")
    block = s3.get_public_access_block(Bucket=ctx.names.bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    policy = json.loads(s3.get_bucket_policy(Bucket=ctx.names.bucket)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ttl = ctx.clients.client("dynamodb").describe_time_to_live(TableName=ctx.names.table)
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"


def test_pitr_setting_change_is_planned(ctx: DeployContext) -> None:
    apply_plan(plan_storage(ctx), ctx.clients, echo=lambda _: None)
    prod = replace(
        ctx, config=replace(ctx.config, storage=replace(ctx.config.storage, point_in_time_recovery=True))
    )
    plan = plan_storage(prod)
    assert [c.summary for c in plan.changes] == ["point-in-time recovery"]
    apply_plan(plan, ctx.clients, echo=lambda _: None)
    assert plan_storage(prod).is_empty


def test_deploy_script_dry_run_json_and_summary(
    ctx: DeployContext, capsys: pytest.CaptureFixture[str], tmp_path: pytest.TempPathFactory
) -> None:
    script = load_script("deploy_queues")
    summary = tmp_path / "summary.md"  # type: ignore[operator]
    code, out, _ = run_main(script, capsys, "--dry-run", "--json", "--summary", str(summary))
    assert code == 0
    doc = json.loads(out.strip().splitlines()[-1])
    assert len(doc["changes"]) == 4 and doc["changes"][0]["action"] == "create"
    assert "| create" in summary.read_text()
    assert plan_queues(ctx).changes  # a dry run applied nothing
    code, out, _ = run_main(script, capsys, "--yes")
    assert code == 0 and "applied: create" in out
    code, out, _ = run_main(script, capsys, "--dry-run")
    assert "no changes" in out


def test_apply_without_yes_and_without_a_terminal_refuses(
    ctx: DeployContext, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, _, err = run_main(load_script("deploy_storage"), capsys)
    assert code == 2 and "pass --yes" in err


def test_monitoring_dashboard_and_alarms_then_no_change(ctx: DeployContext) -> None:
    plan = plan_monitoring(ctx)
    assert [c.resource.split()[0] for c in plan.changes] == ["dashboard", "alarm", "alarm", "alarm"]
    apply_plan(plan, ctx.clients, echo=lambda _: None)
    assert plan_monitoring(ctx).is_empty
    found = ctx.clients.client("cloudwatch").describe_alarms()["MetricAlarms"]
    dlq = next(a for a in found if a["AlarmName"].endswith("dlq-not-empty"))
    assert dlq["Threshold"] == 0.0 and dlq["ComparisonOperator"] == "GreaterThanThreshold"
    alarms = replace(ctx.config.alarms, oldest_message_age_s=300)
    stricter = replace(ctx, config=replace(ctx.config, alarms=alarms))
    changed = plan_monitoring(stricter)
    assert [c.resource for c in changed.changes] == [f"alarm {ctx.names.prefix}-oldest-job-age"]


def test_layer_published_via_s3_only_when_its_hash_changes_and_pruned(
    ctx: DeployContext, tmp_path: pytest.TempPathFactory
) -> None:
    # moto sees in-process requests as plain HTTP, which a TLS-only bucket policy denies (as AWS would).
    plain_http = replace(ctx, enforce_tls=False)
    apply_plan(plan_storage(plain_http), ctx.clients, echo=lambda _: None)
    keep = replace(plain_http, config=replace(ctx.config, layer=replace(ctx.config.layer, keep_versions=2)))
    layer_zip = tmp_path / "layer.zip"  # type: ignore[operator]
    client = ctx.clients.client("lambda")
    for content in (b"one", b"two", b"three"):
        layer_zip.write_bytes(content)
        plan = plan_layer(keep, layer_zip)
        assert [c.operation for c in plan.changes[0].calls][:2] == ["put_object", "publish_layer_version"]
        apply_plan(plan, ctx.clients, echo=lambda _: None)
        assert plan_layer(keep, layer_zip).is_empty  # same content: nothing to publish
    versions = client.list_layer_versions(LayerName=ctx.names.layer)["LayerVersions"]
    assert sorted(int(v["Version"]) for v in versions) == [2, 3]
    missing = tmp_path / "nope.zip"  # type: ignore[operator]
    with pytest.raises(DeployError, match="build the layer first"):
        plan_layer(keep, missing)


def test_roles_one_per_function_least_privilege_then_no_change(ctx: DeployContext) -> None:
    plan = plan_roles(ctx)
    assert [c.action for c in plan.changes] == ["create", "create"]
    apply_plan(plan, ctx.clients, echo=lambda _: None)
    assert plan_roles(ctx).is_empty
    iam = ctx.clients.client("iam")
    for function in (ctx.names.worker_function, ctx.names.collector_function):
        role = ctx.names.role(function)
        policy = iam.get_role_policy(RoleName=role, PolicyName=f"{role}-policy")["PolicyDocument"]
        document = json.loads(policy) if isinstance(policy, str) else policy
        assert validate_policy(document) == []
    iam.put_role_policy(
        RoleName=ctx.names.role(ctx.names.worker_function),
        PolicyName=f"{ctx.names.role(ctx.names.worker_function)}-policy",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    drift = plan_roles(ctx)
    assert [c.summary for c in drift.changes] == ["inline policy"]  # a hand-widened policy is put back
