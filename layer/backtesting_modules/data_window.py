"""What a batch does to bars after loading them, the same on the driver and in a worker: the identity of
bars (`bars_sha256`), a date window (`cut_window`), and gaps (`find_gaps`, `fill_gaps`).

Identity: the sha256 of the bars' canonical bytes — the UTC timestamps as int64 nanoseconds, then open,
high, low, close and volume as float64, each little-endian, in that order. It is taken after loading and
validation, so the same bars read from CSV or Parquet have the same identity, and any changed bar a new one.

Windows are UTC, start inclusive, end exclusive. Gaps are bars missing where the bar interval says one
should be (Upbit, for one, writes no candle for a period without trades): `keep` leaves them missing
(indicators then count bars, not time), `fill` inserts each missing bar at the previous close, with zero
volume, and counts it. Part of `data`: import from `backtesting_modules.data`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from .data_validation import COLUMNS, INDEX_NAME, validate_bars
from .errors import DataError

GapPolicy = Literal["keep", "fill"]
GAP_POLICIES: tuple[str, ...] = ("keep", "fill")


def bars_sha256(bars: pd.DataFrame) -> str:
    """The hex sha256 of the bars' canonical bytes (see the module docstring); `bars` must be validated."""
    digest = hashlib.sha256()
    stamps = pd.DatetimeIndex(bars.index).as_unit("ns").asi8
    digest.update(np.ascontiguousarray(stamps, dtype="<i8").tobytes())
    for column in COLUMNS:
        digest.update(np.ascontiguousarray(bars[column].to_numpy(), dtype="<f8").tobytes())
    return digest.hexdigest()


def parse_utc(text: str, what: str) -> pd.Timestamp:
    """A date or ISO time as a UTC timestamp (naive means UTC)."""
    try:
        stamp = pd.Timestamp(text)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} {text!r} is not a date: use YYYY-MM-DD or an ISO time.") from exc
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def cut_window(
    bars: pd.DataFrame, since: str | None, until: str | None, *, name: str, min_bars: int = 2
) -> pd.DataFrame:
    """The bars in [since, until) (UTC); an empty window (or one too short to backtest) is a DataError naming
    the bars and their actual range."""
    if since is None and until is None:
        return bars
    index = pd.DatetimeIndex(bars.index)
    keep = np.ones(len(index), dtype=bool)
    if since is not None:
        keep &= index >= parse_utc(since, "since")
    if until is not None:
        keep &= index < parse_utc(until, "until")
    if int(keep.sum()) < min_bars:
        actual = f"{index[0]:%Y-%m-%d %H:%M} to {index[-1]:%Y-%m-%d %H:%M} UTC" if len(index) else "no bars"
        raise DataError(
            f"{name}: the window since {since or '(start)'} until {until or '(end)'} holds {int(keep.sum())} "
            f"bar(s) (at least {min_bars} needed); the data runs from {actual}: move the window into it."
        )
    cut = bars.loc[keep]
    cut.attrs = {**bars.attrs, "window": [since, until]}
    return cut


@dataclass(frozen=True)
class Gaps:
    """Missing bars of a series: where each run starts (the first missing bar) and how many are missing."""

    interval: pd.Timedelta
    starts: tuple[pd.Timestamp, ...]
    lengths: tuple[int, ...]

    @property
    def missing(self) -> int:
        return sum(self.lengths)

    @property
    def longest(self) -> int:
        return max(self.lengths, default=0)

    def to_json(self) -> dict[str, object]:
        return {
            "interval_s": self.interval.total_seconds(),
            "missing": self.missing,
            "longest": self.longest,
            "gaps": [
                {"start": s.isoformat(), "missing": n} for s, n in zip(self.starts, self.lengths, strict=True)
            ],
        }


def find_gaps(bars: pd.DataFrame, interval: pd.Timedelta) -> Gaps:
    """The runs of missing bars, given the bar interval (a step longer than it means bars are missing)."""
    stamps = pd.DatetimeIndex(bars.index).as_unit("ns").asi8
    step = int(interval.value)
    if step <= 0:
        raise DataError(f"bar interval {interval} must be positive.")
    jumps = np.diff(stamps)
    at = np.flatnonzero(jumps > step)
    starts = tuple(pd.Timestamp(int(stamps[i]) + step, tz="UTC") for i in at)
    lengths = tuple(int(jumps[i] // step) - 1 + (1 if jumps[i] % step else 0) for i in at)
    return Gaps(interval, starts, lengths)


def fill_gaps(bars: pd.DataFrame, interval: pd.Timedelta, *, name: str) -> pd.DataFrame:
    """`bars` with every missing bar inserted at the previous close (open = high = low = close, zero
    volume); attrs["filled_bars"] counts them. Bars off the interval's grid are left as they are."""
    gaps = find_gaps(bars, interval)
    if not gaps.missing:
        filled = bars.copy()
        filled.attrs = {**bars.attrs, "filled_bars": 0}
        return filled
    stamps = pd.DatetimeIndex(bars.index).as_unit("ns").asi8
    step = int(interval.value)
    grid = np.arange(stamps[0], stamps[-1] + 1, step, dtype=np.int64)
    full = np.union1d(grid, stamps)
    position = np.searchsorted(stamps, full, side="right") - 1  # the last real bar at or before each stamp
    real = np.isin(full, stamps)
    close = bars["close"].to_numpy()[position]
    values = {column: np.where(real, bars[column].to_numpy()[position], close) for column in COLUMNS[:-1]}
    values["volume"] = np.where(real, bars["volume"].to_numpy()[position], 0.0)
    index = pd.DatetimeIndex(pd.to_datetime(full, unit="ns", utc=True), name=INDEX_NAME)
    frame = pd.DataFrame(values, index=index, columns=list(COLUMNS))
    frame.attrs = {**bars.attrs, "filled_bars": int((~real).sum())}
    return validate_bars(frame, name=name)


def apply_gap_policy(bars: pd.DataFrame, policy: str, interval: pd.Timedelta, *, name: str) -> pd.DataFrame:
    """`keep` or `fill` the gaps of `bars`; attrs["gaps"] records the policy and what was found."""
    if policy not in GAP_POLICIES:
        raise DataError(f"gaps={policy!r} is not one of {GAP_POLICIES}: keep them, or fill them.")
    found = find_gaps(bars, interval)
    out = fill_gaps(bars, interval, name=name) if policy == "fill" else bars.copy()
    out.attrs = {
        **bars.attrs,
        **out.attrs,
        "gaps": {"policy": policy, "missing": found.missing, "longest": found.longest},
    }
    return out


def preparation_note(attrs: Mapping[Any, Any]) -> str | None:
    """What a report says of bars `prepare_bars` cut and gave a gap policy (None for bars it did not)."""
    gaps, window = attrs.get("gaps"), attrs.get("window")
    if not gaps and not window:
        return None
    parts = []
    if window:
        parts.append(f"window {window[0] or '(start)'} to {window[1] or '(end)'} (UTC, end excluded)")
    if gaps:
        policy, missing, longest = gaps["policy"], int(gaps["missing"]), int(gaps["longest"])
        if not missing:
            parts.append(f"no missing bars (gaps: {policy})")
        elif policy == "fill":
            parts.append(
                f"{missing:,} missing bar(s), longest run {longest:,}, filled at the previous close "
                "with zero volume (gaps: fill)"
            )
        else:
            parts.append(
                f"{missing:,} missing bar(s), longest run {longest:,}, left out: indicators count bars, not "
                "time (gaps: keep)"
            )
    return "Bars: " + "; ".join(parts) + "."


def describe_bars(bars: pd.DataFrame) -> dict[str, object]:
    """What a report says about bars a batch ran on: identity, count, range, window and gaps."""
    index = pd.DatetimeIndex(bars.index)
    gaps = dict(bars.attrs.get("gaps") or {})
    return {
        "sha256": bars_sha256(bars),
        "bars": len(index),
        "first": index[0].isoformat() if len(index) else None,
        "last": index[-1].isoformat() if len(index) else None,
        "window": bars.attrs.get("window"),
        "gaps": gaps.get("policy", "keep"),
        "missing": gaps.get("missing"),
        "longest_gap": gaps.get("longest"),
        "filled": bars.attrs.get("filled_bars", 0),
        "synthetic": bool(bars.attrs.get("synthetic", False)),
    }


def prepare_bars(
    bars: pd.DataFrame,
    *,
    since: str | None,
    until: str | None,
    gaps: str,
    interval: pd.Timedelta,
    name: str,
) -> pd.DataFrame:
    """A batch's bars from loaded ones: the window cut, then the gap policy applied (the same steps on the
    driver for uploaded bars and in a worker for bars it reads in place)."""
    windowed = cut_window(bars, since, until, name=name)
    return apply_gap_policy(windowed, gaps, interval, name=name)
