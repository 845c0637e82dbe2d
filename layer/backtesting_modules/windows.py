"""Trade windows and per-period returns: what walk-forward validation and the probability of backtest
overfitting read from a run.

A `TradeWindow` [start, stop) (UTC, stop excluded) limits a run to part of its bars without look-ahead:
the run sees only the bars before `stop` (its indicators warm up on every one of them, however early),
enters only on signal bars at or after `start`, and closes what is still open at the close of the last bar
before `stop`. Equity, metrics and the run's info then describe the window's bars alone. This module
resolves a window against the bars (`resolve_window`), cuts the bars and shifts trades onto the window's
bars; `backtest` threads them through `run_backtest` and `run_sweep`.

`PeriodReturns` are the returns of equity curves over fixed calendar periods (UTC bins of a fixed pandas
frequency, on a grid anchored at the Unix epoch, labelled by their start): equity at a period's last bar
over equity at the previous period's last bar, the first period's over initial cash. Periods without a bar
are left out. `compute_period_returns` is the pure function; `PeriodCollector` gathers them block by block
during a sweep, so the (bars × combinations) equity matrix is never held whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from .bars import BarArrays
from .data_window import parse_utc
from .errors import ConfigError, DataError
from .trades import TradeArrays

MIN_WINDOW_BARS = 2  # one bar to signal on and one to fill on (or to mark a close fill)


def _utc(value: Any, what: str) -> pd.Timestamp | None:
    """A timestamp (or anything pandas reads as one) as UTC; naive means UTC, None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_utc(value, what)
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"window {what} {value!r} is not a time: give a pd.Timestamp or an ISO time."
        ) from exc
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def _text(stamp: pd.Timestamp | None, missing: str) -> str:
    return stamp.isoformat() if stamp is not None else missing


@dataclass(frozen=True)
class TradeWindow:
    """The bars [start, stop) (UTC, stop excluded) a run trades and reports on; None: from the first bar, or
    to the last. Bars before `start` still serve as the indicators' warm-up; bars at or after `stop` are
    never read."""

    start: pd.Timestamp | None
    stop: pd.Timestamp | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _utc(self.start, "start"))
        object.__setattr__(self, "stop", _utc(self.stop, "stop"))

    @classmethod
    def from_strings(cls, start: str | None, stop: str | None) -> TradeWindow:
        """From dates or ISO times ("2024-01-01", "2024-01-01T09:00+09:00"); naive means UTC."""
        return cls(parse_utc(start, "start") if start else None, parse_utc(stop, "stop") if stop else None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TradeWindow:
        """The inverse of `to_dict`."""
        return cls.from_strings(data.get("start"), data.get("stop"))

    def to_dict(self) -> dict[str, str | None]:
        return {
            "start": self.start.isoformat() if self.start is not None else None,
            "stop": self.stop.isoformat() if self.stop is not None else None,
        }

    def describe(self) -> str:
        return f"[{_text(self.start, '(first bar)')}, {_text(self.stop, '(after the last bar)')})"


@dataclass(frozen=True)
class WindowBounds:
    """A window resolved against bars: positions [first, stop) of the window's bars."""

    window: TradeWindow
    first: int
    stop: int

    @property
    def n_bars(self) -> int:
        return self.stop - self.first


def _position(index: pd.DatetimeIndex, stamp: pd.Timestamp) -> int:
    """The number of bars before `stamp` (an index without a zone is read as UTC)."""
    key = stamp.tz_convert(None) if index.tz is None else stamp
    return int(index.searchsorted(key, side="left"))


def resolve_window(index: pd.DatetimeIndex, window: TradeWindow) -> WindowBounds:
    """The positions of the window's bars; fewer than two bars (or start >= stop) is a DataError naming the
    window and the bars' range."""
    first = 0 if window.start is None else _position(index, window.start)
    stop = len(index) if window.stop is None else _position(index, window.stop)
    ordered = window.start is None or window.stop is None or window.start < window.stop
    if ordered and stop - first >= MIN_WINDOW_BARS:
        return WindowBounds(window, first, stop)
    bars = f"{index[0].isoformat()} to {index[-1].isoformat()}" if len(index) else "no bars"
    problem = "its start is not before its stop" if not ordered else f"it holds {max(stop - first, 0)} bar(s)"
    raise DataError(
        f"window {window.describe()}: {problem} (at least {MIN_WINDOW_BARS} bars needed); the bars run from "
        f"{bars} (UTC): move the window into them."
    )


def head_bars(bars: BarArrays, stop: int) -> BarArrays:
    """The first `stop` bars (views, no copy). The cut bars get their own memo: indicators cached on them
    are computed without the bars after `stop`."""
    if stop == len(bars):
        return bars
    return _cut(bars, slice(0, stop))


def tail_bars(bars: BarArrays, first: int) -> BarArrays:
    """The bars from position `first` on (views, no copy)."""
    return bars if first == 0 else _cut(bars, slice(first, None))


def _cut(bars: BarArrays, rows: slice) -> BarArrays:
    return BarArrays(
        index=bars.index[rows],
        open=bars.open[rows],
        high=bars.high[rows],
        low=bars.low[rows],
        close=bars.close[rows],
        volume=bars.volume[rows],
        symbol=bars.symbol,
    )


def shift_trades(trades: TradeArrays, first: int) -> TradeArrays:
    """`trades` with their bar positions counted from bar `first` (every trade of a window lies after it)."""
    if first == 0:
        return trades
    return TradeArrays(
        **{**trades.__dict__, "entry_bar": trades.entry_bar - first, "exit_bar": trades.exit_bar - first}
    )


def window_note(bounds: WindowBounds, index: pd.DatetimeIndex) -> str:
    """What a report says of a windowed run: the window, its bars and the warm-up before it."""
    return (
        f"Trade window {bounds.window.describe()} (UTC, stop excluded): {bounds.n_bars:,} bars from "
        f"{index[bounds.first].isoformat()} to {index[bounds.stop - 1].isoformat()}; {bounds.first:,} "
        "earlier bar(s) served as warm-up only (no entries before the window, positions closed at its last "
        "close)."
    )


# --- per-period returns ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PeriodReturns:
    """Returns per calendar period: `values[t, j]` is column j's return over period t (float32, shape
    (periods, columns)). Period t is the UTC bin [`starts[t]`, `ends[t]`) of `freq`, bins anchored at the
    Unix epoch: `starts` are pandas' ``resample(freq, origin="epoch", closed="left", label="left")`` labels
    on the naive UTC times (for a frequency dividing a day, its default labels too), `ends` its
    ``label="right"`` ones. Both come from the grid, not the data, so runs on other bars or windows line up
    by them. A period's return is read at its last bar; periods without a bar are left out, and a window's
    first and last periods may hold only part of a bin.

    In a sweep's ``attrs["period_returns"]`` column j belongs to the frame's row labelled j: after sorting
    or filtering the frame, take ``returns.select(frame.index)``. Immutable (its array is read-only), so
    pandas' copies of a frame's attrs share it instead of copying it.
    """

    ends: pd.DatetimeIndex
    values: np.ndarray
    starts: pd.DatetimeIndex
    freq: str

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float32)
        if values.ndim != 2 or values.shape[0] != len(self.ends) or len(self.starts) != len(self.ends):
            raise ValueError(
                f"period returns need one row per period ({len(self.ends)} ends, {len(self.starts)} starts); "
                f"got values of shape {values.shape}."
            )
        if values.flags.writeable:
            values = values.view()
            values.flags.writeable = False
        object.__setattr__(self, "values", values)

    def __deepcopy__(self, memo: dict[int, Any]) -> PeriodReturns:
        return self  # immutable: a copy would only cost memory (pandas deep-copies attrs on every operation)

    def select(self, columns: Any) -> PeriodReturns:
        """The returns of some columns (positions, e.g. a sorted sweep's ``frame.index``), in that order."""
        return PeriodReturns(self.ends, self.values[:, np.asarray(columns)], self.starts, self.freq)

    def to_frame(self) -> pd.DataFrame:
        """The returns as a float32 DataFrame indexed by the periods' starts, one column per column."""
        return pd.DataFrame(self.values, index=self.starts.rename("period"))


def period_nanos(freq: str, argument: str = "freq") -> int:
    """The length of a fixed pandas frequency in nanoseconds; a calendar one ("ME", "W", "B") or an
    unreadable one is a ConfigError naming `argument`."""
    try:
        offset = to_offset(freq)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{argument}={freq!r} is not a pandas frequency: use a fixed one such as '1D', '4h' or '15min'."
        ) from exc
    try:
        nanos = int(offset.nanos)
    except ValueError as exc:  # months, weeks, business days: periods of varying length
        raise ConfigError(
            f"{argument}={freq!r} is a calendar frequency (its periods vary in length); use a fixed one "
            "such as '1D', '7D', '4h' or '15min'."
        ) from exc
    if nanos <= 0:
        raise ConfigError(f"{argument}={freq!r} must be a positive length of time, such as '1D'.")
    return nanos


@dataclass(frozen=True)
class PeriodPlan:
    """The periods of a bar index: `rows` are the positions of each period's last bar."""

    rows: np.ndarray
    ends: pd.DatetimeIndex
    starts: pd.DatetimeIndex
    freq: str

    @classmethod
    def of(cls, index: pd.DatetimeIndex, freq: str, argument: str = "freq") -> PeriodPlan:
        nanos = period_nanos(freq, argument)
        stamps = pd.DatetimeIndex(index).as_unit("ns").asi8
        bins = np.floor_divide(stamps, nanos)
        rows = np.flatnonzero(np.append(bins[1:] != bins[:-1], True)) if len(stamps) else np.empty(0, np.intp)
        starts = pd.DatetimeIndex(pd.to_datetime(bins[rows] * nanos, unit="ns", utc=index.tz is not None))
        if index.tz is not None:
            starts = starts.tz_convert(index.tz)
        starts = starts.as_unit(index.unit)
        return cls(rows, starts + pd.Timedelta(nanos, unit="ns"), starts, freq)

    def returns_of(self, equity: np.ndarray, initial_cash: float) -> np.ndarray:
        """Per-period returns (float32, periods × columns) of an (n_bars, m) equity block."""
        marks = equity[self.rows]
        previous = np.empty_like(marks)
        previous[:1] = initial_cash
        previous[1:] = marks[:-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.divide(marks, previous, out=marks)
        return np.subtract(ratio, 1.0, out=ratio).astype(np.float32)

    def wrap(self, values: np.ndarray) -> PeriodReturns:
        return PeriodReturns(self.ends, values, self.starts, self.freq)


def compute_period_returns(
    equity: np.ndarray, index: pd.DatetimeIndex, freq: str, initial_cash: float
) -> PeriodReturns:
    """Per-period returns of equity curves `equity` (n_bars × m, or one curve of n_bars) marked at the
    closes of `index`, over the UTC bins of the fixed frequency `freq`, from `initial_cash`.

    >>> import numpy as np, pandas as pd
    >>> index = pd.date_range("2024-01-01 22:00", periods=4, freq="1h", tz="UTC")
    >>> r = compute_period_returns(np.array([100.0, 110.0, 99.0, 108.9]), index, "1D", 100.0)
    >>> [round(float(x), 4) for x in r.values[:, 0]], list(r.starts.strftime("%m-%d"))
    ([0.1, -0.01], ['01-01', '01-02'])
    """
    values = np.asarray(equity, dtype=np.float64)
    values = values.reshape(-1, 1) if values.ndim == 1 else values
    if values.ndim != 2 or values.shape[0] != len(index):
        raise ValueError(
            f"equity must be (n_bars, m) with one row per bar of index ({len(index)}); got {values.shape}."
        )
    if not (np.isfinite(initial_cash) and initial_cash > 0):
        raise ConfigError(f"initial_cash must be a positive number; got {initial_cash!r}.")
    plan = PeriodPlan.of(pd.DatetimeIndex(index), freq)
    return plan.wrap(plan.returns_of(values, float(initial_cash)))


def empty_period_returns(index: pd.DatetimeIndex, window: TradeWindow | None, freq: str) -> PeriodReturns:
    """The periods of a sweep without rows (every combination skipped): T periods, no columns."""
    bounds = resolve_window(index, window) if window is not None else None
    rows = slice(bounds.first, bounds.stop) if bounds is not None else slice(None)
    plan = PeriodPlan.of(index[rows], freq, "period_returns")
    return plan.wrap(np.empty((len(plan.rows), 0), dtype=np.float32))


class PeriodCollector:
    """A sweep's per-period returns, filled block of combinations by block (equity blocks are dropped)."""

    def __init__(self, plan: PeriodPlan, columns: int, initial_cash: float) -> None:
        self.plan = plan
        self.initial_cash = initial_cash
        self.values = np.empty((len(plan.rows), columns), dtype=np.float32)

    def add(self, column: int, equity: np.ndarray) -> None:
        """The returns of the block of equity curves whose first column is sweep column `column`."""
        self.values[:, column : column + equity.shape[1]] = self.plan.returns_of(equity, self.initial_cash)

    def result(self) -> PeriodReturns:
        return self.plan.wrap(self.values)
