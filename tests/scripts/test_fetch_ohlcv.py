"""Offline tests for scripts/fetch_ohlcv.py against a fake Upbit on 127.0.0.1, and of its pure functions.

The fake server (tests/scripts/fake_upbit.py) replays the Upbit-format fixtures in tests/scripts/data
(synthetic, not market data) and answers `GET /v1/market/all` and `GET /v1/candles/minutes/{unit}` the way
Upbit does: newest candle first, at most `count` candles, only candles that open strictly before `to`. A real
ccxt.upbit instance is pointed at it through `make_exchange`, so ccxt's request building and response
parsing are exercised for real. The gap report and 429 pacing end to end: test_fetch_upbit_server.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import ccxt
import pandas as pd
import pytest

from opslib import fetch
from tests.script_loader import load_script
from tests.scripts.fake_upbit import FakeUpbit, point_at, serve

DATA = Path(__file__).resolve().parent / "data"
HOUR_MS = 3_600_000
START = "2024-01-01T00:00:00Z"
LAST = "2024-01-21T19:00:00Z"  # candle 499 of the 500-candle KRW-BTC / KRW-ETH fixtures
NOW_MS = int(datetime(2024, 1, 22, tzinfo=UTC).timestamp() * 1000)  # after the fixtures: all closed


fetch_ohlcv = load_script("fetch_ohlcv")


# ------------------------------------------------------------------------------- fake Upbit fixture


def _fixture(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@pytest.fixture
def upbit() -> Iterator[tuple[FakeUpbit, str]]:
    markets = ("KRW-BTC", "KRW-ETH", "KRW-NEW")
    candles = {(m, "minutes/60"): _fixture(f"upbit_candles_minutes_60_{m}.json") for m in markets}
    state = FakeUpbit(_fixture("upbit_market_all.json"), candles)
    with serve(state) as url:
        yield state, url


def _factory(base_url: str) -> Any:
    def make(exchange_id: str) -> Any:
        return point_at(getattr(ccxt, exchange_id)({"enableRateLimit": True, "rateLimit": 1}), base_url)

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
        assert len(state.candle_requests(market)) == 4
    first = next(r for r in state.lines() if "KRW-BTC" in r)
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
    first_run = len(state.candle_requests("KRW-BTC"))
    lines = complete.decode().splitlines(keepends=True)
    path.write_text("".join(lines[: 1 + 250]))  # header + first 250 candles: an interrupted download
    state.log.clear()

    assert _run(url, *_args(tmp_path, symbols="KRW-BTC")) == 0
    assert path.read_bytes() == complete
    assert len(state.candle_requests("KRW-BTC")) < first_run
    first = next(r for r in state.lines() if "/candles/" in r)
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
    assert (entry["missing"], entry["longest"], entry["gaps"]) == (0, None, [])
    assert lines[0].startswith("KRW-BTC 1h: +404 bars") and lines[0].endswith("; no gaps")
    assert lines[1].startswith("done: 404 new bars")


def test_interrupted_download_keeps_every_finished_page(
    upbit: tuple[FakeUpbit, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = upbit
    state.fail_after = 2  # the connection dies after two pages
    assert _run(url, *_args(tmp_path, "--max-retries", "0", "--json", symbols="KRW-BTC")) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["symbols"][0]["new_bars"] == 400
    path = tmp_path / "upbit" / "KRW-BTC_1h.csv"
    assert len(pd.read_csv(path)) == 400  # written after each page: only the in-flight page is lost
    # No temp file left behind: the data and its gap report only.
    assert sorted(p.name for p in path.parent.iterdir()) == ["KRW-BTC_1h.csv", "KRW-BTC_1h.gaps.json"]
    state.fail_after = None
    assert _run(url, *_args(tmp_path, symbols="KRW-BTC")) == 0
    assert len(pd.read_csv(path)) == 500


def test_nothing_to_do_when_up_to_date(upbit: tuple[FakeUpbit, str], tmp_path: Path) -> None:
    state, url = upbit
    assert _run(url, *_args(tmp_path, "--until", "2024-01-10", symbols="KRW-BTC")) == 0
    state.log.clear()
    assert _run(url, *_args(tmp_path, "--until", "2024-01-10", symbols="KRW-BTC")) == 0
    assert state.candle_requests("KRW-BTC") == []
    assert len(pd.read_csv(tmp_path / "upbit" / "KRW-BTC_1h.csv")) == 9 * 24
    # A file without its gap report (fetched before there was one) gets it, still without a download.
    sidecar = tmp_path / "upbit" / "KRW-BTC_1h.gaps.json"
    written = sidecar.read_text()
    sidecar.unlink()
    assert _run(url, *_args(tmp_path, "--until", "2024-01-10", symbols="KRW-BTC")) == 0
    assert state.candle_requests("KRW-BTC") == [] and sidecar.read_text() == written
    assert json.loads(written)["candles"] == 9 * 24


def test_rate_limit_is_retried_with_backoff(upbit: tuple[FakeUpbit, str], tmp_path: Path) -> None:
    state, url = upbit
    state.fail_next = 2
    sleeps: list[float] = []
    assert _run(url, *_args(tmp_path, symbols="KRW-BTC"), sleeps=sleeps) == 0
    assert sleeps == [1.0, 2.0]  # exponential backoff, injected sleep: the test does not wait
    assert len(pd.read_csv(tmp_path / "upbit" / "KRW-BTC_1h.csv")) == 500
    assert len(state.candle_requests("KRW-BTC")) == 4 + 2


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
    assert len(state.candle_requests("KRW-NEW")) == 4


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
    assert state.candle_requests("KRW-BTC") == []  # validated before anything is downloaded
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


# ------------------------------------------------------------------------------- pure functions

H = HOUR_MS
GAP_CASES = [
    # (name, open times in hours, expected gaps as (start h, end h, missing), candles)
    ("empty", [], [], 0),
    ("one candle", [0], [], 1),
    ("contiguous", [0, 1, 2, 3], [], 4),
    ("one missing", [0, 2], [(1, 1, 1)], 2),
    ("three missing", [0, 4, 5], [(1, 3, 3)], 3),
    ("two gaps", [0, 2, 3, 7], [(1, 1, 1), (4, 6, 3)], 4),
    ("unsorted with repeats", [3, 0, 0, 2], [(1, 1, 1)], 3),
    ("off the grid: slots strictly between", [0, 1.5, 2.5], [(1, 1, 1)], 3),
    ("closer than a timeframe is no gap", [0, 0.5, 1], [], 3),
]


@pytest.mark.parametrize(
    ("hours", "expected", "candles"), [c[1:] for c in GAP_CASES], ids=[c[0] for c in GAP_CASES]
)
def test_compute_gaps(hours: list[float], expected: list[tuple[int, int, int]], candles: int) -> None:
    report = fetch.compute_gaps([int(h * H) for h in hours], H)
    assert report.gaps == tuple(fetch.Gap(s * H, e * H, n) for s, e, n in expected)
    assert report.candles == candles
    assert report.missing == sum(n for _, _, n in expected)
    assert (report.first, report.last) == ((min(hours) * H, max(hours) * H) if hours else (None, None))


def test_longest_gap_is_the_earliest_of_the_longest() -> None:
    report = fetch.compute_gaps([0, 2 * H, 6 * H, 10 * H, 11 * H], H)
    assert report.longest == fetch.Gap(3 * H, 5 * H, 3)  # 3..5 and 7..9 both miss 3: the first wins
    assert fetch.compute_gaps([0, H], H).longest is None


def test_gap_sidecar_shape() -> None:
    t0 = int(pd.Timestamp(START).timestamp() * 1000)
    report = fetch.compute_gaps([t0, t0 + 3 * H, t0 + 4 * H], H)
    sidecar = fetch.render_gap_sidecar(
        report, exchange_id="upbit", symbol="KRW-BTC", timeframe="1h", step_ms=H, file="KRW-BTC_1h.csv"
    )
    gap = {"start": "2024-01-01T01:00:00Z", "end": "2024-01-01T02:00:00Z", "missing": 2}
    assert sidecar == {
        "version": 1, "exchange": "upbit", "symbol": "KRW-BTC", "timeframe": "1h", "timeframe_ms": H,
        "file": "KRW-BTC_1h.csv", "first": START, "last": "2024-01-01T04:00:00Z", "candles": 3,
        "missing": 2, "longest": gap, "gaps": [gap],
    }  # fmt: skip
    assert fetch.gaps_path(Path("data/upbit/KRW-BTC_1h.parquet")) == Path("data/upbit/KRW-BTC_1h.gaps.json")


def test_gap_sidecar_is_written_atomically_and_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "upbit" / "KRW-BTC_1h.gaps.json"
    render = fetch.render_gap_sidecar
    sidecar = render(fetch.compute_gaps([0, 2 * H], H), exchange_id="upbit", symbol="KRW-BTC",
                     timeframe="1h", step_ms=H, file="KRW-BTC_1h.csv")  # fmt: skip
    assert fetch.store_gap_sidecar(sidecar, path)
    assert json.loads(path.read_text()) == sidecar
    assert not fetch.store_gap_sidecar(sidecar, path)  # same content: left alone
    assert [p.name for p in path.parent.iterdir()] == ["KRW-BTC_1h.gaps.json"]


NOW_S = 1_700_000_000.0
ADVICE_CASES = [
    ("no headers", None, None),
    ("nothing said", {"Content-Type": "text/plain"}, None),
    ("retry-after seconds", {"Retry-After": "7"}, 7.0),
    ("retry-after fraction, any case", {"retry-after": " 1.5 "}, 1.5),
    ("retry-after http date", {"Retry-After": "Tue, 14 Nov 2023 22:13:40 GMT"}, 20.0),
    ("retry-after date passed", {"Retry-After": "Tue, 14 Nov 2023 22:13:00 GMT"}, 0.0),
    (
        "retry-after garbage, quota spent",
        {"Retry-After": "soon", "Remaining-Req": "group=candles; sec=0"},
        1.0,
    ),
    ("upbit quota spent", {"Remaining-Req": "group=candles; min=1800; sec=0"}, 1.0),
    ("upbit quota left", {"Remaining-Req": "group=candles; min=1800; sec=4"}, None),
    ("retry-after wins", {"Retry-After": "3", "Remaining-Req": "group=candles; min=1800; sec=0"}, 3.0),
]


@pytest.mark.parametrize(("headers", "wait"), [c[1:] for c in ADVICE_CASES], ids=[c[0] for c in ADVICE_CASES])
def test_compute_advised_wait(headers: dict[str, str] | None, wait: float | None) -> None:
    assert fetch.compute_advised_wait(headers, NOW_S) == wait


RETRY_CASES = [
    # (attempt, advised, delay): the backoff, longer if the server asks, none past MAX_ADVISED_WAIT_S
    (0, None, 1.0),
    (3, None, 8.0),
    (10, None, 60.0),
    (0, 7.0, 7.0),
    (2, 1.0, 4.0),
    (0, 600.0, 600.0),
    (0, 601.0, None),
]


@pytest.mark.parametrize(("attempt", "advised", "delay"), RETRY_CASES)
def test_compute_retry_delay(attempt: int, advised: float | None, delay: float | None) -> None:
    assert fetch.compute_retry_delay(attempt, advised) == delay


def test_upbit_json_429_maps_to_rate_limit_exceeded() -> None:
    exchange = fetch.configure_exchange(ccxt.upbit())
    assert exchange.exceptions["broad"]["too_many_requests"] is ccxt.RateLimitExceeded
    assert "out_of_scope" in exchange.exceptions["broad"]  # ccxt's own names are kept
    assert "too_many_requests" not in ccxt.upbit().exceptions["broad"]  # per instance, not the class
    assert fetch.configure_exchange(_ScriptedExchange([])).id == "scripted"  # no exceptions map: unchanged


@pytest.mark.parametrize(
    ("error", "sleeps"),
    [
        (ccxt.RateLimitExceeded("429"), [5.0]),
        (ccxt.DDoSProtection("418"), [5.0]),
        (ccxt.RequestTimeout("t"), [1.0]),
    ],
)
def test_only_slow_down_errors_read_the_response_headers(error: Exception, sleeps: list[float]) -> None:
    """A timeout has no response: the last headers belong to an earlier one and must not set the pause."""
    outcomes: list[Exception | None] = [error, None]

    def call() -> str:
        failure = outcomes.pop(0)
        if failure is not None:
            raise failure
        return "page"

    recorded: list[float] = []
    result = fetch.call_with_retry(call, sleep=recorded.append, max_retries=1, what="x", advice=lambda: 5.0)
    assert (result, recorded) == ("page", sleeps)
