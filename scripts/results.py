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
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from tabulate import tabulate

from backtesting_modules.errors import BacktestError, did_you_mean
from backtesting_modules.metrics import HIGHER_IS_BETTER, METRIC_NAMES
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.names import ConfigurationError
from backtesting_modules.pipeline.store import Store
from backtesting_modules.reports import fit_to_limit, format_value
from opslib.batch import write_reports
from opslib.history import (
    BatchEntry,
    Comparison,
    ExportSchema,
    History,
    HistoryError,
    UnknownBatchError,
    compute_comparison,
    compute_duration,
    compute_export_schema,
    compute_keyed,
    compute_top,
    format_param,
    metric_columns,
    param_columns,
    parse_since,
)
from opslib.local import Emulator, local_state_dir
from opslib.resources import ensure_stack
from opslib.stack import load_stack

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("csv", "parquet", "json")


class UsageError(BacktestError):
    """An argument that does not fit the batch (a strategy or symbol it does not have)."""


# --- arguments --------------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of at least 1")
    return value


def _metric(text: str) -> str:
    if text not in METRIC_NAMES:
        raise argparse.ArgumentTypeError(
            f"unknown metric {text!r}.{did_you_mean(text, METRIC_NAMES)} Metrics: {', '.join(METRIC_NAMES)}."
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


# --- connection -------------------------------------------------------------------------------------------


@contextmanager
def open_history(args: argparse.Namespace) -> Iterator[History]:
    """The history of the deployed stack, or of the embedded default restored from its saved state (read
    only: queries never change it)."""
    stack = load_stack(environment=args.environment)
    if args.target == "aws":
        clients = ClientFactory.from_environ()
        account = clients.client("sts").get_caller_identity()["Account"]
        names = stack.names(account_id=account)
        yield History(Store(clients, names.table, names.bucket))
        return
    state = Path(args.state_dir) if args.state_dir else local_state_dir()
    emulator = Emulator(state_dir=state, fresh=args.fresh, read_only=True, region=stack.region)
    saved = dict(os.environ)
    emulator.start()
    try:
        os.environ.update(emulator.environ())
        clients = ClientFactory(endpoint_url=emulator.endpoint_url, region=stack.region)
        names = stack.names()
        ensure_stack(clients, stack, names)  # an empty state has no table yet: an empty history, not an error
        yield History(Store(clients, names.table, names.bucket))
    finally:
        emulator.stop()
        os.environ.clear()
        os.environ.update(saved)


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


def render_list(entries: Sequence[BatchEntry]) -> str:
    rows = [
        [
            e.batch_id,
            e.name,
            e.created_at[:19].replace("T", " "),
            e.status,
            f"{e.succeeded}/{e.failed}/{e.total_jobs}",
            f"{e.backtests:,}",
            render_duration(e.duration_s),
            render_best(e.best, e.ranking_metric),
        ]
        for e in entries
    ]
    headers = ["batch", "name", "created (UTC)", "status", "jobs ok/failed/total", "backtests", "duration"]
    return tabulate(rows, headers=[*headers, "best"], tablefmt="github", disable_numparse=True)


def render_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def render_best(best: Mapping[str, Any] | None, metric: str) -> str:
    if not best:
        return "–"
    params = ", ".join(f"{k}={format_param(v)}" for k, v in sorted(best.get("params", {}).items()))
    value = format_value(metric, best["metrics"].get(metric))
    return f"{metric} {value}: {best['strategy']} {best['symbol']} {params}".rstrip()


# --- show -------------------------------------------------------------------------------------------------


def cmd_show(args: argparse.Namespace, history: History) -> int:
    record = history.get_batch(args.batch_id)
    if args.failures:
        attributes = ("job_id", "strategy", "symbols", "attempts", "error", "worker", "finished_at")
        failures = list(history.jobs(args.batch_id, status="FAILED", attributes=attributes))
        print(
            json.dumps({"batch_id": args.batch_id, "failures": failures})
            if args.json
            else render_failures(record, failures)
        )
        return 0
    if record.get("status") != "COMPLETE":
        if args.json:
            print(json.dumps({"batch": public_record(record), "summary": None}))
        else:
            done = int(record.get("succeeded", 0)) + int(record.get("failed", 0))
            print(
                f"batch {args.batch_id} ({record.get('name')}) is {record.get('status')}: {done}/"
                f"{record.get('total_jobs')} jobs done, {int(record.get('failed', 0))} failed. Its report is "
                f"written when it completes; finish it with run_batch.py SPEC --resume {args.batch_id}."
            )
        return 0
    summary = history.summary(record)
    if args.json:
        print(json.dumps({"batch": public_record(record), "summary": summary}))
    else:
        print(render_report(summary, record, args.target, args.reports), end="")
    return 0


def public_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A batch record without its key attributes, its spec as JSON."""
    out = {k: v for k, v in record.items() if k not in {"PK", "SK", "GSI1PK", "GSI1SK"}}
    if isinstance(out.get("spec"), str):
        out["spec"] = json.loads(out["spec"])
    return out


def render_report(
    summary: Mapping[str, Any], record: Mapping[str, Any], target: str, folder: str | None
) -> str:
    """The batch report run_batch.py writes (`write_reports`, which writes files: into a temporary folder
    unless `folder` is given)."""
    spec = summary.get("spec") or {}
    data = spec.get("data") or {}
    conditions = [
        ("target", target),
        ("data", f"{data.get('source')} ({', '.join(spec.get('symbols', []))}, {data.get('timeframe')})"),
        ("jobs", f"{summary['jobs']['succeeded']} succeeded, {summary['jobs']['failed']} failed"),
        ("created", str(record.get("created_at", ""))),
        ("duration", render_duration(compute_duration(record))),
    ]
    if folder is not None:
        return write_reports(dict(summary), Path(folder), conditions).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as scratch:
        return write_reports(dict(summary), Path(scratch), conditions).read_text(encoding="utf-8")


def render_failures(record: Mapping[str, Any], failures: Sequence[Mapping[str, Any]]) -> str:
    title = f"# Failed jobs of batch {record['batch_id']} ({record.get('name')})"
    if not failures:
        return f"{title}\n\nNone: {record.get('succeeded')} of {record.get('total_jobs')} jobs succeeded."
    rows = [
        [
            f["job_id"],
            f.get("strategy", "–"),
            f.get("symbols", "–"),
            f.get("attempts", "–"),
            str(f.get("finished_at", ""))[:19].replace("T", " "),
            str(f.get("error", "")).replace("\n", " ")[:300],
        ]
        for f in failures
    ]
    table = tabulate(
        rows,
        headers=["job", "strategy", "symbols", "attempts", "finished (UTC)", "error"],
        tablefmt="github",
        disable_numparse=True,
    )
    return f"{title}\n\n{len(failures)} of {record.get('total_jobs')} jobs failed.\n\n{table}"


# --- top --------------------------------------------------------------------------------------------------


def cmd_top(args: argparse.Namespace, history: History) -> int:
    record = history.get_batch(args.batch_id)
    spec = json.loads(str(record.get("spec") or "{}"))
    _check_choice(args.strategy, [s["name"] for s in spec.get("strategies", [])], "strategy", args.batch_id)
    _check_choice(args.symbol, [*spec.get("symbols", []), "PORTFOLIO"], "symbol", args.batch_id)
    metric = args.metric or str(record.get("ranking_metric") or "sharpe")
    higher = HIGHER_IS_BETTER.get(metric, True)
    frames = history.result_frames(record, strategy=args.strategy, symbol=args.symbol)
    rows = compute_rows(compute_top(frames, metric, higher, args.n))
    if args.json:
        print(
            json.dumps({"batch_id": args.batch_id, "metric": metric, "higher_is_better": higher, "top": rows})
        )
    else:
        print(render_top(record, rows, metric, higher, args))
    return 0


def _check_choice(value: str | None, choices: Sequence[str], what: str, batch_id: str) -> None:
    if value is not None and choices and value not in choices:
        raise UsageError(
            f"--{what} {value!r}: batch {batch_id} has no such {what}.{did_you_mean(value, choices)} "
            f"It has: {', '.join(choices)}."
        )


def compute_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Ranked rows as documents: rank, job_id, strategy, symbol, params, metrics (NaN as None)."""
    params = param_columns(frame)
    metrics = metric_columns(frame)
    rows = []
    for rank, (_, row) in enumerate(frame.iterrows(), start=1):
        rows.append(
            {
                "rank": rank,
                "job_id": row.get("job_id"),
                "strategy": row["strategy"],
                "symbol": row["symbol"],
                "params": {
                    p.removeprefix("param."): _json_value(row[p])
                    for p in params
                    if format_param(row[p]) is not None
                },
                "metrics": {m: _json_value(row[m]) for m in metrics},
            }
        )
    return rows


def _json_value(value: Any) -> Any:
    """A JSON-ready scalar: numpy unwrapped, NaN as None, 5.0 as 5 (a column with gaps is float)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
    return value


def render_top(
    record: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    metric: str,
    higher: bool,
    args: argparse.Namespace,
) -> str:
    where = "".join(f", {k} {v}" for k, v in (("strategy", args.strategy), ("symbol", args.symbol)) if v)
    if record.get("status") != "COMPLETE":
        where += f", RUNNING: {record.get('succeeded')} of {record.get('total_jobs')} jobs so far"
    backtests = int(record.get("backtests", 0))
    title = (
        f"Top {len(rows)} of batch {record['batch_id']} ({record.get('name')}, {backtests:,} backtests"
        f"{where}) by {metric}, {'higher' if higher else 'lower'} is better:"
    )
    if not rows:
        return f"{title} no result has a value for {metric}."
    others = [m for m in METRIC_NAMES if m != metric and any(m in r["metrics"] for r in rows)]
    table = [
        [
            r["rank"],
            r["strategy"],
            r["symbol"],
            ", ".join(f"{k}={format_param(v)}" for k, v in r["params"].items()),
            format_value(metric, r["metrics"].get(metric)),
            *[format_value(m, r["metrics"].get(m)) for m in others],
        ]
        for r in rows
    ]
    headers = ["#", "strategy", "symbol", "parameters", metric, *others]
    return f"{title}\n\n" + tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)


# --- compare ----------------------------------------------------------------------------------------------


def cmd_compare(args: argparse.Namespace, history: History) -> int:
    a = history.get_batch(args.batch_a)
    b = history.get_batch(args.batch_b)
    metric = args.metric or str(a.get("ranking_metric") or "sharpe")
    higher = HIGHER_IS_BETTER.get(metric, True)
    comparison = compute_comparison(
        compute_keyed(history.result_frames(a), metric),
        compute_keyed(history.result_frames(b), metric),
        metric,
        higher,
    )
    if args.json:
        print(json.dumps(compute_comparison_json(a, b, comparison, args.n)))
    else:
        print(fit_to_limit(render_comparison(a, b, comparison, args.n)), end="")
    return 0


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = ["strategy", "symbol", "params", "value_a", "value_b", "delta", "rank_a", "rank_b", "status"]
    return [
        {c: _json_value(v) for c, v in zip(columns, row, strict=True)}
        for row in frame[columns].itertuples(index=False)
    ]


def compute_comparison_json(
    a: Mapping[str, Any], b: Mapping[str, Any], comparison: Comparison, n: int
) -> dict[str, Any]:
    def side(record: Mapping[str, Any]) -> dict[str, Any]:
        keys = ("batch_id", "name", "created_at", "status", "backtests", "failed", "ranking_metric")
        return {k: record.get(k) for k in keys}

    return {
        "a": side(a),
        "b": side(b),
        "metric": comparison.metric,
        "higher_is_better": comparison.higher,
        "counts": comparison.counts(),
        "top": _records(comparison.top(n)),
        "moved": _records(comparison.moved(n)),
        "moved_count": comparison.moved_count(),
        "changed": _records(comparison.changed(n)),
        "added": _records(comparison.only("added", n)),
        "removed": _records(comparison.only("removed", n)),
    }


def render_comparison(a: Mapping[str, Any], b: Mapping[str, Any], comparison: Comparison, n: int) -> str:
    """Markdown for a PR comment: the two batches, counts, the top rows side by side with their moves
    (and how many rows changed rank), the largest changes, and the best added and removed rows."""
    metric, counts = comparison.metric, comparison.counts()
    facts: list[list[Any]] = [
        ["batch", f"`{a['batch_id']}`", f"`{b['batch_id']}`"],
        ["name", a.get("name"), b.get("name")],
        ["created (UTC)", str(a.get("created_at", ""))[:19], str(b.get("created_at", ""))[:19]],
        ["backtests", f"{int(a.get('backtests', 0)):,}", f"{int(b.get('backtests', 0)):,}"],
        ["status", a.get("status"), b.get("status")],
        ["failed jobs", a.get("failed"), b.get("failed")],
    ]
    parts = [
        f"## Batch comparison: {a.get('name')} → {b.get('name')}",
        tabulate(facts, headers=["", "A", "B"], tablefmt="github", disable_numparse=True),
        f"Rows matched by strategy, symbol and parameters, compared on **{metric}** "
        f"({'higher' if comparison.higher else 'lower'} is better): **{counts['changed']:,} changed**, "
        f"{counts['same']:,} unchanged, **{counts['added']:,} added** (only in B), "
        f"**{counts['removed']:,} removed** (only in A).",
    ]
    top, moved = comparison.top(n), comparison.moved(n)
    matched = counts["changed"] + counts["same"]
    parts += [
        f"### Top {n} of either batch by {metric}, side by side",
        _side_by_side(top, metric) if not top.empty else "None.",
        f"Rank changed for {len(moved)} of these {len(top)} rows (▲ up, ▼ down, new: only in B, gone: only "
        f"in A); over all matched rows, {comparison.moved_count():,} of {matched:,} changed rank.",
    ]
    sections = [
        (f"Largest changes of {metric}", comparison.changed(n)),
        (f"Best added rows (top {n} by rank in B)", comparison.only("added", n)),
        (f"Best removed rows (top {n} by rank in A)", comparison.only("removed", n)),
    ]
    for title, frame in sections:
        parts += [f"### {title}", _side_by_side(frame, metric) if not frame.empty else "None."]
    return "\n\n".join(parts) + "\n"


def _side_by_side(frame: pd.DataFrame, metric: str) -> str:
    rows = [
        [
            _rank(r["rank_a"]),
            _rank(r["rank_b"]),
            _move(r["rank_a"], r["rank_b"]),
            r["strategy"],
            r["symbol"],
            r["params"],
            format_value(metric, r["value_a"]),
            format_value(metric, r["value_b"]),
            format_value(metric, r["delta"]),
        ]
        for r in frame.to_dict("records")
    ]
    headers = ["rank A", "rank B", "move", "strategy", "symbol", "parameters", "A", "B", "Δ"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _rank(value: Any) -> str:
    return "–" if pd.isna(value) else f"{int(value):,}"


def _move(rank_a: Any, rank_b: Any) -> str:
    if pd.isna(rank_a):
        return "new"
    if pd.isna(rank_b):
        return "gone"
    step = int(rank_a) - int(rank_b)
    return "=" if step == 0 else f"▲{step}" if step > 0 else f"▼{-step}"


# --- export -----------------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace, history: History) -> int:
    record = history.get_batch(args.batch_id)
    schema = compute_export_schema(
        history.job_bests(args.batch_id), json.loads(str(record.get("spec") or "{}"))
    )
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


_DTYPES = {"int": "Int64", "float": "float64", "bool": "boolean", "str": "object"}


def compute_typed(frame: pd.DataFrame, schema: ExportSchema) -> pd.DataFrame:
    """A job's rows in the export's columns and types (a column the job lacks is empty)."""
    unknown = set(frame.columns) - set(schema.columns)
    if unknown:
        raise HistoryError(
            f"job {frame['job_id'].iloc[0]} has columns {sorted(unknown)} its job record's best row lacks; "
            "export with --format json, which needs no schema."
        )
    typed = frame.reindex(columns=schema.columns)
    types = {f"param.{p}": _DTYPES[kind] for p, kind in schema.params.items()}
    types.update(dict.fromkeys(schema.metrics, "float64"))
    try:
        return typed.astype(types)
    except (TypeError, ValueError) as exc:
        raise HistoryError(
            f"job {frame['job_id'].iloc[0]} has values that do not fit the export's column types ({exc}); "
            "export with --format json, which needs no schema."
        ) from exc


def store_export(
    frames: Iterable[pd.DataFrame], schema: ExportSchema, fmt: str, out: Path
) -> tuple[int, int]:
    """Write every frame to `out`, one frame in memory at a time, through a temporary file renamed at the
    end (a failed export leaves no partial file). Returns (rows, jobs)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        counts = EXPORTERS[fmt](frames, schema, partial)
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return counts


def _export_csv(frames: Iterable[pd.DataFrame], schema: ExportSchema, path: Path) -> tuple[int, int]:
    rows = jobs = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        pd.DataFrame(columns=schema.columns).to_csv(handle, index=False)
        for frame in frames:
            compute_typed(frame, schema).to_csv(handle, header=False, index=False)
            rows, jobs = rows + len(frame), jobs + 1
    return rows, jobs


def _export_json(frames: Iterable[pd.DataFrame], schema: ExportSchema, path: Path) -> tuple[int, int]:
    """A JSON array of flat rows (each job's own columns: a strategy's parameters only)."""
    rows = jobs = 0
    with path.open("w", encoding="utf-8") as handle:
        handle.write("[")
        for frame in frames:
            if not frame.empty:
                records = frame.to_json(orient="records", double_precision=15)
                handle.write(("," if rows else "") + records[1:-1])
            rows, jobs = rows + len(frame), jobs + 1
        handle.write("]\n")
    return rows, jobs


def _export_parquet(frames: Iterable[pd.DataFrame], schema: ExportSchema, path: Path) -> tuple[int, int]:
    import pyarrow as pa  # noqa: PLC0415 - only this export needs pyarrow (slow to import)
    import pyarrow.parquet as pq  # noqa: PLC0415

    types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}
    fields = [pa.field(name, pa.string()) for name in ("job_id", "strategy", "symbol")]
    fields += [pa.field(f"param.{p}", types[kind]) for p, kind in schema.params.items()]
    fields += [pa.field(m, pa.float64()) for m in schema.metrics]
    if schema.extras:
        fields.append(pa.field("extras", pa.string()))
    arrow_schema = pa.schema(fields)
    rows = jobs = 0
    with pq.ParquetWriter(path, arrow_schema) as writer:
        for frame in frames:
            typed = compute_typed(frame, schema)
            writer.write_table(pa.Table.from_pandas(typed, schema=arrow_schema, preserve_index=False))
            rows, jobs = rows + len(frame), jobs + 1
    return rows, jobs


EXPORTERS: dict[str, Callable[[Iterable[pd.DataFrame], ExportSchema, Path], tuple[int, int]]] = {
    "csv": _export_csv,
    "json": _export_json,
    "parquet": _export_parquet,
}


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
        with open_history(args) as connected:
            return command(args, connected)
    except (UnknownBatchError, UsageError, ConfigurationError) as exc:
        parser.exit(2, f"{parser.prog} {args.command}: error: {exc}\n")
    except NoCredentialsError:
        parser.exit(
            2,
            f"{parser.prog}: error: no AWS credentials: configure them (aws configure, or OIDC in GitHub "
            "Actions) or use --target local.\n",
        )
    except (BacktestError, ClientError, BotoCoreError, OSError) as exc:
        parser.exit(1, f"{parser.prog} {args.command}: error: {exc}\n")


if __name__ == "__main__":
    raise SystemExit(main())
