"""Encryption and exposure settings of the stack's data stores, in the shared resource definitions and as
the deploy plans apply them (to moto): SSE on every queue and the bucket, the public access block, the
TLS-only bucket policy, and no table definition that turns encryption at rest off."""

from __future__ import annotations

import json

from opslib.deploy.plan import DeployContext, apply_plan
from opslib.deploy.queues import plan_queues
from opslib.deploy.resources import ENCRYPTION, PUBLIC_ACCESS_BLOCK, queue_definitions, table_definition
from opslib.deploy.storage import plan_storage
from opslib.stack import load_stack


def test_every_queue_definition_enables_sse() -> None:
    config = load_stack()
    names = config.names(account_id="123456789012")
    definitions = queue_definitions(config, names, "arn:aws:sqs:ap-northeast-2:123456789012:dlq")
    assert set(definitions) == {
        names.dead_letter_queue,
        names.job_queue,
        names.priority_queue,
        names.result_queue,
    }
    assert all(attrs["SqsManagedSseEnabled"] == "true" for attrs in definitions.values())


def test_the_table_definition_never_disables_encryption_at_rest() -> None:
    # DynamoDB encrypts every table at rest (AWS-owned key by default); a definition may only choose a
    # stronger key, never turn it off.
    sse = table_definition(load_stack().names()).get("SSESpecification", {"Enabled": True})
    assert sse.get("Enabled", True) is True


def test_the_bucket_plan_sets_sse_the_public_access_block_and_the_tls_policy(
    deploy_ctx: DeployContext,
) -> None:
    assert ENCRYPTION == {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
    assert set(PUBLIC_ACCESS_BLOCK.values()) == {True} and len(PUBLIC_ACCESS_BLOCK) == 4
    calls = {c.operation: c.params for change in plan_storage(deploy_ctx).changes for c in change.calls}
    assert calls["put_bucket_encryption"]["ServerSideEncryptionConfiguration"] == ENCRYPTION
    assert calls["put_public_access_block"]["PublicAccessBlockConfiguration"] == PUBLIC_ACCESS_BLOCK
    policy = json.loads(calls["put_bucket_policy"]["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_deployed_stores_are_encrypted_and_private(deploy_ctx: DeployContext) -> None:
    apply_plan(plan_queues(deploy_ctx) + plan_storage(deploy_ctx), deploy_ctx.clients, echo=lambda _: None)
    sqs, s3 = deploy_ctx.clients.client("sqs"), deploy_ctx.clients.client("s3")
    names = deploy_ctx.names
    for queue in (names.dead_letter_queue, names.job_queue, names.priority_queue, names.result_queue):
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["SqsManagedSseEnabled"] == "true", queue
    rules = s3.get_bucket_encryption(Bucket=names.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=names.bucket)["PublicAccessBlockConfiguration"]
    assert block == PUBLIC_ACCESS_BLOCK
    (deny,) = json.loads(s3.get_bucket_policy(Bucket=names.bucket)["Policy"])["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # A second plan finds nothing to change: the settings are really in place, not only requested.
    assert (plan_queues(deploy_ctx) + plan_storage(deploy_ctx)).is_empty


def test_only_the_local_emulator_goes_without_the_tls_policy(deploy_ctx: DeployContext) -> None:
    assert deploy_ctx.enforce_tls is True  # the default of every deploy context
    local = DeployContext(
        deploy_ctx.clients,
        deploy_ctx.config,
        deploy_ctx.names,
        deploy_ctx.region,
        deploy_ctx.account_id,
        enforce_tls=False,
    )
    operations = {c.operation for change in plan_storage(local).changes for c in change.calls}
    assert "put_bucket_policy" not in operations and "put_bucket_encryption" in operations
