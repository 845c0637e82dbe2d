"""Tests for backtesting_modules.data: validation, loading, resampling, bar spacing and synthetic bars."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtesting_modules.data import (
    bar_seconds,
    bars_per_year,
    is_synthetic,
    load_bars,
    resample_bars,
    synthetic_bars,
    validate_bars,
)
from backtesting_modules.errors import DataError

COLUMNS = ["open", "high", "low", "close", "volume"]


def make_bars(n: int = 5, start: str = "2021-01-01", freq: str = "1h") -> pd.DataFrame:
    """A small valid frame: open 100+i, close 100.5+i, wicks of 1, volume i+1."""
    i = np.arange(n, dtype=np.float64)
    # validate_bars normalises to ns; pandas 3 date_range would otherwise default to us
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp").as_unit("ns")
    frame = pd.DataFrame(
        {"open": 100 + i, "high": 101.5 + i, "low": 99 + i, "close": 100.5 + i, "volume": i + 1},
        index=index,
    )
    frame.attrs = {"symbol": "TEST-KRW", "source": "unit", "synthetic": False}
    return frame


def _set(row: int, column: str, value: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[frame.index[row], column] = value
        return frame

    return mutate


def _swap_stamps(frame: pd.DataFrame) -> pd.DataFrame:
    stamps = frame.index.to_numpy().copy()
    stamps[[2, 3]] = stamps[[3, 2]]
    return frame.set_axis(pd.DatetimeIndex(stamps, name="timestamp"), axis=0)


def _duplicate_stamp(frame: pd.DataFrame) -> pd.DataFrame:
    stamps = frame.index.to_numpy().copy()
    stamps[3] = stamps[2]
    return frame.set_axis(pd.DatetimeIndex(stamps, name="timestamp"), axis=0)


# --------------------------------------------------------------------------------------------------------
# validate_bars
# --------------------------------------------------------------------------------------------------------

# (case id, mutation, offending row, substrings the message must contain: the column and the fix)
ROW_ERRORS = [
    ("unsorted", _swap_stamps, 3, ["earlier than row 2", "sort_index()"]),
    ("duplicate", _duplicate_stamp, 3, ["duplicates the timestamp of row 2", "duplicated(keep='last')"]),
    ("nan", _set(2, "close", np.nan), 2, ["close=nan", "dropna()"]),
    ("inf", _set(1, "volume", np.inf), 1, ["volume=inf", "not finite"]),
    ("zero price", _set(4, "open", 0.0), 4, ["open=0.0", "prices must be > 0"]),
    ("negative price", _set(0, "low", -1.0), 0, ["low=-1.0", "prices must be > 0"]),
    ("high below body", _set(1, "high", 101.2), 1, ["column high=101.2", "high = max(open, high, close)"]),
    ("low above body", _set(2, "low", 102.2), 2, ["column low=102.2", "low = min(open, low, close)"]),
    ("high below low", _set(3, "high", 98.0), 3, ["below column low", "swapped"]),
    ("negative volume", _set(0, "volume", -5.0), 0, ["column volume=-5.0", "set the volume to 0"]),
]


@pytest.mark.parametrize(
    ("mutate", "row", "needles"), [case[1:] for case in ROW_ERRORS], ids=[case[0] for case in ROW_ERRORS]
)
def test_validate_rejects_bad_rows_naming_row_timestamp_and_fix(
    mutate: Callable[[pd.DataFrame], pd.DataFrame], row: int, needles: list[str]
) -> None:
    bad = mutate(make_bars())
    with pytest.raises(DataError) as info:
        validate_bars(bad, name="KRW-BTC")
    message = str(info.value)
    assert f"KRW-BTC row {row} ({bad.index[row].isoformat()})" in message
    for needle in needles:
        assert needle in message


def test_validate_counts_further_offending_rows() -> None:
    bad = make_bars()
    bad["volume"] = -1.0
    with pytest.raises(DataError, match=r"row 0 .*\(4 more row\(s\) like it\)"):
        validate_bars(bad)


@pytest.mark.parametrize(
    ("build", "needles"),
    [
        (lambda: make_bars().tz_localize(None), ["timezone-naive", "tz_localize('UTC')"]),
        (lambda: make_bars().reset_index(), ["must be a DatetimeIndex", "set_index"]),
        (lambda: make_bars().drop(columns=["low", "volume"]), ["['low', 'volume']", "provide all of"]),
        (lambda: make_bars().assign(close="x"), ["row 0 column 'close' is not a number", "pd.to_numeric"]),
        (lambda: make_bars().assign(CLOSE=1.0), ["several columns matching 'close'", "drop all but one"]),
        (lambda: make_bars(n=5), ["needs 10 bars, got 5: load a longer period"]),
    ],
    ids=["naive index", "no datetime index", "missing columns", "non-numeric", "ambiguous", "too short"],
)
def test_validate_rejects_bad_frames(build: Callable[[], pd.DataFrame], needles: list[str]) -> None:
    with pytest.raises(DataError) as info:
        validate_bars(build(), min_bars=10)
    for needle in needles:
        assert needle in str(info.value)


def test_data_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="timezone-naive"):
        validate_bars(make_bars().tz_localize(None))


def test_validate_returns_clean_copy_in_bar_format() -> None:
    raw = make_bars().tz_convert("Asia/Seoul")
    raw.columns = ["Open", "HIGH", "low", "Close", "Volume"]
    raw["volume"] = raw.pop("Volume").astype(np.int64)  # integer volume is accepted and becomes float
    raw["turnover"] = 1.0  # extra column: dropped
    raw.index.name = "ts"
    clean = validate_bars(raw)
    assert list(clean.columns) == COLUMNS
    assert (clean.dtypes == np.float64).all()
    assert isinstance(clean.index, pd.DatetimeIndex)
    assert str(clean.index.tz) == "UTC"
    assert clean.index.name == "timestamp"
    assert clean.index[0] == pd.Timestamp("2021-01-01", tz="UTC")
    assert clean.attrs == {"symbol": "TEST-KRW", "source": "unit", "synthetic": False}
    pd.testing.assert_frame_equal(clean, make_bars(), check_freq=False)
    clean.iloc[0, 0] = 1.0  # a copy: the input is untouched
    assert raw["Open"].iloc[0] == 100.0


def test_validate_one_million_bars() -> None:
    n = 1_000_000
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]]
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.01,
            "low": np.minimum(open_, close) * 0.99,
            "close": close,
            "volume": rng.uniform(1, 2, n),
        },
        index=pd.date_range("2000-01-01", periods=n, freq="1min", tz="UTC"),
    )
    # Speed is measured by benchmarks, not here; this checks the vectorised path at scale.
    assert len(validate_bars(frame)) == n


# --------------------------------------------------------------------------------------------------------
# load_bars
# --------------------------------------------------------------------------------------------------------


def test_load_csv_iso_round_trip(tmp_path: Path) -> None:
    bars = make_bars()
    path = tmp_path / "KRW-BTC_1h.csv"
    bars.to_csv(path)  # writes ISO 8601 with an offset: 2021-01-01 00:00:00+00:00
    loaded = load_bars(path)
    pd.testing.assert_frame_equal(loaded, bars, check_freq=False)
    assert loaded.attrs == {"symbol": "KRW-BTC", "source": str(path), "synthetic": False}
    assert not is_synthetic(loaded)


def test_load_csv_iso_z_and_kst_offsets(tmp_path: Path) -> None:
    raw = make_bars(n=2).reset_index(drop=True)
    raw.insert(0, "timestamp", ["2021-01-01T00:00:00Z", "2021-01-01T10:00:00+09:00"])
    path = tmp_path / "x.csv"
    raw.to_csv(path, index=False)
    loaded = load_bars(path)
    expected = pd.DatetimeIndex(["2021-01-01 00:00", "2021-01-01 01:00"], tz="UTC")
    assert list(loaded.index) == list(expected)


def test_load_csv_epoch_ms_round_trip(tmp_path: Path) -> None:
    bars = make_bars()
    raw = bars.reset_index(drop=True)
    raw.insert(0, "timestamp", pd.DatetimeIndex(bars.index).as_unit("ns").asi8 // 1_000_000)
    path = tmp_path / "KRW-ETH_1h.csv"
    raw.to_csv(path, index=False)
    loaded = load_bars(path, symbol="ETH")
    pd.testing.assert_frame_equal(loaded, bars, check_freq=False)
    assert loaded.attrs["symbol"] == "ETH"


@pytest.mark.parametrize("alias", ["datetime", "date", "time", "Timestamp"])
def test_load_csv_timestamp_aliases(tmp_path: Path, alias: str) -> None:
    raw = make_bars().reset_index().rename(columns={"timestamp": alias})
    raw.to_csv(tmp_path / "a.csv", index=False)
    assert load_bars(tmp_path / "a.csv").index[0] == pd.Timestamp("2021-01-01", tz="UTC")


def test_load_csv_prefers_timestamp_over_alias(tmp_path: Path) -> None:
    raw = make_bars().reset_index()
    raw["date"] = "not a date"  # an unrelated column that happens to be called date
    raw.to_csv(tmp_path / "a.csv", index=False)
    assert list(load_bars(tmp_path / "a.csv").columns) == COLUMNS


@pytest.mark.parametrize(
    ("timestamps", "needles"),
    [
        (
            ["2021-01-01T00:00:00Z", "yesterday"],
            ["row 1 column 'timestamp'", "ISO 8601", "2021-01-01T00:00:00Z"],
        ),
        ([1609459200, 1609462800], ["row 0", "not epoch milliseconds", "x1000"]),
    ],
    ids=["bad iso", "epoch seconds"],
)
def test_load_csv_rejects_bad_timestamps(
    tmp_path: Path, timestamps: list[object], needles: list[str]
) -> None:
    raw = make_bars(n=2).reset_index(drop=True)
    raw.insert(0, "timestamp", timestamps)
    raw.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError) as info:
        load_bars(tmp_path / "bad.csv")
    for needle in needles:
        assert needle in str(info.value)


def test_load_csv_without_timestamp_column(tmp_path: Path) -> None:
    make_bars().to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(DataError, match=r"no timestamp column.*name it 'timestamp'"):
        load_bars(tmp_path / "a.csv")


def test_load_validates_and_names_the_file(tmp_path: Path) -> None:
    bars = _swap_stamps(make_bars())
    bars.to_csv(tmp_path / "KRW-BTC_1h.csv")
    with pytest.raises(DataError, match=r"KRW-BTC_1h\.csv row 3 .*sort_index"):
        load_bars(tmp_path / "KRW-BTC_1h.csv")
    make_bars().to_csv(tmp_path / "short.csv")
    with pytest.raises(DataError, match=r"short\.csv: strategy needs 50 bars, got 5: load a longer period"):
        load_bars(tmp_path / "short.csv", min_bars=50)


@pytest.mark.parametrize("as_index", [True, False], ids=["index", "column"])
@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_load_parquet_round_trip(tmp_path: Path, suffix: str, as_index: bool) -> None:
    bars = make_bars()
    path = tmp_path / f"KRW-XRP_4h{suffix}"
    (bars if as_index else bars.reset_index()).to_parquet(path)
    loaded = load_bars(path)
    pd.testing.assert_frame_equal(loaded, bars, check_freq=False)
    assert loaded.attrs == {"symbol": "KRW-XRP", "source": str(path), "synthetic": False}


def test_load_rejects_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unsupported bar file type '\.json'.*\.csv, \.parquet, \.pq"):
        load_bars(tmp_path / "bars.json")


def test_load_missing_file_suggests_fetching(tmp_path: Path) -> None:
    path = tmp_path / "KRW-BTC_1h.csv"
    with pytest.raises(DataError) as info:
        load_bars(path)
    message = str(info.value)
    for needle in [str(path), "does not exist", "scripts/fetch_ohlcv.py", "--synthetic"]:
        assert needle in message


# --------------------------------------------------------------------------------------------------------
# resample_bars, bar_seconds, bars_per_year
# --------------------------------------------------------------------------------------------------------


def _hourly_across_midnight() -> pd.DataFrame:
    # 12 hourly bars 16:00..03:00; bar i: open 100+i, high 101.5+i, low 99+i, close 100.5+i, volume i+1.
    return make_bars(n=12, start="2021-01-01 16:00")


def _frame(rows: list[tuple[str, float, float, float, float, float]]) -> pd.DataFrame:
    index = pd.DatetimeIndex([pd.Timestamp(r[0], tz="UTC") for r in rows], name="timestamp").as_unit("ns")
    return pd.DataFrame([r[1:] for r in rows], index=index, columns=COLUMNS, dtype=np.float64)


FOUR_HOURLY = _frame(
    [
        ("2021-01-01 16:00", 100.0, 104.5, 99.0, 103.5, 1 + 2 + 3 + 4),
        ("2021-01-01 20:00", 104.0, 108.5, 103.0, 107.5, 5 + 6 + 7 + 8),
        ("2021-01-02 00:00", 108.0, 112.5, 107.0, 111.5, 9 + 10 + 11 + 12),
    ]
)
DAILY = _frame(
    [
        ("2021-01-01", 100.0, 108.5, 99.0, 107.5, 36.0),
        ("2021-01-02", 108.0, 112.5, 107.0, 111.5, 42.0),
    ]
)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [(["4h"], FOUR_HOURLY), (["1D"], DAILY), (["4h", "1D"], DAILY)],
    ids=["1h->4h", "1h->1D", "1h->4h->1D"],
)
def test_resample_matches_hand_computed(steps: list[str], expected: pd.DataFrame) -> None:
    bars = _hourly_across_midnight()
    for rule in steps:
        bars = resample_bars(bars, rule)
    pd.testing.assert_frame_equal(bars, expected, check_freq=False)
    assert bars.attrs == {"symbol": "TEST-KRW", "source": "unit", "synthetic": False}


def test_resample_drops_empty_bins() -> None:
    bars = _hourly_across_midnight()
    gappy = bars.drop(bars.index[4:8])  # no bars 20:00-23:00 (an exchange outage)
    out = resample_bars(gappy, "4h")
    pd.testing.assert_frame_equal(out, FOUR_HOURLY.drop(FOUR_HOURLY.index[1]), check_freq=False)


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        ("1h", "finer than the source bars"),
        ("30min", "finer than the source bars"),
        ("1W", "no fixed length"),
        ("bogus", "unknown resample rule"),
    ],
)
def test_resample_rejects_bad_rules(rule: str, needle: str) -> None:
    four_hourly = resample_bars(_hourly_across_midnight(), "4h")
    with pytest.raises(DataError, match=needle):
        resample_bars(four_hourly, rule)


def test_bar_seconds_is_the_median_spacing() -> None:
    index = pd.DatetimeIndex(make_bars(n=10).index)
    assert bar_seconds(index) == 3600.0
    assert bar_seconds(index.delete([3, 4])) == 3600.0  # robust to a gap
    with pytest.raises(DataError, match="at least 2 bars"):
        bar_seconds(index[:1])


@pytest.mark.parametrize(
    ("seconds", "expected"), [(3600.0, 8760.0), (86400.0, 365.0), (14400.0, 2190.0), (60.0, 525600.0)]
)
def test_bars_per_year(seconds: float, expected: float) -> None:
    assert bars_per_year(seconds) == pytest.approx(expected)


@pytest.mark.parametrize("seconds", [0.0, -60.0, float("nan")])
def test_bars_per_year_rejects_non_positive(seconds: float) -> None:
    with pytest.raises(DataError, match="positive number of seconds"):
        bars_per_year(seconds)


# --------------------------------------------------------------------------------------------------------
# synthetic_bars
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def year_hourly() -> pd.DataFrame:
    return synthetic_bars()


def test_synthetic_is_deterministic_and_labelled(year_hourly: pd.DataFrame) -> None:
    again = synthetic_bars()
    pd.testing.assert_frame_equal(again, year_hourly)
    assert year_hourly.attrs == {"symbol": "SYNTH-KRW", "source": "synthetic(seed=42)", "synthetic": True}
    assert is_synthetic(year_hourly)
    assert len(year_hourly) == 8760
    assert year_hourly.index[0] == pd.Timestamp("2021-01-01", tz="UTC")
    assert year_hourly["open"].iloc[0] == 50_000.0


@pytest.mark.parametrize("kwargs", [{"seed": 43}, {"symbol": "KRW-ETH"}], ids=["other seed", "other symbol"])
def test_synthetic_differs_by_seed_and_symbol(year_hourly: pd.DataFrame, kwargs: dict[str, object]) -> None:
    other = synthetic_bars(**kwargs)  # type: ignore[arg-type]
    assert not np.allclose(other["close"].to_numpy(), year_hourly["close"].to_numpy())


@pytest.mark.parametrize(("freq", "periods"), [("1h", 8760), ("1min", 2000), ("4h", 3000), ("1D", 1500)])
def test_synthetic_passes_validation(freq: str, periods: int) -> None:
    bars = synthetic_bars(freq=freq, periods=periods, seed=7)
    pd.testing.assert_frame_equal(validate_bars(bars), bars)
    assert bar_seconds(pd.DatetimeIndex(bars.index)) == pd.Timedelta(freq).total_seconds()
    # open is the previous close up to a tiny gap
    gaps = bars["open"].iloc[1:].to_numpy() / bars["close"].iloc[:-1].to_numpy() - 1
    assert np.abs(gaps).max() < 0.01


def test_synthetic_returns_have_fat_tails(year_hourly: pd.DataFrame) -> None:
    returns = np.log(year_hourly["close"]).diff().dropna()
    assert returns.kurt() > 0  # pandas' kurt is excess kurtosis


def test_synthetic_has_an_hourly_pattern(year_hourly: pd.DataFrame) -> None:
    returns = pd.Series(np.log(year_hourly["close"])).diff().dropna().abs()
    by_hour = returns.groupby(pd.DatetimeIndex(returns.index).hour).mean()
    assert by_hour.max() / by_hour.min() > 1.3
    assert by_hour.idxmin() in range(19, 24)  # quiet late-US / pre-Asia hours


def test_synthetic_daily_vol_and_liquidity_look_like_crypto(year_hourly: pd.DataFrame) -> None:
    daily = synthetic_bars(freq="1D", periods=3 * 365)
    daily_vol = np.log(daily["close"]).diff().std()
    assert 0.02 < daily_vol < 0.06
    quote = (year_hourly["close"] * year_hourly["volume"]).median()
    assert 1e8 < quote < 1e10
    # volume follows activity: busier on big moves
    move = np.abs(np.log(year_hourly["close"] / year_hourly["open"]))
    assert np.corrcoef(move, year_hourly["volume"])[0, 1] > 0.2


def test_synthetic_accepts_tz_aware_start() -> None:
    bars = synthetic_bars(start="2021-01-01 09:00+09:00", periods=3)
    assert bars.index[0] == pd.Timestamp("2021-01-01 00:00", tz="UTC")


def test_synthetic_rejects_bad_arguments() -> None:
    with pytest.raises(DataError, match="periods must be >= 1"):
        synthetic_bars(periods=0)
    with pytest.raises(DataError, match="start_price must be > 0"):
        synthetic_bars(start_price=-1.0)


def test_synthetic_100k_bars_validate() -> None:
    bars = synthetic_bars(periods=100_000)
    assert len(validate_bars(bars)) == 100_000
