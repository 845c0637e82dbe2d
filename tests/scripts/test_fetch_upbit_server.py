"""End to end: scripts/fetch_ohlcv.py and a real ccxt.upbit against the fake Upbit server on 127.0.0.1.

Nothing of ours or ccxt's is replaced: ccxt builds the requests, paces them and parses the answers, the
script pages, retries, stores and reports. The fake (tests/scripts/fake_upbit.py) serves a seeded hourly
series with two runs of missing candles, as Upbit leaves out periods without trades:

    slot   0 ..  49   candles         first page [0, 200): 193 candles, partial but not the end
    slot  50 ..  56   missing (7)     the short gap, inside the first page
    slot  57 .. 299   candles
    slot 300 .. 519   missing (220)   the long gap, longer than a page: page [300, 500) is empty
    slot 520 .. 650   candles         the last page [500, 700): 131 candles, partial, and the end

ccxt asks for the `count` candles before `to = since + count x timeframe`; Upbit answers the newest `count`
candles before `to`, older ones included, and ccxt keeps those from `since` on: the page [since, to).
`now` is the close of slot 650, so the partial last page reaches it and ends the fetch.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ccxt
import pandas as pd
import pytest

from tests.script_loader import load_script
from tests.scripts.fake_upbit import FakeUpbit, make_candles, point_at, serve, upbit_time

fetch_ohlcv = load_script("fetch_ohlcv")

T0 = datetime(2024, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
SLOTS = 651
SHORT_GAP = range(50, 57)
LONG_GAP = range(300, 520)
CANDLES = SLOTS - len(SHORT_GAP) - len(LONG_GAP)  # 424
NOW_MS = int((T0 + SLOTS * HOUR).timestamp() * 1000)
DAYS = 40
DAY_GAP = range(10, 12)
MARKETS = [
    {"market": "KRW-GAP", "korean_name": "갭코인(테스트)", "english_name": "Gappy (test fixture)"},
    {"market": "KRW-DAY", "korean_name": "일봉코인(테스트)", "english_name": "Daily (test fixture)"},
]
# ccxt.upbit's own pacing: rateLimit 50 ms x cost 2 for the candle and market endpoints = 100 ms a request.
UPBIT_SPACING_S = 0.100
# Server-side arrival times differ from ccxt's send stamps by request-building and thread-scheduling jitter
# (measured: up to 8 ms on an idle machine; the window counts below hold for any jitter under 100 ms).
JITTER_S = 0.025


def iso(slot: int, step: timedelta = HOUR, start: datetime = T0) -> str:
    return upbit_time(start + slot * step) + "Z"


def to(slot: int) -> str:
    """The `to` ccxt sends for a page that ends before `slot`."""
    return upbit_time(T0 + slot * HOUR) + ".000Z"


def gap(first: int, last: int, step: timedelta = HOUR, start: datetime = T0) -> dict[str, Any]:
    return {"start": iso(first, step, start), "end": iso(last, step, start), "missing": last - first + 1}


@pytest.fixture
def upbit() -> Iterator[tuple[FakeUpbit, str]]:
    hourly = make_candles("KRW-GAP", T0, SLOTS, unit=60, missing={*SHORT_GAP, *LONG_GAP}, seed=7)
    daily = make_candles(
        "KRW-DAY", datetime(2024, 1, 1, tzinfo=UTC), DAYS, unit=None, missing=DAY_GAP, seed=8
    )
    state = FakeUpbit(MARKETS, {("KRW-GAP", "minutes/60"): hourly, ("KRW-DAY", "days"): daily})
    with serve(state) as url:
        yield state, url


def _run(
    url: str, out: Path, *extra: str, sleeps: list[float], fast: bool = False, now_ms: int = NOW_MS
) -> int:
    def make(exchange_id: str) -> Any:
        # The script's own factory, pointed at the fake; `fast` lowers ccxt's pacing for the tests that
        # do not measure it.
        exchange = fetch_ohlcv.default_exchange(exchange_id)
        if fast:
            exchange.rateLimit = 1
        return point_at(exchange, url)

    argv = ["--exchange", "upbit", "--symbols", "KRW-GAP", "--timeframe", "1h", "--since", "2024-03-01",
            "--out", str(out), *extra]  # fmt: skip
    return int(fetch_ohlcv.main(argv, make_exchange=make, sleep=sleeps.append, now_ms=now_ms))


def _served(state: FakeUpbit, market: str) -> list[dict[str, Any]]:
    return state.candles[(market, "minutes/60" if market == "KRW-GAP" else "days")][::-1]


# ------------------------------------------------------------------------------------------ tests


def test_gappy_series_with_a_429_is_stored_whole_and_its_gaps_reported(
    upbit: tuple[FakeUpbit, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = upbit
    state.reject = {2}  # the second candle request is answered 429 once
    sleeps: list[float] = []
    assert _run(url, tmp_path, "--json", sleeps=sleeps) == 0

    # Every candle the server has, once, in order, with its values.
    frame = pd.read_csv(tmp_path / "upbit" / "KRW-GAP_1h.csv")
    served = _served(state, "KRW-GAP")
    assert len(frame) == CANDLES
    assert frame["timestamp"].tolist() == [c["candle_date_time_utc"] + "Z" for c in served]
    assert frame["close"].tolist() == [c["trade_price"] for c in served]
    assert frame["volume"].tolist() == [c["candle_acc_trade_volume"] for c in served]

    # The 429 was retried: the same request again, after the backoff; then the run went on.
    pages = state.candle_requests("KRW-GAP")
    assert [(p.status, p.query["to"]) for p in pages] == [
        (200, to(200)), (429, to(400)), (200, to(400)), (200, to(500)), (200, to(700))
    ]  # fmt: skip
    assert pages[1].line == pages[2].line
    assert sleeps == [1.0]  # backoff 1 s; the 429's `Remaining-Req: sec=0` asks for no more than that
    # The partial last page [500, 700) reaches `now` and ends the fetch: no request after it.
    assert to(700) == "2024-03-30T04:00:00.000Z"

    # The gaps, in the summary and in the sidecar.
    short, long = gap(50, 56), gap(300, 519)
    assert long == {"start": "2024-03-13T12:00:00Z", "end": "2024-03-22T15:00:00Z", "missing": 220}
    out = capsys.readouterr().out.strip().splitlines()
    report = json.loads(out[-1])
    entry = report["symbols"][0]
    sidecar_path = tmp_path / "upbit" / "KRW-GAP_1h.gaps.json"
    assert (entry["missing"], entry["longest"], entry["gaps"]) == (227, long, [short, long])
    assert entry["gaps_path"] == str(sidecar_path)
    assert report["missing"] == 227 and report["ok"]
    assert out[0].endswith(f"; 227 missing in 2 gaps, longest 220 ({long['start']} .. {long['end']})")
    assert out[1].endswith(", 0 failed, 227 candles missing in gaps")
    assert json.loads(sidecar_path.read_text()) == {
        "version": 1, "exchange": "upbit", "symbol": "KRW-GAP", "timeframe": "1h", "timeframe_ms": 3_600_000,
        "file": "KRW-GAP_1h.csv", "first": iso(0), "last": iso(SLOTS - 1), "candles": CANDLES,
        "missing": 227, "longest": long, "gaps": [short, long],
    }  # fmt: skip
    assert sorted(p.name for p in sidecar_path.parent.iterdir()) == ["KRW-GAP_1h.csv", "KRW-GAP_1h.gaps.json"]


def test_pacing_holds_at_upbits_10_requests_a_second(upbit: tuple[FakeUpbit, str], tmp_path: Path) -> None:
    """ccxt (sync, 4.5) sleeps before each request until rateLimit x cost = 100 ms have passed since the
    previous one started, on its integer-millisecond clock. The retry after the 429 does not wait here
    (the injected sleep only records), so only ccxt's pacing spaces it."""
    state, url = upbit
    state.reject = {3}
    sleeps: list[float] = []
    assert _run(url, tmp_path, "--limit-per-request", "50", sleeps=sleeps) == 0
    assert sleeps == [1.0]
    assert len(pd.read_csv(tmp_path / "upbit" / "KRW-GAP_1h.csv")) == CANDLES
    arrivals = [r.at for r in state.log]
    assert len(arrivals) == 1 + 14 + 1  # market/all, 14 pages of 50 slots to slot 650, the retried one
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= UPBIT_SPACING_S - JITTER_S, gaps
    # Hence at most one request beyond the allowed rate in any window: 1 per 100 ms, 10 per second.
    assert max(sum(1 for t in arrivals if a <= t < a + 0.1) for a in arrivals) <= 1 + 1
    assert max(sum(1 for t in arrivals if a <= t < a + 1.0) for a in arrivals) <= 10 + 1
    assert arrivals[-1] - arrivals[0] >= (len(arrivals) - 1) * UPBIT_SPACING_S - JITTER_S


@pytest.mark.parametrize(("json_body", "retry_after", "waits"), [(False, None, [1.0]), (True, "3", [3.0])])
def test_429_in_either_body_shape_is_retried_honouring_retry_after(
    upbit: tuple[FakeUpbit, str], tmp_path: Path, json_body: bool, retry_after: str | None, waits: list[float]
) -> None:
    state, url = upbit
    state.reject, state.json_errors, state.retry_after = {1}, json_body, retry_after
    sleeps: list[float] = []
    assert _run(url, tmp_path, sleeps=sleeps, fast=True) == 0
    assert sleeps == waits
    pages = state.candle_requests("KRW-GAP")
    assert [p.status for p in pages] == [429, 200, 200, 200, 200] and pages[0].line == pages[1].line
    assert len(pd.read_csv(tmp_path / "upbit" / "KRW-GAP_1h.csv")) == CANDLES


def test_ccxt_alone_reads_upbits_json_429_as_a_plain_exchange_error(upbit: tuple[FakeUpbit, str]) -> None:
    """Why configure_exchange maps `too_many_requests`: ccxt's upbit.handle_errors raises for the JSON body
    before the base class maps the 429 status, and the name is not in its table."""
    state, url = upbit
    state.reject, state.json_errors = {1}, True
    exchange = point_at(ccxt.upbit({"enableRateLimit": True, "rateLimit": 1}), url)
    with pytest.raises(ccxt.ExchangeError) as raised:
        exchange.fetch_ohlcv("GAP/KRW", "1h", since=int(T0.timestamp() * 1000), limit=200)
    assert not isinstance(raised.value, ccxt.NetworkError)
    assert exchange.last_response_headers["Remaining-Req"] == "group=candles; min=1800; sec=0"


def test_resume_across_the_long_gap_rewrites_the_sidecar(
    upbit: tuple[FakeUpbit, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = upbit
    sidecar_path = tmp_path / "upbit" / "KRW-GAP_1h.gaps.json"
    assert _run(url, tmp_path, "--until", iso(400), sleeps=[], fast=True) == 0
    first = json.loads(sidecar_path.read_text())
    # Slots 300..399 are missing too, but nothing follows them in the file yet: not a gap.
    assert (first["last"], first["candles"], first["gaps"]) == (iso(299), 293, [gap(50, 56)])

    capsys.readouterr()
    assert _run(url, tmp_path, "--json", sleeps=[], fast=True) == 0
    entry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["symbols"][0]
    assert entry["resumed_from"] == iso(300)
    second = json.loads(sidecar_path.read_text())
    assert (second["last"], second["candles"], second["missing"]) == (iso(SLOTS - 1), CANDLES, 227)
    assert second["gaps"] == [gap(50, 56), gap(300, 519)] == entry["gaps"]


def test_daily_candles_and_their_gap(upbit: tuple[FakeUpbit, str], tmp_path: Path) -> None:
    state, url = upbit
    start, day = datetime(2024, 1, 1, tzinfo=UTC), timedelta(days=1)
    now = int((start + DAYS * day).timestamp() * 1000)
    argv = ("--symbols", "KRW-DAY", "--timeframe", "1d", "--since", "2024-01-01")
    assert _run(url, tmp_path, *argv, sleeps=[], fast=True, now_ms=now) == 0
    assert {p.path for p in state.candle_requests()} == {"/v1/candles/days"}
    frame = pd.read_csv(tmp_path / "upbit" / "KRW-DAY_1d.csv")
    assert frame["timestamp"].tolist() == [c["candle_date_time_utc"] + "Z" for c in _served(state, "KRW-DAY")]
    sidecar = json.loads((tmp_path / "upbit" / "KRW-DAY_1d.gaps.json").read_text())
    assert (sidecar["timeframe_ms"], sidecar["candles"]) == (86_400_000, DAYS - len(DAY_GAP))
    assert (
        sidecar["gaps"] == [gap(10, 11, day, start)] and sidecar["gaps"][0]["start"] == "2024-01-11T00:00:00Z"
    )


def test_a_429_asking_for_a_long_wait_is_not_retried(
    upbit: tuple[FakeUpbit, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = upbit
    state.reject, state.retry_after = {2}, "3600"  # an hour: retrying sooner would only prolong a ban
    sleeps: list[float] = []
    assert _run(url, tmp_path, "--json", sleeps=sleeps, fast=True) == 1
    assert sleeps == []
    assert [p.status for p in state.candle_requests()] == [200, 429]
    captured = capsys.readouterr()
    assert "the server asks to wait 3600s: not retrying, re-run later" in captured.err
    entry = json.loads(captured.out.strip().splitlines()[-1])["symbols"][0]
    assert "RateLimitExceeded" in entry["error"]
    # The first page is on disk with its gap report, ready to resume.
    assert (entry["new_bars"], entry["missing"], entry["gaps"]) == (193, 7, [gap(50, 56)])
    assert json.loads((tmp_path / "upbit" / "KRW-GAP_1h.gaps.json").read_text())["candles"] == 193
