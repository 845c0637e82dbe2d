"""Batch history and result queries, on the embedded default (the state kept in .local-aws/) or on the
deployed AWS stack (same code, `--target aws`).

    python scripts/results.py list [--since DATE] [--status running|complete] [--limit N]
    python scripts/results.py show BATCH_ID [--failures]
    python scripts/results.py top BATCH_ID [--metric NAME] [--strategy S] [--symbol X] [-n N]
    python scripts/results.py compare BATCH_A BATCH_B [--metric NAME] [-n N]      # markdown for a PR
    python scripts/results.py export BATCH_ID --format csv|parquet|json --out FILE

Every subcommand takes --json, --target, --environment and --fresh. Exit status: 0; 2 for usage errors
and an unknown batch id (the closest ids are suggested); 1 when reading the stored data fails.
See docs/results.md.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from backtesting_modules.errors import did_you_mean
from backtesting_modules.jobs.runner import JobStatus
from backtesting_modules.metrics import HIGHER_IS_BETTER, METRIC_NAMES
from backtesting_modules.pipeline.records import BatchRecord
from backtesting_modules.reports import fit_to_limit
from opslib.cli import REPORTED_ERRORS, UsageError, error_text, exit_status
from opslib.history.compute import (
    compute_comparison,
    compute_comparison_json,
    compute_export_schema,
    compute_keyed,
    compute_rows,
    compute_top,
)
from opslib.history.connect import open_history
from opslib.history.export import FORMATS, store_export
from opslib.history.queries import History, parse_since
from opslib.history.render import (
    render_comparison,
    render_failures,
    render_list,
    render_report,
    render_top,
    render_validated_top,
    render_validation_comparison,
    report_conditions,
)
from opslib.history.validated import (
    VALIDATION_METRICS,
    annotate_rows,
    compute_validated_rows,
    compute_validation_comparison,
    rank_validated,
)

# --- arguments --------------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of at least 1")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number, 0 or more")
    return value


def _metric(text: str) -> str:
    known = (*METRIC_NAMES, *VALIDATION_METRICS)
    if text not in known:
        raise argparse.ArgumentTypeError(
            f"unknown metric {text!r}.{did_you_mean(text, known)} Metrics: {', '.join(METRIC_NAMES)}; of "
            f"a validated sweep's winners: {', '.join(VALIDATION_METRICS)}."
        )
    return text


def _since(text: str) -> str:
    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    common.add_argument("--target", choices=["local", "aws"], default="local", help="default: local")
    common.add_argument("--environment", help="stack environment from config/stack.yaml (e.g. dev)")
    common.add_argument("--fresh", action="store_true", help="local: start empty, ignore .local-aws/")
    common.add_argument(
        "--state-dir", help="local: where the state is kept (default $MAKENAIDE_LOCAL_STATE or .local-aws/)"
    )
    parser = argparse.ArgumentParser(description="Batch history and result queries (see docs/results.md).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", parents=[common], help="batches, newest first")
    listing.add_argument("--since", type=_since, help="created on or after this date (UTC), e.g. 2025-01-31")
    listing.add_argument("--status", type=str.upper, choices=["RUNNING", "COMPLETE"], help="running|complete")
    listing.add_argument("--limit", type=_positive, default=20, help="at most N batches (default 20)")

    show = commands.add_parser("show", parents=[common], help="a batch's report")
    show.add_argument("batch_id")
    show.add_argument(
        "--failures", action="store_true", help="the failed jobs with their errors and attempts"
    )
    show.add_argument("--reports", help="also write report.md, results.csv and summary.json to this folder")

    top = commands.add_parser("top", parents=[common], help="a batch's best parameter sets, all metrics")
    top.add_argument("batch_id")
    top.add_argument("--metric", type=_metric, help="rank by this metric (default: the batch's)")
    top.add_argument("--strategy", help="only this strategy")
    top.add_argument("--symbol", help="only this symbol")
    top.add_argument("-n", type=_positive, default=10, help="how many (default 10)")
    top.add_argument(
        "--min-trades",
        type=_non_negative,
        help="rank only variants with at least this many trades (default: the batch's min_trades; 0: all)",
    )

    compare = commands.add_parser("compare", parents=[common], help="two batches, row by row")
    compare.add_argument("batch_a")
    compare.add_argument("batch_b")
    compare.add_argument("--metric", type=_metric, help="compare this metric (default: batch A's ranking)")
    compare.add_argument("-n", type=_positive, default=10, help="rows per table (default 10)")

    export = commands.add_parser("export", parents=[common], help="every result of a batch to a file")
    export.add_argument("batch_id")
    export.add_argument("--format", choices=FORMATS, required=True)
    export.add_argument("--out", required=True, help="the file to write")
    return parser


# --- list -------------------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace, history: History) -> int:
    entries = history.list_batches(since=args.since, status=args.status, limit=args.limit)
    if args.json:
        print(json.dumps([e.to_json() for e in entries]))
    elif not entries:
        filters = [
            f"since {args.since}" if args.since else "",
            f"status {args.status}" if args.status else "",
        ]
        which = f" ({', '.join(f for f in filters if f)})" if any(filters) else ""
        print(f"No batches{which} on {args.target}. Run one: python scripts/run_batch.py batches/demo.yaml")
    else:
        print(render_list(entries))
    return 0


# --- show -------------------------------------------------------------------------------------------------


def cmd_show(args: argparse.Namespace, history: History) -> int:
    record = history.get_batch(args.batch_id)
    if args.failures:
        attributes = ("job_id", "strategy", "symbols", "attempts", "error", "worker", "finished_at")
        failures = list(history.jobs(args.batch_id, status=JobStatus.FAILED, attributes=attributes))
        if args.json:
            documents = [f.to_json(attributes) for f in failures]
            print(json.dumps({"batch_id": args.batch_id, "failures": documents}))
        else:
            print(render_failures(record, failures))
        return 0
    if not record.complete:
        if args.json:
            print(json.dumps({"batch": record.to_json(), "summary": None}))
        else:
            print(
                f"batch {args.batch_id} ({record.name}) is {record.status}: {record.done}/"
                f"{record.total_jobs} jobs done, {record.failed} failed. Its report is "
                f"written when it completes; finish it with run_batch.py SPEC --resume {args.batch_id}."
            )
        return 0
    summary = history.summary(record)
    validation, search = history.validation(record), history.search(record)
    if args.json:
        shown = {"batch": record.to_json(), "summary": summary, "validation": validation}
        print(json.dumps({**shown, "search": search} if search is not None else shown))
    else:
        text = render_report(summary, record, args.target, validation, search)
        if args.reports:  # the files run_batch.py writes, charts included (every stored row is read)
            from opslib.batch.charts import compute_visuals  # noqa: PLC0415 - matplotlib, for the charts only
            from opslib.batch.reports import write_reports  # noqa: PLC0415

            conditions = report_conditions(summary, record, args.target)
            higher = HIGHER_IS_BETTER.get(record.ranking_metric, True)
            visuals = compute_visuals(history.store, record, summary, higher=higher, validation=validation)
            out = Path(args.reports)
            written = write_reports(summary, out, conditions, validation, search, visuals=visuals)
            text = written.read_text(encoding="utf-8")  # what was written: its charts section included
        print(text, end="")
    return 0


# --- top --------------------------------------------------------------------------------------------------


def cmd_top(args: argparse.Namespace, history: History) -> int:
    record = history.get_batch(args.batch_id)
    spec = record.spec_document()
    _check_choice(args.strategy, [s["name"] for s in spec.get("strategies", [])], "strategy", args.batch_id)
    _check_choice(args.symbol, [*spec.get("symbols", []), "PORTFOLIO"], "symbol", args.batch_id)
    metric = args.metric or record.ranking_metric
    validation = history.validation(record)
    if metric in VALIDATION_METRICS:
        return _validated_top(args, record, validation, metric)
    higher = HIGHER_IS_BETTER.get(metric, True)
    frames = history.result_frames(record, strategy=args.strategy, symbol=args.symbol)
    least = record.min_trades if args.min_trades is None else args.min_trades
    rows = compute_rows(compute_top(frames, metric, higher, args.n, min_trades=least))
    if validation is not None:
        rows = annotate_rows(rows, validation)
    if args.json:
        print(
            json.dumps(
                {
                    "batch_id": args.batch_id,
                    "metric": metric,
                    "higher_is_better": higher,
                    "min_trades": least,
                    "top": rows,
                }
            )
        )
    else:
        print(render_top(record, rows, metric, higher, strategy=args.strategy, symbol=args.symbol))
    return 0


def _validated_top(
    args: argparse.Namespace, record: BatchRecord, validation: dict[str, Any] | None, metric: str
) -> int:
    if validation is None:
        raise UsageError(
            f"--metric {metric}: batch {args.batch_id} has no validation (validation: none, or not a "
            "parameter sweep); rank it by a metric of its results, e.g. --metric sharpe."
        )
    winners = [
        r
        for r in compute_validated_rows(validation)
        if (args.strategy is None or r["strategy"] == args.strategy)
        and (args.symbol is None or r["symbol"] == args.symbol)
    ]
    rows = rank_validated(winners, metric, args.n)
    if args.json:
        print(json.dumps({"batch_id": args.batch_id, "metric": metric, "validated": True, "top": rows}))
    else:
        print(render_validated_top(record, rows, metric))
    return 0


def _check_choice(value: str | None, choices: Sequence[str], what: str, batch_id: str) -> None:
    if value is not None and choices and value not in choices:
        raise UsageError(
            f"--{what} {value!r}: batch {batch_id} has no such {what}.{did_you_mean(value, choices)} "
            f"It has: {', '.join(choices)}."
        )


# --- compare ----------------------------------------------------------------------------------------------


def cmd_compare(args: argparse.Namespace, history: History) -> int:
    a = history.get_batch(args.batch_a)
    b = history.get_batch(args.batch_b)
    metric = args.metric or a.ranking_metric
    if metric in VALIDATION_METRICS:
        raise UsageError(
            f"--metric {metric}: compare matches the two batches' results row by row; their validated "
            "winners are compared side by side below the rows whatever the metric (use e.g. --metric sharpe)."
        )
    higher = HIGHER_IS_BETTER.get(metric, True)
    comparison = compute_comparison(
        compute_keyed(history.result_frames(a), metric),
        compute_keyed(history.result_frames(b), metric),
        metric,
        higher,
    )
    first, second = history.validation(a), history.validation(b)
    side_by_side = compute_validation_comparison(first, second) if first and second else None
    if args.json:
        print(json.dumps({**compute_comparison_json(a, b, comparison, args.n), "validation": side_by_side}))
    else:
        text = render_comparison(a, b, comparison, args.n)
        if side_by_side is not None:
            text = text.rstrip("\n") + "\n\n" + render_validation_comparison(side_by_side) + "\n"
        print(fit_to_limit(text), end="")
    return 0


# --- export -----------------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace, history: History) -> int:
    record = history.get_batch(args.batch_id)
    schema = compute_export_schema(history.job_bests(args.batch_id), record.spec_document())
    out = Path(args.out)
    rows, jobs = store_export(history.result_frames(record), schema, args.format, out)
    if args.json:
        print(
            json.dumps(
                {
                    "batch_id": args.batch_id,
                    "format": args.format,
                    "out": str(out),
                    "rows": rows,
                    "jobs": jobs,
                }
            )
        )
    else:
        print(f"{rows:,} rows of batch {args.batch_id} ({jobs} jobs) written to {out} ({args.format})")
    return 0


# --- main -------------------------------------------------------------------------------------------------

COMMANDS: dict[str, Callable[[argparse.Namespace, History], int]] = {
    "list": cmd_list,
    "show": cmd_show,
    "top": cmd_top,
    "compare": cmd_compare,
    "export": cmd_export,
}


def main(argv: Sequence[str] | None = None, *, history: History | None = None) -> int:
    """Run one subcommand; `history` queries that store instead of connecting to --target (tests)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = COMMANDS[args.command]
    try:
        if history is not None:
            return command(args, history)
        state = Path(args.state_dir) if args.state_dir else None
        # Local queries read the saved state's files; the charts of `show --reports` read more than the
        # store's queries, from the state restored into the emulator.
        direct = not (args.command == "show" and args.reports)
        with open_history(
            args.target, environment=args.environment, state_dir=state, fresh=args.fresh, direct=direct
        ) as connected:
            return command(args, connected)
    except (*REPORTED_ERRORS, OSError) as exc:
        parser.exit(exit_status(exc), f"{parser.prog} {args.command}: error: {error_text(exc)}\n")


if __name__ == "__main__":
    raise SystemExit(main())
