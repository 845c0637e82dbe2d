"""Deploy the whole stack in order (queues, storage, roles, layer, worker, collector, monitoring), each unit
planned, shown, then applied. With --dry-run, a unit that depends on resources not yet created says so.
See docs/deploy.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from opslib.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from opslib.deploy.cli import build_context, common_parser, git_sha, latest_layer, setup_errors_exit, show
from opslib.deploy.plan import Plan, apply_plan
from opslib.deploy.units import deploy_units
from opslib.errors import NotDeployedError

ROOT = Path(__file__).resolve().parents[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = common_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--layer-zip",
        default=str(ROOT / "build" / "layer.zip"),
        help="built layer to publish when changed (default build/layer.zip; skipped if absent)",
    )
    args = parser.parse_args(argv)
    layer_zip = Path(args.layer_zip) if Path(args.layer_zip).exists() else None
    if layer_zip is None:
        print(
            f"layer: {args.layer_zip} not found, not publishing (functions keep their current layer); "
            "build it with scripts/build_layer.py"
        )
    if not (args.yes or args.dry_run or sys.stdin.isatty()):
        parser.exit(
            EXIT_USAGE,
            f"{parser.prog}: error: pass --yes to apply without a terminal, or --dry-run to plan.\n",
        )
    with setup_errors_exit(parser):
        ctx = build_context(args)
    changed = 0
    for unit, planner in deploy_units(git_sha(), latest_layer, layer_zip):
        try:
            plan = planner(ctx)
        except NotDeployedError as exc:
            if not args.dry_run:
                parser.exit(EXIT_USAGE, f"{parser.prog}: error: {unit}: {exc}\n")
            print(f"{unit}: planned once the units before it are applied ({exc})")
            continue
        show(plan, args)
        changed += len(plan.changes)
        if plan.is_empty or args.dry_run:
            continue
        if not args.yes and input(f"Apply the {unit} changes? [y/N] ").strip().lower() not in {"y", "yes"}:
            print("Stopped: nothing more applied.")
            return EXIT_OK
        try:
            apply_plan(plan, ctx.clients, echo=(lambda _: None) if args.json else print)
        except (ClientError, BotoCoreError) as exc:
            print(f"{parser.prog}: {unit}: apply failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
    if changed == 0:
        print(Plan("stack").render_text())
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
