"""Remove what the deploy created: event source mappings, functions, alarms, dashboard, queues, table. The
bucket and its data stay unless --delete-data. Asks for confirmation unless --yes.
"""

from __future__ import annotations

from collections.abc import Sequence

from opslib.deploy.cli import common_parser, run_unit
from opslib.deploy.plan import DeployContext, Plan
from opslib.deploy.units import plan_teardown


def main(argv: Sequence[str] | None = None) -> int:
    parser = common_parser(__doc__.splitlines()[0])
    parser.add_argument("--delete-data", action="store_true", help="also empty and delete the bucket")
    args, _ = parser.parse_known_args(argv)

    def planner(ctx: DeployContext) -> Plan:
        return plan_teardown(ctx, delete_data=args.delete_data)

    return run_unit(planner, argv, parser.description or "teardown", parser=parser)


if __name__ == "__main__":
    raise SystemExit(main())
