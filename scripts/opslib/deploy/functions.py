"""Planning the two Lambda functions: code, configuration, versions, the `live` alias, event source mappings.

- code is uploaded only when its CodeSha256 differs; configuration (memory, timeout, role, layers,
  environment) is updated when it differs; either publishes a version described by the git sha and moves
  the alias `live` to it;
- event source mappings point at the alias (so a rollback moves traffic with it) and report batch item
  failures; the worker reads the job and priority queues, the collector the result queue (`mappings.py`);
- `plan_rollback` moves `live` back to the previous published version.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from backtesting_modules.pipeline.env import ONE_BLAS_THREAD

from ..errors import DeployError, NotDeployedError
from .mappings import ALIAS, plan_mappings, teardown_mappings
from .plan import Call, Change, DeployContext, Plan, Ref
from .state import LAMBDA_NOT_FOUND, SQS_NOT_FOUND, exists, read, read_or_none

ROOT = Path(__file__).resolve().parents[3]
RUNTIME = "python3.12"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class FunctionSpec:
    key: str  # "worker" | "collector": the lambdas/ folder and the config/stack.yaml section
    name: str
    sources: tuple[str, ...]  # queue names feeding it


def function_specs(ctx: DeployContext) -> dict[str, FunctionSpec]:
    names = ctx.names
    return {
        "worker": FunctionSpec("worker", names.worker_function, (names.job_queue, names.priority_queue)),
        "collector": FunctionSpec("collector", names.collector_function, (names.result_queue,)),
    }


def function_zip(key: str) -> bytes:
    """The function package: its handler alone (the engine comes from the layer), zipped deterministically."""
    source = ROOT / "lambdas" / key / "handler.py"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("handler.py", date_time=_FIXED_TIME)
        info.external_attr = 0o644 << 16
        archive.writestr(info, source.read_bytes())
    return buffer.getvalue()


def code_sha256(package: bytes) -> str:
    """Lambda's CodeSha256: base64 of the SHA-256 digest of the package."""
    return base64.b64encode(hashlib.sha256(package).digest()).decode()


def environment(ctx: DeployContext) -> dict[str, str]:
    """The handlers' environment variables (`StackConfig.handler_env`), with the deployed queues' URLs, and
    one BLAS thread (`ONE_BLAS_THREAD`: the function has one vCPU at the worker's memory)."""
    sqs = ctx.clients.client("sqs")
    names = ctx.names
    urls = {}
    for name in (names.result_queue, names.dead_letter_queue):
        found = read_or_none(
            partial(sqs.get_queue_url, QueueName=name), "sqs:GetQueueUrl", ctx.queue_arn(name), SQS_NOT_FOUND
        )
        if found is None:
            raise NotDeployedError(f"queue {name} not found: deploy the queues first (deploy_queues.py)")
        urls[name] = str(found["QueueUrl"])
    return {**ONE_BLAS_THREAD, **ctx.config.handler_env(names, urls).to_environ()}


def desired_configuration(ctx: DeployContext, spec: FunctionSpec, layer_arn: str | None) -> dict[str, Any]:
    settings = ctx.config.function(spec.key)
    return {
        "FunctionName": spec.name,
        "Role": f"arn:aws:iam::{ctx.account_id}:role/{ctx.names.role(spec.name)}",
        "Handler": "handler.handler",
        "Runtime": RUNTIME,
        "MemorySize": settings.memory_mb,
        "Timeout": settings.timeout_s,
        "Environment": {"Variables": environment(ctx)},
        "Layers": [layer_arn] if layer_arn else [],
    }


def _config_diff(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    seen = {
        "Role": current.get("Role"),
        "Handler": current.get("Handler"),
        "Runtime": current.get("Runtime"),
        "MemorySize": current.get("MemorySize"),
        "Timeout": current.get("Timeout"),
        "Environment": {"Variables": current.get("Environment", {}).get("Variables", {})},
        "Layers": [layer["Arn"] for layer in current.get("Layers", [])],
    }
    return {k: (seen[k], desired[k]) for k in seen if seen[k] != desired[k]}


def _publish_calls(spec: FunctionSpec, git_sha: str, *, alias_exists: bool, index: int) -> tuple[Call, Call]:
    """Publish a version (call number `index` of its change) and point the alias at it."""
    publish = Call("lambda", "publish_version", {"FunctionName": spec.name, "Description": git_sha})
    alias_params = {"FunctionName": spec.name, "Name": ALIAS, "FunctionVersion": Ref(index, "Version")}
    move = Call("lambda", "update_alias" if alias_exists else "create_alias", alias_params)
    return publish, move


def _plan_mappings(ctx: DeployContext, spec: FunctionSpec) -> list[Change]:
    return plan_mappings(ctx, spec.key, spec.name, spec.sources)


def plan_function(ctx: DeployContext, key: str, *, layer_arn: str | None, git_sha: str) -> Plan:
    spec = function_specs(ctx)[key]
    client = ctx.clients.client("lambda")
    package = function_zip(key)
    desired = desired_configuration(ctx, spec, layer_arn)
    arn = ctx.function_arn(spec.name)
    found = read_or_none(
        partial(client.get_function, FunctionName=spec.name), "lambda:GetFunction", arn, LAMBDA_NOT_FOUND
    )
    if found is None:
        return _plan_create(ctx, key, spec, package, desired, git_sha)
    changes = _plan_update(ctx, spec, found["Configuration"], package, desired, git_sha)
    concurrency = read(
        partial(client.get_function_concurrency, FunctionName=spec.name), "lambda:GetFunctionConcurrency", arn
    )
    reserved = concurrency.get("ReservedConcurrentExecutions")
    return Plan(key, (*changes, *_plan_concurrency(ctx, spec, reserved), *_plan_mappings(ctx, spec)))


def _plan_create(
    ctx: DeployContext, key: str, spec: FunctionSpec, package: bytes, desired: dict[str, Any], git_sha: str
) -> Plan:
    """A new function: create it, publish version 1 and create the alias; then concurrency and mappings."""
    # The function runs the layer's native code, so it takes the layer's architecture.
    architecture = [ctx.config.layer.architecture]
    create = Call(
        "lambda",
        "create_function",
        {**desired, "Code": {"ZipFile": package}, "Architectures": architecture, "Publish": False},
        waiter=("function_active_v2", {"FunctionName": spec.name}),
    )
    publish, alias = _publish_calls(spec, git_sha, alias_exists=False, index=1)
    change = Change(
        "create",
        f"function {spec.name}",
        f"create, publish {git_sha[:12]}, alias {ALIAS}",
        (create, publish, alias),
    )
    return Plan(key, (change, *_plan_concurrency(ctx, spec, None), *_plan_mappings(ctx, spec)))


def _plan_update(
    ctx: DeployContext,
    spec: FunctionSpec,
    current: Mapping[str, Any],
    package: bytes,
    desired: dict[str, Any],
    git_sha: str,
) -> list[Change]:
    """An existing function: update its code and/or configuration where they differ, then publish a version
    and move the alias to it (no change when both are as desired)."""
    steps: list[Call] = []
    diff: dict[str, tuple[Any, Any]] = {}
    if current.get("CodeSha256") != code_sha256(package):
        diff["CodeSha256"] = (current.get("CodeSha256"), code_sha256(package))
        steps.append(
            Call(
                "lambda",
                "update_function_code",
                {"FunctionName": spec.name, "ZipFile": package},
                waiter=("function_updated_v2", {"FunctionName": spec.name}),
            )
        )
    config_diff = _config_diff(current, desired)
    if config_diff:
        diff.update(config_diff)
        steps.append(
            Call(
                "lambda",
                "update_function_configuration",
                desired,
                waiter=("function_updated_v2", {"FunctionName": spec.name}),
            )
        )
    if not steps:
        return []
    alias_exists = _alias_version(ctx, spec) is not None
    publish, move = _publish_calls(spec, git_sha, alias_exists=alias_exists, index=len(steps))
    return [
        Change(
            "update",
            f"function {spec.name}",
            f"update {', '.join(sorted(diff))}; publish {git_sha[:12]}; move {ALIAS}",
            (*steps, publish, move),
            diff,
        )
    ]


def _plan_concurrency(ctx: DeployContext, spec: FunctionSpec, current: int | None) -> list[Change]:
    """Reserved concurrency: set when configured and different, removed when no longer configured."""
    desired = ctx.config.function(spec.key).reserved_concurrency
    if desired == current:
        return []
    if desired is None:
        call = Call("lambda", "delete_function_concurrency", {"FunctionName": spec.name})
    else:
        call = Call(
            "lambda",
            "put_function_concurrency",
            {"FunctionName": spec.name, "ReservedConcurrentExecutions": desired},
        )
    return [
        Change(
            "update",
            f"function {spec.name}",
            "reserved concurrency",
            (call,),
            {"ReservedConcurrentExecutions": (current, desired)},
        )
    ]


def _alias_version(ctx: DeployContext, spec: FunctionSpec) -> str | None:
    lam = ctx.clients.client("lambda")
    alias = read_or_none(
        partial(lam.get_alias, FunctionName=spec.name, Name=ALIAS),
        "lambda:GetAlias",
        f"{ctx.function_arn(spec.name)}:{ALIAS}",
        LAMBDA_NOT_FOUND,
    )
    return None if alias is None else str(alias["FunctionVersion"])


def plan_rollback(ctx: DeployContext, key: str) -> Plan:
    """Move `live` to the version published before the one it points at."""
    spec = function_specs(ctx)[key]
    current = _alias_version(ctx, spec)
    if current is None or not current.isdigit():
        raise DeployError(f"{spec.name} has no '{ALIAS}' alias on a published version: nothing to roll back.")
    paginator = ctx.clients.client("lambda").get_paginator("list_versions_by_function")
    versions = read(
        lambda: sorted(
            int(v["Version"])
            for page in paginator.paginate(FunctionName=spec.name)
            for v in page["Versions"]
            if v["Version"].isdigit()
        ),
        "lambda:ListVersionsByFunction",
        ctx.function_arn(spec.name),
    )
    earlier = [v for v in versions if v < int(current)]
    if not earlier:
        raise DeployError(f"{spec.name}: version {current} is the first published one; nothing earlier.")
    target = str(earlier[-1])
    call = Call(
        "lambda", "update_alias", {"FunctionName": spec.name, "Name": ALIAS, "FunctionVersion": target}
    )
    return Plan(
        f"rollback {key}",
        (
            Change(
                "update",
                f"alias {spec.name}:{ALIAS}",
                f"roll back to version {target}",
                (call,),
                {"FunctionVersion": (current, target)},
            ),
        ),
    )


def teardown_functions(ctx: DeployContext) -> list[Change]:
    """Unmap the event sources from each function's alias, then delete the function (its versions and
    alias go with it)."""
    lam = ctx.clients.client("lambda")
    changes: list[Change] = []
    for spec in function_specs(ctx).values():
        changes += teardown_mappings(ctx, spec.name)
        if exists(
            partial(lam.get_function, FunctionName=spec.name),
            "lambda:GetFunction",
            ctx.function_arn(spec.name),
            LAMBDA_NOT_FOUND,
        ):
            changes.append(
                Change(
                    "delete",
                    f"function {spec.name}",
                    "delete with its versions and alias",
                    (Call("lambda", "delete_function", {"FunctionName": spec.name}),),
                )
            )
    return changes
