"""What the entry points in scripts/ share: printing progress to stderr."""

from __future__ import annotations

import sys


def eprint(text: str, end: str = "\n") -> None:
    print(text, end=end, file=sys.stderr, flush=True)
