"""Plan, then apply: every deploy script reads the current state, computes its changes as plain data, shows
them, and applies them only when asked.

A `Plan` is a list of `Change`s, each a list of boto3 `Call`s (service, operation, parameters, and an
optional waiter to run after it). Planning only reads; applying only executes the listed calls, in order.
A second run against an up-to-date stack plans nothing and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from tabulate import tabulate

from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.names import ConfigurationError, StackNames

from .stack import StackConfig, check_region, load_stack


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


def common_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--environment", help="stack environment from config/stack.yaml (e.g. dev, prod)")
    parser.add_argument("--config", default=None, help="stack configuration file (default config/stack.yaml)")
    parser.add_argument(
        "--endpoint-url", help="AWS endpoint (e.g. the local emulator); honours AWS_ENDPOINT_URL"
    )
    parser.add_argument("--region", help="AWS region (default: the stack configuration's)")
    parser.add_argument("--dry-run", action="store_true", help="plan and show the changes, apply nothing")
    parser.add_argument("--json", action="store_true", help='print the plan as JSON {"changes": [...]}')
    parser.add_argument("--summary", metavar="FILE", help="append the plan as markdown (GitHub job summary)")
    parser.add_argument("--yes", action="store_true", help="apply without asking")
    return parser


def build_context(args: argparse.Namespace) -> DeployContext:
    kwargs = {"path": Path(args.config)} if args.config else {}
    config = load_stack(environment=args.environment, **kwargs)
    region = args.region or config.region
    if args.region:
        check_region(args.region, "--region")
    factory = ClientFactory.from_environ()
    clients = ClientFactory(endpoint_url=args.endpoint_url or factory.endpoint_url, region=region)
    account = clients.client("sts").get_caller_identity()["Account"]
    return DeployContext(clients, config, config.names(account_id=account), region, account)


@contextmanager
def setup_errors_exit(parser: argparse.ArgumentParser) -> Iterator[None]:
    """Turn missing credentials and setup errors (reading config, reading AWS state) into exit status 2."""
    try:
        yield
    except NoCredentialsError:
        parser.exit(
            2,
            f"{parser.prog}: error: no AWS credentials: configure them (or OIDC in GitHub Actions), "
            "or pass --endpoint-url for the local emulator.\n",
        )
    except (ConfigurationError, ClientError, BotoCoreError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")


def run_unit(
    planner: Callable[[DeployContext], Plan],
    argv: Sequence[str] | None,
    description: str,
    parser: argparse.ArgumentParser | None = None,
) -> int:
    """The main() of a deploy script: plan, show, confirm, apply. Exit 2 for usage or setup errors."""
    parser = parser or common_parser(description)
    args = parser.parse_args(argv)
    with setup_errors_exit(parser):
        ctx = build_context(args)
        plan = planner(ctx)
    show(plan, args)
    if plan.is_empty or args.dry_run:
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            parser.exit(
                2,
                f"{parser.prog}: error: {len(plan.changes)} change(s) planned; pass --yes to apply "
                "without a terminal, or --dry-run to only plan.\n",
            )
        if input("Apply these changes? [y/N] ").strip().lower() not in {"y", "yes"}:
            print("Nothing applied.")
            return 0
    try:
        apply_plan(plan, ctx.clients, echo=(lambda _: None) if args.json else print)
    except (ClientError, BotoCoreError) as exc:
        print(f"{parser.prog}: apply failed: {exc}", file=sys.stderr)
        return 1
    return 0


def show(plan: Plan, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(plan.to_json()))
    else:
        print(plan.render_text())
    if args.summary:
        with Path(args.summary).open("a", encoding="utf-8") as handle:
            handle.write(plan.render_markdown() + "\n")
