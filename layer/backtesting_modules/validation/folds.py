"""Walk-forward and holdout splits of a bar index into train and test windows, planned as plain data.

Owns the spelling of a window length (`parse_length`: a bar count or a duration such as "90d"), the two
schemes (`WalkForward`, `Holdout`), the `Fold` record and `plan_folds`, which turns a scheme and the bars'
UTC index into folds. It also owns `ValidationError`, the error of the whole `validation` package. Pure:
nothing here runs a backtest. Conventions (bars labelled by their start, windows `[start, stop)`, durations
counted in the bars whose timestamps fall in the span) are in docs/validation.md, section "Folds".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

import pandas as pd

from ..errors import ConfigError

Length = int | pd.Timedelta

_UNITS = {  # ccxt's spelling of a unit → its length
    "m": pd.Timedelta(minutes=1),
    "h": pd.Timedelta(hours=1),
    "d": pd.Timedelta(days=1),
    "w": pd.Timedelta(weeks=1),
}
_NO_FIXED_LENGTH = {"M": 30, "mo": 30, "mon": 30, "month": 30, "months": 30, "y": 365, "Y": 365, "yr": 365}
_LENGTH = re.compile(r"\s*(\d+)\s*([A-Za-z]+)\s*")


class ValidationError(ConfigError):
    """A validation setting (folds, holdout, PBO blocks) or a statistic's input that cannot be used; the
    message names the field, the value, and what would fit."""


def parse_length(value: int | str, field: str, *, allow_zero: bool = False) -> Length:
    """A window length as a bar count (an int stays an int) or a `pd.Timedelta` ("90d", "12w", "36h", "30m":
    one number and one of ccxt's lower-case units m, h, d, w). Months and years are refused: they have no
    fixed length. `allow_zero` admits 0 (a gap); every other length is positive."""
    least = "0 or more" if allow_zero else "a positive number of"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError(
            f"{field}: {value!r} is not a length: write {least} bars (e.g. 500) or a duration such as "
            "'90d', '12w', '36h' or '30m'."
        )
    if isinstance(value, int):
        if value < 0 or (value == 0 and not allow_zero):
            raise ValidationError(f"{field}: {value} bars: write {least} bars, or a duration such as '90d'.")
        return value
    match = _LENGTH.fullmatch(value)
    if match is None:
        raise ValidationError(
            f"{field}: {value!r} is not a length: write one number and a unit, such as '90d', '12w', '36h' "
            "or '30m' (a bar count is a plain number, without quotes)."
        )
    number, unit = int(match[1]), match[2]
    if unit in _NO_FIXED_LENGTH:
        days = number * _NO_FIXED_LENGTH[unit]
        raise ValidationError(
            f"{field}: {value!r}: months and years have no fixed length; write days, e.g. '{days}d'."
        )
    if unit not in _UNITS:
        hint = f"write {unit.lower()!r}" if unit.lower() in _UNITS else "use m, h, d or w"
        raise ValidationError(
            f"{field}: {value!r}: unknown unit {unit!r}; {hint} (minutes, hours, days, weeks, as ccxt "
            "spells them)."
        )
    if number == 0 and not allow_zero:
        raise ValidationError(f"{field}: {value!r}: a length must be positive, e.g. '1{unit}'.")
    return number * _UNITS[unit]


@dataclass(frozen=True)
class WalkForward:
    """`folds` consecutive test windows of length `test` ending at the data's end, each after a train window.

    Rolling (`anchored=False`): the train window is `train` long and ends `gap` before its test window.
    Anchored: the train window runs from the first bar to `gap` before the test window; `train` is then the
    least length of the first one (None: whatever precedes it). Lengths are bar counts or durations.
    """

    folds: int
    train: int | str | None
    test: int | str
    anchored: bool = False
    gap: int | str = 0

    def __post_init__(self) -> None:
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 1:
            raise ValidationError(
                f"validation.walk_forward.folds: {self.folds!r}: write a whole number of folds, 1 or more."
            )
        if self.train is None and not self.anchored:
            raise ValidationError(
                "validation.walk_forward.train: None: a rolling walk-forward needs a train length (e.g. "
                "'90d' or 2000 bars); or set anchored: true to train on everything before each test window."
            )
        self.lengths()

    def lengths(self) -> tuple[Length | None, Length, Length]:
        """(train, test, gap), parsed; train None only when anchored."""
        field = "validation.walk_forward"
        train = None if self.train is None else parse_length(self.train, f"{field}.train")
        test = parse_length(self.test, f"{field}.test")
        return train, test, parse_length(self.gap, f"{field}.gap", allow_zero=True)


@dataclass(frozen=True)
class Holdout:
    """One fold: the test window is the last `fraction` of the bars, or the last `period` (a duration or a bar
    count); the train window is every bar before it but the `gap`."""

    fraction: float | None = None
    period: int | str | None = None
    gap: int | str = 0

    def __post_init__(self) -> None:
        if (self.fraction is None) == (self.period is None):
            raise ValidationError(
                f"validation.holdout: fraction {self.fraction!r} and period {self.period!r}: set exactly "
                "one, e.g. fraction: 0.2 (the last 20 % of the bars) or period: '90d'."
            )
        if self.fraction is not None:
            fraction = self.fraction
            if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
                raise ValidationError(
                    f"validation.holdout.fraction: {fraction!r}: write a share of the bars strictly between "
                    "0 and 1, e.g. 0.2."
                )
        if self.period is not None:
            parse_length(self.period, "validation.holdout.period")
        parse_length(self.gap, "validation.holdout.gap", allow_zero=True)


Scheme = WalkForward | Holdout


class FoldDict(TypedDict):
    """A fold on the wire: timestamps as ISO strings (UTC), bar counts as ints."""

    number: int
    train_start: str
    train_stop: str
    test_start: str
    test_stop: str
    train_bars: int
    test_bars: int
    gap_bars: int


_STAMPS = ("train_start", "train_stop", "test_start", "test_stop")
_COUNTS = ("number", "train_bars", "test_bars", "gap_bars")


@dataclass(frozen=True)
class Fold:
    """One train window and its test window, UTC, `[start, stop)`: the bars of a window are those whose
    timestamp `t` has `start <= t < stop`. `gap_bars` bars lie between `train_stop` and `test_start`."""

    number: int
    train_start: pd.Timestamp
    train_stop: pd.Timestamp
    test_start: pd.Timestamp
    test_stop: pd.Timestamp
    train_bars: int
    test_bars: int
    gap_bars: int

    def to_dict(self) -> FoldDict:
        return FoldDict(
            number=self.number,
            train_start=self.train_start.isoformat(),
            train_stop=self.train_stop.isoformat(),
            test_start=self.test_start.isoformat(),
            test_stop=self.test_stop.isoformat(),
            train_bars=self.train_bars,
            test_bars=self.test_bars,
            gap_bars=self.gap_bars,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Fold:
        """The inverse of `to_dict` (a timestamp without a zone is read as UTC)."""
        missing = [key for key in (*_COUNTS, *_STAMPS) if key not in data]
        if missing:
            raise ValidationError(
                f"fold: missing {', '.join(missing)}; a fold has {', '.join(FoldDict.__annotations__)}."
            )
        train_start, train_stop, test_start, test_stop = (_utc(data[key], f"fold.{key}") for key in _STAMPS)
        number, train_bars, test_bars, gap_bars = (_count(data[key], f"fold.{key}") for key in _COUNTS)
        return cls(number, train_start, train_stop, test_start, test_stop, train_bars, test_bars, gap_bars)


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{field}: {value!r}: write a whole number, 0 or more.")
    return value


def _utc(value: object, field: str) -> pd.Timestamp:
    try:
        if not isinstance(value, str | datetime):
            raise TypeError(type(value).__name__)
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{field}: {value!r} is not a time: write an ISO time such as 2024-01-01T00:00:00+00:00."
        ) from exc
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


# --- planning --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Timeline:
    """The bars' UTC index, its bar interval, and where the data ends (the last bar's start + one bar)."""

    index: pd.DatetimeIndex
    interval: pd.Timedelta

    @property
    def end(self) -> pd.Timestamp:
        return self.index[-1] + self.interval

    def position(self, stamp: pd.Timestamp) -> int:
        """The number of bars before `stamp` (the position of the first bar at or after it)."""
        return int(self.index.searchsorted(stamp, side="left"))

    def count(self, start: pd.Timestamp, stop: pd.Timestamp) -> int:
        return max(0, self.position(stop) - self.position(start))

    def start_before(self, stop: pd.Timestamp, length: Length) -> pd.Timestamp | None:
        """Where a window of `length` ending at `stop` starts, or None when it would start before the data:
        a bar count steps back over bars, a duration over time."""
        if isinstance(length, pd.Timedelta):
            start = stop - length
            return start if start >= self.index[0] else None
        if length == 0:
            return stop
        first = self.position(stop) - length
        return self.index[first] if first >= 0 else None

    def bars_of(self, length: Length) -> int:
        """A length in bars on a grid without gaps (for messages)."""
        return length if isinstance(length, int) else math.ceil(length / self.interval)

    def describe(self) -> str:
        return f"{len(self.index)} bars (from {_when(self.index[0])} to {_when(self.index[-1])})"


def _when(stamp: pd.Timestamp) -> str:
    return stamp.strftime("%Y-%m-%d %H:%M")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _spell(value: int | str | None) -> str:
    return "everything before" if value is None else str(value)


def _timeline(index: pd.DatetimeIndex, interval: pd.Timedelta | None) -> _Timeline:
    if not isinstance(index, pd.DatetimeIndex):
        raise ValidationError(
            f"index: a {type(index).__name__}; folds are planned over the bars' DatetimeIndex."
        )
    if index.tz is None:
        raise ValidationError("index: tz-naive timestamps; bars are UTC: index.tz_localize('UTC').")
    if len(index) < 2 or index.hasnans or not (index.is_monotonic_increasing and index.is_unique):
        raise ValidationError(
            f"index: {len(index)} timestamps; folds need at least 2 bars, sorted, unique, without NaT."
        )
    index = index.tz_convert("UTC")
    step = pd.Timedelta(index.to_series().diff().min()) if interval is None else pd.Timedelta(interval)
    if step <= pd.Timedelta(0):
        raise ValidationError(
            f"interval: {interval}: the bar interval must be positive, e.g. pd.Timedelta('1h')."
        )
    return _Timeline(index, step)


def plan_folds(
    index: pd.DatetimeIndex, scheme: Scheme, *, min_train_bars: int = 2, interval: pd.Timedelta | None = None
) -> list[Fold]:
    """The folds of `scheme` over the bars `index` (UTC, sorted), in time order.

    Test windows follow each other and the last one ends with the last bar. `min_train_bars` is the least
    number of bars a train window may hold (the caller passes the strategy's warm-up + 2). `interval` is the
    bar length (default: the smallest step between two timestamps). Raises a `ValidationError` naming the
    field when the scheme does not fit the data.
    """
    if isinstance(min_train_bars, bool) or not isinstance(min_train_bars, int) or min_train_bars < 1:
        raise ValidationError(f"min_train_bars: {min_train_bars!r}: write a whole number of bars, 1 or more.")
    timeline = _timeline(index, interval)
    if isinstance(scheme, Holdout):
        return [_plan_holdout(timeline, scheme, min_train_bars)]
    if isinstance(scheme, WalkForward):
        return _plan_walk_forward(timeline, scheme, min_train_bars)
    raise ValidationError(f"scheme: a {type(scheme).__name__}; plan a WalkForward or a Holdout.")


def _fold(
    timeline: _Timeline,
    number: int,
    train: tuple[pd.Timestamp, pd.Timestamp],
    test_start: pd.Timestamp,
    test_stop: pd.Timestamp,
) -> Fold:
    return Fold(
        number=number,
        train_start=train[0],
        train_stop=train[1],
        test_start=test_start,
        test_stop=test_stop,
        train_bars=timeline.count(*train),
        test_bars=timeline.count(test_start, test_stop),
        gap_bars=timeline.count(train[1], test_start),
    )


def _needs(min_train_bars: int) -> str:
    warm_up = f" (the strategy's warm-up {min_train_bars - 2} + 2)" if min_train_bars >= 2 else ""
    return f"at least {min_train_bars}{warm_up}"


def _backwards(timeline: _Timeline, scheme: WalkForward) -> list[tuple[pd.Timestamp, ...]]:
    """The windows (train_start, train_stop, test_start, test_stop) from the last fold back, stopping before
    the first that would start before the data (or, anchored, whose train is shorter than `train`)."""
    train, test, gap = scheme.lengths()
    windows: list[tuple[pd.Timestamp, ...]] = []
    test_stop = timeline.end
    for _ in range(scheme.folds):
        test_start = timeline.start_before(test_stop, test)
        train_stop = None if test_start is None else timeline.start_before(test_start, gap)
        if test_start is None or train_stop is None:
            break
        if scheme.anchored:
            enough = train is None or timeline.start_before(train_stop, train) is not None
            train_start: pd.Timestamp | None = timeline.index[0] if enough else None
        else:
            train_start = None if train is None else timeline.start_before(train_stop, train)
        if train_start is None:
            break
        windows.append((train_start, train_stop, test_start, test_stop))
        test_stop = test_start
    return windows


def _plan_walk_forward(timeline: _Timeline, scheme: WalkForward, min_train_bars: int) -> list[Fold]:
    windows = _backwards(timeline, scheme)
    folds = [_fold(timeline, scheme.folds - back, (w[0], w[1]), w[2], w[3]) for back, w in enumerate(windows)]
    fit = 0
    while fit < len(folds) and folds[fit].test_bars > 0 and folds[fit].train_bars >= min_train_bars:
        fit += 1
    if fit == scheme.folds:
        return folds[::-1]
    if fit < len(folds):
        raise ValidationError(_window_problem(folds[fit], scheme, min_train_bars, fit))
    train, test, gap = scheme.lengths()
    need = timeline.bars_of(min_train_bars if train is None else train) + timeline.bars_of(gap)
    need += scheme.folds * timeline.bars_of(test)
    anchored = ", anchored," if scheme.anchored else ""
    advice = (
        f"at most {_plural(fit, 'fold')} fit, or shorten train/test"
        if fit
        else "shorten train/test or load more bars"
    )
    raise ValidationError(
        f"validation.walk_forward.folds: {scheme.folds} folds{anchored} of train {_spell(scheme.train)} + "
        f"gap {scheme.gap} + test {scheme.test} need {need} bars; the data has {timeline.describe()}: "
        f"{advice}."
    )


def _window_problem(fold: Fold, scheme: WalkForward, min_train_bars: int, fit: int) -> str:
    if fold.test_bars == 0:
        return (
            f"validation.walk_forward.test: {scheme.test!r}: fold {fold.number}'s test window "
            f"({_when(fold.test_start)} to {_when(fold.test_stop)}) holds no bars (the data has a gap "
            "there): lengthen test, or give it in bars."
        )
    field = "folds" if scheme.train is None else "train"
    value = scheme.folds if scheme.train is None else scheme.train
    fix = "a shorter test" if scheme.train is None else "a longer train"
    return (
        f"validation.walk_forward.{field}: {value!r}: fold {fold.number}'s train window "
        f"({_when(fold.train_start)} to {_when(fold.train_stop)}) holds {_plural(fold.train_bars, 'bar')}; "
        f"it needs {_needs(min_train_bars)}: use {fix}"
        + (f" or at most {_plural(fit, 'fold')}." if fit else ".")
    )


def _holdout_test_start(timeline: _Timeline, scheme: Holdout) -> tuple[str, object, pd.Timestamp | None]:
    """(field, value, start of the test window); None when the test window would take every bar."""
    n = len(timeline.index)
    if scheme.period is not None:
        field = "validation.holdout.period"
        return field, scheme.period, timeline.start_before(timeline.end, parse_length(scheme.period, field))
    if scheme.fraction is not None:
        test_bars = max(1, math.floor(scheme.fraction * n + 0.5))
        return (
            "validation.holdout.fraction",
            scheme.fraction,
            timeline.index[n - test_bars] if test_bars < n else None,
        )
    raise ValidationError("validation.holdout: neither fraction nor period: set one, e.g. fraction: 0.2.")


def _plan_holdout(timeline: _Timeline, scheme: Holdout, min_train_bars: int) -> Fold:
    index = timeline.index
    field, value, test_start = _holdout_test_start(timeline, scheme)
    gap = parse_length(scheme.gap, "validation.holdout.gap", allow_zero=True)
    train_stop = None if test_start is None else timeline.start_before(test_start, gap)
    if test_start is None or train_stop is None:
        raise ValidationError(
            f"{field}: {value!r} with gap {scheme.gap!r} leaves no bar to train on; the data has "
            f"{timeline.describe()}: shorten it."
        )
    fold = _fold(timeline, 1, (index[0], train_stop), test_start, timeline.end)
    if fold.test_bars == 0:
        raise ValidationError(
            f"{field}: {value!r}: the test window ({_when(fold.test_start)} to {_when(fold.test_stop)}) "
            "holds no bars (the data has a gap there): lengthen it, or give it in bars."
        )
    if fold.train_bars < min_train_bars:
        raise ValidationError(
            f"{field}: {value!r}: the train window ({_when(fold.train_start)} to {_when(fold.train_stop)}) "
            f"holds {_plural(fold.train_bars, 'bar')}; it needs {_needs(min_train_bars)}: shorten the test "
            "window or the gap."
        )
    return fold
