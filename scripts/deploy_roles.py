"""Deploy one least-privilege IAM role per function (plan, then apply). See docs/deploy.md."""

from __future__ import annotations

from collections.abc import Sequence

from opslib.deploy.cli import run_unit
from opslib.deploy.roles import plan_roles


def main(argv: Sequence[str] | None = None) -> int:
    return run_unit(plan_roles, argv, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
