"""The least-privilege check every generated IAM document passes (`validate_policy`), and the few actions
AWS authorizes only against `"*"`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .iam import VERSION

# Actions that AWS authorizes only against "*" (no resource type), mapped to the condition key the statement
# must then carry, or None where the action supports no condition key at all.
WILDCARD_RESOURCE_ACTIONS: dict[str, str | None] = {
    # CloudWatch metrics have no ARN; the namespace condition confines the function to our namespace.
    "cloudwatch:PutMetricData": "cloudwatch:namespace",
    # CloudWatch: reading metrics has no resource type and no condition key (read-only; the batch principal
    # reads the worker's AWS/Lambda metrics for the cost report).
    "cloudwatch:GetMetricData": None,
    # Lambda: creating a mapping has no resource type; lambda:FunctionArn limits it to our functions.
    "lambda:CreateEventSourceMapping": "lambda:FunctionArn",
    # Lambda: listing mappings and layer versions has no resource type and no condition key (read-only).
    "lambda:ListEventSourceMappings": None,
    "lambda:ListLayerVersions": None,
}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _condition_keys(condition: Any) -> set[str]:
    if not isinstance(condition, Mapping):
        return set()
    return {key for block in condition.values() if isinstance(block, Mapping) for key in block}


def validate_policy(doc: Mapping[str, Any]) -> list[str]:
    """Least-privilege findings of a policy document; an empty list means it passes.

    Flags: a Version other than 2012-10-17; no statements, or a statement with no actions; in an Allow
    statement, any wildcard action (`*`, `s3:*`, `s3:Get*`), NotAction or NotResource, a `*` principal, and a
    `*` resource except for the actions in `WILDCARD_RESOURCE_ACTIONS` (then with their condition key).
    Deny statements may use wildcards (e.g. the TLS-only bucket policy's `s3:*`): they only take away.
    """
    findings: list[str] = []
    if doc.get("Version") != VERSION:
        findings.append(f"Version must be {VERSION!r}, found {doc.get('Version')!r}")
    statements = _as_list(doc.get("Statement"))
    if not statements:
        findings.append("the policy has no statements")
    for index, statement in enumerate(statements):
        if not isinstance(statement, Mapping) or not statement:
            findings.append(f"statement {index} is empty or not an object")
            continue
        findings += _statement_findings(f"statement {index} ({statement.get('Sid', 'no Sid')})", statement)
    return findings


def _statement_findings(label: str, statement: Mapping[str, Any]) -> list[str]:
    effect = statement.get("Effect")
    if effect not in ("Allow", "Deny"):
        return [f"{label}: Effect must be Allow or Deny, found {effect!r}"]
    findings: list[str] = []
    actions = [str(a) for a in _as_list(statement.get("Action"))]
    if not actions and "NotAction" not in statement:
        findings.append(f"{label}: no actions")
    if effect == "Deny":
        return findings
    for element in ("NotAction", "NotResource"):
        if element in statement:
            findings.append(f"{label}: {element} in an Allow statement grants everything else")
    findings += [f"{label}: wildcard action {a!r}" for a in actions if "*" in a]
    principal = statement.get("Principal")
    if principal == "*" or (
        isinstance(principal, Mapping) and any("*" in _as_list(v) for v in principal.values())
    ):
        findings.append(f"{label}: Allow to any principal ('*')")
    if principal is None and "Resource" not in statement and "NotResource" not in statement:
        findings.append(f"{label}: no Resource")
    if "*" in [str(r) for r in _as_list(statement.get("Resource"))]:
        findings += _wildcard_resource_findings(label, actions, _condition_keys(statement.get("Condition")))
    return findings


def _wildcard_resource_findings(label: str, actions: list[str], condition_keys: set[str]) -> list[str]:
    findings = []
    for action in actions:
        if action not in WILDCARD_RESOURCE_ACTIONS:
            findings.append(f"{label}: {action!r} on resource '*'")
            continue
        required = WILDCARD_RESOURCE_ACTIONS[action]
        if required is not None and required not in condition_keys:
            findings.append(f"{label}: {action!r} on resource '*' without a {required} condition")
    return findings
