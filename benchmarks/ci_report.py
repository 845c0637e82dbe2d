"""bench/report.md of benchmarks.yml: the engine table (medians of the interleaved runs, base against head)
followed by the performance report.

    python benchmarks/ci_report.py --raw bench/raw --perf bench/perf/report.md --out bench/report.md --pr 123

--raw holds `{base,head}-<round>-engine.out`, the output of `engine.py --json` (its last line is the JSON
result). Every number of that JSON, under its dotted key, gets its median over the rounds. With --pr (a pull
request number; empty = a scheduled run), the report says so and `pr-number.txt` is written next to --out
for benchmark-comment.yml.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

NO_VALUE = "—"


def flatten(doc: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """(dotted key, value) of every number in nested mappings (booleans, strings and lists are skipped)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from flatten(value, f"{prefix}{key}.")
    elif isinstance(doc, (int, float)) and not isinstance(doc, bool):
        yield prefix[:-1], float(doc)


def last_json(text: str) -> Any:
    """The JSON document on the last line of a command's output ({} for no output)."""
    lines = text.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def medians(docs: Iterable[Any]) -> dict[str, float]:
    """Median of each dotted key over the documents, keys in order of first appearance."""
    runs: dict[str, list[float]] = {}
    for doc in docs:
        for key, value in flatten(doc):
            runs.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in runs.items()}


def load_side(raw: Path, side: str) -> dict[str, float]:
    """Medians of the engine runs of one side ('base' or 'head'), in round order (none: {})."""
    docs = []
    for path in sorted(raw.glob(f"{side}-*-engine.out")):
        try:
            docs.append(last_json(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{path}: the last line is not engine.py's JSON ({exc}); rerun it with --json."
            ) from None
    return medians(docs)


def demote(perf_report: str) -> str:
    """The performance report under the report's title: its first '# Performance' becomes '## Performance'."""
    return perf_report.replace("# Performance", "## Performance", 1)


def engine_row(key: str, head: float, base: float | None) -> str:
    ratio = f"{head / base:.2f}×" if base else NO_VALUE
    shown = f"{base:.4g}" if base is not None else NO_VALUE
    return f"| `{key}` | {shown} | {head:.4g} | {ratio} |"


def render(head: Mapping[str, float], base: Mapping[str, float], perf_report: str, pr: str = "") -> str:
    """The text of bench/report.md: one engine row per head key (base '—' where it has none)."""
    lines = ["# Benchmarks", ""]
    lines.append(
        f"Pull request #{pr}: head against base in the same job."
        if pr
        else "Scheduled run on the default branch (no base to compare)."
    )
    lines += [
        "",
        "## Engine (medians of 2 interleaved runs)",
        "",
        "| metric | base | head | head / base |",
        "|---|---:|---:|---:|",
    ]
    lines += [engine_row(key, value, base.get(key)) for key, value in head.items()]
    lines += ["", "For times (`*_s`) a ratio below 1 is faster; for rates above 1 is better.", ""]
    lines.append(demote(perf_report))
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Write bench/report.md of benchmarks.yml.")
    parser.add_argument(
        "--raw", default="bench/raw", metavar="DIR", help="engine outputs (default bench/raw)"
    )
    parser.add_argument(
        "--perf",
        default="bench/perf/report.md",
        metavar="FILE",
        help="performance.py's report (default bench/perf/report.md)",
    )
    parser.add_argument("--out", default="bench/report.md", metavar="FILE", help="default bench/report.md")
    parser.add_argument(
        "--pr", default="", metavar="NUMBER", help="pull request number (empty: a scheduled run)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        perf_report = Path(args.perf).read_text(encoding="utf-8")
    except OSError as exc:
        parser.exit(
            2, f"{parser.prog}: error: --perf {args.perf}: {exc.strerror}; run performance.py first.\n"
        )
    raw = Path(args.raw)
    try:
        text = render(load_side(raw, "head"), load_side(raw, "base"), perf_report, args.pr)
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    out = Path(args.out)
    out.write_text(text, encoding="utf-8")
    if args.pr:
        (out.parent / "pr-number.txt").write_text(args.pr + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
