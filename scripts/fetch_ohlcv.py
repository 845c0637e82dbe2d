"""Download OHLCV candles from a ccxt exchange into one CSV or Parquet file per symbol.

    python scripts/fetch_ohlcv.py --exchange upbit --symbols KRW-BTC,KRW-ETH --timeframe 1h \\
        --since 2024-01-01 --out data/

This script is the command line: arguments, one job per symbol (resuming after the last stored candle and
saving every page with its gap report), progress lines and the --json summary. Fetching with retries, the
gap computation and the file formats live in `opslib.fetch`. See docs/fetch.md.

Exit status: 0 on success, 1 if a symbol failed after retries (other symbols are still fetched),
2 for bad arguments (unknown exchange, symbol, timeframe or date; the message names the argument).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ccxt
import pandas as pd

from opslib.cli import EXIT_FAILED, EXIT_USAGE, UsageError
from opslib.fetch import (
    DEFAULT_LIMIT,
    DEFAULT_MAX_RETRIES,
    FORMATS,
    ExchangeFactory,
    GapJSON,
    GapReport,
    Sleep,
    advice_from,
    bars_frame,
    call_with_retry,
    check_exchange_id,
    compute_gaps,
    configure_exchange,
    default_exchange,
    fetch_symbol,
    file_stem,
    gaps_path,
    load_stored,
    merge_bars,
    output_path,
    render_gap_sidecar,
    render_gaps,
    resolve_market,
    store_bars,
    store_gap_sidecar,
    timeframe_ms,
    to_iso,
    to_ms,
    upbit_to_unified,
)

# The entry point, and the library names that tests and docs/fetch.md's Python API reach through this script.
__all__ = ["bars_frame", "fetch_symbol", "file_stem", "main", "store_bars", "upbit_to_unified"]


@dataclass
class SymbolResult:
    """What happened to one symbol; one progress line and one entry of the --json summary."""

    symbol: str
    unified: str
    path: str
    new_bars: int = 0
    total_bars: int = 0
    requests: int = 0
    first: str | None = None
    last: str | None = None
    resumed_from: str | None = None
    error: str | None = None
    missing: int = 0  # candles missing between the file's first and last, in `gaps`
    longest: GapJSON | None = None
    gaps: list[GapJSON] = field(default_factory=list)
    gaps_path: str | None = None


# ------------------------------------------------------------------------------------------ arguments


def parse_date(text: str) -> int:
    """argparse type: an ISO 8601 date/time to epoch ms; no offset means UTC."""
    try:
        moment = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: use ISO 8601, e.g. 2024-01-01 or 2024-01-01T09:00:00+09:00"
        ) from exc
    if moment is pd.NaT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use ISO 8601, e.g. 2024-01-01")
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return to_ms(moment)


def positive_int(text: str) -> int:
    value = _int_arg(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    value = _int_arg(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc


# --------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Download OHLCV candles with ccxt into <out>/<exchange>/<MARKET>_<timeframe>.csv, "
        "resuming from existing files.",
    )
    parser.add_argument("--exchange", required=True, help="ccxt exchange id, e.g. upbit")
    parser.add_argument(
        "--symbols", required=True, help="comma-separated: Upbit style KRW-BTC or ccxt unified BTC/KRW"
    )
    parser.add_argument("--timeframe", default="1h", help="ccxt timeframe, e.g. 1m, 1h, 1d (default 1h)")
    parser.add_argument("--since", required=True, type=parse_date, help="first candle, ISO 8601 (UTC)")
    parser.add_argument("--until", type=parse_date, help="stop before this time, ISO 8601 (default now)")
    parser.add_argument("--out", type=Path, default=Path("data"), help="output directory (default data/)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="csv", help="file format (default csv)")
    parser.add_argument(
        "--limit-per-request",
        type=positive_int,
        default=DEFAULT_LIMIT,
        help=f"candles per request (default {DEFAULT_LIMIT}, Upbit's maximum)",
    )
    parser.add_argument(
        "--max-retries",
        type=non_negative_int,
        default=DEFAULT_MAX_RETRIES,
        help=f"retries per request on network/rate-limit errors, backoff 1s, 2s, 4s... (default "
        f"{DEFAULT_MAX_RETRIES})",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary object last")
    return parser


def split_symbols(text: str) -> list[str]:
    symbols = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not symbols:
        raise UsageError("--symbols is empty: pass e.g. --symbols KRW-BTC,KRW-ETH")
    return symbols


@dataclass
class Job:
    """Everything needed to fetch one symbol, resolved and validated before any download starts."""

    symbol: str
    unified: str
    market_id: str
    path: Path


def plan_jobs(exchange: Any, args: argparse.Namespace) -> list[Job]:
    jobs = []
    for raw in split_symbols(args.symbols):
        unified, market_id = resolve_market(exchange, raw)
        path = output_path(args.out, exchange.id, market_id, args.timeframe, args.format)
        jobs.append(Job(raw, unified, market_id, path))
    return jobs


def run_job(
    exchange: Any, job: Job, args: argparse.Namespace, until_ms: int, now_ms: int, sleep: Sleep
) -> SymbolResult:
    result = SymbolResult(job.symbol, job.unified, str(job.path))
    step = timeframe_ms(exchange, args.timeframe)
    stored = load_stored(job.path, args.format)
    start = args.since
    if stored is not None and not stored.empty:
        # Continue after the last stored candle; earlier history in the file is kept as is.
        start = max(start, int(stored["timestamp"].iloc[-1]) + step)
        result.resumed_from = to_iso(start)

    saved = [bars_frame({})]  # what persist() last wrote, reported if a later page fails

    def persist(fetched: pd.DataFrame) -> None:
        # The sidecar follows the data file page by page: after a crash or Ctrl-C the two still agree.
        total = merge_bars(stored, fetched)
        store_bars(total, job.path, args.format)
        store_gaps(exchange.id, job, args.timeframe, step, total)
        saved[0] = fetched

    try:
        fetched = fetch_symbol(
            exchange,
            job.unified,
            args.timeframe,
            start,
            until_ms,
            limit=args.limit_per_request,
            sleep=sleep,
            max_retries=args.max_retries,
            now_ms=now_ms,
            on_page=persist,
        )
    except ccxt.BadSymbol as exc:
        raise UsageError(f"--symbols: {job.symbol!r} was rejected by {exchange.id}: {exc}") from exc
    except (ccxt.NetworkError, ccxt.ExchangeError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        fetched = saved[0]
    total = merge_bars(stored, fetched)
    _describe(result, total, len(fetched), fetched.attrs.get("requests", 0))
    if not total.empty:
        # Written by persist() already when pages came in; here for a file from before the gap report.
        _describe_gaps(result, store_gaps(exchange.id, job, args.timeframe, step, total), gaps_path(job.path))
    return result


def store_gaps(exchange_id: str, job: Job, timeframe: str, step: int, total: pd.DataFrame) -> GapReport:
    """Compute the gaps of the bars stored for `job` and write its sidecar if that changes it."""
    report = compute_gaps(total["timestamp"], step)
    sidecar = render_gap_sidecar(
        report,
        exchange_id=exchange_id,
        symbol=job.market_id,
        timeframe=timeframe,
        step_ms=step,
        file=job.path.name,
    )
    store_gap_sidecar(sidecar, gaps_path(job.path))
    return report


def _describe(result: SymbolResult, total: pd.DataFrame, new_bars: int, requests: int) -> None:
    result.new_bars, result.total_bars, result.requests = new_bars, len(total), requests
    if not total.empty:
        result.first = to_iso(int(total["timestamp"].iloc[0]))
        result.last = to_iso(int(total["timestamp"].iloc[-1]))


def _describe_gaps(result: SymbolResult, report: GapReport, path: Path) -> None:
    result.missing, result.gaps, result.gaps_path = report.missing, render_gaps(report.gaps), str(path)
    longest = report.longest
    result.longest = None if longest is None else render_gaps([longest])[0]


def progress_line(result: SymbolResult, timeframe: str) -> str:
    if result.error:
        kept = f"; {result.new_bars} new bars saved, re-run to resume" if result.new_bars else ""
        return f"{result.symbol} {timeframe}: FAILED ({result.error}){kept}"
    span = f"{result.first} .. {result.last}" if result.first else "no bars"
    resumed = f", resumed from {result.resumed_from}" if result.resumed_from else ""
    return (
        f"{result.symbol} {timeframe}: +{result.new_bars} bars in {result.requests} requests{resumed}; "
        f"{result.total_bars} total ({span}) -> {result.path}{gap_text(result)}"
    )


def gap_text(result: SymbolResult) -> str:
    """`; 227 missing in 2 gaps, longest 220 (start .. end)`, or `; no gaps`; the list is in the sidecar."""
    if not result.total_bars:
        return ""
    if result.longest is None:
        return "; no gaps"
    count = len(result.gaps)
    return (
        f"; {result.missing} missing in {count} gap{'' if count == 1 else 's'}, longest "
        f"{result.longest['missing']} ({result.longest['start']} .. {result.longest['end']})"
    )


def summary(args: argparse.Namespace, results: list[SymbolResult]) -> dict[str, Any]:
    failed = [r.symbol for r in results if r.error]
    return {
        "exchange": args.exchange,
        "timeframe": args.timeframe,
        "format": args.format,
        "symbols": [asdict(r) for r in results],
        "new_bars": sum(r.new_bars for r in results),
        "requests": sum(r.requests for r in results),
        "missing": sum(r.missing for r in results),
        "failed": failed,
        "ok": not failed,
    }


def load_markets(exchange: Any, sleep: Sleep, max_retries: int) -> None:
    call_with_retry(
        exchange.load_markets,
        sleep=sleep,
        max_retries=max_retries,
        what="load_markets",
        advice=advice_from(exchange),
    )


def run(args: argparse.Namespace, make_exchange: ExchangeFactory, sleep: Sleep, now_ms: int | None) -> int:
    check_exchange_id(args.exchange)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file: pass a directory (it is created if missing)")
    exchange = configure_exchange(make_exchange(args.exchange))
    try:
        load_markets(exchange, sleep, args.max_retries)
    except (ccxt.NetworkError, ccxt.ExchangeError) as exc:
        print(f"error: cannot load {args.exchange} markets: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    now = exchange.milliseconds() if now_ms is None else now_ms
    until = now if args.until is None else args.until
    if args.since >= until:
        raise UsageError(
            f"--since {to_iso(args.since)} is not before --until {to_iso(until)}: swap or widen them"
        )
    timeframe_ms(exchange, args.timeframe)
    results = []
    for job in plan_jobs(exchange, args):
        results.append(run_job(exchange, job, args, until, now, sleep))
        print(progress_line(results[-1], args.timeframe), flush=True)
    report = summary(args, results)
    print(
        f"done: {report['new_bars']} new bars for {len(results)} symbols in {report['requests']} requests, "
        f"{len(report['failed'])} failed, {report['missing']} candles missing in gaps"
    )
    if args.json:
        print(json.dumps(report))
    return 0 if report["ok"] else 1


def main(
    argv: Sequence[str] | None = None,
    *,
    make_exchange: ExchangeFactory | None = None,
    sleep: Sleep = time.sleep,
    now_ms: int | None = None,
) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args, make_exchange or default_exchange, sleep, now_ms)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
