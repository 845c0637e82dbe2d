"""The IAM documents: least privilege by construction, checked by validate_policy and by what they list."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from backtesting_modules.names import StackNames
from opslib.deploy.iam import (
    bucket_policy_tls_only,
    collector_policy,
    github_oidc_trust_policy,
    lambda_trust_policy,
    worker_policy,
)
from opslib.deploy.iam_deploy import github_deploy_policy
from opslib.deploy.policy_check import validate_policy
from tests.script_loader import load_script

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "ap-northeast-2"
NAMESPACE = "Makenaide/Backtesting"
NAMES = StackNames(prefix="makenaide", account_id=ACCOUNT)
DEV = StackNames(prefix="makenaide-dev", account_id=ACCOUNT)


def _allowed(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (action, resource) pair an Allow statement grants."""
    pairs = []
    for statement in doc["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        pairs += [(a, r) for a in actions for r in resources]
    return pairs


def _queue(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


ALL_POLICIES = {
    "lambda trust": lambda_trust_policy(ACCOUNT),
    "lambda trust (no account)": lambda_trust_policy(),
    "worker": worker_policy(NAMES, REGION, ACCOUNT, NAMESPACE),
    "collector": collector_policy(NAMES, REGION, ACCOUNT, NAMESPACE),
    "github trust": github_oidc_trust_policy(ACCOUNT, "me/ops", ["dev", "prod"]),
    "github deploy": github_deploy_policy(NAMES, REGION, ACCOUNT),
    "github deploy (two stacks)": github_deploy_policy([NAMES, DEV], REGION, ACCOUNT),
    "bucket tls only": bucket_policy_tls_only(NAMES.bucket),
    "worker (placeholders)": worker_policy(StackNames(), REGION, None, NAMESPACE),
}


@pytest.mark.parametrize("name", sorted(ALL_POLICIES))
def test_every_generated_policy_has_no_findings(name: str) -> None:
    assert validate_policy(ALL_POLICIES[name]) == []


def test_every_committed_document_passes_and_has_no_account_id() -> None:
    files = sorted((ROOT / "docs" / "iam").glob("*.json"))
    assert {f.name for f in files} >= {"github-oidc-trust.json", "github-deploy-policy.json"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?<!\d)\d{12}(?!\d)", text), f"{path.name} holds an account id"
        assert validate_policy(json.loads(text)) == [], path.name
    assert "<ACCOUNT_ID>" in (ROOT / "docs/iam/github-deploy-policy.json").read_text(encoding="utf-8")
    assert "<OWNER>/<REPO>" in (ROOT / "docs/iam/github-oidc-trust.json").read_text(encoding="utf-8")


def test_committed_documents_are_what_render_writes(tmp_path: Path) -> None:
    render = load_script("render_iam")
    assert render.main(["--out", str(tmp_path)]) == 0
    for path in sorted(tmp_path.glob("*.json")):
        committed = ROOT / "docs" / "iam" / path.name
        assert committed.exists(), f"docs/iam/{path.name} not committed: run scripts/render_iam.py"
        assert json.loads(committed.read_text()) == json.loads(path.read_text()), path.name


def test_render_with_account_and_repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    render = load_script("render_iam")
    code = render.main(
        ["--account-id", ACCOUNT, "--repo", "me/ops", "--stdout", "--only", "github-oidc-trust-prod.json"]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    condition = doc["Statement"][0]["Condition"]["StringEquals"]
    assert condition["token.actions.githubusercontent.com:sub"] == "repo:me/ops:environment:prod"
    with pytest.raises(SystemExit):
        render.main(["--account-id", "12345", "--stdout"])


# --- validate_policy catches what it must ------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": [_queue("q")]},
    ],
}


def _mutated(**change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    statement_change = change.pop("statement", None)
    doc.update(change)
    if statement_change is not None:
        doc["Statement"][0].update(statement_change)
    return doc


def _without_version() -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    del doc["Version"]
    return doc


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (_mutated(statement={"Action": "*"}), "wildcard action '*'"),
        (_mutated(statement={"Action": ["sqs:*"]}), "wildcard action 'sqs:*'"),
        (_mutated(statement={"Action": ["s3:Get*"]}), "wildcard action 's3:Get*'"),
        (_mutated(statement={"Resource": "*"}), "'sqs:SendMessage' on resource '*'"),
        (_without_version(), "Version must be '2012-10-17'"),
        (_mutated(Version="2008-10-17"), "Version must be '2012-10-17'"),
        (_mutated(Statement=[]), "no statements"),
        (_mutated(Statement=[{}]), "statement 0 is empty"),
        (_mutated(statement={"Action": []}), "no actions"),
        (
            _mutated(statement={"Action": ["cloudwatch:PutMetricData"], "Resource": "*"}),
            "without a cloudwatch:namespace condition",
        ),
        (
            _mutated(statement={"Action": ["lambda:CreateEventSourceMapping"], "Resource": "*"}),
            "without a lambda:FunctionArn condition",
        ),
        (_mutated(statement={"NotResource": "arn:aws:s3:::x"}), "NotResource"),
        (_mutated(statement={"Principal": "*"}), "any principal"),
    ],
)
def test_validate_policy_catches(doc: dict[str, Any], expected: str) -> None:
    findings = validate_policy(doc)
    assert any(expected in f for f in findings), findings


def test_validate_policy_allows_the_documented_exceptions_only() -> None:
    assert validate_policy(GOOD) == []
    metrics = _mutated(
        statement={
            "Action": ["cloudwatch:PutMetricData"],
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": NAMESPACE}},
        }
    )
    assert validate_policy(metrics) == []
    # An exception does not cover another action in the same statement.
    mixed = copy.deepcopy(metrics)
    mixed["Statement"][0]["Action"].append("cloudwatch:PutDashboard")
    assert validate_policy(mixed) == ["statement 0 (no Sid): 'cloudwatch:PutDashboard' on resource '*'"]
    # A Deny may use wildcards: it only takes away.
    assert validate_policy(bucket_policy_tls_only("b")) == []


# --- the function roles ------------------------------------------------------------------------------------


def test_worker_cannot_receive_results_or_touch_summaries() -> None:
    pairs = _allowed(worker_policy(NAMES, REGION, ACCOUNT, NAMESPACE))
    received = {r for a, r in pairs if a == "sqs:ReceiveMessage"}
    assert received == {_queue(NAMES.job_queue), _queue(NAMES.priority_queue)}
    assert {r for a, r in pairs if a == "sqs:SendMessage"} == {
        _queue(NAMES.result_queue),
        _queue(NAMES.dead_letter_queue),
    }
    assert not any("summaries" in r for _, r in pairs)
    assert {r for a, r in pairs if a == "s3:GetObject"} == {f"arn:aws:s3:::{NAMES.bucket}/bars/*"}
    assert {r for a, r in pairs if a == "s3:PutObject"} == {f"arn:aws:s3:::{NAMES.bucket}/results/*"}
    assert not any(a.startswith("cloudwatch:") for a, _ in pairs)
    # The event source mapping polls with the function's role: all four queue actions on both job queues.
    for action in ("sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"):
        assert {r for a, r in pairs if a == action} == received


def test_collector_cannot_receive_jobs_or_send_anywhere() -> None:
    pairs = _allowed(collector_policy(NAMES, REGION, ACCOUNT, NAMESPACE))
    assert {r for a, r in pairs if a == "sqs:ReceiveMessage"} == {_queue(NAMES.result_queue)}
    assert not any(r in (_queue(NAMES.job_queue), _queue(NAMES.priority_queue)) for _, r in pairs)
    assert not any(a == "sqs:SendMessage" for a, _ in pairs)
    assert not any("/bars/" in r for _, r in pairs)
    assert {r for a, r in pairs if a == "s3:PutObject"} == {
        f"arn:aws:s3:::{NAMES.bucket}/results/*",
        f"arn:aws:s3:::{NAMES.bucket}/summaries/*",
    }


def test_only_put_metric_data_is_on_any_resource_and_only_in_our_namespace() -> None:
    doc = collector_policy(NAMES, REGION, ACCOUNT, NAMESPACE)
    wide = [s for s in doc["Statement"] if s["Resource"] == "*"]
    assert len(wide) == 1
    assert wide[0]["Action"] == ["cloudwatch:PutMetricData"]
    assert wide[0]["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}


def test_functions_write_only_their_own_log_group() -> None:
    for policy, function in (
        (worker_policy(NAMES, REGION, ACCOUNT, NAMESPACE), NAMES.worker_function),
        (collector_policy(NAMES, REGION, ACCOUNT, NAMESPACE), NAMES.collector_function),
    ):
        logs = {r for a, r in _allowed(policy) if a.startswith("logs:")}
        group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{function}"
        assert logs == {group, f"{group}:*"}


def test_lambda_trust_is_lambda_only_and_pinned_to_the_account() -> None:
    statement = lambda_trust_policy(ACCOUNT)["Statement"][0]
    assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert "Condition" not in lambda_trust_policy()["Statement"][0]


# --- the GitHub deploy role --------------------------------------------------------------------------------


def test_oidc_trust_restricts_sub_to_the_repository_environments() -> None:
    doc = github_oidc_trust_policy(ACCOUNT, "me/ops", ["dev", "prod"])
    (statement,) = doc["Statement"]
    assert statement["Principal"] == {
        "Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    }
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert list(statement["Condition"]) == ["StringEquals"]  # exact subjects, no StringLike wildcards
    equals = statement["Condition"]["StringEquals"]
    assert equals["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert equals["token.actions.githubusercontent.com:sub"] == [
        "repo:me/ops:environment:dev",
        "repo:me/ops:environment:prod",
    ]
    assert "*" not in json.dumps(doc)
    with pytest.raises(ValueError):
        github_oidc_trust_policy(ACCOUNT, "me/ops", [])


def test_deploy_policy_passes_only_the_function_roles_to_lambda() -> None:
    doc = github_deploy_policy(NAMES, REGION, ACCOUNT)
    (passing,) = [s for s in doc["Statement"] if "iam:PassRole" in s["Action"]]
    assert passing["Action"] == ["iam:PassRole"]
    assert sorted(passing["Resource"]) == sorted(
        f"arn:aws:iam::{ACCOUNT}:role/{NAMES.role(f)}"
        for f in (NAMES.worker_function, NAMES.collector_function)
    )
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    iam_resources = {r for a, r in _allowed(doc) if a.startswith("iam:")}
    assert iam_resources == set(passing["Resource"])


def test_deploy_policy_wildcard_resources_are_the_documented_lambda_ones() -> None:
    doc = github_deploy_policy(NAMES, REGION, ACCOUNT)
    wide = [s for s in doc["Statement"] if s["Resource"] == "*"]
    assert sorted(a for s in wide for a in s["Action"]) == [
        "lambda:CreateEventSourceMapping",
        "lambda:ListEventSourceMappings",
        "lambda:ListLayerVersions",
    ]
    (create,) = [s for s in wide if s["Action"] == ["lambda:CreateEventSourceMapping"]]
    functions = create["Condition"]["ArnLike"]["lambda:FunctionArn"]
    assert f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{NAMES.worker_function}" in functions
    assert all(NAMES.prefix in f for f in functions)


def test_deploy_policy_stays_inside_the_stack() -> None:
    doc = github_deploy_policy(NAMES, REGION, ACCOUNT)
    for action, resource in _allowed(doc):
        if resource == "*":
            continue
        assert ACCOUNT in resource or resource.startswith(f"arn:aws:s3:::{NAMES.bucket}"), (action, resource)
        assert NAMES.prefix in resource or "event-source-mapping" in resource, (action, resource)
    # The prod policy does not reach the dev stack.
    assert not any(DEV.prefix in r for _, r in _allowed(doc))
    both = github_deploy_policy([NAMES, DEV], REGION, ACCOUNT)
    assert any(DEV.table in r for _, r in _allowed(both))


def test_deploy_policy_covers_what_the_scripts_call() -> None:
    actions = {a for a, _ in _allowed(github_deploy_policy(NAMES, REGION, ACCOUNT))}
    needed = {
        "sqs:CreateQueue", "sqs:SetQueueAttributes", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
        "sqs:DeleteQueue", "sqs:TagQueue",
        "dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:UpdateTimeToLive",
        "dynamodb:UpdateContinuousBackups", "dynamodb:DeleteTable",
        "s3:CreateBucket", "s3:PutBucketPolicy", "s3:PutEncryptionConfiguration",
        "s3:PutBucketPublicAccessBlock", "s3:PutLifecycleConfiguration", "s3:PutObject", "s3:ListBucket",
        "iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:DeleteRole", "iam:PassRole",
        "lambda:CreateFunction", "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration",
        "lambda:PublishVersion", "lambda:CreateAlias", "lambda:UpdateAlias", "lambda:PublishLayerVersion",
        "lambda:CreateEventSourceMapping", "lambda:UpdateEventSourceMapping",
        "cloudwatch:PutDashboard", "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms",
    }  # fmt: skip
    assert needed <= actions, needed - actions


# --- the bucket --------------------------------------------------------------------------------------------


def test_bucket_policy_denies_every_request_without_tls() -> None:
    doc = bucket_policy_tls_only("my-bucket")
    (statement,) = doc["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Resource"] == ["arn:aws:s3:::my-bucket", "arn:aws:s3:::my-bucket/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_batch_submitter_can_submit_and_follow_but_not_consume() -> None:
    from opslib.deploy.iam import batch_submitter_policy
    from opslib.deploy.policy_check import validate_policy
    from opslib.stack import load_stack

    config = load_stack()
    doc = batch_submitter_policy(config.names(account_id="123456789012"), config.region, "123456789012")
    assert validate_policy(doc) == []
    actions = {a for st in doc["Statement"] for a in st["Action"]}
    assert actions == {
        "sqs:GetQueueUrl",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",
        "s3:PutObject",
        "s3:GetObject",
        "dynamodb:BatchGetItem",  # the reuse index: which jobs ran before
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",  # a reused job's outcome, and completing a batch every job of which was reused
        "cloudwatch:GetMetricData",  # the cost report's CloudWatch figure (read-only; "*": no resource type)
    }
    assert not any("ReceiveMessage" in a or a.startswith("lambda:") for a in actions)
    bucket = config.names(account_id="123456789012").bucket
    writes = {r for a, r in _allowed(doc) if a == "s3:PutObject"}
    assert writes == {
        f"arn:aws:s3:::{bucket}/{p}/*" for p in ("bars", "results", "summaries", "validation", "search")
    }
    # No data location configured: nothing outside the stack's bucket.
    assert all(r.startswith(f"arn:aws:s3:::{bucket}/") for a, r in _allowed(doc) if a.startswith("s3:"))


def test_data_read_locations_are_read_only_by_the_worker_and_the_submitter() -> None:
    from opslib.deploy.iam import batch_submitter_policy

    locations = ["s3://market-data/upbit/", "s3://other-bucket/"]
    worker = worker_policy(NAMES, REGION, ACCOUNT, NAMESPACE, locations)
    submitter = batch_submitter_policy(NAMES, REGION, ACCOUNT, locations)
    inside = {"arn:aws:s3:::market-data/upbit/*", "arn:aws:s3:::other-bucket/*"}
    for doc in (worker, submitter):
        assert validate_policy(doc) == []
        outside = {(a, r) for a, r in _allowed(doc) if a.startswith("s3:") and NAMES.bucket not in r}
        assert outside == {("s3:GetObject", r) for r in inside}
    assert not any(r in inside for _, r in _allowed(collector_policy(NAMES, REGION, ACCOUNT, NAMESPACE)))
