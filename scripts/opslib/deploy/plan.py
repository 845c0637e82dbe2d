"""Plan, then apply: every deploy script reads the current state, computes its changes as plain data, shows
them, and applies them only when asked.

A `Plan` is a list of `Change`s, each a list of boto3 `Call`s (service, operation, parameters, and an
optional waiter to run after it). Planning only reads; applying only executes the listed calls, in order.
A second run against an up-to-date stack plans nothing and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tabulate import tabulate

from backtesting_modules.names import StackNames
from backtesting_modules.pipeline.clients import ClientFactory

from ..stack import StackConfig


@dataclass(frozen=True)
class Ref:
    """A value known only at apply time: field `key` of the response of call number `call` of the same
    change (e.g. the version `publish_version` returns, for `update_alias`)."""

    call: int
    key: str

    def __repr__(self) -> str:
        return f"<{self.key} of step {self.call + 1}>"


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    params: Mapping[str, Any]
    waiter: tuple[str, Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class Change:
    action: str  # create | update | delete
    resource: str
    summary: str
    calls: tuple[Call, ...]
    diff: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "resource": self.resource,
            "summary": self.summary,
            "diff": {k: {"current": a, "desired": b} for k, (a, b) in self.diff.items()},
            "calls": [f"{c.service}.{c.operation}" for c in self.calls],
        }


@dataclass(frozen=True)
class Plan:
    unit: str
    changes: tuple[Change, ...] = ()

    def __add__(self, other: Plan) -> Plan:
        return Plan(f"{self.unit}+{other.unit}", self.changes + other.changes)

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def to_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "changes": [c.to_json() for c in self.changes]}

    def render_text(self) -> str:
        if self.is_empty:
            return f"{self.unit}: no changes, the stack is up to date."
        lines = [f"{self.unit}: {len(self.changes)} change(s)"]
        for change in self.changes:
            lines.append(f"  {change.action:<7} {change.resource}: {change.summary}")
            for key, (current, desired) in change.diff.items():
                lines.append(f"          {key}: {current!r} -> {desired!r}")
        return "\n".join(lines)

    def render_markdown(self) -> str:
        if self.is_empty:
            return f"### {self.unit}\n\nNo changes: the stack is up to date.\n"
        rows = [
            [
                c.action,
                f"`{c.resource}`",
                c.summary,
                "<br>".join(f"{k}: `{a}` → `{b}`" for k, (a, b) in c.diff.items()) or "–",
            ]
            for c in self.changes
        ]
        table = tabulate(rows, headers=["action", "resource", "change", "differences"], tablefmt="github")
        return f"### {self.unit}\n\n{table}\n"


@dataclass
class DeployContext:
    clients: ClientFactory
    config: StackConfig
    names: StackNames
    region: str
    account_id: str
    # The local emulator speaks plain HTTP on loopback, where a TLS-only bucket policy would deny every call;
    # it is the one setting the embedded stack leaves out.
    enforce_tls: bool = True

    def queue_arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account_id}:{name}"

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"

    # The ARNs below name what a refused read was about, in the planners' error messages.
    def role_arn(self, name: str) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{name}"

    def table_arn(self, name: str) -> str:
        return f"arn:aws:dynamodb:{self.region}:{self.account_id}:table/{name}"

    def layer_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{name}"

    def cloudwatch_arn(self, kind: str, name: str) -> str:
        """A dashboard (global: no region) or an alarm."""
        if kind == "dashboard":
            return f"arn:aws:cloudwatch::{self.account_id}:dashboard/{name}"
        return f"arn:aws:cloudwatch:{self.region}:{self.account_id}:alarm:{name}"


def apply_plan(plan: Plan, clients: ClientFactory, echo: Callable[[str], None] = print) -> None:
    """Execute every call of the plan in order; a failing call stops the apply with its error."""
    for change in plan.changes:
        responses: list[Mapping[str, Any]] = []
        for call in change.calls:
            client = clients.client(call.service)
            params = {k: _resolve(v, responses) for k, v in call.params.items()}
            responses.append(getattr(client, call.operation)(**params))
            if call.waiter is not None:
                name, waiter_params = call.waiter
                client.get_waiter(name).wait(**{k: _resolve(v, responses) for k, v in waiter_params.items()})
        echo(f"applied: {change.action} {change.resource}")


def _resolve(value: Any, responses: Sequence[Mapping[str, Any]]) -> Any:
    return responses[value.call][value.key] if isinstance(value, Ref) else value
