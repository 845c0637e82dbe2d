"""Deploy the pipeline's queues (plan, then apply). See docs/deploy.md.

python scripts/deploy_queues.py --dry-run            # show the plan
python scripts/deploy_queues.py --yes                # apply it
python scripts/deploy_queues.py --endpoint-url http://127.0.0.1:5000 --yes   # against the emulator
"""

from __future__ import annotations

from collections.abc import Sequence

from opslib.deploy.cli import run_unit
from opslib.deploy.queues import plan_queues


def main(argv: Sequence[str] | None = None) -> int:
    return run_unit(plan_queues, argv, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
