"""Deploy the worker Lambda: code (when its hash changed), configuration, a version named by the git
sha, the `live` alias and its event source mappings. `--rollback` moves `live` back one version.
"""

from __future__ import annotations

from collections.abc import Sequence

from opslib.deploy.cli import function_main


def main(argv: Sequence[str] | None = None) -> int:
    return function_main("worker", argv)


if __name__ == "__main__":
    raise SystemExit(main())
