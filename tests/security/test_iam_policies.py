"""Every IAM document the deploy code generates, checked on its own terms (not by `validate_policy`, the
product's own check): exact actions, ARN resources, and `*` only for the documented actions with their
conditions. Documents come from three places: what the deploy plans send to AWS (roles, bucket policy),
what `render_iam.render` produces (placeholders and a concrete account), and what is committed in docs/iam.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opslib.deploy.plan import DeployContext
from opslib.deploy.policy_check import WILDCARD_RESOURCE_ACTIONS
from opslib.deploy.roles import plan_roles
from opslib.deploy.storage import plan_storage
from opslib.stack import DEFAULT_STACK, load_stack
from tests.script_loader import load_script

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"  # the placeholder account id of tests and docs (moto's)
PREFIX = "makenaide"
# The only actions granted on "*", with the condition keys each must carry (docs/deploy.md section 7).
STAR_ACTIONS = {
    "cloudwatch:PutMetricData": {"cloudwatch:namespace"},
    "cloudwatch:GetMetricData": set(),  # the batch principal: the worker's Lambda metrics, read-only
    "lambda:CreateEventSourceMapping": {"lambda:FunctionArn"},
    "lambda:ListEventSourceMappings": set(),
    "lambda:ListLayerVersions": set(),
}
EXACT_ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")
ARN = re.compile(
    r"^arn:aws:(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):(?P<account>\d{12}|<ACCOUNT_ID>|):.+$"
)

render_iam = load_script("render_iam")


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _condition_keys(statement: dict[str, Any]) -> set[str]:
    return {key for block in statement.get("Condition", {}).values() for key in block}


def _rendered() -> dict[str, dict[str, Any]]:
    environments = render_iam.environments_of(DEFAULT_STACK)
    docs = {f"render/{n}": d for n, d in render_iam.render(None, None, environments).items()}
    concrete = render_iam.render(ACCOUNT, "me/ops", environments)
    docs.update({f"render-account/{n}": d for n, d in concrete.items()})
    return docs


def _committed() -> dict[str, dict[str, Any]]:
    return {
        f"docs/iam/{p.name}": json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((ROOT / "docs" / "iam").glob("*.json"))
    }


@pytest.fixture
def planned(deploy_ctx: DeployContext) -> dict[str, dict[str, Any]]:
    """The documents the roles and storage plans would send to AWS, from an empty (emulated) account."""
    docs: dict[str, dict[str, Any]] = {}
    for change in plan_roles(deploy_ctx).changes + plan_storage(deploy_ctx).changes:
        for call in change.calls:
            for key in ("AssumeRolePolicyDocument", "PolicyDocument", "Policy"):
                if key in call.params:
                    docs[f"plan/{call.operation}/{call.params.get('RoleName', '')}{key}"] = json.loads(
                        call.params[key]
                    )
    return docs


STATIC = {**_rendered(), **_committed()}


def _statements(docs: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, doc in docs.items():
        assert doc["Version"] == "2012-10-17", name
        for statement in _list(doc["Statement"]):
            yield name, statement


def test_the_documents_are_all_there(planned: dict[str, dict[str, Any]]) -> None:
    kinds = {name.split("/")[-1] for name in STATIC}
    for expected in ("github-deploy-policy.json", "dev-worker-policy.json", "prod-bucket-policy.json"):
        assert expected in kinds
    # Two roles (trust + inline policy each) and the bucket policy.
    assert len(planned) == 5, sorted(planned)


@pytest.mark.parametrize("source", ["static", "planned"])
def test_no_allow_statement_has_a_wildcard_or_inexact_action(
    source: str, planned: dict[str, dict[str, Any]]
) -> None:
    docs = STATIC if source == "static" else planned
    for name, statement in _statements(docs):
        assert "NotAction" not in statement and "NotResource" not in statement, name
        if statement["Effect"] == "Allow":
            for action in _list(statement["Action"]):
                assert EXACT_ACTION.match(action), (name, action)


@pytest.mark.parametrize("source", ["static", "planned"])
def test_the_only_wildcard_is_the_tls_deny(source: str, planned: dict[str, dict[str, Any]]) -> None:
    docs = STATIC if source == "static" else planned
    wide = set()
    for name, statement in _statements(docs):
        for action in _list(statement["Action"]):
            if "*" in action:
                wide.add((statement["Effect"], statement.get("Sid"), action))
                assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, name
    assert wide <= {("Deny", "DenyInsecureTransport", "s3:*")}


@pytest.mark.parametrize("source", ["static", "planned"])
def test_resources_are_arns_of_the_actions_service(source: str, planned: dict[str, dict[str, Any]]) -> None:
    docs = STATIC if source == "static" else planned
    for name, statement in _statements(docs):
        if "Principal" in statement and "Resource" not in statement:
            continue  # a trust policy: it names principals, not resources
        services = {a.split(":")[0] for a in _list(statement["Action"])}
        for resource in _list(statement["Resource"]):
            if resource == "*":
                continue  # see test_star_resources_are_exactly_the_documented_exceptions
            match = ARN.match(resource)
            assert match, (name, resource)
            assert services == {match["service"]}, (name, services, resource)
            if "*" in resource:
                # A trailing wildcard only: objects under one of our prefixes, log streams, versions.
                assert resource.index("*") == len(resource) - 1, (name, resource)
                if "event-source-mapping" in resource:
                    assert "lambda:FunctionArn" in _condition_keys(statement), (name, resource)
                else:
                    assert PREFIX in resource, (name, resource)


@pytest.mark.parametrize("source", ["static", "planned"])
def test_star_resources_are_exactly_the_documented_exceptions(
    source: str, planned: dict[str, dict[str, Any]]
) -> None:
    docs = STATIC if source == "static" else planned
    seen: dict[str, set[str]] = {}
    namespace = load_stack().metric_namespace
    for name, statement in _statements(docs):
        if "*" not in _list(statement.get("Resource", [])):
            continue
        assert statement["Effect"] == "Allow" and _list(statement["Resource"]) == ["*"], name
        keys = _condition_keys(statement)
        for action in _list(statement["Action"]):
            assert action in STAR_ACTIONS, (name, action)
            assert keys == STAR_ACTIONS[action], (name, action, keys)
            seen.setdefault(action, set()).update(keys)
        if "cloudwatch:PutMetricData" in _list(statement["Action"]):
            assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": namespace}}, name
        if "lambda:CreateEventSourceMapping" in _list(statement["Action"]):
            functions = statement["Condition"]["ArnLike"]["lambda:FunctionArn"]
            assert functions and all(f":function:{PREFIX}" in f for f in functions), name
    expected = {"cloudwatch:PutMetricData"} if source == "planned" else set(STAR_ACTIONS)
    assert set(seen) == expected
    # The product's own list of exceptions is this list, no longer.
    assert {a: ({k} if k else set()) for a, k in WILDCARD_RESOURCE_ACTIONS.items()} == STAR_ACTIONS


@pytest.mark.parametrize("source", ["static", "planned"])
def test_trust_policies_name_one_service_or_the_github_provider(
    source: str, planned: dict[str, dict[str, Any]]
) -> None:
    docs = STATIC if source == "static" else planned
    for name, statement in _statements(docs):
        principal = statement.get("Principal")
        if principal is None or statement["Effect"] == "Deny":
            continue
        assert principal != "*" and "AWS" not in principal, name
        if "Service" in principal:
            assert (
                principal == {"Service": "lambda.amazonaws.com"} and statement["Action"] == "sts:AssumeRole"
            )
        else:
            (provider,) = _list(principal["Federated"])
            assert provider.endswith(":oidc-provider/token.actions.githubusercontent.com"), name
            condition = statement["Condition"]
            assert set(condition) == {"StringEquals"}, name  # exact subjects: no StringLike, no wildcard
            subjects = _list(condition["StringEquals"]["token.actions.githubusercontent.com:sub"])
            assert all(re.fullmatch(r"repo:[^*?]+:environment:[a-z]+", s) for s in subjects), subjects
            assert condition["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"


def test_the_lambda_trust_is_pinned_to_the_account(planned: dict[str, dict[str, Any]]) -> None:
    trusts = [d for n, d in planned.items() if n.endswith("AssumeRolePolicyDocument")]
    assert len(trusts) == 2
    for doc in trusts:
        (statement,) = doc["Statement"]
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


@pytest.mark.parametrize("source", ["static", "planned"])
def test_bucket_policies_deny_every_request_without_tls(
    source: str, planned: dict[str, dict[str, Any]]
) -> None:
    docs = STATIC if source == "static" else planned
    policies = {
        n: d for n, d in docs.items() if "bucket-policy" in n or n.startswith("plan/put_bucket_policy")
    }
    assert policies
    for name, doc in policies.items():
        (statement,) = doc["Statement"]
        assert statement["Effect"] == "Deny" and statement["Principal"] == "*", name
        assert statement["Action"] == "s3:*", name
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, name
        bucket, objects = statement["Resource"]
        assert objects == f"{bucket}/*" and bucket.startswith(f"arn:aws:s3:::{PREFIX}"), name
