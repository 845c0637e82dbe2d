"""Fetching OHLCV candles from a ccxt exchange and storing them: the library behind scripts/fetch_ohlcv.py.

It owns the fetch side of the bar format that `backtesting_modules.data.load_bars` reads: symbol
resolution (Upbit `KRW-BTC` or ccxt `BTC/KRW`), pagination (an empty page skips its window: a gap in
trading is not the end of the data), retry with exponential backoff on network errors and rate limits
(honouring the server's `Retry-After` / Upbit's `Remaining-Req`), merging with the bars already stored,
atomic writes to `<out>/<exchange>/<MARKET>_<timeframe>.<ext>`, and the gap report: the candles an exchange
left out (Upbit has none for periods without trades), computed by a pure function and stored beside the
data as `<MARKET>_<timeframe>.gaps.json`. Bad input raises `UsageError` naming the argument; the command
line (arguments, progress, exit status) is the script's.
"""

from __future__ import annotations

import contextlib
import difflib
import email.utils
import functools
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import ccxt
import numpy as np
import numpy.typing as npt
import pandas as pd

from .cli import UsageError

COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS = COLUMNS[1:]
FORMATS = {"csv": ".csv", "parquet": ".parquet"}
DEFAULT_LIMIT = 200  # Upbit's maximum `count`; every ccxt exchange accepts at least this many.
DEFAULT_MAX_RETRIES = 5
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
# A server that asks for a longer pause than this (an Upbit 418 ban, say) is not retried: the symbol fails and
# a later run resumes it. Retrying early would only extend the ban.
MAX_ADVISED_WAIT_S = 600.0
GAPS_SCHEMA_VERSION = 1
GAPS_SUFFIX = ".gaps.json"
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
EPOCH = pd.Timestamp(0, tz="UTC")
ONE_MS = pd.Timedelta(milliseconds=1)

T = TypeVar("T")
Sleep = Callable[[float], None]
ExchangeFactory = Callable[[str], Any]
PageCallback = Callable[[pd.DataFrame], None]
Advice = Callable[[], float | None]

# Errors raised for an HTTP response (so its headers are the exchange's last ones) that ask us to slow down.
SLOW_DOWN_ERRORS = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)
# Error names that mean "slow down" but that ccxt's exchange class does not map. Upbit documents a 429 without
# its body; if the body is JSON ({"error": {"name": "too_many_requests", ...}}), ccxt's upbit.handle_errors
# turns the unknown name into a bare ExchangeError before it looks at the HTTP status, and the 429 would fail
# the symbol instead of being retried. A plain-text body is mapped by status (RateLimitExceeded) already.
RATE_LIMIT_ERROR_NAMES: dict[str, tuple[str, ...]] = {"upbit": ("too_many_requests",)}


# ---------------------------------------------------------------------------------------------- time


def to_iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime(ISO_FORMAT)


def to_ms(moment: pd.Timestamp) -> int:
    return int((moment - EPOCH) // ONE_MS)


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


def configure_exchange(exchange: Any) -> Any:
    """Map the exchange's rate-limit error names to ccxt.RateLimitExceeded (see RATE_LIMIT_ERROR_NAMES)."""
    names = RATE_LIMIT_ERROR_NAMES.get(str(getattr(exchange, "id", "")), ())
    exceptions = getattr(exchange, "exceptions", None)
    if names and isinstance(exceptions, dict):
        broad = {**exceptions.get("broad", {}), **dict.fromkeys(names, ccxt.RateLimitExceeded)}
        exchange.exceptions = {**exceptions, "broad": broad}
    return exchange


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


def compute_advised_wait(headers: Mapping[str, Any] | None, now_s: float) -> float | None:
    """Seconds a slow-down response asks the client to wait, read from its headers; None if it says nothing.

    `Retry-After` (delay-seconds or an HTTP date) wins. Otherwise Upbit's `Remaining-Req: group=candles;
    min=1800; sec=0` says the group's per-second quota is spent: wait for the next second.
    """
    lower = {str(key).lower(): str(value).strip() for key, value in (headers or {}).items()}
    retry_after = lower.get("retry-after", "")
    if retry_after:
        with contextlib.suppress(ValueError):
            return max(0.0, float(retry_after))
        with contextlib.suppress(TypeError, ValueError, IndexError):
            when = email.utils.parsedate_to_datetime(retry_after)
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            return max(0.0, when.timestamp() - now_s)
    fields = dict(part.strip().partition("=")[::2] for part in lower.get("remaining-req", "").split(";"))
    return 1.0 if fields.get("sec") == "0" else None


def compute_retry_delay(attempt: int, advised: float | None) -> float | None:
    """Pause before retry `attempt` (0-based): the backoff, or longer if the server asked; None: give up."""
    if advised is not None and advised > MAX_ADVISED_WAIT_S:
        return None
    return max(backoff_delay(attempt), advised or 0.0)


def advice_from(exchange: Any) -> Advice:
    """Reads the wait the exchange's last HTTP response asked for (ccxt keeps `last_response_headers`)."""
    return lambda: compute_advised_wait(getattr(exchange, "last_response_headers", None), time.time())


def call_with_retry(
    call: Callable[[], T], *, sleep: Sleep, max_retries: int, what: str, advice: Advice | None = None
) -> T:
    """Run `call`, retrying ccxt.NetworkError (rate limit, DDoS protection, timeout, maintenance).

    The pause is the exponential backoff, or what `advice` reads from a 429/418 response if that is longer.
    """
    attempt = 0
    while True:
        try:
            return call()
        except ccxt.NetworkError as exc:
            # Only a slow-down error comes with a response; after a timeout the last headers are stale.
            advised = advice() if advice is not None and isinstance(exc, SLOW_DOWN_ERRORS) else None
            delay = compute_retry_delay(attempt, advised)
            if delay is None:
                print(
                    f"  {what}: the server asks to wait {advised:g}s: not retrying, re-run later",
                    file=sys.stderr,
                )
            if attempt >= max_retries or delay is None:
                raise
            asked = f" (server asked {advised:g}s)" if advised is not None else ""
            print(
                f"  {what}: {type(exc).__name__}, retry {attempt + 1}/{max_retries} in {delay:g}s{asked}",
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
            advice=advice_from(exchange),
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


# --------------------------------------------------------------------------------------------- gaps


@dataclass(frozen=True)
class Gap:
    """A run of missing candles, by the open times of its first and last missing candle (both included)."""

    start: int
    end: int
    missing: int


@dataclass(frozen=True)
class GapReport:
    """The candles of a series and the runs missing between them; never before the first or after the last."""

    candles: int
    first: int | None
    last: int | None
    gaps: tuple[Gap, ...]

    @property
    def missing(self) -> int:
        return sum(gap.missing for gap in self.gaps)

    @property
    def longest(self) -> Gap | None:
        """The gap with the most missing candles; the earliest of equal ones."""
        return max(self.gaps, key=lambda gap: gap.missing, default=None)


def compute_gaps(timestamps: npt.ArrayLike, step_ms: int) -> GapReport:
    """The runs of candles missing from `timestamps` (epoch ms, any order, repeats ignored).

    Where the next candle opens more than one timeframe (`step_ms`) after the previous one, the slots between
    them are missing. Open times off the timeframe grid count the grid slots strictly between the two.
    """
    stamps = np.unique(np.asarray(timestamps, dtype=np.int64))
    if stamps.size == 0:
        return GapReport(0, None, None, ())
    spacing = np.diff(stamps)
    at = np.flatnonzero(spacing > step_ms)
    before = stamps[at]
    missing = (spacing[at] - 1) // step_ms
    starts, ends = (before + step_ms).tolist(), (before + missing * step_ms).tolist()
    gaps = tuple(Gap(*gap) for gap in zip(starts, ends, missing.tolist(), strict=True))
    return GapReport(int(stamps.size), int(stamps[0]), int(stamps[-1]), gaps)


class GapJSON(TypedDict):
    start: str  # open time of the first missing candle, ISO 8601 UTC
    end: str  # open time of the last missing candle (included)
    missing: int


class GapSidecar(TypedDict):
    """`<MARKET>_<timeframe>.gaps.json`, beside the data file it describes (docs/fetch.md, "Gaps")."""

    version: int
    exchange: str
    symbol: str
    timeframe: str
    timeframe_ms: int
    file: str
    first: str | None
    last: str | None
    candles: int
    missing: int
    longest: GapJSON | None
    gaps: list[GapJSON]


def render_gaps(gaps: Sequence[Gap]) -> list[GapJSON]:
    stamps = pd.to_datetime([ms for gap in gaps for ms in (gap.start, gap.end)], unit="ms", utc=True)
    iso = stamps.strftime(ISO_FORMAT).tolist()
    return [GapJSON(start=iso[2 * i], end=iso[2 * i + 1], missing=gap.missing) for i, gap in enumerate(gaps)]


def render_gap_sidecar(
    report: GapReport, *, exchange_id: str, symbol: str, timeframe: str, step_ms: int, file: str
) -> GapSidecar:
    longest = report.longest
    return GapSidecar(
        version=GAPS_SCHEMA_VERSION,
        exchange=exchange_id,
        symbol=symbol,
        timeframe=timeframe,
        timeframe_ms=step_ms,
        file=file,
        first=None if report.first is None else to_iso(report.first),
        last=None if report.last is None else to_iso(report.last),
        candles=report.candles,
        missing=report.missing,
        longest=None if longest is None else render_gaps([longest])[0],
        gaps=render_gaps(report.gaps),
    )


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


def gaps_path(data_path: Path) -> Path:
    """`data/upbit/KRW-ETH_1h.csv` -> `data/upbit/KRW-ETH_1h.gaps.json` (the same for Parquet)."""
    return data_path.with_suffix(GAPS_SUFFIX)


def store_bars(bars: pd.DataFrame, path: Path, fmt: str) -> None:
    """Write an internal frame atomically: a temp file in the same directory, then os.replace.

    CSV timestamps are ISO 8601 UTC strings (2024-01-01T00:00:00Z); Parquet keeps a UTC datetime column.
    """
    out = bars[COLUMNS].copy()
    stamps = pd.to_datetime(out["timestamp"], unit="ms", utc=True)
    out["timestamp"] = stamps if fmt == "parquet" else stamps.dt.strftime(ISO_FORMAT)
    if fmt == "parquet":
        _store_atomically(path, lambda temp: out.to_parquet(temp, index=False))
    else:
        _store_atomically(path, lambda temp: out.to_csv(temp, index=False))


def store_gap_sidecar(sidecar: GapSidecar, path: Path) -> bool:
    """Write the sidecar atomically unless the file already says exactly this; True if it was written."""
    text = json.dumps(sidecar, indent=2) + "\n"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if path.read_text(encoding="utf-8") == text:
            return False
    _store_atomically(path, lambda temp: Path(temp).write_text(text, encoding="utf-8"))
    return True


def _store_atomically(path: Path, write: Callable[[str], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(temp_name)
        os.replace(temp_name, path)
    finally:
        # Only still there if writing failed: never leave a half-written temp file behind.
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp_name)
