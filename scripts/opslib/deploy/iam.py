"""IAM policy documents of the stack, as plain data (no AWS calls).

- one role per function (`worker_policy`, `collector_policy`), trusted by Lambda only (`lambda_trust_policy`);
- the GitHub Actions roles' OIDC trust (`github_oidc_trust_policy`) and what a batch may do
  (`batch_submitter_policy`); what the deploy scripts may do is `iam_deploy.github_deploy_policy`;
- the bucket's TLS-only policy (`bucket_policy_tls_only`);

Every Allow statement lists exact actions and exact resource ARNs. A `"Resource": "*"` appears only where
the AWS Service Authorization Reference defines no resource type for the action (see
`policy_check.WILDCARD_RESOURCE_ACTIONS`), and then with a condition wherever the action supports one;
`policy_check.validate_policy` is the least-privilege check every generated document passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from backtesting_modules.names import BATCH_INDEX, StackNames

VERSION = "2012-10-17"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_AUDIENCE = "sts.amazonaws.com"
ACCOUNT_PLACEHOLDER = "<ACCOUNT_ID>"
REPO_PLACEHOLDER = "<OWNER>/<REPO>"

Policy = dict[str, Any]
Statement = dict[str, Any]


# --- ARNs -------------------------------------------------------------------------------------------------


def queue_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{account_id}:{name}"


def table_arn(region: str, account_id: str, table: str) -> str:
    return f"arn:aws:dynamodb:{region}:{account_id}:table/{table}"


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def objects_arn(bucket: str, prefix: str = "") -> str:
    """Objects under `prefix` ("bars/", "results/", ...) or, with no prefix, every object of the bucket."""
    return f"arn:aws:s3:::{bucket}/{prefix}*"


def location_arn(location: str) -> str:
    """The objects of an S3 location ("s3://bucket/prefix/" or "s3://bucket/")."""
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    return objects_arn(bucket, prefix)


def _read_in_place(read_locations: Sequence[str]) -> list[Statement]:
    """GetObject (HeadObject and ranged reads included) on the configured data locations; none when the
    stack names none (no statement with an empty resource list)."""
    if not read_locations:
        return []
    return [allow("ReadBarsInPlace", ["s3:GetObject"], [location_arn(x) for x in read_locations])]


def function_arn(region: str, account_id: str, function: str) -> str:
    return f"arn:aws:lambda:{region}:{account_id}:function:{function}"


def layer_arn(region: str, account_id: str, layer: str) -> str:
    return f"arn:aws:lambda:{region}:{account_id}:layer:{layer}"


def role_arn(account_id: str, role: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{role}"


def log_group_arns(region: str, account_id: str, function: str) -> list[str]:
    """The function's own log group: the group itself (CreateLogGroup) and its streams (`:*`)."""
    group = f"arn:aws:logs:{region}:{account_id}:log-group:/aws/lambda/{function}"
    return [group, f"{group}:*"]


def account_of(account_id: str | None) -> str:
    """The account id, or the placeholder docs/iam renders in its place."""
    return account_id or ACCOUNT_PLACEHOLDER


def allow(
    sid: str,
    actions: Sequence[str],
    resources: Sequence[str] | str,
    condition: Mapping[str, Any] | None = None,
) -> Statement:
    """An Allow statement of exact actions (sorted) on exact resources, with a condition if given."""
    statement: Statement = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": resources if isinstance(resources, str) else list(resources),
    }
    if condition:
        statement["Condition"] = dict(condition)
    return statement


def policy_of(statements: Iterable[Statement]) -> Policy:
    """A policy document of `statements`."""
    return {"Version": VERSION, "Statement": list(statements)}


# --- the function roles -----------------------------------------------------------------------------------


def lambda_trust_policy(account_id: str | None = None) -> Policy:
    """Lambda (and only Lambda) may assume the role; with an account id, only on behalf of that account."""
    statement: Statement = {
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    if account_id:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account_id}}
    return policy_of([statement])


def _logs_statement(region: str, account_id: str, function: str) -> Statement:
    return allow(
        "OwnLogGroup",
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        log_group_arns(region, account_id, function),
    )


def _sqs_consume(sid: str, arns: Sequence[str]) -> Statement:
    """What an SQS event source mapping needs on the function's role to poll, extend and delete."""
    return allow(
        sid,
        ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"],
        arns,
    )


def worker_policy(
    names: StackNames,
    region: str,
    account_id: str | None,
    metric_namespace: str | None = None,
    read_locations: Sequence[str] = (),
) -> Policy:
    """The worker: consume jobs, read bars (uploaded ones, and objects in the stack's `data.read_locations`),
    write its results, send to the result queue (and DLQ), update its job's record. It cannot receive
    results, read or write summaries, or publish metrics (`metric_namespace` is accepted for a uniform
    signature with `collector_policy`)."""
    account = account_of(account_id)
    return policy_of(
        [
            _sqs_consume(
                "ConsumeJobQueues",
                [
                    queue_arn(region, account, names.job_queue),
                    queue_arn(region, account, names.priority_queue),
                ],
            ),
            allow(
                "SendResultsAndDeadLetters",
                ["sqs:SendMessage"],
                [
                    queue_arn(region, account, names.result_queue),
                    queue_arn(region, account, names.dead_letter_queue),
                ],
            ),
            allow("ReadBars", ["s3:GetObject"], [objects_arn(names.bucket, "bars/")]),
            *_read_in_place(read_locations),
            allow("WriteResults", ["s3:PutObject"], [objects_arn(names.bucket, "results/")]),
            allow(
                "TrackJobs",
                ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                [table_arn(region, account, names.table)],
            ),
            _logs_statement(region, account, names.worker_function),
        ]
    )


def collector_policy(names: StackNames, region: str, account_id: str | None, metric_namespace: str) -> Policy:
    """The collector: consume results, store results and digests, write summaries, count outcomes in the
    table (TransactWriteItems is authorized per item by UpdateItem: there is no separate IAM action),
    publish metrics in its namespace. It cannot receive jobs or send to any queue."""
    account = account_of(account_id)
    return policy_of(
        [
            _sqs_consume("ConsumeResultQueue", [queue_arn(region, account, names.result_queue)]),
            allow(
                "ReadWriteResultsAndSummaries",
                ["s3:GetObject", "s3:PutObject"],
                [objects_arn(names.bucket, "results/"), objects_arn(names.bucket, "summaries/")],
            ),
            allow(
                "CountOutcomes",
                ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"],
                [table_arn(region, account, names.table)],
            ),
            allow(
                "PutMetricDataOwnNamespaceOnly",
                ["cloudwatch:PutMetricData"],
                "*",
                {"StringEquals": {"cloudwatch:namespace": metric_namespace}},
            ),
            _logs_statement(region, account, names.collector_function),
        ]
    )


def batch_submitter_policy(
    names: StackNames, region: str, account_id: str | None, read_locations: Sequence[str] = ()
) -> Policy:
    """Who runs `scripts/run_batch.py --target aws` (a person, or backtest.yml through OIDC): upload bars
    (checking first whether the bucket holds them), check the S3 objects a batch reads in place (their
    metadata and first and last bytes, in `data.read_locations`), write the batch and its job records,
    reuse stored results of earlier batches (read the reuse index, record the outcome, write a digest for
    the batch's top N, and the summary when every job was reused), send jobs (reading queue depth to send
    in waves), follow progress and download the summary, write and read a validated sweep's document
    (validation/) and an adaptive search's (search/; a search grows and closes its batch record with
    UpdateItem and reads its waves' result bodies); and `scripts/results.py --target aws`: list
    batches (the batches-by-created index) and read stored results; after a batch, read the worker's Lambda
    metrics (the cost report's CloudWatch figure). It cannot receive jobs, write results bodies or change any
    resource."""
    account = account_of(account_id)
    queues = names.queues
    return policy_of(
        [
            allow("FindQueues", ["sqs:GetQueueUrl"], [queue_arn(region, account, q) for q in queues]),
            allow(
                "SendJobs",
                ["sqs:GetQueueAttributes", "sqs:SendMessage"],
                [queue_arn(region, account, q) for q in (names.job_queue, names.priority_queue)],
            ),
            allow("UploadBars", ["s3:GetObject", "s3:PutObject"], [objects_arn(names.bucket, "bars/")]),
            *_read_in_place(read_locations),
            allow(
                "ReadResultsWriteDigestsSummariesAndValidations",
                ["s3:GetObject", "s3:PutObject"],
                [
                    objects_arn(names.bucket, "summaries/"),
                    objects_arn(names.bucket, "results/"),
                    objects_arn(names.bucket, "validation/"),
                    objects_arn(names.bucket, "search/"),
                ],
            ),
            allow(
                "RecordFollowAndReuseBatches",
                [
                    "dynamodb:BatchGetItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:Query",
                    "dynamodb:UpdateItem",
                ],
                [table_arn(region, account, names.table)],
            ),
            allow(
                "ListBatches",
                ["dynamodb:Query"],
                [f"{table_arn(region, account, names.table)}/index/{BATCH_INDEX}"],
            ),
            # No resource type and no condition key: read-only metric reads, "*" is required.
            allow("ReadWorkerMetricsNoResourceType", ["cloudwatch:GetMetricData"], "*"),
        ]
    )


# --- the GitHub Actions deploy role -----------------------------------------------------------------------


def github_oidc_trust_policy(
    account_id: str | None, repo: str | None, environments: Sequence[str] = ("dev", "prod")
) -> Policy:
    """GitHub's OIDC provider may assume the role for jobs of `repo` that run in one of `environments` only
    (the `sub` claim of an environment job is `repo:<owner>/<repo>:environment:<name>`): no branch, tag,
    pull-request or other repository can."""
    if not environments:
        raise ValueError("at least one GitHub environment must be allowed to assume the deploy role")
    repository = repo or REPO_PLACEHOLDER
    subjects = [f"repo:{repository}:environment:{env}" for env in environments]
    return policy_of(
        [
            {
                "Sid": "GitHubActionsEnvironments",
                "Effect": "Allow",
                "Principal": {
                    "Federated": f"arn:aws:iam::{account_of(account_id)}:oidc-provider/{GITHUB_OIDC_HOST}"
                },
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": GITHUB_OIDC_AUDIENCE,
                        f"{GITHUB_OIDC_HOST}:sub": subjects if len(subjects) > 1 else subjects[0],
                    }
                },
            }
        ]
    )


# --- the bucket -------------------------------------------------------------------------------------------


def bucket_policy_tls_only(bucket: str) -> Policy:
    """Deny every S3 request to the bucket or its objects that does not use TLS. `s3:*` in this one Deny
    statement is the standard pattern (a Deny narrows access; it cannot widen it)."""
    return policy_of(
        [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn(bucket), objects_arn(bucket)],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ]
    )
