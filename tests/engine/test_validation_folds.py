"""Walk-forward and holdout folds: table tests on a small daily grid (the expected windows written out),
the spelling of lengths, every error message, and properties over random indexes with gaps."""

from __future__ import annotations

import itertools
import json
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from backtesting_modules.errors import ConfigError
from backtesting_modules.validation import (
    Fold,
    Holdout,
    ValidationError,
    WalkForward,
    parse_length,
    plan_folds,
)

DAYS = pd.date_range("2024-01-01", periods=100, freq="1D", tz="UTC")  # 2024-01-01 .. 2024-04-09


def _d(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _windows(folds: list[Fold]) -> list[tuple[str, str, str, str, int, int, int]]:
    day = "%m-%d"
    return [
        (
            f.train_start.strftime(day),
            f.train_stop.strftime(day),
            f.test_start.strftime(day),
            f.test_stop.strftime(day),
            f.train_bars,
            f.gap_bars,
            f.test_bars,
        )
        for f in folds
    ]


# (scheme, expected folds: train start, train stop, test start, test stop, train bars, gap bars, test bars)
PLANS = [
    (
        WalkForward(3, "30d", "10d"),
        [
            ("02-10", "03-11", "03-11", "03-21", 30, 0, 10),
            ("02-20", "03-21", "03-21", "03-31", 30, 0, 10),
            ("03-01", "03-31", "03-31", "04-10", 30, 0, 10),
        ],
    ),
    (
        WalkForward(3, 20, 10, gap=2),
        [
            ("02-18", "03-09", "03-11", "03-21", 20, 2, 10),
            ("02-28", "03-19", "03-21", "03-31", 20, 2, 10),
            ("03-09", "03-29", "03-31", "04-10", 20, 2, 10),
        ],
    ),
    (
        WalkForward(2, None, "1w", anchored=True, gap="2d"),
        [("01-01", "03-25", "03-27", "04-03", 84, 2, 7), ("01-01", "04-01", "04-03", "04-10", 91, 2, 7)],
    ),
    (
        WalkForward(2, 80, "1w", anchored=True),
        [("01-01", "03-27", "03-27", "04-03", 86, 0, 7), ("01-01", "04-03", "04-03", "04-10", 93, 0, 7)],
    ),
    (WalkForward(1, "90d", "10d"), [("01-01", "03-31", "03-31", "04-10", 90, 0, 10)]),
    (Holdout(fraction=0.2, gap=1), [("01-01", "03-20", "03-21", "04-10", 79, 1, 20)]),
    (Holdout(fraction=0.005), [("01-01", "04-09", "04-09", "04-10", 99, 0, 1)]),  # rounds up to 1 bar
    (Holdout(period="15d"), [("01-01", "03-26", "03-26", "04-10", 85, 0, 15)]),
    (Holdout(period=24, gap="1d"), [("01-01", "03-16", "03-17", "04-10", 75, 1, 24)]),
]


@pytest.mark.parametrize(("scheme", "expected"), PLANS, ids=[repr(p[0]) for p in PLANS])
def test_the_folds_of_a_daily_grid(scheme: WalkForward | Holdout, expected: list[tuple]) -> None:
    folds = plan_folds(DAYS, scheme)
    assert _windows(folds) == expected
    assert [f.number for f in folds] == list(range(1, len(expected) + 1))
    assert folds[-1].test_stop == _d("2024-04-10")  # the last bar (04-09) is the last test bar


def test_durations_count_the_bars_in_the_span_when_the_data_has_gaps() -> None:
    # Hourly bars with 02:00–05:59 missing on the last day: a '1d' test window then holds 20 bars.
    hours = pd.date_range("2024-01-01", periods=24 * 5, freq="1h", tz="UTC")
    gappy = hours[~((hours >= _d("2024-01-05 02:00")) & (hours < _d("2024-01-05 06:00")))]
    (fold,) = plan_folds(gappy, WalkForward(1, "2d", "1d"))
    assert (fold.test_start, fold.test_stop, fold.test_bars) == (_d("2024-01-05"), _d("2024-01-06"), 20)
    assert (fold.train_start, fold.train_bars) == (_d("2024-01-03"), 48)
    # Counts stay counts: 24 bars reach back over the gap into the day before.
    (fold,) = plan_folds(gappy, WalkForward(1, 48, 24))
    assert (fold.test_start, fold.test_bars) == (_d("2024-01-04 20:00"), 24)


def test_the_bar_interval_can_be_given() -> None:
    # Every other hour is missing: the smallest step is 2h, unless the caller says the bars are hourly.
    sparse = pd.date_range("2024-01-01", periods=48, freq="2h", tz="UTC")
    assert plan_folds(sparse, Holdout(period=2))[0].test_stop == _d("2024-01-05 00:00")
    given_interval = plan_folds(sparse, Holdout(period=2), interval=pd.Timedelta("1h"))
    assert given_interval[0].test_stop == _d("2024-01-04 23:00")


def test_a_fold_goes_to_a_dict_and_back() -> None:
    for fold in plan_folds(DAYS, WalkForward(3, "30d", "10d", gap=1)):
        data = fold.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert data["test_stop"].endswith("+00:00")
        assert Fold.from_dict(data) == fold
    naive = {**plan_folds(DAYS, Holdout(0.2))[0].to_dict(), "train_start": "2024-01-01T00:00:00"}
    assert Fold.from_dict(naive).train_start == _d("2024-01-01")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (500, 500),
        ("90d", pd.Timedelta(days=90)),
        ("12w", pd.Timedelta(weeks=12)),
        ("36h", pd.Timedelta(hours=36)),
        ("30m", pd.Timedelta(minutes=30)),
        (" 7 d ", pd.Timedelta(days=7)),
    ],
)
def test_lengths_are_bar_counts_or_durations(value: int | str, expected: object) -> None:
    assert parse_length(value, "f") == expected
    assert type(parse_length(value, "f")) is type(expected)


@pytest.mark.parametrize(
    ("value", "allow_zero", "fragments"),
    [
        ("3M", False, ["f: '3M'", "months and years have no fixed length", "'90d'"]),
        ("1y", False, ["'1y'", "no fixed length", "'365d'"]),
        ("2mo", False, ["'60d'"]),
        ("90D", False, ["unknown unit 'D'", "write 'd'"]),
        ("10s", False, ["unknown unit 's'", "use m, h, d or w"]),
        ("ninety days", False, ["is not a length", "'90d'"]),
        ("500", False, ["is not a length", "without quotes"]),
        ("0d", False, ["must be positive", "'1d'"]),
        (0, False, ["f: 0 bars", "a positive number of bars"]),
        (-3, True, ["f: -3 bars", "0 or more bars"]),
        (True, False, ["f: True is not a length"]),
        (2.5, False, ["f: 2.5 is not a length"]),
    ],
)
def test_bad_lengths_are_named_with_the_fix(value: object, allow_zero: bool, fragments: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_length(value, "f", allow_zero=allow_zero)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_zero_is_a_length_only_for_a_gap() -> None:
    assert parse_length(0, "gap", allow_zero=True) == 0
    assert parse_length("0h", "gap", allow_zero=True) == pd.Timedelta(0)


@pytest.mark.parametrize(
    ("build", "fragments"),
    [
        (lambda: WalkForward(0, "30d", "10d"), ["validation.walk_forward.folds: 0", "1 or more"]),
        (lambda: WalkForward(2.5, "30d", "10d"), ["validation.walk_forward.folds: 2.5"]),  # type: ignore[arg-type]
        (lambda: WalkForward(3, None, "10d"), ["validation.walk_forward.train: None", "anchored: true"]),
        (lambda: WalkForward(3, "3M", "10d"), ["validation.walk_forward.train: '3M'", "'90d'"]),
        (lambda: WalkForward(3, "30d", 0), ["validation.walk_forward.test: 0 bars"]),
        (lambda: WalkForward(3, "30d", "10d", gap=-1), ["validation.walk_forward.gap: -1 bars", "0 or more"]),
        (Holdout, ["validation.holdout: fraction None and period None", "exactly one"]),
        (lambda: Holdout(0.2, "30d"), ["set exactly one"]),
        (lambda: Holdout(0.0), ["validation.holdout.fraction: 0.0", "strictly between 0 and 1"]),
        (lambda: Holdout(1.0), ["validation.holdout.fraction: 1.0"]),
        (lambda: Holdout(1.5), ["validation.holdout.fraction: 1.5"]),
        (lambda: Holdout(period="1y"), ["validation.holdout.period: '1y'", "'365d'"]),
        (lambda: Holdout(0.2, gap="2x"), ["validation.holdout.gap: '2x'"]),
    ],
)
def test_bad_schemes_are_refused_when_built(build: object, fragments: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        build()  # type: ignore[operator]
    assert isinstance(caught.value, ConfigError)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("scheme", "min_train_bars", "fragments"),
    [
        (
            WalkForward(10, "90d", "30d"),
            2,
            [
                "validation.walk_forward.folds: 10 folds of train 90d + gap 0 + test 30d need 390 bars",
                "the data has 100 bars (from 2024-01-01 00:00 to 2024-04-09 00:00)",
                "shorten train/test or load more bars",
            ],
        ),
        (
            WalkForward(5, "60d", "10d"),
            2,
            ["5 folds of train 60d + gap 0 + test 10d need 110 bars", "at most 4 folds fit"],
        ),
        (
            WalkForward(7, 30, 10, gap="5d"),
            2,
            ["train 30 + gap 5d + test 10 need 105 bars", "at most 6 folds fit"],
        ),
        (WalkForward(4, 90, 5, anchored=True), 2, ["4 folds, anchored, of train 90", "at most 2 folds fit"]),
        (
            WalkForward(5, "15d", "10d"),
            22,
            [
                "validation.walk_forward.train: '15d'",
                "fold 5's train window (2024-03-16 00:00 to 2024-03-31 00:00) holds 15 bars",
                "at least 22 (the strategy's warm-up 20 + 2)",
                "use a longer train.",
            ],
        ),
        (
            WalkForward(5, None, 20, anchored=True),
            22,
            ["validation.walk_forward.folds: 5", "fold 2's train window", "holds 20 bars", "at most 3 folds"],
        ),
        (
            Holdout(0.995),
            2,
            ["validation.holdout.fraction: 0.995", "leaves no bar to train on", "shorten it"],
        ),
        (Holdout(period="101d"), 2, ["validation.holdout.period: '101d'", "leaves no bar to train on"]),
        (Holdout(period="30d", gap=71), 2, ["validation.holdout.period: '30d' with gap 71 leaves no bar"]),
        (
            Holdout(0.9),
            22,
            [
                "validation.holdout.fraction: 0.9",
                "holds 10 bars",
                "warm-up 20 + 2",
                "shorten the test window",
            ],
        ),
    ],
)
def test_schemes_that_do_not_fit_say_what_would(
    scheme: WalkForward | Holdout, min_train_bars: int, fragments: list[str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        plan_folds(DAYS, scheme, min_train_bars=min_train_bars)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_a_test_window_in_a_gap_of_the_data_is_named() -> None:
    gappy = DAYS[~DAYS.to_series().between(_d("2024-03-01"), _d("2024-03-19")).to_numpy()]
    with pytest.raises(
        ValidationError, match=r"walk_forward.test: '10d': fold 1's test window .* holds no bars"
    ):
        plan_folds(gappy, WalkForward(4, 5, "10d"))
    with pytest.raises(ValidationError, match=r"holdout.period: '30m': the test window .* holds no bars"):
        plan_folds(pd.date_range("2024-01-01", periods=48, freq="1h", tz="UTC"), Holdout(period="30m"))


@pytest.mark.parametrize(
    ("index", "fragment"),
    [
        (pd.date_range("2024-01-01", periods=10, freq="1D"), "tz-naive"),
        (DAYS[:1], "index: 1 timestamps"),
        (DAYS[::-1], "sorted, unique"),
        (DAYS.append(DAYS[-1:]), "sorted, unique"),
        (pd.RangeIndex(10), "a RangeIndex"),
    ],
)
def test_the_index_must_be_utc_bars(index: pd.Index, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        plan_folds(index, Holdout(0.2))  # type: ignore[arg-type]


def test_other_zones_are_converted_to_utc() -> None:
    seoul = DAYS.tz_convert("Asia/Seoul")
    assert plan_folds(seoul, Holdout(0.2)) == plan_folds(DAYS, Holdout(0.2))
    assert str(plan_folds(seoul, Holdout(0.2))[0].test_start.tz) == "UTC"


# --- properties ----------------------------------------------------------------------------------------

FREQS = {"15min": ("m", 15), "1h": ("h", 1), "4h": ("h", 4), "1D": ("d", 1)}


@st.composite
def _indexes(draw: st.DrawFn) -> tuple[pd.DatetimeIndex, str]:
    freq = draw(st.sampled_from(sorted(FREQS)))
    n = draw(st.integers(min_value=40, max_value=400))
    start = draw(st.datetimes(min_value=datetime(2017, 1, 1), max_value=datetime(2026, 1, 1)))
    full = pd.date_range(pd.Timestamp(start).floor("15min"), periods=n, freq=freq, tz="UTC")
    # Random gaps: each bar but the first two is missing with probability ~ drop/100, sometimes in runs.
    drop = draw(st.integers(min_value=0, max_value=25))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    keep = np.random.default_rng(seed).random(n) * 100 >= drop
    keep[:2] = True
    return full[keep], freq


@st.composite
def _lengths(draw: st.DrawFn, freq: str, most: int, least: int = 1) -> int | str:
    bars = draw(st.integers(min_value=least, max_value=max(least, most)))
    if draw(st.booleans()):
        return bars
    unit, step = FREQS[freq]
    return f"{bars * step}{unit}"


@st.composite
def _cases(draw: st.DrawFn) -> tuple[pd.DatetimeIndex, WalkForward | Holdout, int]:
    index, freq = draw(_indexes())
    n = len(index)
    gap = draw(_lengths(freq, 3, least=0))
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        if draw(st.booleans()):
            return index, Holdout(fraction=draw(st.floats(min_value=0.05, max_value=0.5)), gap=gap), 2
        return index, Holdout(period=draw(_lengths(freq, n // 3)), gap=gap), 2
    folds = draw(st.integers(min_value=1, max_value=6))
    anchored = draw(st.booleans())
    train = (
        draw(st.none() | _lengths(freq, n // 4, least=2))
        if anchored
        else draw(_lengths(freq, n // 3, least=2))
    )
    test = draw(_lengths(freq, n // (2 * folds)))
    min_train = draw(st.integers(min_value=1, max_value=5))
    return index, WalkForward(folds, train, test, anchored=anchored, gap=gap), min_train


def _bars(index: pd.DatetimeIndex, start: pd.Timestamp, stop: pd.Timestamp) -> int:
    return int(((index >= start) & (index < stop)).sum())


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(_cases())
def test_folds_are_ordered_disjoint_inside_the_data_and_keep_their_gap(
    case: tuple[pd.DatetimeIndex, WalkForward | Holdout, int],
) -> None:
    index, scheme, min_train = case
    try:
        folds = plan_folds(index, scheme, min_train_bars=min_train)
    except ValidationError:
        assume(False)  # a scheme that does not fit: refused with a message (tested above)
        return
    expected = 1 if isinstance(scheme, Holdout) else scheme.folds
    assert [f.number for f in folds] == list(range(1, expected + 1))
    assert (
        folds[-1].test_start <= index[-1] < folds[-1].test_stop
    )  # the last test window ends at the last bar
    assert _bars(index, folds[-1].test_stop, pd.Timestamp.max.tz_localize("UTC")) == 0
    gap = parse_length(scheme.gap, "gap", allow_zero=True)
    for fold in folds:
        assert index[0] <= fold.train_start <= fold.train_stop <= fold.test_start < fold.test_stop
        assert fold.train_bars == _bars(index, fold.train_start, fold.train_stop) >= min_train
        assert fold.test_bars == _bars(index, fold.test_start, fold.test_stop) >= 1
        assert fold.gap_bars == _bars(index, fold.train_stop, fold.test_start)
        if isinstance(gap, int):
            assert fold.gap_bars == gap
        else:
            assert fold.test_start - fold.train_stop == gap
    for before, after in itertools.pairwise(folds):
        assert before.test_stop == after.test_start  # consecutive, ordered, never overlapping
    if isinstance(scheme, Holdout) or scheme.anchored:
        assert all(f.train_start == index[0] for f in folds)
    if isinstance(scheme, WalkForward):
        train, test, _ = scheme.lengths()
        for fold in folds:
            if isinstance(test, int):
                assert fold.test_bars == test
            else:
                assert fold.test_stop - fold.test_start == test
            if isinstance(train, int) and not scheme.anchored:
                assert fold.train_bars == train
            if isinstance(train, pd.Timedelta) and not scheme.anchored:
                assert fold.train_stop - fold.train_start == train
