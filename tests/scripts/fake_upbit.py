"""A fake Upbit quotation API on 127.0.0.1 for the fetch tests: standard library only, no network.

It answers what ccxt 4.5's `upbit` class calls to fetch candles (read from ccxt/upbit.py: `fetch_markets`
-> `GET /v1/market/all`; `fetch_ohlcv` -> `GET /v1/candles/minutes/{unit}` for 1m..4h and
`GET /v1/candles/days` for 1d, with `market`, `count` and `to`; `sign()` builds `urls['api']['public'] +
'/v1/' + path`) the way Upbit does:

- candles newest first, at most `count` (at most 200), only those that open strictly before `to` (ISO 8601,
  UTC unless it carries an offset); a period without trades has no candle, so a series can have gaps;
- a `Remaining-Req: group=...; min=1800; sec=N` header on every answer, N counting down from 10 requests in
  the last second;
- HTTP 429 when told to (`reject`), with a plain-text body (what Upbit sent, per pyupbit's error handler) or
  Upbit's JSON error shape `{"error": {"name": "too_many_requests", "message": ...}}`, `Remaining-Req: ...
  sec=0` and optionally `Retry-After`.

Every request is logged with the `time.monotonic()` at which the handler received it, so tests can count
pages, see a repeated request and measure the pacing. The candle series are TEST FIXTURES built from a
seeded random walk (`make_candles`), not market data.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

MAX_COUNT = 200  # Upbit's maximum `count` per candle request
PER_SECOND = 10  # the candle group's quota (docs.upbit.com, rate limits)
MINUTE_UNITS = (1, 3, 5, 10, 15, 30, 60, 240)
KST = timedelta(hours=9)
TOO_MANY_TEXT = "Too many API requests."
TOO_MANY_JSON = {"error": {"name": "too_many_requests", "message": TOO_MANY_TEXT}}


def upbit_time(moment: datetime) -> str:
    """Upbit's candle time: no offset, no fraction ("2024-01-01T00:00:00")."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def make_candles(
    market: str,
    start: datetime,
    slots: int,
    *,
    unit: int | None = 60,
    missing: Collection[int] = (),
    seed: int = 1,
    price: float = 1_000_000.0,
) -> list[dict[str, Any]]:
    """`slots` candles from `start` (minutes `unit`, or days when None) minus the `missing` slot numbers.

    Newest first, with Upbit's fields. The slots in `missing` had no trades: no candle, like on Upbit.
    """
    step = timedelta(minutes=unit) if unit is not None else timedelta(days=1)
    rng = random.Random(seed)
    candles: list[dict[str, Any]] = []
    for slot in range(slots):
        close = round(price * (1.0 + rng.gauss(0.0, 0.004)), 1)
        high = round(max(price, close) * (1.0 + abs(rng.gauss(0.0, 0.002))), 1)
        low = round(min(price, close) * (1.0 - abs(rng.gauss(0.0, 0.002))), 1)
        volume = round(rng.uniform(0.5, 50.0), 8)
        if slot not in missing:
            opened = start + slot * step
            candle: dict[str, Any] = {
                "market": market,
                "candle_date_time_utc": upbit_time(opened),
                "candle_date_time_kst": upbit_time(opened + KST),
                "opening_price": price,
                "high_price": high,
                "low_price": low,
                "trade_price": close,
                # Upbit's `timestamp` is the time of the candle's last trade, inside the candle.
                "timestamp": int((opened + step).timestamp() * 1000) - rng.randint(1, 59_000),
                "candle_acc_trade_price": round(volume * close, 8),
                "candle_acc_trade_volume": volume,
            }
            candle.update({"unit": unit} if unit is not None else _day_fields(price, close))
            candles.append(candle)
        price = close
    return candles[::-1]


def _day_fields(previous_close: float, close: float) -> dict[str, Any]:
    change = round(close - previous_close, 1)
    return {
        "prev_closing_price": previous_close,
        "change_price": change,
        "change_rate": change / previous_close,
    }


@dataclass(frozen=True)
class Logged:
    """One request as the server saw it."""

    at: float  # time.monotonic() when the handler received it
    path: str
    query: dict[str, str]
    status: int

    @property
    def line(self) -> str:
        """`/v1/candles/minutes/60?count=200&market=KRW-BTC&to=...`, parameters sorted."""
        return f"{self.path}?{'&'.join(f'{k}={v}' for k, v in sorted(self.query.items()))}"


@dataclass
class FakeUpbit:
    """The server's state, shared with its handler threads: markets, candles, failures to inject, the log.

    `candles` maps (market, "minutes/60" | "days" | ...) to that series, newest first.
    """

    markets: list[dict[str, Any]]
    candles: dict[tuple[str, str], list[dict[str, Any]]]
    log: list[Logged] = field(default_factory=list)
    reject: set[int] = field(default_factory=set)  # 1-based numbers of candle requests to answer with 429
    fail_next: int = 0  # answer this many candle requests with 429 first
    fail_after: int | None = None  # after this many answered candle requests, 429 for good
    json_errors: bool = False  # 429 body: Upbit's JSON error shape instead of plain text
    retry_after: str | None = None  # a Retry-After header on each 429
    lock: threading.Lock = field(default_factory=threading.Lock)

    def candle_requests(self, market: str | None = None) -> list[Logged]:
        return [r for r in self.log if "/candles/" in r.path and market in (None, r.query.get("market"))]

    def lines(self) -> list[str]:
        return [r.line for r in self.log]

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """(status, payload, extra headers); a str payload is sent as text/plain."""
        with self.lock:
            now = time.monotonic()
            recent = sum(1 for r in self.log if now - r.at < 1.0)
            status, payload, headers = self._route(path, query)
            group = "market" if path == "/v1/market/all" else "candles"
            sec = 0 if status == 429 else max(0, PER_SECOND - recent - 1)
            headers["Remaining-Req"] = f"group={group}; min=1800; sec={sec}"
            self.log.append(Logged(now, path, query, status))
            return status, payload, headers

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if path == "/v1/market/all":
            return 200, self.markets, {}
        if not path.startswith("/v1/candles/"):
            return 404, {"error": {"name": 404, "message": "Not found"}}, {}
        number = len(self.candle_requests()) + 1
        if number in self.reject or self.fail_next > 0 or self.fail_after == 0:
            self.fail_next = max(0, self.fail_next - 1)
            headers = {} if self.retry_after is None else {"Retry-After": self.retry_after}
            return 429, TOO_MANY_JSON if self.json_errors else TOO_MANY_TEXT, headers
        if self.fail_after is not None:
            self.fail_after -= 1
        return self._candles(path.removeprefix("/v1/candles/"), query)

    def _candles(self, kind: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        series = self.candles.get((query.get("market", ""), kind))
        if series is None:
            return 404, {"error": {"name": 404, "message": "Code not found"}}, {}
        count = min(int(query.get("count", MAX_COUNT)), MAX_COUNT)
        rows = series
        if "to" in query:
            to = datetime.fromisoformat(query["to"])
            to = to.astimezone(UTC) if to.tzinfo else to.replace(tzinfo=UTC)
            rows = [r for r in rows if datetime.fromisoformat(r["candle_date_time_utc"] + "+00:00") < to]
        return 200, rows[:count], {}


def _handler(state: FakeUpbit) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            status, payload, headers = state.answer(url.path, query)
            text = isinstance(payload, str)
            body = (payload if text else json.dumps(payload)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if text else "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

    return Handler


@contextmanager
def serve(state: FakeUpbit) -> Iterator[str]:
    """Run the fake on 127.0.0.1 (a free port, a daemon thread); yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def point_at(exchange: Any, base_url: str) -> Any:
    """Send a real ccxt exchange's REST calls to the fake: `sign()` prefixes `urls['api'][<api>]`."""
    exchange.urls["api"] = {"public": base_url, "private": base_url}
    exchange.session.trust_env = False  # never route 127.0.0.1 through an HTTP(S)_PROXY
    return exchange
