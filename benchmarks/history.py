"""The history of benchmarks.yml's scheduled runs and the trend of its headline figures in the weekly report.

    python benchmarks/history.py merge --history PREVIOUS.jsonl --perf bench/perf --raw bench/raw \\
        --run-id 123 --commit SHA --out bench/history/history.jsonl [--keep 104]
    python benchmarks/history.py trend bench/history/history.jsonl --out bench/history/trend.md [--last 20]

The history is JSON lines, one scheduled run per line, oldest first:

    {"run_id": "123", "commit": "<sha>", "date": "2026-12-07T03:40:00Z", "bigger": [...], "smaller": [...]}

`bigger` and `smaller` are the run's github-action-benchmark entries as performance.py wrote them
(`benchmark-bigger.json`, `benchmark-smaller.json`); `bigger` also gets the engine's sweep throughput
(`engine sweep`, bar·combinations/s: the median over the head's engine.py --quick --json runs in --raw, as
in the report's engine table), which engine.py prints but writes to no github-action-benchmark file. A run
id appears once (a re-run of a run replaces it); the history keeps the last --keep runs (default 104: two
years of weekly runs). Where the history is kept between runs: docs/workflows.md.

The trend: for each headline figure (FIGURES), the last --last runs as a mermaid `xychart-beta` line chart,
the latest value and its change against the median of the runs before it in the window. A change worse
than the figure's tolerance is flagged as a drift: a slow drift shows as the latest run leaving the median
of the weeks before it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ci_report import load_side

ENGINE_KEY = "sweep.engine_bar_combos_per_s"  # engine.py --json, flattened as in ci_report
ENGINE_ENTRY = "engine sweep"
KEEP = 104
LAST = 20


class HistoryError(ValueError):
    """A history line or a run's benchmark files are not what this module writes or reads."""


@dataclass(frozen=True)
class Run:
    """One scheduled run: its github-action-benchmark entries, as written (extra keys kept)."""

    run_id: str
    commit: str
    date: str
    bigger: tuple[dict[str, Any], ...]
    smaller: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "commit": self.commit,
            "date": self.date,
            "bigger": list(self.bigger),
            "smaller": list(self.smaller),
        }

    def value(self, pattern: re.Pattern[str]) -> float | None:
        """The value of the first entry whose name matches `pattern` (None: the run has none)."""
        for entry in (*self.bigger, *self.smaller):
            if pattern.fullmatch(entry["name"]):
                return float(entry["value"])
        return None


@dataclass(frozen=True)
class Figure:
    """A headline figure: which entry, how it is shown, which way is better, and when a change is a drift
    (`tolerance` relative to the median, or in the figure's own unit when `relative` is False)."""

    title: str
    pattern: re.Pattern[str]
    unit: str
    scale: float
    bigger_is_better: bool
    tolerance: float
    relative: bool = True


FIGURES = (
    Figure(
        "Engine sweep throughput",
        re.compile(re.escape(ENGINE_ENTRY)),
        "M bar·combinations/s",
        1e-6,
        bigger_is_better=True,
        tolerance=0.10,
    ),
    Figure(
        "Distributed speedup",
        re.compile(r"distributed \d+w speedup"),
        "×",
        1.0,
        bigger_is_better=True,
        tolerance=0.10,
    ),
    # A few percent of engine time: a relative change of it is mostly noise, so it is judged in points.
    Figure(
        "Pipeline overhead",
        re.compile(r"distributed \d+w overhead"),
        "%",
        1.0,
        bigger_is_better=False,
        tolerance=3.0,
        relative=False,
    ),
)


# ------------------------------------------------------------------------------------------------ merge


def _entries(doc: Any, where: str) -> tuple[dict[str, Any], ...]:
    if not isinstance(doc, list):
        raise HistoryError(f"{where}: not a list of github-action-benchmark entries")
    for i, entry in enumerate(doc):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("value"), int | float)
            and not isinstance(entry.get("value"), bool)
            and math.isfinite(entry["value"])
        ):
            raise HistoryError(f"{where}[{i}]: an entry needs a 'name' (text) and a finite number 'value'")
    return tuple(doc)


def _is_iso_date(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def parse_run(doc: Any, where: str) -> Run:
    """A history line's run, checked field by field."""
    if not isinstance(doc, dict):
        raise HistoryError(f"{where}: not a JSON object")
    run_id = doc.get("run_id")
    if not (isinstance(run_id, str) and run_id.isdigit()):
        raise HistoryError(f"{where}: 'run_id' must be a run id in digits, not {run_id!r}")
    commit, date = doc.get("commit"), doc.get("date")
    if not (isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{7,40}", commit)):
        raise HistoryError(f"{where}: 'commit' must be a commit sha (hex), not {commit!r}")
    if not (isinstance(date, str) and _is_iso_date(date)):
        raise HistoryError(f"{where}: 'date' must be an ISO date such as 2026-12-07T03:40:00Z, not {date!r}")
    return Run(
        run_id,
        commit,
        date,
        _entries(doc.get("bigger"), f"{where}: bigger"),
        _entries(doc.get("smaller"), f"{where}: smaller"),
    )


def load_history(path: Path) -> list[Run]:
    """The runs of a history file (a missing or empty file: none)."""
    if not path.exists():
        return []
    runs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HistoryError(f"{path}:{number}: not JSON ({exc.msg})") from None
        runs.append(parse_run(doc, f"{path}:{number}"))
    return runs


def load_run(perf: Path, raw: Path, run_id: str, commit: str, date: str) -> Run:
    """This run's entries: performance.py's github-action-benchmark files in `perf`, and the engine's sweep
    throughput (median of the head's engine runs in `raw`), when engine.py reported it."""
    docs = {}
    for side in ("bigger", "smaller"):
        path = perf / f"benchmark-{side}.json"
        try:
            docs[side] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise HistoryError(f"{path}: {exc}; run performance.py with --out first") from None
    engine = load_side(raw, "head").get(ENGINE_KEY)
    if engine is not None:
        docs["bigger"] = [
            *docs["bigger"],
            {"name": ENGINE_ENTRY, "unit": "bar·combinations/s", "value": round(engine)},
        ]
    return parse_run(
        {"run_id": run_id, "commit": commit, "date": date, **docs}, f"run {run_id} ({perf}, {raw})"
    )


def merge(history: Sequence[Run], run: Run, keep: int = KEEP) -> list[Run]:
    """`history` with `run` added: one run per run id (the new one wins), in run-id order (GitHub's run ids
    grow with time), the last `keep` runs kept."""
    runs = {r.run_id: r for r in history}
    runs[run.run_id] = run
    ordered = sorted(runs.values(), key=lambda r: int(r.run_id))
    return ordered[-keep:] if keep > 0 else []


def store_history(path: Path, runs: Sequence[Run]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r.to_json(), ensure_ascii=False, allow_nan=False) + "\n" for r in runs)
    path.write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------------------------ trend


@dataclass(frozen=True)
class Change:
    """The latest value of a figure against the median of the runs before it."""

    latest: float
    median: float | None
    change: float | None  # relative, or in the figure's unit when the figure is not relative
    verdict: str


def compute_change(figure: Figure, values: Sequence[float]) -> Change:
    """Latest against the median of the values before it; the verdict names a drift beyond tolerance."""
    latest = values[-1]
    if len(values) < 2:
        return Change(latest, None, None, "first run: nothing to compare")
    median = statistics.median(values[:-1])
    if figure.relative and not median:
        return Change(latest, median, None, "median is 0: no relative change")
    change = (latest - median) / abs(median) if figure.relative else latest - median
    worse = -change if figure.bigger_is_better else change
    shown = f"{figure.tolerance:.0%}" if figure.relative else f"{figure.tolerance:g} points"
    if worse > figure.tolerance:
        verdict = f"**drift: worse** by more than {shown}"
    elif -worse > figure.tolerance:
        verdict = f"better by more than {shown}"
    else:
        verdict = f"within ±{shown}"
    return Change(latest, median, change, verdict)


def _num(value: float) -> str:
    """A chart value: fixed point (mermaid reads no exponents), at most 3 decimals."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above value (an axis end that reads well)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value)


def render_chart(figure: Figure, points: Sequence[tuple[Run, float]]) -> str:
    """A mermaid xychart-beta line of the figure over the runs (x: the runs' dates, MM-DD); the y axis
    starts at 0, so a change looks as large as it is."""
    values = [value * figure.scale for _, value in points]
    labels = ", ".join(f'"{run.date[5:10]}"' for run, _ in points)
    low = min(0.0, *values)
    high = _nice_ceiling(max(values) * 1.1)
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            f'    title "{figure.title} ({figure.unit})"',
            f"    x-axis [{labels}]",
            f'    y-axis "{figure.unit}" {_num(low)} --> {_num(high)}',
            f"    line [{', '.join(_num(v) for v in values)}]",
            "```",
        ]
    )


def _shown(figure: Figure, value: float | None) -> str:
    space = "" if figure.unit == "×" else " "
    return "—" if value is None else f"{value * figure.scale:,.3g}{space}{figure.unit}"


def _shown_change(figure: Figure, change: Change) -> str:
    if change.change is None:
        return "—"
    if figure.relative:
        return f"{change.change:+.1%}"
    return f"{change.change * figure.scale:+.2f} points"


def render_trend(runs: Sequence[Run], last: int = LAST) -> str:
    """The trend section of the weekly report: a table of the latest values with their change against the
    median of the runs before, then one chart per figure over the last `last` runs."""
    window = list(runs)[-last:]
    lines = [f"## Trend (last {len(window)} scheduled run{'s' if len(window) != 1 else ''})", ""]
    if not window:
        return "\n".join([*lines, "No scheduled run in the history yet.", ""])
    lines += [
        "Latest run against the median of the runs before it in this window; a change worse than the "
        "figure's tolerance (in the verdict) is flagged as a drift.",
        "",
        "| figure | latest | median before | change | verdict |",
        "|---|---:|---:|---:|---|",
    ]
    charts = []
    for figure in FIGURES:
        points = [(run, v) for run in window if (v := run.value(figure.pattern)) is not None]
        if not points:
            lines.append(f"| {figure.title} | — | — | — | not in these runs |")
            continue
        change = compute_change(figure, [v for _, v in points])
        lines.append(
            f"| {figure.title} | {_shown(figure, change.latest)} | {_shown(figure, change.median)} "
            f"| {_shown_change(figure, change)} | {change.verdict} |"
        )
        charts.append(render_chart(figure, points))
    first, latest = window[0], window[-1]
    lines += [
        "",
        *(f"{chart}\n" for chart in charts),
        f"x axis: run dates (MM-DD), {first.date[:10]} to {latest.date[:10]}; latest run {latest.run_id} "
        f"on {latest.commit[:12]}.",
        "",
    ]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    merge_cmd = sub.add_parser("merge", help="add this run to the history")
    merge_cmd.add_argument(
        "--history", required=True, metavar="FILE", help="the history so far (absent or empty: none)"
    )
    merge_cmd.add_argument("--perf", default="bench/perf", metavar="DIR", help="performance.py --out")
    merge_cmd.add_argument("--raw", default="bench/raw", metavar="DIR", help="engine.py --json outputs")
    merge_cmd.add_argument("--run-id", required=True, help="GitHub's run id (GITHUB_RUN_ID)")
    merge_cmd.add_argument("--commit", required=True, help="the commit measured (GITHUB_SHA)")
    merge_cmd.add_argument("--date", help="ISO date of the run (default: now, UTC)")
    merge_cmd.add_argument("--keep", type=int, default=KEEP, help=f"runs kept (default {KEEP})")
    merge_cmd.add_argument("--out", required=True, metavar="FILE", help="the merged history")
    trend_cmd = sub.add_parser("trend", help="render the trend section of the weekly report")
    trend_cmd.add_argument("history", metavar="FILE")
    trend_cmd.add_argument("--last", type=int, default=LAST, help=f"runs charted (default {LAST})")
    trend_cmd.add_argument("--out", required=True, metavar="FILE", help="the markdown section")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "merge":
            if args.keep < 1:
                parser.error("--keep must be at least 1")
            date = args.date or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            run = load_run(Path(args.perf), Path(args.raw), args.run_id, args.commit, date)
            runs = merge(load_history(Path(args.history)), run, args.keep)
            store_history(Path(args.out), runs)
            print(f"history: {len(runs)} run(s), latest {run.run_id}")
        else:
            if args.last < 1:
                parser.error("--last must be at least 1")
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(render_trend(load_history(Path(args.history)), args.last), encoding="utf-8")
    except ValueError as exc:  # HistoryError, or engine output ci_report cannot read
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
