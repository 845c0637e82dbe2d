"""Bar data: loading OHLCV from CSV/Parquet, validating it, resampling it, and the synthetic source.

This module is the public entry point of bar data and reads bar files itself; the rest lives beside it:
`data_validation` (the bar format and `validate_bars`), `data_resample` (bar spacing and resampling) and
`data_synthetic` (the synthetic generator). Import every name from here.

The bar format every other module relies on: a DataFrame with a tz-aware UTC `DatetimeIndex` named
"timestamp" (nanosecond unit, strictly increasing) and exactly the float64 columns open, high, low, close,
volume. `attrs` carries provenance: "symbol", "source" and "synthetic". Anything that produces bars
(loaders, resampling, the synthetic generator) ends in `validate_bars`, so a frame that left these modules
is safe to backtest.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from .data_resample import DAYS_PER_YEAR, SECONDS_PER_DAY, bar_seconds, bars_per_year, resample_bars
from .data_synthetic import is_synthetic, synthetic_bars
from .data_validation import COLUMNS, INDEX_NAME, validate_bars
from .data_window import (
    GAP_POLICIES,
    Gaps,
    apply_gap_policy,
    bars_sha256,
    cut_window,
    describe_bars,
    fill_gaps,
    find_gaps,
    preparation_note,
    prepare_bars,
)
from .errors import DataError

__all__ = [
    "COLUMNS",
    "DAYS_PER_YEAR",
    "GAP_POLICIES",
    "INDEX_NAME",
    "SECONDS_PER_DAY",
    "Gaps",
    "apply_gap_policy",
    "bar_seconds",
    "bars_per_year",
    "bars_sha256",
    "cut_window",
    "describe_bars",
    "fill_gaps",
    "find_gaps",
    "is_synthetic",
    "load_bars",
    "parse_bars",
    "preparation_note",
    "prepare_bars",
    "resample_bars",
    "symbol_from_path",
    "synthetic_bars",
    "validate_bars",
]

TIMESTAMP_ALIASES: tuple[str, ...] = ("timestamp", "datetime", "date", "time")
CSV_SUFFIXES: tuple[str, ...] = (".csv",)
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")

# Epoch milliseconds outside this window are almost certainly another unit (seconds, microseconds) and
# would silently become 1970 or far-future dates; the upper bound is also the limit of ns timestamps.
_EPOCH_MS_MIN = 1e11  # 1973-03-03
_EPOCH_MS_MAX = 9.2e12  # 2261-07-16

_FETCH_HINT = "fetch it with `python scripts/fetch_ohlcv.py` or run with `--synthetic` to use generated bars"


def load_bars(
    source: str | os.PathLike[str], *, symbol: str | None = None, min_bars: int = 2
) -> pd.DataFrame:
    """Read OHLCV bars from a CSV or Parquet file (the extension decides) and validate them.

    CSV needs a `timestamp` column (or `datetime`/`date`/`time` when `timestamp` is absent) holding ISO 8601
    strings or epoch milliseconds; ISO strings without an offset are read as UTC. Parquet may carry the
    timestamp as a column or as the index. attrs: symbol (argument, else the file name up to the first
    "_", e.g. KRW-BTC_1h.csv -> KRW-BTC), source (the path) and synthetic=False.
    """
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise DataError(
            f"unsupported bar file type {suffix or '(none)'!r} for {path}: "
            f"use one of {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}."
        )
    if not path.is_file():
        raise DataError(f"bar file {path} does not exist: {_FETCH_HINT}.")
    frame = _index_by_timestamp(_read_table(path, suffix), path.name)
    frame.attrs = {
        "symbol": symbol if symbol is not None else symbol_from_path(path),
        "source": str(path),
        "synthetic": False,
    }
    return validate_bars(frame, min_bars=min_bars, name=path.name)


def parse_bars(body: bytes, *, suffix: str, name: str, symbol: str, min_bars: int = 2) -> pd.DataFrame:
    """Bars from the bytes of a CSV or Parquet file (e.g. an S3 object), read as `load_bars` reads files;
    attrs: symbol, source (`name`), synthetic=False."""
    suffix = suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise DataError(
            f"unsupported bar file type {suffix or '(none)'!r} for {name}: "
            f"use one of {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}."
        )
    frame = _index_by_timestamp(_read_table(io.BytesIO(body), suffix, name), name)
    frame.attrs = {"symbol": symbol, "source": name, "synthetic": False}
    return validate_bars(frame, min_bars=min_bars, name=name)


def _read_table(source: Path | io.BytesIO, suffix: str, name: str | None = None) -> pd.DataFrame:
    kind = "CSV" if suffix in CSV_SUFFIXES else "Parquet"
    try:
        return pd.read_csv(source) if kind == "CSV" else pd.read_parquet(source)
    except (ValueError, OSError) as exc:  # pandas' parser errors and pyarrow's ArrowInvalid are ValueErrors
        raise DataError(
            f"could not read {name or source} as {kind} ({type(exc).__name__}: {exc}): "
            f"check the file is a complete {kind} export, or re-fetch it."
        ) from exc


def symbol_from_path(path: str | os.PathLike[str]) -> str:
    """The symbol encoded in a bar file name: the stem up to the first "_" (KRW-BTC_1h.csv -> KRW-BTC)."""
    return Path(path).stem.split("_", 1)[0]


def _index_by_timestamp(raw: pd.DataFrame, name: str) -> pd.DataFrame:
    if isinstance(raw.index, pd.DatetimeIndex):
        return raw.set_axis(_as_utc(raw.index), axis=0)
    if raw.index.name is not None:
        # A named non-datetime index (e.g. epoch ms saved as the Parquet index) is a timestamp candidate.
        raw = raw.reset_index()
    column = _timestamp_column(raw, name)
    index = _parse_timestamps(raw[column], column, name)
    return raw.drop(columns=[column]).set_axis(index, axis=0)


def _timestamp_column(raw: pd.DataFrame, name: str) -> Any:
    by_lower = {str(c).strip().lower(): c for c in raw.columns}
    for alias in TIMESTAMP_ALIASES:
        if alias in by_lower:
            return by_lower[alias]
    raise DataError(
        f"{name} has no timestamp column (columns: {[str(c) for c in raw.columns]}): "
        f"name it 'timestamp' (aliases {list(TIMESTAMP_ALIASES[1:])} are accepted)."
    )


def _parse_timestamps(column: pd.Series, label: Any, name: str) -> pd.DatetimeIndex:
    """Epoch milliseconds (numeric dtype) or ISO 8601 strings -> UTC DatetimeIndex."""
    if ptypes.is_datetime64_any_dtype(column.dtype):
        return _as_utc(pd.DatetimeIndex(column))
    if ptypes.is_integer_dtype(column.dtype) or ptypes.is_float_dtype(column.dtype):
        return _parse_epoch_ms(column, label, name)
    parsed = pd.to_datetime(column, utc=True, format="ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        pos = int(np.argmax(bad))
        raise DataError(
            f"{name} row {pos} column {str(label)!r} is not an ISO 8601 timestamp ({column.iloc[pos]!r}): "
            "use e.g. 2021-01-01T00:00:00Z or epoch milliseconds, and drop rows without a timestamp."
        )
    return pd.DatetimeIndex(parsed)


def _parse_epoch_ms(column: pd.Series, label: Any, name: str) -> pd.DatetimeIndex:
    ms = column.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~((ms >= _EPOCH_MS_MIN) & (ms < _EPOCH_MS_MAX))
    if bad.any():
        pos = int(np.argmax(bad))
        raise DataError(
            f"{name} row {pos} column {str(label)!r} = {column.iloc[pos]!r} is not epoch milliseconds "
            "between 1973 and 2261: convert seconds (x1000) or microseconds (/1000) to milliseconds, "
            "and drop rows without a timestamp."
        )
    return pd.DatetimeIndex(pd.to_datetime(column.to_numpy(dtype=np.int64), unit="ms", utc=True))


def _as_utc(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    # Files rarely record a zone; exchange exports and our fetch script write UTC, so naive means UTC here.
    # (validate_bars is stricter with in-memory frames, where the caller can say what they meant.)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
