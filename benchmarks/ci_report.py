"""bench/report.md of benchmarks.yml: the engine table (medians of the interleaved runs, base against head)
followed by the performance report; and the pull request comment made from it (benchmark-comment.yml).

    python benchmarks/ci_report.py --raw bench/raw --perf bench/perf/report.md --out bench/report.md \
        --pr 123 [--perf-status 1] [--trend bench/history/trend.md]
    python benchmarks/ci_report.py comment --report bench/report.md --link RUN_URL --head SHA --out body.md

--raw holds `{base,head}-<round>-engine.out`, the output of `engine.py --json` (its last line is the JSON
result). Every number of that JSON, under its dotted key, gets its median over the rounds. With --pr (a pull
request number; empty = a scheduled run), the report says so and `pr-number.txt` is written next to --out
for benchmark-comment.yml. --perf-status is performance.py's exit status: the report opens with the verdict
of the performance gate (--fail-on-regression). --trend is the weekly trend section (benchmarks/history.py).

`comment` writes the body of the sticky comment: the marker benchmark-comment.yml looks for, the report, and
a last line linking the run; cut at a line boundary to stay under GitHub's 65,536 characters (fit_comment).
The report comes from a pull request's run: it is only read, as text, and at most 4 × the limit of it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

NO_VALUE = "—"
COMMENT_LIMIT = 65_536  # GitHub's maximum length of a comment body, in characters
COMMENT_MARKER = "<!-- makenaide-benchmark -->"
REGRESSION_MARK = "**regression**"  # how performance.py lists a regression under "Against the base run"
COMPARED_MARK = "## Against the base run"


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


def render_gate(perf_status: str, perf_report: str) -> str:
    """The verdict of the performance gate from performance.py's exit status ('' = not known, no verdict):
    passed, failed on a regression beyond the noise band, or performance.py failed."""
    if not perf_status:
        return ""
    if perf_status == "0":
        compared = COMPARED_MARK in perf_report  # a scheduled run has no base, so no gate
        return "**Performance gate: passed**: no regression beyond the noise band." if compared else ""
    if REGRESSION_MARK in perf_report:
        return (
            "**Performance gate: failed**: a regression beyond the threshold plus the noise band "
            "(see *Against the base run* below). This check fails until it is fixed."
        )
    return f"**Performance gate: error**: performance.py exited with status {perf_status}; see the run's log."


def render(
    head: Mapping[str, float],
    base: Mapping[str, float],
    perf_report: str,
    pr: str = "",
    *,
    perf_status: str = "",
    trend: str = "",
) -> str:
    """The text of bench/report.md: the gate's verdict and the trend when given, then one engine row per
    head key (base '—' where it has none) and the performance report."""
    lines = ["# Benchmarks", ""]
    lines.append(
        f"Pull request #{pr}: head against base in the same job."
        if pr
        else "Scheduled run on the default branch (no base to compare)."
    )
    gate = render_gate(perf_status, perf_report)
    if gate:
        lines += ["", gate]
    if trend.strip():
        lines += ["", trend.strip()]
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


def comment_size(text: str) -> int:
    """Length as GitHub counts it, conservatively: UTF-16 code units (a character outside the BMP is 2)."""
    return len(text.encode("utf-16-le")) // 2


def fit_comment(markdown: str, limit: int = COMMENT_LIMIT, link: str = "") -> str:
    """`markdown` if it is shorter than `limit`; otherwise its longest run of whole first lines that fits
    with a closing fence (when the cut falls inside a code block, e.g. a mermaid chart) and a final line
    saying the report was cut and linking `link`, the run whose artifact has the whole report."""
    if comment_size(markdown) < limit:
        return markdown
    where = f"[the run]({link})" if link else "the run"
    tail = (
        f"_Cut here to fit a GitHub comment: the whole report is in the `benchmarks` artifact of {where}._\n"
    )
    budget = limit - 1 - comment_size(tail) - len("```\n") - 1  # room for a closing fence and the "\n"
    if budget < 0:
        raise ValueError(f"limit {limit} leaves no room for the final line ({comment_size(tail)} characters)")
    kept: list[str] = []
    size, fence = 0, ""  # the marker of the code block the kept lines leave open ("" = none)
    for piece in markdown.split("\n")[:-1]:  # whole lines only: what follows the last "\n" is not one
        line = piece + "\n"
        size += comment_size(line)
        if size > budget:
            break
        kept.append(line)
        marker = piece.lstrip()[:3]
        if marker in ("```", "~~~") and (not fence or marker == fence):
            fence = "" if fence else marker
    closing = f"{fence}\n" if fence else ""
    return "".join(kept) + closing + "\n" + tail


def render_comment(report: str, link: str, head_sha: str, limit: int = COMMENT_LIMIT) -> str:
    """The body of the sticky comment: the marker, the report, a last line naming the commit and linking
    the run; fitted under `limit`."""
    commit = f" of {head_sha}" if head_sha else ""
    where = f"[the run]({link})" if link else "the run"
    footer = f"_Benchmarks{commit}: the raw numbers are in the `benchmarks` artifact of {where}._\n"
    body = f"{COMMENT_MARKER}\n{report.rstrip()}\n\n{footer}"
    return fit_comment(body, limit, link)


def build_comment_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ci_report.py comment", description="Write the sticky comment's body from bench/report.md."
    )
    parser.add_argument("--report", required=True, metavar="FILE", help="bench/report.md of the run")
    parser.add_argument("--link", default="", metavar="URL", help="the run (workflow_run.html_url)")
    parser.add_argument("--head", default="", metavar="SHA", help="the commit benchmarked")
    parser.add_argument("--limit", type=int, default=COMMENT_LIMIT, help=f"default {COMMENT_LIMIT:,}")
    parser.add_argument("--out", required=True, metavar="FILE", help="the comment body")
    return parser


def main_comment(argv: Sequence[str]) -> int:
    parser = build_comment_parser()
    args = parser.parse_args(argv)
    try:
        with open(args.report, encoding="utf-8", errors="replace") as file:
            report = file.read(4 * args.limit)  # untrusted: never more than can be shown
        body = render_comment(report, args.link, args.head, args.limit)
    except OSError as exc:
        parser.exit(2, f"{parser.prog}: error: --report {args.report}: {exc.strerror}\n")
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    Path(args.out).write_text(body, encoding="utf-8")
    return 0


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
    parser.add_argument(
        "--perf-status",
        default="",
        metavar="STATUS",
        help="performance.py's exit status (the gate's verdict)",
    )
    parser.add_argument("--trend", metavar="FILE", help="the trend section (benchmarks/history.py trend)")
    return parser


def _read(parser: argparse.ArgumentParser, option: str, path: str, fix: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        parser.exit(2, f"{parser.prog}: error: {option} {path}: {exc.strerror}; {fix}.\n")


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["comment"]:
        return main_comment(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    perf_report = _read(parser, "--perf", args.perf, "run performance.py first")
    trend = _read(parser, "--trend", args.trend, "run history.py trend first") if args.trend else ""
    raw = Path(args.raw)
    try:
        text = render(
            load_side(raw, "head"),
            load_side(raw, "base"),
            perf_report,
            args.pr,
            perf_status=args.perf_status,
            trend=trend,
        )
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    out = Path(args.out)
    out.write_text(text, encoding="utf-8")
    if args.pr:
        (out.parent / "pr-number.txt").write_text(args.pr + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
