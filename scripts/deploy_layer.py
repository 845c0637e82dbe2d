"""Publish the engine layer (plan, then apply): through S3, only when the zip's sha256 changed; old versions
beyond `layer.keep_versions` are deleted. Build the zip first with scripts/build_layer.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from opslib.deploy.cli import common_parser, run_unit
from opslib.deploy.layer import plan_layer
from opslib.deploy.plan import DeployContext, Plan

ROOT = Path(__file__).resolve().parents[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = common_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--zip", default=str(ROOT / "build" / "layer.zip"), help="layer zip (default build/layer.zip)"
    )
    args, _ = parser.parse_known_args(argv)

    def planner(ctx: DeployContext) -> Plan:
        return plan_layer(ctx, Path(args.zip))

    return run_unit(planner, argv, parser.description or "layer", parser=parser)


if __name__ == "__main__":
    raise SystemExit(main())
