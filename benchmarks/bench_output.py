"""What every benchmark prints and writes the same way: the markdown report on stdout (and to `--out`),
then, with `--json`, the result as one JSON object on the last line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(report: str, result: Any, *, out: str | None, as_json: bool) -> None:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(report, encoding="utf-8")
    print(report)
    if as_json:
        print(json.dumps(result))
