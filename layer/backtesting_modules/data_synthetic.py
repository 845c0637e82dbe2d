"""Synthetic bars: deterministic, crypto-like OHLCV for tests, demos and runs without market data.

`synthetic_bars` labels its frames synthetic (attrs["synthetic"] is True) so reports can say so;
`is_synthetic` reads the label. Part of `data`: import from `backtesting_modules.data`.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data_resample import SECONDS_PER_DAY, _rule_seconds
from .data_validation import validate_bars
from .errors import DataError


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
