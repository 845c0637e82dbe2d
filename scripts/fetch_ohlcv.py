"""Download OHLCV candles from a ccxt exchange into one CSV or Parquet file per symbol.

    python scripts/fetch_ohlcv.py --exchange upbit --symbols KRW-BTC,KRW-ETH --timeframe 1h \\
        --since 2024-01-01 --out data/

This script owns the fetch side of the bar format that `backtesting_modules.data.load_bars` reads: symbol
resolution (Upbit `KRW-BTC` or ccxt `BTC/KRW`), pagination, retry with exponential backoff on network
errors, resuming from an existing file, and atomic writes to `<out>/<exchange>/<MARKET>_<timeframe>.<ext>`.
It is standalone (pandas + ccxt only). See docs/fetch.md.

Exit status: 0 on success, 1 if a symbol failed after retries (other symbols are still fetched),
2 for bad arguments (unknown exchange, symbol, timeframe or date; the message names the argument).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import ccxt
import pandas as pd

from opslib.cli import UsageError

COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS = COLUMNS[1:]
FORMATS = {"csv": ".csv", "parquet": ".parquet"}
DEFAULT_LIMIT = 200  # Upbit's maximum `count`; every ccxt exchange accepts at least this many.
DEFAULT_MAX_RETRIES = 5
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
EPOCH = pd.Timestamp(0, tz="UTC")
ONE_MS = pd.Timedelta(milliseconds=1)

T = TypeVar("T")
Sleep = Callable[[float], None]
ExchangeFactory = Callable[[str], Any]
PageCallback = Callable[[pd.DataFrame], None]


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


# ---------------------------------------------------------------------------------------------- time


def to_iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime(ISO_FORMAT)


def to_ms(moment: pd.Timestamp) -> int:
    return int((moment - EPOCH) // ONE_MS)


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


# ------------------------------------------------------------------------------------ exchange/symbols


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    matches = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ""


def check_exchange_id(exchange_id: str) -> None:
    if exchange_id not in ccxt.exchanges:
        raise UsageError(
            f"--exchange {exchange_id!r} is not a ccxt exchange{did_you_mean(exchange_id, ccxt.exchanges)} "
            "(the full list is ccxt.exchanges)"
        )


def default_exchange(exchange_id: str) -> Any:
    return getattr(ccxt, exchange_id)({"enableRateLimit": True})


def upbit_to_unified(raw: str) -> str:
    """`KRW-BTC` -> `BTC/KRW`: Upbit writes the quote currency first."""
    quote, _, base = raw.partition("-")
    return f"{base}/{quote}" if quote and base else raw


def resolve_market(exchange: Any, raw: str) -> tuple[str, str]:
    """(unified symbol, exchange market id) for `raw`, given as a unified symbol or a market id."""
    markets: dict[str, Any] = exchange.markets or {}
    by_id: dict[str, Any] = exchange.markets_by_id or {}
    if raw in markets:
        return raw, str(markets[raw]["id"])
    if raw in by_id:
        # ccxt 4 maps an id to a list of markets (spot and derivatives can share one id).
        entry = by_id[raw]
        market = entry[0] if isinstance(entry, list) else entry
        return str(market["symbol"]), raw
    unified = upbit_to_unified(raw)
    if unified in markets:
        return unified, str(markets[unified]["id"])
    hint = did_you_mean(raw, [*by_id, *markets])
    raise UsageError(f"--symbols: {raw!r} is not a market on {exchange.id}{hint}")


def file_stem(market_id: str) -> str:
    # Market ids are file-safe on Upbit (KRW-BTC); other exchanges may use '/' or ':'.
    return re.sub(r"[^A-Za-z0-9._-]+", "-", market_id)


def timeframe_ms(exchange: Any, timeframe: str) -> int:
    supported: dict[str, Any] = exchange.timeframes or {}
    if supported and timeframe not in supported:
        hint = did_you_mean(timeframe, list(supported))
        raise UsageError(
            f"--timeframe {timeframe!r} is not offered by {exchange.id}{hint} "
            f"(choose from {', '.join(supported)})"
        )
    if timeframe[-1:] in {"M", "y"}:
        # ccxt counts a month as 30 days and a year as 365: paging by that skips or repeats calendar candles.
        raise UsageError(
            f"--timeframe {timeframe!r} is a calendar period, which this script cannot page exactly: fetch "
            "1d candles and resample them (backtesting_modules.resample_bars)."
        )
    return int(exchange.parse_timeframe(timeframe) * 1000)


# ----------------------------------------------------------------------------------------- fetching


def backoff_delay(attempt: int) -> float:
    return float(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


def call_with_retry(call: Callable[[], T], *, sleep: Sleep, max_retries: int, what: str) -> T:
    """Run `call`, retrying ccxt.NetworkError (rate limit, DDoS protection, timeout, maintenance)."""
    attempt = 0
    while True:
        try:
            return call()
        except ccxt.NetworkError as exc:
            if attempt >= max_retries:
                raise
            delay = backoff_delay(attempt)
            print(
                f"  {what}: {type(exc).__name__}, retry {attempt + 1}/{max_retries} in {delay:g}s",
                file=sys.stderr,
            )
            sleep(delay)
            attempt += 1


def bars_frame(rows: dict[int, list[float]]) -> pd.DataFrame:
    """Internal frame: int64 epoch-ms `timestamp` plus float OHLCV, sorted, one row per timestamp."""
    frame = pd.DataFrame([[ts, *rows[ts]] for ts in sorted(rows)], columns=COLUMNS)
    frame = frame.astype({"timestamp": "int64", **dict.fromkeys(PRICE_COLUMNS, "float64")})
    return frame


def next_cursor(cursor: int, page: list[list[Any]], step: int, limit: int) -> int | None:
    """Where the next request starts, or None when the exchange made no progress."""
    if not page:
        # Upbit answers a `since` window [since, since + limit*step) and returns nothing for a window with
        # no trades (before a listing, during an outage), so an empty page skips the window instead of
        # ending the download. On exchanges that page forwards it only costs requests until --until.
        return cursor + limit * step
    following = max(int(candle[0]) for candle in page) + step
    return following if following > cursor else None


def closed_candles(
    page: list[list[Any]], since_ms: int, until_ms: int, step: int, now_ms: int
) -> dict[int, list[float]]:
    """Candles of `page` inside [since, until) whose interval has ended by `now` (no forming candle)."""
    kept: dict[int, list[float]] = {}
    for candle in page:
        ts = int(candle[0])
        if since_ms <= ts < until_ms and ts + step <= now_ms and None not in candle[1:6]:
            kept[ts] = [float(v) for v in candle[1:6]]
    return kept


def fetch_symbol(
    exchange: Any,
    symbol: str,
    timeframe: str,
    since_ms: int,
    until_ms: int,
    *,
    limit: int = DEFAULT_LIMIT,
    sleep: Sleep = time.sleep,
    max_retries: int = DEFAULT_MAX_RETRIES,
    now_ms: int | None = None,
    on_page: PageCallback | None = None,
) -> pd.DataFrame:
    """Closed candles of `symbol` with open time in [since_ms, until_ms), sorted and unique.

    Pages forward with `fetch_ohlcv(since=..., limit=...)`. `on_page` gets the bars so far after every page
    that added bars, so the caller can persist progress. `attrs["requests"]` counts fetch_ohlcv calls.
    """
    step = timeframe_ms(exchange, timeframe)
    now = exchange.milliseconds() if now_ms is None else now_ms
    end = min(until_ms, now)
    rows: dict[int, list[float]] = {}
    requests = 0
    cursor: int | None = since_ms
    while cursor is not None and cursor < end:
        start = cursor
        page = call_with_retry(
            functools.partial(exchange.fetch_ohlcv, symbol, timeframe, since=start, limit=limit),
            sleep=sleep,
            max_retries=max_retries,
            what=f"{symbol} since {to_iso(start)}",
        )
        requests += 1
        fresh = closed_candles(page, since_ms, until_ms, step, now)
        rows.update(fresh)
        if fresh and on_page is not None:
            on_page(bars_frame(rows))
        cursor = next_cursor(start, page, step, limit)
    bars = bars_frame(rows)
    bars.attrs["requests"] = requests
    return bars


# ------------------------------------------------------------------------------------------ storage


def output_path(out_dir: Path, exchange_id: str, market_id: str, timeframe: str, fmt: str) -> Path:
    return out_dir / exchange_id / f"{file_stem(market_id)}_{timeframe}{FORMATS[fmt]}"


def load_stored(path: Path, fmt: str) -> pd.DataFrame | None:
    """The bars already in `path` as an internal frame, or None if there is no file yet."""
    if not path.exists():
        return None
    try:
        raw = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
        stamps = pd.to_datetime(raw["timestamp"], utc=True)
        frame = pd.DataFrame({"timestamp": (stamps - EPOCH) // ONE_MS})
        for column in PRICE_COLUMNS:
            frame[column] = raw[column].astype("float64")
    except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
        raise UsageError(
            f"cannot resume from {path} ({type(exc).__name__}: {exc}): "
            "delete the file or choose another --out"
        ) from exc
    return merge_bars(frame, None)


def merge_bars(old: pd.DataFrame | None, new: pd.DataFrame | None) -> pd.DataFrame:
    """Union of two internal frames; on a duplicate timestamp the newer fetch wins."""
    parts = [part for part in (old, new) if part is not None and not part.empty]
    if not parts:
        return bars_frame({})
    merged = pd.concat(parts, ignore_index=True).astype({"timestamp": "int64"})
    merged = merged.drop_duplicates(subset="timestamp", keep="last").sort_values("timestamp")
    return merged.reset_index(drop=True)


def store_bars(bars: pd.DataFrame, path: Path, fmt: str) -> None:
    """Write an internal frame atomically: a temp file in the same directory, then os.replace.

    CSV timestamps are ISO 8601 UTC strings (2024-01-01T00:00:00Z); Parquet keeps a UTC datetime column.
    """
    out = bars[COLUMNS].copy()
    stamps = pd.to_datetime(out["timestamp"], unit="ms", utc=True)
    out["timestamp"] = stamps if fmt == "parquet" else stamps.dt.strftime(ISO_FORMAT)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        if fmt == "parquet":
            out.to_parquet(temp_name, index=False)
        else:
            out.to_csv(temp_name, index=False)
        os.replace(temp_name, path)
    finally:
        # Only still there if writing failed: never leave a half-written temp file behind.
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp_name)


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
    path: Path


def plan_jobs(exchange: Any, args: argparse.Namespace) -> list[Job]:
    jobs = []
    for raw in split_symbols(args.symbols):
        unified, market_id = resolve_market(exchange, raw)
        jobs.append(
            Job(raw, unified, output_path(args.out, exchange.id, market_id, args.timeframe, args.format))
        )
    return jobs


def run_job(
    exchange: Any, job: Job, args: argparse.Namespace, until_ms: int, now_ms: int, sleep: Sleep
) -> SymbolResult:
    result = SymbolResult(job.symbol, job.unified, str(job.path))
    stored = load_stored(job.path, args.format)
    start = args.since
    if stored is not None and not stored.empty:
        # Continue after the last stored candle; earlier history in the file is kept as is.
        start = max(start, int(stored["timestamp"].iloc[-1]) + timeframe_ms(exchange, args.timeframe))
        result.resumed_from = to_iso(start)

    saved = [bars_frame({})]  # what persist() last wrote, reported if a later page fails

    def persist(fetched: pd.DataFrame) -> None:
        store_bars(merge_bars(stored, fetched), job.path, args.format)
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
    _describe(result, merge_bars(stored, fetched), len(fetched), fetched.attrs.get("requests", 0))
    return result


def _describe(result: SymbolResult, total: pd.DataFrame, new_bars: int, requests: int) -> None:
    result.new_bars, result.total_bars, result.requests = new_bars, len(total), requests
    if not total.empty:
        result.first = to_iso(int(total["timestamp"].iloc[0]))
        result.last = to_iso(int(total["timestamp"].iloc[-1]))


def progress_line(result: SymbolResult, timeframe: str) -> str:
    if result.error:
        kept = f"; {result.new_bars} new bars saved, re-run to resume" if result.new_bars else ""
        return f"{result.symbol} {timeframe}: FAILED ({result.error}){kept}"
    span = f"{result.first} .. {result.last}" if result.first else "no bars"
    resumed = f", resumed from {result.resumed_from}" if result.resumed_from else ""
    return (
        f"{result.symbol} {timeframe}: +{result.new_bars} bars in {result.requests} requests{resumed}; "
        f"{result.total_bars} total ({span}) -> {result.path}"
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
        "failed": failed,
        "ok": not failed,
    }


def load_markets(exchange: Any, sleep: Sleep, max_retries: int) -> None:
    call_with_retry(exchange.load_markets, sleep=sleep, max_retries=max_retries, what="load_markets")


def run(args: argparse.Namespace, make_exchange: ExchangeFactory, sleep: Sleep, now_ms: int | None) -> int:
    check_exchange_id(args.exchange)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file: pass a directory (it is created if missing)")
    exchange = make_exchange(args.exchange)
    try:
        load_markets(exchange, sleep, args.max_retries)
    except (ccxt.NetworkError, ccxt.ExchangeError) as exc:
        print(f"error: cannot load {args.exchange} markets: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
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
        f"{len(report['failed'])} failed"
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
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
