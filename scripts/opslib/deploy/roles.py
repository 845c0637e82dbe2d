"""The roles unit: one IAM role per function, trusted by Lambda, with one inline least-privilege policy;
planned and torn down."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import unquote

from .iam import collector_policy, lambda_trust_policy, worker_policy
from .plan import Call, Change, DeployContext, Plan
from .state import IAM_NOT_FOUND, read, read_or_none


def _document(value: Any) -> Any:
    """IAM returns policy documents URL-encoded strings (or already decoded by boto3): compare as data."""
    return json.loads(unquote(value)) if isinstance(value, str) else value


def role_policies(ctx: DeployContext) -> dict[str, tuple[str, dict[str, Any]]]:
    """function name → (role name, its inline policy)."""
    config = ctx.config
    builders: dict[str, Callable[[], dict[str, Any]]] = {
        ctx.names.worker_function: lambda: worker_policy(
            ctx.names, ctx.region, ctx.account_id, config.metric_namespace, config.data_read_locations
        ),
        ctx.names.collector_function: lambda: collector_policy(
            ctx.names, ctx.region, ctx.account_id, config.metric_namespace
        ),
    }
    return {function: (ctx.names.role(function), build()) for function, build in builders.items()}


def plan_roles(ctx: DeployContext) -> Plan:
    iam = ctx.clients.client("iam")
    trust = lambda_trust_policy(ctx.account_id)
    changes: list[Change] = []
    for role, policy in role_policies(ctx).values():
        policy_name = f"{role}-policy"
        put_policy = Call(
            "iam",
            "put_role_policy",
            {"RoleName": role, "PolicyName": policy_name, "PolicyDocument": json.dumps(policy)},
        )
        arn = ctx.role_arn(role)
        found = read_or_none(partial(iam.get_role, RoleName=role), "iam:GetRole", arn, IAM_NOT_FOUND)
        if found is None:
            create = Call(
                "iam",
                "create_role",
                {
                    "RoleName": role,
                    "AssumeRolePolicyDocument": json.dumps(trust),
                    "Description": "Least-privilege role of one pipeline function",
                },
                waiter=("role_exists", {"RoleName": role}),
            )
            changes.append(
                Change("create", f"role {role}", "create with its inline policy", (create, put_policy))
            )
            continue
        if _document(found["Role"]["AssumeRolePolicyDocument"]) != trust:
            changes.append(
                Change(
                    "update",
                    f"role {role}",
                    "trust policy",
                    (
                        Call(
                            "iam",
                            "update_assume_role_policy",
                            {"RoleName": role, "PolicyDocument": json.dumps(trust)},
                        ),
                    ),
                )
            )
        answer = read_or_none(
            partial(iam.get_role_policy, RoleName=role, PolicyName=policy_name),
            "iam:GetRolePolicy",
            arn,
            IAM_NOT_FOUND,
        )
        inline = None if answer is None else _document(answer["PolicyDocument"])
        if inline != policy:
            changes.append(Change("update", f"role {role}", "inline policy", (put_policy,)))
    return Plan("roles", tuple(changes))


def teardown_roles(ctx: DeployContext) -> list[Change]:
    iam = ctx.clients.client("iam")
    changes = []
    for role, _ in role_policies(ctx).values():
        arn = ctx.role_arn(role)
        if read_or_none(partial(iam.get_role, RoleName=role), "iam:GetRole", arn, IAM_NOT_FOUND) is None:
            continue
        listed = read(partial(iam.list_role_policies, RoleName=role), "iam:ListRolePolicies", arn)
        names = listed.get("PolicyNames", [])
        calls = [Call("iam", "delete_role_policy", {"RoleName": role, "PolicyName": n}) for n in names]
        calls.append(Call("iam", "delete_role", {"RoleName": role}))
        changes.append(Change("delete", f"role {role}", "delete with its inline policy", tuple(calls)))
    return changes
