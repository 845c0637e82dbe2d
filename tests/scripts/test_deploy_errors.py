"""How the deploy planners read AWS errors: only a documented "not found" code means absent (moto); a refused
read (AccessDenied, bad credentials) or a throttled one stops the plan with a message naming the operation,
the resource and the fix (botocore's Stubber on the planner's own client, at the boto3 boundary)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from opslib.deploy.functions import plan_function
from opslib.deploy.monitoring import plan_monitoring
from opslib.deploy.plan import DeployContext, Plan, apply_plan
from opslib.deploy.queues import plan_queues
from opslib.deploy.roles import plan_roles
from opslib.deploy.storage import plan_bucket, plan_table
from opslib.deploy.units import plan_teardown
from opslib.errors import DeployAccessError, DeployThrottledError
from tests.script_loader import load_script, run_main


@pytest.fixture
def ctx(deploy_ctx: DeployContext) -> DeployContext:
    return deploy_ctx


@pytest.fixture
def stub(ctx: DeployContext) -> Iterator[Callable[[str], Stubber]]:
    """A Stubber on the context's (cached) client of a service: the planner's calls answer from its queue."""
    stubbers: list[Stubber] = []

    def on(service: str) -> Stubber:
        stubber = Stubber(ctx.clients.client(service))
        stubber.activate()
        stubbers.append(stubber)
        return stubber

    yield on
    for stubber in stubbers:
        stubber.deactivate()


# --- not found means absent (moto answers the real codes) -------------------------------------------------


def test_an_empty_account_plans_creates_and_tears_down_nothing(ctx: DeployContext) -> None:
    assert [c.action for c in plan_queues(ctx).changes] == ["create"] * 4  # QueueDoesNotExist
    assert [c.action for c in plan_roles(ctx).changes] == ["create"] * 2  # NoSuchEntity
    assert [c.action for c in plan_table(ctx).changes] == ["create"]  # ResourceNotFoundException
    assert [c.action for c in plan_bucket(ctx).changes] == ["create"]  # HeadBucket 404
    assert plan_monitoring(ctx).changes[0].action == "create"  # GetDashboard ResourceNotFound
    assert plan_teardown(ctx, delete_data=True).is_empty  # nothing found, nothing to delete


def test_a_missing_function_is_created_and_unconfigured_bucket_settings_are_set(ctx: DeployContext) -> None:
    apply_plan(plan_queues(ctx) + plan_roles(ctx), ctx.clients, echo=lambda _: None)
    plan = plan_function(ctx, "collector", layer_arn=None, git_sha="a" * 40)  # GetFunction: not found
    assert [c.action for c in plan.changes] == ["create", "update", "create"]  # + reserved concurrency
    ctx.clients.client("s3").create_bucket(
        Bucket=ctx.names.bucket, CreateBucketConfiguration={"LocationConstraint": ctx.region}
    )
    summaries = {c.summary for c in plan_bucket(ctx).changes}  # NoSuchBucketPolicy, NoSuchLifecycle...
    assert {"set TLS-only policy", "set lifecycle", "set public access block"} <= summaries


# --- refused reads stop the plan ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "operation", "code", "planner", "action"),
    [
        ("sqs", "get_queue_url", "AccessDenied", plan_queues, "sqs:GetQueueUrl"),
        ("iam", "get_role", "AccessDenied", plan_roles, "iam:GetRole"),
        ("dynamodb", "describe_table", "AccessDeniedException", plan_table, "dynamodb:DescribeTable"),
        ("s3", "head_bucket", "403", plan_bucket, "s3:ListBucket"),
        ("cloudwatch", "get_dashboard", "AccessDenied", plan_monitoring, "cloudwatch:GetDashboard"),
        ("iam", "get_role", "UnauthorizedOperation", plan_roles, "iam:GetRole"),
    ],
)
def test_access_denied_stops_the_plan_naming_the_permission(
    ctx: DeployContext,
    stub: Callable[[str], Stubber],
    service: str,
    operation: str,
    code: str,
    planner: Callable[[DeployContext], Plan],
    action: str,
) -> None:
    stub(service).add_client_error(operation, service_error_code=code, http_status_code=403)
    with pytest.raises(DeployAccessError) as caught:
        planner(ctx)
    message = str(caught.value)
    assert f"{action} on arn:aws:" in message and code in message
    assert "the deploy role needs it" in message and "docs/iam/github-deploy-policy.json" in message


def test_access_denied_on_an_existing_function_does_not_plan_a_create(
    ctx: DeployContext, stub: Callable[[str], Stubber]
) -> None:
    apply_plan(plan_queues(ctx), ctx.clients, echo=lambda _: None)
    stub("lambda").add_client_error("get_function", service_error_code="AccessDeniedException")
    with pytest.raises(DeployAccessError, match=r"lambda:GetFunction on arn:aws:lambda:.*:function:"):
        plan_function(ctx, "worker", layer_arn=None, git_sha="a" * 40)


def test_a_teardown_without_permission_stops_instead_of_skipping(
    ctx: DeployContext, stub: Callable[[str], Stubber]
) -> None:
    stub("lambda").add_client_error("list_event_source_mappings", service_error_code="AccessDeniedException")
    with pytest.raises(DeployAccessError, match="lambda:ListEventSourceMappings"):
        plan_teardown(ctx, delete_data=False)


@pytest.mark.parametrize("code", ["ExpiredToken", "InvalidClientTokenId", "UnrecognizedClientException"])
def test_bad_credentials_say_to_refresh_them(
    ctx: DeployContext, stub: Callable[[str], Stubber], code: str
) -> None:
    stub("iam").add_client_error("get_role", service_error_code=code)
    with pytest.raises(DeployAccessError, match=f"iam:GetRole on .*: {code} — the AWS credentials"):
        plan_roles(ctx)


@pytest.mark.parametrize(
    ("service", "operation", "code", "planner"),
    [
        ("dynamodb", "describe_table", "ThrottlingException", plan_table),
        ("iam", "get_role", "Throttling", plan_roles),
        ("sqs", "get_queue_url", "RequestThrottled", plan_queues),
        ("cloudwatch", "get_dashboard", "RequestLimitExceeded", plan_monitoring),
    ],
)
def test_throttling_stops_the_plan_and_says_to_retry(
    ctx: DeployContext,
    stub: Callable[[str], Stubber],
    service: str,
    operation: str,
    code: str,
    planner: Callable[[DeployContext], Plan],
) -> None:
    stub(service).add_client_error(operation, service_error_code=code, http_status_code=400)
    with pytest.raises(DeployThrottledError, match="retry the deploy"):
        planner(ctx)


def test_throttled_lambda_read_stops_the_function_plan(
    ctx: DeployContext, stub: Callable[[str], Stubber]
) -> None:
    apply_plan(plan_queues(ctx), ctx.clients, echo=lambda _: None)
    stub("lambda").add_client_error("get_function", service_error_code="TooManyRequestsException")
    with pytest.raises(DeployThrottledError, match="lambda:GetFunction"):
        plan_function(ctx, "worker", layer_arn=None, git_sha="a" * 40)


def test_another_error_is_raised_as_it_is(ctx: DeployContext, stub: Callable[[str], Stubber]) -> None:
    stub("dynamodb").add_client_error("describe_table", service_error_code="InternalServerError")
    with pytest.raises(ClientError) as caught:
        plan_table(ctx)
    assert not isinstance(caught.value, DeployAccessError)
    assert caught.value.response["Error"]["Code"] == "InternalServerError"


def test_the_deploy_script_exits_2_with_the_message(
    mocked_aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The script builds its own clients: the refusal is answered at the boto3 boundary (botocore's
    before-call event of the default session, as Stubber does)."""

    def refuse(**_: Any) -> tuple[Any, dict[str, Any]]:
        response = type("Http", (), {"status_code": 403, "headers": {}, "content": b""})()
        return response, {"Error": {"Code": "AccessDenied", "Message": "denied"}}

    previous = boto3.DEFAULT_SESSION
    session = boto3.session.Session()
    session.events.register("before-call.sqs.GetQueueUrl", refuse)
    boto3.DEFAULT_SESSION = session
    try:
        code, _, err = run_main(load_script("deploy_queues"), capsys, "--dry-run")
    finally:
        boto3.DEFAULT_SESSION = previous
    assert code == 2
    assert "sqs:GetQueueUrl on arn:aws:sqs:" in err and "AccessDenied" in err
