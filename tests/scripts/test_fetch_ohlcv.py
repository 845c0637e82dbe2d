"""Offline tests for scripts/fetch_ohlcv.py against a fake Upbit on 127.0.0.1.

The fake server replays the Upbit-format fixtures in tests/scripts/data (synthetic, not market data) and
answers `GET /v1/market/all` and `GET /v1/candles/minutes/{unit}` the way Upbit does: newest candle first,
at most `count` candles, only candles that open strictly before `to`. A real ccxt.upbit instance is pointed
at it through `make_exchange`, so ccxt's request building and response parsing are exercised for real.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import ccxt
import pandas as pd
import pytest

from tests.script_loader import load_script

DATA = Path(__file__).resolve().parent / "data"
HOUR_MS = 3_600_000
START = "2024-01-01T00:00:00Z"
LAST = "2024-01-21T19:00:00Z"  # candle 499 of the 500-candle KRW-BTC / KRW-ETH fixtures
NOW_MS = int(datetime(2024, 1, 22, tzinfo=UTC).timestamp() * 1000)  # after the fixtures: all closed


fetch_ohlcv = load_script("fetch_ohlcv")


# ------------------------------------------------------------------------------------ fake Upbit


@dataclass
class FakeUpbit:
    """State shared with the handler thread: fixtures, a request log and injected failures."""

    markets: list[dict[str, Any]]
    candles: dict[str, list[dict[str, Any]]]  # market -> candles newest first
    requests: list[str] = field(default_factory=list)
    fail_next: int = 0  # answer this many candle requests with HTTP 429 first
    fail_after: int | None = None  # after this many answered candle requests, 429 for good
    lock: threading.Lock = field(default_factory=threading.Lock)

    def candle_requests(self, market: str) -> int:
        return sum(1 for r in self.requests if "/candles/" in r and f"market={market}" in r)

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, object]:
        with self.lock:
            self.requests.append(f"{path}?{'&'.join(f'{k}={v[0]}' for k, v in sorted(query.items()))}")
            if path == "/v1/market/all":
                return 200, self.markets
            if path.startswith("/v1/candles/minutes/"):
                if self.fail_next > 0 or self.fail_after == 0:
                    self.fail_next = max(0, self.fail_next - 1)
                    return 429, "Too many API requests."
                if self.fail_after is not None:
                    self.fail_after -= 1
                return self._candles(path, query)
        return 404, {"error": {"name": 404, "message": "Not found"}}

    def _candles(self, path: str, query: dict[str, list[str]]) -> tuple[int, object]:
        market = query.get("market", [""])[0]
        if market not in self.candles or path.rsplit("/", 1)[-1] != "60":
            return 404, {"error": {"name": 404, "message": "Code not found"}}
        count = min(int(query.get("count", ["200"])[0]), 200)
        rows = self.candles[market]
        if "to" in query:
            # `to` is exclusive: the newest candle returned opens strictly before it.
            to = pd.Timestamp(query["to"][0]).tz_convert("UTC").tz_localize(None)
            rows = [r for r in rows if pd.Timestamp(r["candle_date_time_utc"]) < to]
        return 200, rows[:count]


def _handler(state: FakeUpbit) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            status, payload = state.answer(url.path, parse_qs(url.query))
            # Upbit's 429 body is plain text, so ccxt maps it by HTTP status (RateLimitExceeded).
            text = isinstance(payload, str)
            body = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if text else "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

    return Handler


def _fixture(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@pytest.fixture
def upbit() -> Iterator[tuple[FakeUpbit, str]]:
    candles = {m: _fixture(f"upbit_candles_minutes_60_{m}.json") for m in ("KRW-BTC", "KRW-ETH", "KRW-NEW")}
    state = FakeUpbit(_fixture("upbit_market_all.json"), candles)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _factory(base_url: str) -> Any:
    def make(exchange_id: str) -> Any:
        exchange = getattr(ccxt, exchange_id)({"enableRateLimit": True, "rateLimit": 1})
        exchange.urls["api"] = {"public": base_url, "private": base_url}
        exchange.session.trust_env = False  # never route 127.0.0.1 through an HTTP(S)_PROXY
        return exchange

    return make


def _run(base_url: str, *argv: str, sleeps: list[float] | None = None, now_ms: int = NOW_MS) -> int:
    recorded = [] if sleeps is None else sleeps
    return int(
        fetch_ohlcv.main(list(argv), make_exchange=_factory(base_url), sleep=recorded.append, now_ms=now_ms)
    )


def _args(out: Path, *extra: str, symbols: str = "KRW-BTC,KRW-ETH") -> list[str]:
    return ["--exchange", "upbit", "--symbols", symbols, "--timeframe", "1h", "--since", "2024-01-01",
            "--out", str(out), "--limit-per-request", "200", *extra]  # fmt: skip


# ------------------------------------------------------------------------------------------ tests


def test_full_fetch_pages_both_symbols(upbit: tuple[FakeUpbit, str], tmp_path: Path) -> None:
    state, url = upbit
    assert _run(url, *_args(tmp_path)) == 0
    for market in ("KRW-BTC", "KRW-ETH"):
        frame = pd.read_csv(tmp_path / "upbit" / f"{market}_1h.csv")
        assert list(frame.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
        assert len(frame) == 500
        assert (frame["timestamp"].iloc[0], frame["timestamp"].iloc[-1]) == (START, LAST)
        # 3 pages of data (200 + 200 + 100), then one empty window before `now` ends it.
        assert state.candle_requests(market) == 4
    first = next(r for r in state.requests if "KRW-BTC" in r)
    assert first == "/v1/candles/minutes/60?count=200&market=KRW-BTC&to=2024-01-09T08:00:00.000Z"


def test_output_is_sorted_unique_utc_with_positive_prices(
    upbit: tuple[FakeUpbit, str], tmp_path: Path
) -> None:
    _, url = upbit
    assert _run(url, *_args(tmp_path, symbols="BTC/KRW")) == 0  # unified symbol, Upbit file name
    frame = pd.read_csv(tmp_path / "upbit" / "KRW-BTC_1h.csv")
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    assert frame["timestamp"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    assert stamps.is_monotonic_increasing and stamps.is_unique
    assert (stamps.diff().dropna() == pd.Timedelta(hours=1)).all()
    assert (frame[["open", "high", "low", "close"]] > 0).all().all()
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame["volume"] >= 0).all()
    expected = _fixture("upbit_candles_minutes_60_KRW-BTC.json")[-1]  # oldest candle
    assert frame.iloc[0][["open", "close", "volume"]].tolist() == [
        expected["opening_price"], expected["trade_price"], expected["candle_acc_trade_volume"]
    ]  # fmt: skip


def test_resume_continues_from_last_candle(upbit: tuple[FakeUpbit, str], tmp_path: Path) -> None:
    state, url = upbit
    assert _run(url, *_args(tmp_path, symbols="KRW-BTC")) == 0
    path = tmp_path / "upbit" / "KRW-BTC_1h.csv"
    complete = path.read_bytes()
    first_run = state.candle_requests("KRW-BTC")
    lines = complete.decode().splitlines(keepends=True)
    path.write_text("".join(lines[: 1 + 250]))  # header + first 250 candles: an interrupted download
    state.requests.clear()

    assert _run(url, *_args(tmp_path, symbols="KRW-BTC")) == 0
    assert path.read_bytes() == complete
    assert state.candle_requests("KRW-BTC") < first_run
    first = next(r for r in state.requests if "/candles/" in r)
    assert "to=2024-01-19T18:00:00.000Z" in first  # since = candle 250 (2024-01-11T10:00Z), + 200h


def test_resume_summary_reports_start(
    upbit: tuple[FakeUpbit, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = upbit
    assert _run(url, *_args(tmp_path, "--until", "2024-01-05", symbols="KRW-BTC")) == 0
    capsys.readouterr()
    assert _run(url, *_args(tmp_path, "--json", symbols="KRW-BTC")) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    entry = report["symbols"][0]
    assert entry["resumed_from"] == "2024-01-05T00:00:00Z"
    assert (entry["new_bars"], entry["total_bars"]) == (500 - 96, 500)
    assert (entry["first"], entry["last"]) == (START, LAST)
    assert report["ok"] and report["failed"] == []
    assert lines[0].startswith("KRW-BTC 1h: +404 bars") and lines[1].startswith("done: 404 new bars")


def test_interrupted_download_keeps_every_finished_page(
    upbit: tuple[FakeUpbit, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = upbit
    state.fail_after = 2  # the connection dies after two pages
    assert _run(url, *_args(tmp_path, "--max-retries", "0", "--json", symbols="KRW-BTC")) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["symbols"][0]["new_bars"] == 400
    path = tmp_path / "upbit" / "KRW-BTC_1h.csv"
    assert len(pd.read_csv(path)) == 400  # written after each page: only the in-flight page is lost
    assert [p.name for p in path.parent.iterdir()] == ["KRW-BTC_1h.csv"]  # no temp file left behind
    state.fail_after = None
    assert _run(url, *_args(tmp_path, symbols="KRW-BTC")) == 0
    assert len(pd.read_csv(path)) == 500


def test_nothing_to_do_when_up_to_date(upbit: tuple[FakeUpbit, str], tmp_path: Path) -> None:
    state, url = upbit
    assert _run(url, *_args(tmp_path, "--until", "2024-01-10", symbols="KRW-BTC")) == 0
    state.requests.clear()
    assert _run(url, *_args(tmp_path, "--until", "2024-01-10", symbols="KRW-BTC")) == 0
    assert state.candle_requests("KRW-BTC") == 0
    assert len(pd.read_csv(tmp_path / "upbit" / "KRW-BTC_1h.csv")) == 9 * 24


def test_rate_limit_is_retried_with_backoff(upbit: tuple[FakeUpbit, str], tmp_path: Path) -> None:
    state, url = upbit
    state.fail_next = 2
    sleeps: list[float] = []
    assert _run(url, *_args(tmp_path, symbols="KRW-BTC"), sleeps=sleeps) == 0
    assert sleeps == [1.0, 2.0]  # exponential backoff, injected sleep: the test does not wait
    assert len(pd.read_csv(tmp_path / "upbit" / "KRW-BTC_1h.csv")) == 500
    assert state.candle_requests("KRW-BTC") == 4 + 2


def test_retries_exhausted_fails_symbol_and_keeps_going(
    upbit: tuple[FakeUpbit, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = upbit
    state.fail_next = 3
    sleeps: list[float] = []
    code = _run(url, *_args(tmp_path, "--max-retries", "2", "--json"), sleeps=sleeps)
    assert code == 1
    assert sleeps == [1.0, 2.0]
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["failed"] == ["KRW-BTC"]
    assert "RateLimitExceeded" in report["symbols"][0]["error"]
    assert report["symbols"][1]["total_bars"] == 500  # KRW-ETH still fetched


def test_forming_candle_is_dropped(upbit: tuple[FakeUpbit, str], tmp_path: Path) -> None:
    _, url = upbit
    now = int(pd.Timestamp(LAST).timestamp() * 1000) + 30 * 60_000  # 19:30Z: the 19:00 candle is still open
    assert _run(url, *_args(tmp_path, symbols="KRW-BTC"), now_ms=now) == 0
    frame = pd.read_csv(tmp_path / "upbit" / "KRW-BTC_1h.csv")
    assert len(frame) == 499
    assert frame["timestamp"].iloc[-1] == "2024-01-21T18:00:00Z"


def test_listing_gap_longer_than_a_page_is_skipped(upbit: tuple[FakeUpbit, str], tmp_path: Path) -> None:
    state, url = upbit
    # KRW-NEW starts 2024-01-16: the first two 200h windows from 2024-01-01 are empty on Upbit.
    assert _run(url, *_args(tmp_path, symbols="KRW-NEW")) == 0
    frame = pd.read_csv(tmp_path / "upbit" / "KRW-NEW_1h.csv")
    assert len(frame) == 120
    assert frame["timestamp"].iloc[0] == "2024-01-16T00:00:00Z"
    # [01-01, +200h) empty -> skipped; then 40 + 80 candles; then one empty window before `now`.
    assert state.candle_requests("KRW-NEW") == 4


def test_parquet_has_the_same_columns(upbit: tuple[FakeUpbit, str], tmp_path: Path) -> None:
    _, url = upbit
    assert _run(url, *_args(tmp_path, "--format", "parquet", "--until", "2024-01-03", symbols="KRW-ETH")) == 0
    frame = pd.read_parquet(tmp_path / "upbit" / "KRW-ETH_1h.parquet")
    assert list(frame.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert len(frame) == 48
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["timestamp"].iloc[0] == pd.Timestamp(START)
    # Resuming a parquet file works the same way.
    assert _run(url, *_args(tmp_path, "--format", "parquet", "--until", "2024-01-04", symbols="KRW-ETH")) == 0
    assert len(pd.read_parquet(tmp_path / "upbit" / "KRW-ETH_1h.parquet")) == 72


def test_bad_symbol_exits_2_naming_it(
    upbit: tuple[FakeUpbit, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = upbit
    assert _run(url, *_args(tmp_path, symbols="KRW-BTC,KRW-BTX")) == 2
    err = capsys.readouterr().err
    assert "--symbols: 'KRW-BTX' is not a market on upbit" in err
    assert "did you mean 'KRW-BTC'" in err
    assert state.candle_requests("KRW-BTC") == 0  # validated before anything is downloaded
    assert not (tmp_path / "upbit").exists()


def test_unknown_exchange_exits_2_with_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def never(exchange_id: str) -> Any:
        raise AssertionError("no exchange should be built for an unknown id")

    argv = ["--exchange", "upbitt", "--symbols", "KRW-BTC", "--since", "2024-01-01", "--out", str(tmp_path)]
    assert fetch_ohlcv.main(argv, make_exchange=never) == 2
    err = capsys.readouterr().err
    assert "--exchange 'upbitt' is not a ccxt exchange" in err and "did you mean 'upbit'" in err


def test_bad_timeframe_and_dates_exit_2(
    upbit: tuple[FakeUpbit, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = upbit
    argv = _args(tmp_path, symbols="KRW-BTC")
    argv[argv.index("1h")] = "1hr"
    assert _run(url, *argv) == 2
    assert "--timeframe '1hr' is not offered by upbit" in capsys.readouterr().err
    argv[argv.index("1hr")] = "1M"  # ccxt pages months as 30 days, which would skip calendar candles
    assert _run(url, *argv) == 2
    assert "calendar period" in capsys.readouterr().err
    assert _run(url, *_args(tmp_path, "--until", "2023-12-31", symbols="KRW-BTC")) == 2
    assert "is not before --until" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        _run(url, *_args(tmp_path, "--until", "yesterday-ish", symbols="KRW-BTC"))
    assert exited.value.code == 2
    assert "'yesterday-ish' is not a date" in capsys.readouterr().err


def test_symbol_conversion() -> None:
    assert fetch_ohlcv.upbit_to_unified("KRW-BTC") == "BTC/KRW"
    assert fetch_ohlcv.upbit_to_unified("BTC-ETH") == "ETH/BTC"
    assert fetch_ohlcv.file_stem("BTC/USDT:USDT") == "BTC-USDT-USDT"


class _ScriptedExchange:
    """Minimal stand-in for fetch_symbol's unit tests: fixed pages, no HTTP."""

    id = "scripted"
    timeframes: ClassVar[dict[str, str]] = {"1h": "1h"}

    def __init__(self, pages: list[list[list[float]]]) -> None:
        self.pages = pages
        self.calls: list[int] = []

    def parse_timeframe(self, timeframe: str) -> int:
        return 3600

    def milliseconds(self) -> int:
        return NOW_MS

    def fetch_ohlcv(self, symbol: str, timeframe: str, since: int, limit: int) -> list[list[float]]:
        self.calls.append(since)
        return self.pages.pop(0) if self.pages else []


def test_fetch_symbol_dedupes_and_stops_without_progress() -> None:
    t0 = int(pd.Timestamp(START).timestamp() * 1000)
    bar = [1.0, 2.0, 0.5, 1.5, 10.0]
    pages = [
        [[t0 + HOUR_MS, *bar], [t0, *bar]],  # unsorted page
        [[t0 + HOUR_MS, *bar], [t0 + 2 * HOUR_MS, *bar]],  # overlaps the previous page
        [[t0, *bar]],  # goes backwards: no progress, stop
    ]
    exchange = _ScriptedExchange(pages)
    bars = fetch_ohlcv.fetch_symbol(
        exchange, "X/Y", "1h", t0, NOW_MS, limit=2, sleep=lambda s: None, max_retries=0
    )
    assert bars["timestamp"].tolist() == [t0, t0 + HOUR_MS, t0 + 2 * HOUR_MS]
    assert exchange.calls == [t0, t0 + 2 * HOUR_MS, t0 + 3 * HOUR_MS]
    assert bars.attrs["requests"] == 3


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "upbit" / "KRW-BTC_1h.csv"
    bars = fetch_ohlcv.bars_frame({0: [1.0, 2.0, 0.5, 1.5, 3.0]})
    fetch_ohlcv.store_bars(bars, path, "csv")
    assert (
        path.read_text() == "timestamp,open,high,low,close,volume\n1970-01-01T00:00:00Z,1.0,2.0,0.5,1.5,3.0\n"
    )
    assert [p.name for p in path.parent.iterdir()] == ["KRW-BTC_1h.csv"]
