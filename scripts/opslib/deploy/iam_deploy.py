"""What the GitHub Actions deploy role may do (`github_deploy_policy`): the deploy scripts (deploy_*.py,
teardown.py) on the stack(s) it names, and nothing else — every resource an ARN of the stack, the function
roles passable only to Lambda. Plain data, built from `iam`'s ARNs and statements and checked by
`policy_check.validate_policy` like every other document.
"""

from __future__ import annotations

from collections.abc import Sequence

from backtesting_modules.names import StackNames

from .iam import (
    Policy,
    Statement,
    account_of,
    allow,
    bucket_arn,
    function_arn,
    layer_arn,
    objects_arn,
    policy_of,
    queue_arn,
    role_arn,
    table_arn,
)

# Alarm names monitoring.py defines as `<prefix>-<suffix>` and the dashboard `<prefix>-backtesting`.
ALARM_SUFFIXES = ("dlq-not-empty", "worker-errors", "oldest-job-age")
DASHBOARD_SUFFIX = "backtesting"


def github_deploy_policy(
    names: StackNames | Sequence[StackNames], region: str, account_id: str | None
) -> Policy:
    """What the deploy scripts (deploy_*.py, teardown.py) need for the stack(s) `names`, and nothing else:
    every resource is an ARN of the stack; the role can pass only the two function roles, only to Lambda."""
    stacks = [names] if isinstance(names, StackNames) else list(names)
    if not stacks:
        raise ValueError("github_deploy_policy needs at least one stack")
    account = account_of(account_id)
    return policy_of(
        [
            *_deploy_queue_and_table_statements(stacks, region, account),
            *_deploy_bucket_statements(stacks),
            *_deploy_role_statements(stacks, account),
            *_deploy_function_statements(stacks, region, account),
            *_deploy_mapping_statements(stacks, region, account),
            *_deploy_monitoring_statements(stacks, region, account),
        ]
    )


def _our_function_arns(stacks: Sequence[StackNames], region: str, account: str) -> list[str]:
    """The stacks' functions, then their versions and aliases (`live`): `function:<name>:<qualifier>`."""
    functions = [
        function_arn(region, account, f) for n in stacks for f in (n.worker_function, n.collector_function)
    ]
    return functions + [f"{arn}:*" for arn in functions]


def _deploy_queue_and_table_statements(
    stacks: Sequence[StackNames], region: str, account: str
) -> list[Statement]:
    return [
        allow(
            "Queues",
            [
                "sqs:CreateQueue",
                "sqs:DeleteQueue",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:ListQueueTags",
                "sqs:SetQueueAttributes",
                "sqs:TagQueue",
                "sqs:UntagQueue",
            ],
            [queue_arn(region, account, q) for n in stacks for q in n.queues],
        ),
        allow(
            "Table",
            [
                "dynamodb:CreateTable",
                "dynamodb:DeleteTable",
                "dynamodb:DescribeContinuousBackups",
                "dynamodb:DescribeTable",
                "dynamodb:DescribeTimeToLive",
                "dynamodb:ListTagsOfResource",
                "dynamodb:TagResource",
                "dynamodb:UpdateContinuousBackups",
                "dynamodb:UpdateTable",
                "dynamodb:UpdateTimeToLive",
            ],
            [table_arn(region, account, n.table) for n in stacks],
        ),
    ]


def _deploy_bucket_statements(stacks: Sequence[StackNames]) -> list[Statement]:
    return [
        allow(
            "Bucket",
            [
                "s3:CreateBucket",
                "s3:DeleteBucket",
                "s3:DeleteBucketPolicy",
                "s3:GetBucketPolicy",
                "s3:GetBucketPublicAccessBlock",
                "s3:GetBucketTagging",
                "s3:GetEncryptionConfiguration",
                "s3:GetLifecycleConfiguration",
                "s3:ListBucket",
                "s3:PutBucketPolicy",
                "s3:PutBucketPublicAccessBlock",
                "s3:PutBucketTagging",
                "s3:PutEncryptionConfiguration",
                "s3:PutLifecycleConfiguration",
            ],
            [bucket_arn(n.bucket) for n in stacks],
        ),
        allow(
            "LayerUploads",
            ["s3:GetObject", "s3:PutObject"],
            [objects_arn(n.bucket, "layers/") for n in stacks],
        ),
        # Only `teardown.py --delete-data` uses it, to empty the bucket before deleting it.
        allow("TeardownEmptyBucket", ["s3:DeleteObject"], [objects_arn(n.bucket) for n in stacks]),
    ]


def _deploy_role_statements(stacks: Sequence[StackNames], account: str) -> list[Statement]:
    roles = [role_arn(account, n.role(f)) for n in stacks for f in (n.worker_function, n.collector_function)]
    return [
        allow(
            "FunctionRoles",
            [
                "iam:CreateRole",
                "iam:DeleteRole",
                "iam:DeleteRolePolicy",
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:ListRolePolicies",
                "iam:PutRolePolicy",
                "iam:TagRole",
                "iam:UpdateAssumeRolePolicy",
            ],
            roles,
        ),
        allow(
            "PassFunctionRolesToLambdaOnly",
            ["iam:PassRole"],
            roles,
            {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
        ),
    ]


def _deploy_function_statements(stacks: Sequence[StackNames], region: str, account: str) -> list[Statement]:
    layers = [layer_arn(region, account, n.layer) for n in stacks]
    return [
        allow(
            "Functions",
            [
                "lambda:CreateAlias",
                "lambda:CreateFunction",
                "lambda:DeleteFunction",
                "lambda:DeleteFunctionConcurrency",
                "lambda:GetAlias",
                "lambda:GetFunction",
                "lambda:GetFunctionConcurrency",
                "lambda:GetFunctionConfiguration",
                "lambda:ListTags",
                "lambda:ListVersionsByFunction",
                "lambda:PublishVersion",
                "lambda:PutFunctionConcurrency",
                "lambda:TagResource",
                "lambda:UpdateAlias",
                "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration",
            ],
            _our_function_arns(stacks, region, account),
        ),
        allow("PublishLayer", ["lambda:PublishLayerVersion"], layers),
        allow(
            "LayerVersions",
            ["lambda:DeleteLayerVersion", "lambda:GetLayerVersion"],
            [f"{arn}:*" for arn in layers],
        ),
    ]


def _deploy_mapping_statements(stacks: Sequence[StackNames], region: str, account: str) -> list[Statement]:
    our_functions = {"ArnLike": {"lambda:FunctionArn": _our_function_arns(stacks, region, account)}}
    return [
        # The mapping ARN holds a UUID AWS assigns: the condition pins the mappings to our functions.
        allow(
            "EventSourceMappingsOfOurFunctions",
            [
                "lambda:DeleteEventSourceMapping",
                "lambda:GetEventSourceMapping",
                "lambda:UpdateEventSourceMapping",
            ],
            [f"arn:aws:lambda:{region}:{account}:event-source-mapping:*"],
            our_functions,
        ),
        # No resource type in the Service Authorization Reference: "*" is required; the
        # lambda:FunctionArn condition limits new mappings to our functions.
        allow(
            "CreateEventSourceMappingNoResourceTypeFunctionCondition",
            ["lambda:CreateEventSourceMapping"],
            "*",
            our_functions,
        ),
        # No resource type and no condition key: read-only listing, "*" is required.
        allow(
            "ListMappingsAndLayerVersionsNoResourceType",
            ["lambda:ListEventSourceMappings", "lambda:ListLayerVersions"],
            "*",
        ),
    ]


def _deploy_monitoring_statements(stacks: Sequence[StackNames], region: str, account: str) -> list[Statement]:
    dashboards = [f"arn:aws:cloudwatch::{account}:dashboard/{n.prefix}-{DASHBOARD_SUFFIX}" for n in stacks]
    alarms = [
        f"arn:aws:cloudwatch:{region}:{account}:alarm:{n.prefix}-{suffix}"
        for n in stacks
        for suffix in ALARM_SUFFIXES
    ]
    return [
        allow(
            "Dashboard",
            ["cloudwatch:DeleteDashboards", "cloudwatch:GetDashboard", "cloudwatch:PutDashboard"],
            dashboards,
        ),
        allow(
            "Alarms",
            ["cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm"],
            alarms,
        ),
    ]
