"""Generate the Upbit-format test fixtures used by tests/scripts/test_fetch_ohlcv.py.

TEST FIXTURES, NOT MARKET DATA. The JSON files next to this script imitate the *shape* of Upbit's public
REST responses (`GET /v1/market/all`, `GET /v1/candles/minutes/60`) so ccxt's real Upbit parser can be
exercised offline. The prices are a seeded random walk; they say nothing about any real market.

Regenerate (deterministic, byte-identical output):

    .venv/bin/python tests/scripts/data/make_upbit_fixtures.py
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
UNIT_MINUTES = 60
KST = timedelta(hours=9)

# market -> (first candle open time UTC, number of hourly candles, start price, price tick, seed).
# KRW-NEW starts 15 days after the others: a listing gap longer than one 200-candle request window.
SERIES: dict[str, tuple[datetime, int, float, float, int]] = {
    "KRW-BTC": (datetime(2024, 1, 1, tzinfo=UTC), 500, 58_000_000.0, 1000.0, 1),
    "KRW-ETH": (datetime(2024, 1, 1, tzinfo=UTC), 500, 3_000_000.0, 1000.0, 2),
    "KRW-NEW": (datetime(2024, 1, 16, tzinfo=UTC), 120, 1_000.0, 1.0, 3),
}

MARKETS: list[dict[str, Any]] = [
    {"market": "KRW-BTC", "korean_name": "비트코인(테스트)", "english_name": "Bitcoin (test fixture)"},
    {"market": "KRW-ETH", "korean_name": "이더리움(테스트)", "english_name": "Ethereum (test fixture)"},
    {"market": "KRW-NEW", "korean_name": "신규코인(테스트)", "english_name": "New listing (test fixture)"},
    {"market": "BTC-ETH", "korean_name": "이더리움(테스트)", "english_name": "Ethereum (test fixture)"},
]


def _iso(moment: datetime) -> str:
    # Upbit writes candle times without an offset or fraction: "2024-01-01T00:00:00".
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _tick(price: float, tick: float) -> float:
    return round(round(price / tick) * tick, 8)


def make_candles(market: str) -> list[dict[str, Any]]:
    """Hourly candles for `market`, newest first, like Upbit returns them."""
    start, count, price, tick, seed = SERIES[market]
    rng = random.Random(seed)
    candles: list[dict[str, Any]] = []
    for i in range(count):
        opened = start + timedelta(minutes=UNIT_MINUTES * i)
        close = price * (1.0 + rng.gauss(0.0, 0.004))
        high = max(price, close) * (1.0 + abs(rng.gauss(0.0, 0.002)))
        low = min(price, close) * (1.0 - abs(rng.gauss(0.0, 0.002)))
        volume = round(rng.uniform(5.0, 50.0) * 1_000_000.0 / price, 8)
        o, h, lo, c = (_tick(p, tick) for p in (price, high, low, close))
        # Upbit's `timestamp` is the time of the candle's last trade, somewhere inside the hour.
        last_trade_ms = int(opened.timestamp() * 1000) + rng.randrange(0, UNIT_MINUTES * 60_000)
        candles.append(
            {
                "market": market,
                "candle_date_time_utc": _iso(opened),
                "candle_date_time_kst": _iso(opened + KST),
                "opening_price": o,
                "high_price": h,
                "low_price": lo,
                "trade_price": c,
                "timestamp": last_trade_ms,
                "candle_acc_trade_price": round(volume * (o + c) / 2.0, 8),
                "candle_acc_trade_volume": volume,
                "unit": UNIT_MINUTES,
            }
        )
        price = close
    candles.reverse()
    return candles


def _dump(name: str, rows: list[dict[str, Any]]) -> None:
    # One object per line: a JSON array that diffs line by line when the generator changes.
    lines = ",\n".join(json.dumps(row, ensure_ascii=False) for row in rows)
    (HERE / name).write_text(f"[\n{lines}\n]\n", encoding="utf-8")


def main() -> None:
    _dump("upbit_market_all.json", MARKETS)
    for market in SERIES:
        _dump(f"upbit_candles_minutes_{UNIT_MINUTES}_{market}.json", make_candles(market))


if __name__ == "__main__":
    main()
