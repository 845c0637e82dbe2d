"""What every deploy script shares: its arguments, the context it plans in, plan → show → confirm → apply,
and the exit statuses (0 applied or nothing to do, 1 an apply failed, 2 usage or setup errors)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from backtesting_modules.pipeline.clients import ClientFactory

from ..cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from ..errors import OpsError
from ..stack import check_region, load_stack
from .functions import plan_function, plan_rollback
from .plan import DeployContext, Plan, apply_plan
from .state import read


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
            EXIT_USAGE,
            f"{parser.prog}: error: no AWS credentials: configure them (or OIDC in GitHub Actions), "
            "or pass --endpoint-url for the local emulator.\n",
        )
    except (OpsError, ClientError, BotoCoreError) as exc:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {exc}\n")


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
        return EXIT_OK
    if not args.yes:
        if not sys.stdin.isatty():
            parser.exit(
                EXIT_USAGE,
                f"{parser.prog}: error: {len(plan.changes)} change(s) planned; pass --yes to apply "
                "without a terminal, or --dry-run to only plan.\n",
            )
        if input("Apply these changes? [y/N] ").strip().lower() not in {"y", "yes"}:
            print("Nothing applied.")
            return EXIT_OK
    try:
        apply_plan(plan, ctx.clients, echo=(lambda _: None) if args.json else print)
    except (ClientError, BotoCoreError) as exc:
        print(f"{parser.prog}: apply failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def show(plan: Plan, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(plan.to_json()))
    else:
        print(plan.render_text())
    if args.summary:
        with Path(args.summary).open("a", encoding="utf-8") as handle:
            handle.write(plan.render_markdown() + "\n")


def git_sha() -> str:
    """The commit being deployed: GITHUB_SHA in Actions, else the checkout's HEAD."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def latest_layer(ctx: DeployContext) -> str | None:
    lam = ctx.clients.client("lambda")
    versions = read(
        partial(lam.list_layer_versions, LayerName=ctx.names.layer),
        "lambda:ListLayerVersions",
        ctx.layer_arn(ctx.names.layer),
    ).get("LayerVersions", [])
    return str(versions[0]["LayerVersionArn"]) if versions else None


def function_main(key: str, argv: Sequence[str] | None) -> int:
    parser = common_parser(f"Deploy the {key} Lambda (plan, then apply).")
    parser.add_argument(
        "--layer-arn", help="layer version ARN (default: the latest version of the stack's layer)"
    )
    parser.add_argument("--git-sha", help="version description (default: GITHUB_SHA or git HEAD)")
    parser.add_argument("--rollback", action="store_true", help="move the alias back to the previous version")
    args, _ = parser.parse_known_args(argv)

    def planner(ctx: DeployContext) -> Plan:
        if args.rollback:
            return plan_rollback(ctx, key)
        layer = args.layer_arn or latest_layer(ctx)
        return plan_function(ctx, key, layer_arn=layer, git_sha=args.git_sha or git_sha())

    return run_unit(planner, argv, parser.description or key, parser=parser)
