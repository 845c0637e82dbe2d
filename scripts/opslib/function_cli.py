"""The shared main() of deploy_worker.py and deploy_collector.py."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from .deploy import DeployContext, Plan, common_parser, run_unit
from .functions import plan_function, plan_rollback


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
    versions = (
        ctx.clients.client("lambda").list_layer_versions(LayerName=ctx.names.layer).get("LayerVersions", [])
    )
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
