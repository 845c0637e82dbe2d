"""Bar data: loading OHLCV from CSV/Parquet, validating it, resampling it, and the synthetic source.

This module owns the bar format every other module relies on: a DataFrame with a tz-aware UTC
`DatetimeIndex` named "timestamp" (nanosecond unit, strictly increasing) and exactly the float64 columns
open, high, low, close, volume. `attrs` carries provenance: "symbol", "source" and "synthetic".
Anything that produces bars (loaders, resampling, the synthetic generator) ends in `validate_bars`, so a
frame that left this module is safe to backtest.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pandas.tseries.frequencies import to_offset

from .errors import DataError

__all__ = [
    "COLUMNS",
    "bar_seconds",
    "bars_per_year",
    "is_synthetic",
    "load_bars",
    "resample_bars",
    "symbol_from_path",
    "synthetic_bars",
    "validate_bars",
]

COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
INDEX_NAME = "timestamp"
TIMESTAMP_ALIASES: tuple[str, ...] = ("timestamp", "datetime", "date", "time")
CSV_SUFFIXES: tuple[str, ...] = (".csv",)
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
SECONDS_PER_DAY = 86_400.0
DAYS_PER_YEAR = 365.0  # crypto trades 24/7, so a year is 365 full days of bars

# Epoch milliseconds outside this window are almost certainly another unit (seconds, microseconds) and
# would silently become 1970 or far-future dates; the upper bound is also the limit of ns timestamps.
_EPOCH_MS_MIN = 1e11  # 1973-03-03
_EPOCH_MS_MAX = 9.2e12  # 2261-07-16

_FETCH_HINT = "fetch it with `python scripts/fetch_ohlcv.py` or run with `--synthetic` to use generated bars"


# --------------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------


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


def _read_table(path: Path, suffix: str) -> pd.DataFrame:
    kind = "CSV" if suffix in CSV_SUFFIXES else "Parquet"
    try:
        return pd.read_csv(path) if kind == "CSV" else pd.read_parquet(path)
    except (ValueError, OSError) as exc:  # pandas' parser errors and pyarrow's ArrowInvalid are ValueErrors
        raise DataError(
            f"could not read {path} as {kind} ({type(exc).__name__}: {exc}): "
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


# --------------------------------------------------------------------------------------------------------
# Bar spacing and resampling
# --------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------
# Synthetic bars
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Regime:
    name: str
    drift_per_day: float  # mean log return per day
    vol_mult: float  # multiplies the base volatility
    mean_days: float  # expected time spent in the regime before switching
    next_probs: tuple[float, float, float]  # where it goes when it switches (bull, bear, sideways)


_REGIMES: tuple[_Regime, ...] = (
    _Regime("bull", 0.003, 1.0, 70.0, (0.0, 0.4, 0.6)),
    _Regime("bear", -0.0035, 1.35, 45.0, (0.4, 0.0, 0.6)),
    _Regime("sideways", 0.0, 0.75, 50.0, (0.5, 0.5, 0.0)),
)
_DAILY_VOL = 0.04  # base daily vol; with regimes and vol clustering, typical realised daily vol is 3-4 %
_T_DF = 4.0  # Student-t degrees of freedom: fat tails like crypto returns
_Z_CLIP = 10.0  # cap single-bar shocks at 10 sd so one draw cannot wipe out the price path
_GARCH_DAILY_PERSISTENCE = 0.97  # alpha + beta per day: vol shocks have a half-life of about 3 weeks
_GARCH_DAILY_ALPHA = 0.08
_GARCH_MAX_VARIANCE = 16.0  # cap the variance multiplier (4x vol) so a burst of shocks stays plausible
# Base quote-currency turnover per day (a liquid KRW market: ~1e9 KRW per hourly bar). Volume is in base
# units sized at the start price, so turnover then drifts with the price as on a real exchange.
_DAILY_QUOTE_TURNOVER = 2.5e10


def synthetic_bars(
    symbol: str = "SYNTH-KRW",
    start: str | pd.Timestamp = "2021-01-01",
    periods: int = 8760,
    freq: str = "1h",
    seed: int = 42,
    *,
    start_price: float = 50_000.0,
) -> pd.DataFrame:
    """Deterministic, crypto-like OHLCV bars, labelled synthetic (attrs["synthetic"] is True).

    Models: Student-t shocks, GARCH(1,1) volatility clustering, a bull/bear/sideways Markov regime
    switch, and a UTC intraday activity cycle (busy 00-02 and 13-16 UTC, quiet 20-22 UTC). Volatility scales
    with sqrt(bar length). The same (symbol, seed) always gives the same frame; other symbols differ.
    """
    if periods < 1:
        raise DataError(
            f"synthetic_bars periods must be >= 1, got {periods}: pass a positive number of bars."
        )
    if not (math.isfinite(start_price) and start_price > 0):
        raise DataError(f"synthetic_bars start_price must be > 0, got {start_price}: pass a positive price.")
    step = _rule_seconds(freq, what="synthetic_bars freq")
    index = pd.date_range(start=_utc_timestamp(start), periods=periods, freq=pd.Timedelta(seconds=step))
    # crc32 is stable across processes (unlike the salted built-in hash), so symbols keep their paths.
    rng = np.random.default_rng([seed % 2**64, zlib.crc32(symbol.encode("utf-8"))])
    frame = _simulate(rng, index, step / SECONDS_PER_DAY, start_price)
    frame.attrs = {"symbol": symbol, "source": f"synthetic(seed={seed})", "synthetic": True}
    # Cheap guard: a model change that breaks OHLC consistency fails here, not inside a backtest.
    return validate_bars(frame, min_bars=1, name="synthetic_bars")


def is_synthetic(bars: pd.DataFrame) -> bool:
    """Whether `bars` came from `synthetic_bars` (read from attrs; frames without the flag are real)."""
    return bool(bars.attrs.get("synthetic", False))


def _utc_timestamp(start: str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(start)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def _simulate(
    rng: np.random.Generator, index: pd.DatetimeIndex, dt_days: float, start_price: float
) -> pd.DataFrame:
    n = len(index)
    regimes = _regime_path(rng, n, dt_days)
    drift = np.array([r.drift_per_day for r in _REGIMES])[regimes] * dt_days
    regime_vol = np.array([r.vol_mult for r in _REGIMES])[regimes]
    intraday = _intraday_variance(index, dt_days)
    z = np.clip(rng.standard_t(_T_DF, size=n) / math.sqrt(_T_DF / (_T_DF - 2.0)), -_Z_CLIP, _Z_CLIP)
    garch = _garch_variance(z, dt_days)
    sigma = _DAILY_VOL * math.sqrt(dt_days) * regime_vol * np.sqrt(garch * intraday)
    ret = drift + sigma * z
    # A tiny open gap: 24/7 markets have none, but exchange candles open on the first trade, not the last.
    gap = 0.02 * sigma * rng.standard_normal(n)
    gap[0] = 0.0
    log_close = math.log(start_price) + np.cumsum(gap + ret)
    open_ = np.exp(log_close - ret)
    open_[0] = start_price  # exactly, not exp(log(p)) which can be off by an ulp
    close = np.exp(log_close)
    # Wicks beyond the body: half-normal in units of the bar's sigma. exp(x >= 0) >= 1 and rounding is
    # monotone, so high >= max(open, close) and low <= min(open, close) hold exactly in float64.
    high = np.maximum(open_, close) * np.exp(0.5 * sigma * np.abs(rng.standard_normal(n)))
    low = np.minimum(open_, close) * np.exp(-0.5 * sigma * np.abs(rng.standard_normal(n)))
    base_sigma = _DAILY_VOL * math.sqrt(dt_days)
    volume = (
        _DAILY_QUOTE_TURNOVER
        / start_price
        * dt_days
        * np.sqrt(intraday)  # |ret| already carries the other half of the hourly pattern
        * (0.4 + 0.6 * np.abs(ret) / base_sigma)
        * rng.lognormal(0.0, 0.3, size=n)
    )
    data = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
    return pd.DataFrame(data, index=index)


def _regime_path(rng: np.random.Generator, n: int, dt_days: float) -> np.ndarray:
    """Regime id per bar from a Markov chain: geometric holding times, then a jump by `next_probs`.

    Holding probabilities are per bar but derived from per-day durations, so regimes last weeks to months
    whatever the bar length. The loop runs once per regime spell, not per bar.
    """
    leave = [-math.expm1(-dt_days / r.mean_days) for r in _REGIMES]
    states = np.empty(n, dtype=np.intp)
    state = int(rng.integers(len(_REGIMES)))
    pos = 0
    while pos < n:
        length = int(rng.geometric(leave[state]))
        states[pos : pos + length] = state
        pos += length
        state = int(rng.choice(len(_REGIMES), p=_REGIMES[state].next_probs))
    return states


def _garch_variance(z: np.ndarray, dt_days: float) -> np.ndarray:
    """GARCH(1,1) variance multiplier (long-run mean 1) driven by standardised shocks `z`.

    Per-bar parameters come from per-day ones so clustering lasts the same wall-clock time at any bar
    length. A plain Python loop over floats: about 0.2 s per million bars.
    """
    persistence = _GARCH_DAILY_PERSISTENCE**dt_days
    alpha = min(0.15, _GARCH_DAILY_ALPHA * math.sqrt(dt_days), 0.9 * persistence)
    beta = persistence - alpha
    omega = 1.0 - persistence
    out = [0.0] * len(z)
    h = 1.0
    for i, shock2 in enumerate((z * z).tolist()):
        out[i] = h
        h = min(omega + (alpha * shock2 + beta) * h, _GARCH_MAX_VARIANCE)
    return np.asarray(out)


def _hourly_activity(hours: np.ndarray) -> np.ndarray:
    """Volatility multiplier by UTC hour of day (before normalisation)."""

    def bump(centre: float, width: float) -> np.ndarray:
        distance = (hours - centre + 12.0) % 24.0 - 12.0  # circular: 23h and 1h are 2 hours apart
        return np.exp(-0.5 * (distance / width) ** 2)

    # Asia open / Korea morning, US open, and the late-US / pre-Asia lull.
    return 1.0 + 0.55 * bump(1.0, 1.5) + 0.6 * bump(14.5, 1.5) - 0.4 * bump(21.0, 1.5)


def _intraday_variance(index: pd.DatetimeIndex, dt_days: float) -> np.ndarray:
    """Mean of the normalised activity variance over each bar's span (1.0 for whole-day bars).

    Integrating over the span (rather than sampling the bar's start hour) keeps 4h bars and 1-minute bars
    consistent with the same daily pattern.
    """
    minutes_per_day = 1440
    grid = _hourly_activity(np.arange(minutes_per_day) / 60.0) ** 2
    grid /= grid.mean()  # a day's total variance is unchanged by the pattern
    cumulative = np.concatenate(([0.0], np.cumsum(grid)))

    def integral(t: np.ndarray) -> np.ndarray:
        days = np.floor(t / minutes_per_day)
        rest = t - days * minutes_per_day
        return days * minutes_per_day + np.interp(rest, np.arange(minutes_per_day + 1), cumulative)

    start = (index.as_unit("ns").asi8 % 86_400_000_000_000) / 60e9  # minutes since UTC midnight
    span = dt_days * minutes_per_day
    return (integral(start + span) - integral(start)) / span
