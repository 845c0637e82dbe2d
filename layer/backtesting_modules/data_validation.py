"""The bar format, checked: `validate_bars` turns a DataFrame into the engine's bars or says what is wrong.

The bar format: a tz-aware UTC `DatetimeIndex` named "timestamp" (nanosecond unit, strictly increasing) and
exactly the float64 columns open, high, low, close, volume. Every rejection names the first offending row
(position and timestamp) and the fix. Part of `data`: import from `backtesting_modules.data`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError

COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
INDEX_NAME = "timestamp"


def validate_bars(bars: pd.DataFrame, *, min_bars: int = 2, name: str = "bars") -> pd.DataFrame:
    """Return a clean copy of `bars` in the engine's bar format, or raise `DataError`.

    The index becomes tz-aware UTC (a non-UTC zone is converted; a naive index is rejected because
    guessing its zone would shift every bar). Columns are matched case-insensitively, extra ones are
    dropped. Every rejection names the first offending row (position and timestamp) and the fix.
    """
    if not isinstance(bars, pd.DataFrame):
        raise DataError(
            f"{name} must be a pandas DataFrame, got {type(bars).__name__}: load it with load_bars()."
        )
    index = _utc_index(bars, name)
    values = _float_columns(bars, name)
    _check_index_order(index, name)
    _check_rows(values, index, name)
    if len(index) < min_bars:
        raise DataError(
            f"{name}: strategy needs {min_bars} bars, got {len(index)}: load a longer period "
            "(or use a shorter bar interval)."
        )
    clean = pd.DataFrame(values, index=index, columns=list(COLUMNS))
    clean.attrs = dict(bars.attrs)
    return clean


def _utc_index(bars: pd.DataFrame, name: str) -> pd.DatetimeIndex:
    if not isinstance(bars.index, pd.DatetimeIndex):
        raise DataError(
            f"{name} index must be a DatetimeIndex, got {type(bars.index).__name__}: set it with "
            f"{name}.set_index(pd.to_datetime({name}['timestamp'], utc=True)) "
            "or load the file with load_bars()."
        )
    index = bars.index
    if index.tz is None:
        raise DataError(
            f"{name} index is timezone-naive: localize it to UTC with {name}.tz_localize('UTC') "
            "(or tz_localize('Asia/Seoul').tz_convert('UTC') if the stamps are KST)."
        )
    try:
        utc = index.tz_convert("UTC").as_unit("ns")
    except (OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise DataError(
            f"{name} index has timestamps outside 1677-2262: check the timestamp unit of the source."
        ) from exc
    # Drop any `freq`: whether pandas kept one depends on how the frame was built, and equal bars should
    # compare equal whatever their origin.
    return pd.DatetimeIndex(utc, freq=None, name=INDEX_NAME)  # type: ignore[arg-type]  # stubs omit None


def _float_columns(bars: pd.DataFrame, name: str) -> np.ndarray:
    """The five OHLCV columns as one (n, 5) float64 array (a copy)."""
    by_lower: dict[str, list[Any]] = {}
    for column in bars.columns:
        by_lower.setdefault(str(column).strip().lower(), []).append(column)
    missing = [c for c in COLUMNS if c not in by_lower]
    if missing:
        raise DataError(
            f"{name} is missing column(s) {missing} (has {[str(c) for c in bars.columns]}): "
            f"provide all of {list(COLUMNS)} (names are case-insensitive)."
        )
    out = np.empty((len(bars), len(COLUMNS)), dtype=np.float64)
    for j, wanted in enumerate(COLUMNS):
        matches = by_lower[wanted]
        if len(matches) > 1:
            raise DataError(
                f"{name} has several columns matching {wanted!r}: {[str(m) for m in matches]}: "
                "drop all but one."
            )
        out[:, j] = _to_float(bars[matches[0]], wanted, name)
    return out


def _to_float(column: pd.Series, wanted: str, name: str) -> np.ndarray:
    try:
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        coerced = pd.to_numeric(column, errors="coerce")
        bad = int(np.argmax(coerced.isna().to_numpy() & column.notna().to_numpy()))
        raise DataError(
            f"{name} row {bad} column {wanted!r} is not a number "
            f"({column.iloc[bad]!r}, dtype {column.dtype}): "
            f"fix the source or convert with pd.to_numeric({name}[{wanted!r}], errors='coerce')."
        ) from None


def _where(index: pd.DatetimeIndex, pos: int, name: str) -> str:
    return f"{name} row {pos} ({index[pos].isoformat()})"


def _check_index_order(index: pd.DatetimeIndex, name: str) -> None:
    missing = index.isna()
    if missing.any():
        pos = int(np.argmax(missing))
        raise DataError(f"{name} row {pos} has no timestamp (NaT): drop rows without a timestamp.")
    if len(index) < 2:
        return
    step = np.diff(index.asi8)
    if (step < 0).any():
        pos = int(np.argmax(step < 0)) + 1
        raise DataError(
            f"{_where(index, pos, name)} is earlier than row {pos - 1} ({index[pos - 1].isoformat()}): "
            f"timestamps must increase; sort with {name}.sort_index()."
        )
    if (step == 0).any():
        pos = int(np.argmax(step == 0)) + 1
        raise DataError(
            f"{_where(index, pos, name)} duplicates the timestamp of row {pos - 1}: drop duplicates with "
            f"{name}[~{name}.index.duplicated(keep='last')]."
        )


@dataclass(frozen=True)
class _RowRule:
    """One per-row consistency rule: a vectorised mask over the (n, 5) array and how to explain a hit."""

    mask: Callable[[np.ndarray], np.ndarray | np.bool_]  # numpy's stubs type row reductions as either
    problem: Callable[[np.ndarray], str]
    fix: str


def _nonfinite_problem(row: np.ndarray) -> str:
    bad = [f"{c}={v}" for c, v in zip(COLUMNS, row, strict=True) if not math.isfinite(v)]
    return f"column(s) {', '.join(bad)} not finite"


def _nonpositive_problem(row: np.ndarray) -> str:
    bad = [f"{c}={v}" for c, v in zip(COLUMNS[:4], row[:4], strict=True) if v <= 0]
    return f"price column(s) {', '.join(bad)} not positive"


# Order matters: later rules assume earlier ones passed (no NaN in comparisons; high < low is checked
# before the open/close bounds because it is the more specific diagnosis - usually swapped columns).
_ROW_RULES: tuple[_RowRule, ...] = (
    _RowRule(
        mask=lambda v: ~np.isfinite(v).all(axis=1),
        problem=_nonfinite_problem,
        fix="drop or fill the row (e.g. bars.dropna()) or re-fetch that period",
    ),
    _RowRule(
        mask=lambda v: (v[:, :4] <= 0).any(axis=1),
        problem=_nonpositive_problem,
        fix="prices must be > 0; drop the row or re-fetch that period",
    ),
    _RowRule(
        mask=lambda v: v[:, 1] < v[:, 2],
        problem=lambda r: f"column high={r[1]} is below column low={r[2]}",
        fix="check whether the high and low columns are swapped, or drop the row",
    ),
    _RowRule(
        mask=lambda v: v[:, 1] < np.maximum(v[:, 0], v[:, 3]),
        problem=lambda r: f"column high={r[1]} is below max(open, close)={max(r[0], r[3])}",
        fix="fix the source or set high = max(open, high, close)",
    ),
    _RowRule(
        mask=lambda v: v[:, 2] > np.minimum(v[:, 0], v[:, 3]),
        problem=lambda r: f"column low={r[2]} is above min(open, close)={min(r[0], r[3])}",
        fix="fix the source or set low = min(open, low, close)",
    ),
    _RowRule(
        mask=lambda v: v[:, 4] < 0,
        problem=lambda r: f"column volume={r[4]} is negative",
        fix="fix the source or set the volume to 0",
    ),
)


def _check_rows(values: np.ndarray, index: pd.DatetimeIndex, name: str) -> None:
    for rule in _ROW_RULES:
        hits = np.asarray(rule.mask(values))
        if hits.any():
            pos = int(np.argmax(hits))
            count = int(hits.sum())
            more = f" ({count - 1} more row(s) like it)" if count > 1 else ""
            raise DataError(f"{_where(index, pos, name)}: {rule.problem(values[pos])}{more}: {rule.fix}.")
