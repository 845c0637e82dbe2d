"""Bar spacing and resampling: the bar interval of an index, bars per year, and aggregation to coarser bars.

Part of `data`: import from `backtesting_modules.data`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from .data_validation import validate_bars
from .errors import DataError

SECONDS_PER_DAY = 86_400.0
DAYS_PER_YEAR = 365.0  # crypto trades 24/7, so a year is 365 full days of bars


def bar_seconds(index: pd.DatetimeIndex) -> float:
    """The median spacing of `index` in seconds (robust to the odd missing bar)."""
    if len(index) < 2:
        raise DataError(
            f"need at least 2 bars to measure the bar interval, got {len(index)}: load more bars."
        )
    stamps = pd.DatetimeIndex(index).as_unit("ns").asi8
    return float(np.median(np.diff(stamps))) / 1e9


def bars_per_year(seconds: float) -> float:
    """Bars in a 365-day year for bars `seconds` long (crypto trades 24/7): 3600 -> 8760."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise DataError(
            f"bar length must be a positive number of seconds, got {seconds}: check the bar index."
        )
    return DAYS_PER_YEAR * SECONDS_PER_DAY / seconds


def _rule_seconds(rule: str, what: str = "resample rule") -> float:
    try:
        offset = to_offset(rule)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"unknown {what} {rule!r}: use a pandas alias such as '4h', '1D' or '15min'."
        ) from exc
    try:
        seconds = pd.Timedelta(offset).total_seconds()  # type: ignore[arg-type]  # raises for calendar offsets
    except (TypeError, ValueError) as exc:
        # Calendar rules (weeks, months) have no fixed length, and their pandas defaults label bins by the
        # right edge, which would leak the future into a left-labelled bar.
        raise DataError(
            f"{what} {rule!r} has no fixed length: use a fixed one such as '1D' or '7D'."
        ) from exc
    if seconds <= 0:
        raise DataError(f"{what} {rule!r} must be a positive length: use e.g. '4h' or '1D'.")
    return seconds


def resample_bars(bars: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Aggregate bars to a coarser interval: bins closed and labelled on the left, empty bins (gaps) dropped.

    A bin's bar is stamped with its start, like exchange candles, so a 4h bar at 04:00 covers 04:00-07:59.
    """
    clean = validate_bars(bars, min_bars=1)
    target = _rule_seconds(rule)
    if len(clean) >= 2:
        source = bar_seconds(pd.DatetimeIndex(clean.index))
        if target < source:
            raise DataError(
                f"resample rule {rule!r} ({target:g}s) is finer than the source bars ({source:g}s): "
                "resampling can only aggregate; load finer data or choose a coarser rule."
            )
    grouped = clean.resample(rule, closed="left", label="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    # Source bars hold no NaN, so a NaN open marks a bin with no bars in it (an exchange outage).
    grouped = grouped[grouped["open"].notna()]
    grouped.attrs = dict(clean.attrs)
    return validate_bars(grouped, min_bars=1)
