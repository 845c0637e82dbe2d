"""Reading the live stack: what a planner needs to tell "absent" from the rest, in one place.

Planners only read (describe/get/list calls), and every read goes through `read`, `read_or_none` or
`exists`. Only the "not found" codes the caller names (those its API documents, e.g. `LAMBDA_NOT_FOUND`)
mean absent. A refused read (missing permission, invalid or expired credentials) stops the plan with
`DeployAccessError`, a throttled one (after botocore's own retries) with `DeployThrottledError`: a plan must
never say "create" for a resource it was not allowed to see, nor a teardown skip one silently. Any other
error is raised as it is.

| error codes | meaning | outcome |
|---|---|---|
| the caller's not-found set (table below) | the resource or setting is absent | `None` / `False` |
| `ACCESS_DENIED`, `BAD_CREDENTIALS` | the deploy role or its credentials | `DeployAccessError` |
| `THROTTLED` | AWS rate limit | `DeployThrottledError` (retry) |
| anything else | unexpected | the `ClientError` itself |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn, TypeVar

from botocore.exceptions import ClientError

from ..errors import DeployAccessError, DeployThrottledError

T = TypeVar("T")

# "Not found", per API (the error codes each documents; both SQS protocols' spellings).
LAMBDA_NOT_FOUND = frozenset({"ResourceNotFoundException"})  # GetFunction, GetAlias, ListEventSourceMappings
SQS_NOT_FOUND = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})  # GetQueueUrl
IAM_NOT_FOUND = frozenset({"NoSuchEntity"})  # GetRole, GetRolePolicy
DYNAMODB_NOT_FOUND = frozenset({"ResourceNotFoundException"})  # DescribeTable
CLOUDWATCH_NOT_FOUND = frozenset({"ResourceNotFound", "ResourceNotFoundException"})  # GetDashboard
S3_BUCKET_NOT_FOUND = frozenset({"404", "NoSuchBucket", "NotFound"})  # HeadBucket (no body: the status)
# A bucket setting never configured (S3 answers these on the Get of that setting).
S3_PUBLIC_ACCESS_BLOCK_ABSENT = frozenset({"NoSuchPublicAccessBlockConfiguration"})
S3_ENCRYPTION_ABSENT = frozenset({"ServerSideEncryptionConfigurationNotFoundError"})
S3_POLICY_ABSENT = frozenset({"NoSuchBucketPolicy"})
S3_LIFECYCLE_ABSENT = frozenset({"NoSuchLifecycleConfiguration"})

ACCESS_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthorizationError",
        "403",  # HeadBucket answers a bare status
        "Forbidden",
    }
)
BAD_CREDENTIALS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
    }
)
THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)
DEPLOY_POLICY = "docs/iam/github-deploy-policy.json"


def error_code(exc: ClientError) -> str:
    """The AWS error code of a failed call ("ResourceNotFoundException", "NoSuchEntity", "404", ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def stop(exc: ClientError, action: str, resource: str) -> NoReturn:
    """Raise the error a failed read means: access or throttling errors as ours, anything else as it is.
    `action` is the IAM permission of the call ("lambda:GetFunction"), `resource` what it read (an ARN)."""
    code = error_code(exc)
    if code in ACCESS_DENIED:
        raise DeployAccessError(
            f"{action} on {resource}: {code} — the deploy role needs it ({DEPLOY_POLICY}, docs/deploy.md "
            "§3); nothing was planned or changed."
        ) from exc
    if code in BAD_CREDENTIALS:
        raise DeployAccessError(
            f"{action} on {resource}: {code} — the AWS credentials are invalid or expired: refresh them "
            "(in CI, the OIDC session of the deploy role); nothing was planned or changed."
        ) from exc
    if code in THROTTLED:
        raise DeployThrottledError(
            f"{action} on {resource}: {code} — AWS throttled the read (botocore's retries included); "
            "nothing was changed: retry the deploy in a minute."
        ) from exc
    raise exc


def read(call: Callable[[], T], action: str, resource: str) -> T:
    """The answer of a read that must succeed (an access or throttling error stops the plan)."""
    try:
        return call()
    except ClientError as exc:
        stop(exc, action, resource)


def read_or_none(call: Callable[[], T], action: str, resource: str, not_found: frozenset[str]) -> T | None:
    """The answer of a read, or None when AWS answers one of the `not_found` codes (absent)."""
    try:
        return call()
    except ClientError as exc:
        if error_code(exc) in not_found:
            return None
        stop(exc, action, resource)


def exists(call: Callable[[], object], action: str, resource: str, not_found: frozenset[str]) -> bool:
    """Whether a describe/get call finds its resource: False only for a `not_found` code."""
    return read_or_none(call, action, resource, not_found) is not None
