"""The timezone market analyzer: per-bar local hours, activity score, market condition and trading style.

Owns `TimezoneMarketAnalyzer`, which annotates a UTC DatetimeIndex in one vectorised pass. Local hours
come from each bar's own date (zoneinfo via pandas), so daylight saving time is right for every bar; the
original took DST from today's date and ran on daily bars, where every bar sits at hour 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, did_you_mean
from .regions import (
    CONDITIONS,
    HOURS_PER_DAY,
    MAKENAIDE_RUN_HOURS_KST,
    MarketCondition,
    TimezoneSettings,
    require_intraday,
    utc_index,
)

__all__ = [
    "TimezoneMarketAnalyzer",
    "classify_scores",
    "local_hours",
    "makenaide_run_mask",
    "require_intraday",
]

# Scores are sums of products of short decimals; rounding away float noise (e.g. 79.99999999999999)
# keeps a score that is 80 on paper in the VERY_ACTIVE bucket.
_SCORE_DECIMALS = 9


def local_hours(index: pd.DatetimeIndex, tz: str) -> np.ndarray:
    """The local hour (0-23) of every timestamp in zone `tz`, using each timestamp's own DST offset."""
    return np.asarray(utc_index(index).tz_convert(tz).hour, dtype=np.intp)


def classify_scores(scores: np.ndarray, thresholds: tuple[float, ...]) -> np.ndarray:
    """Condition positions (0 = VERY_ACTIVE ... 4 = VERY_QUIET): how many lower bounds a score is under.

    `thresholds` are strictly decreasing lower bounds, so a score >= thresholds[0] is 0 and a score
    below thresholds[-1] is len(thresholds).
    """
    values = np.asarray(scores, dtype=np.float64)
    return (values[..., None] < np.asarray(thresholds, dtype=np.float64)).sum(axis=-1)


def makenaide_run_mask(
    index: pd.DatetimeIndex, hours: tuple[int, ...] = MAKENAIDE_RUN_HOURS_KST, tz: str = "Asia/Seoul"
) -> np.ndarray:
    """True for bars that start in one of Makenaide's pipeline hours (Korean time by default)."""
    return np.isin(local_hours(index, tz), np.asarray(hours, dtype=np.intp))


class TimezoneMarketAnalyzer:
    """Annotates timestamps with local hours, activity, condition, dominant region and its style."""

    def __init__(self, settings: TimezoneSettings | None = None) -> None:
        self.settings = settings if settings is not None else TimezoneSettings()
        regions = self.settings.regions
        self._curve = np.asarray(self.settings.activity_curve, dtype=np.float64)
        self._weights = np.asarray([r.weight for r in regions], dtype=np.float64)
        # peak[r, h]: whether local hour h is one of region r's peak hours.
        self._peak = np.zeros((len(regions), HOURS_PER_DAY), dtype=bool)
        for row, region in enumerate(regions):
            self._peak[row, list(region.peak_hours)] = True
        # Lookup tables by region position and by condition position, for numpy gathers.
        self._keys = np.asarray([r.key for r in regions], dtype=object)
        self._styles = np.asarray([r.style for r in regions], dtype=object)
        self._stops = np.asarray([self.settings.stop_loss_for(r) for r in regions], dtype=np.float64)
        self._holds = np.asarray(
            [self.settings.style(r.style).max_hold_hours for r in regions], dtype=np.float64
        )
        self._conditions = np.asarray([c.name for c in CONDITIONS], dtype=object)
        self._multipliers = np.asarray(self.settings.position_multipliers, dtype=np.float64)

    def analyze(self, index: pd.DatetimeIndex, *, check_intraday: bool = True) -> pd.DataFrame:
        """One row per timestamp of the tz-aware `index` (converted to UTC); see docs/timezone.md.

        `check_intraday=False` skips the bar-spacing check, for irregular timestamps such as trade entries.
        """
        utc = utc_index(index)
        if check_intraday:
            require_intraday(utc)
        hours = np.stack([local_hours(utc, r.tz) for r in self.settings.regions])
        utc_hour = np.asarray(utc.hour, dtype=np.intp)
        weighted = self._weighted_activity(hours, utc_hour)
        if self.settings.curve_basis == "utc":
            score = 100.0 * self._curve[utc_hour]
        else:
            score = 100.0 * weighted.sum(axis=0)
        score = np.round(score, _SCORE_DECIMALS)
        # Rounded so equal products on paper (0.20 x 1.0 vs 0.25 x 0.8) tie; the first region wins a tie.
        dominant = np.argmax(np.round(weighted, _SCORE_DECIMALS), axis=0)
        condition = classify_scores(score, self.settings.condition_thresholds)
        columns: dict[str, Any] = {
            f"{region.key}_hour": hours[row] for row, region in enumerate(self.settings.regions)
        }
        columns |= {
            "activity_score": score,
            "condition": self._conditions[condition],
            "position_multiplier": self._multipliers[condition],
            "dominant_region": self._keys[dominant],
            "style": self._styles[dominant],
            "stop_loss": self._stops[dominant],
            "max_hold_hours": self._holds[dominant],
        }
        return pd.DataFrame(columns, index=utc)

    def _weighted_activity(self, hours: np.ndarray, utc_hour: np.ndarray) -> np.ndarray:
        """weight_r x min(1, base + bonus x [local hour in peak hours_r]), shape (regions, bars).

        The base is the curve at each region's local hour (local basis) or at the UTC hour (utc basis,
        where the curve is one market-wide level and regions differ by weight and peak hours).
        """
        base = self._curve[hours] if self.settings.curve_basis == "local" else self._curve[utc_hour][None, :]
        rows = np.arange(hours.shape[0])[:, None]
        peak = self._peak[rows, hours]
        regional = np.minimum(1.0, base + self.settings.peak_bonus * peak)
        return self._weights[:, None] * regional

    def analyze_timestamp(self, ts: str | pd.Timestamp) -> dict[str, Any]:
        """The analysis of one tz-aware timestamp as a dict, plus its style's take-profit ladder."""
        stamp = pd.Timestamp(ts)
        if stamp.tz is None:
            raise DataError(
                f"timestamp {stamp} is naive (no time zone): pass e.g. pd.Timestamp('{stamp}', tz='UTC')."
            )
        row = self.analyze(pd.DatetimeIndex([stamp])).iloc[0]
        result: dict[str, Any] = {"timestamp": stamp.tz_convert("UTC")}
        for name, value in row.items():
            result[str(name)] = value.item() if isinstance(value, np.generic) else value
        result["take_profit_ladder"] = self.ladder_for(result["style"])
        return result

    def ladder_for(self, style: str) -> tuple[tuple[float, float], ...]:
        """The take-profit ladder ((gain, fraction to sell), ...) of trading style `style`."""
        return self.settings.style(style).take_profit_ladder

    def condition_for(self, score: float) -> MarketCondition:
        """The market condition of one activity score (>= the first threshold is VERY_ACTIVE)."""
        return CONDITIONS[int(classify_scores(np.asarray(score), self.settings.condition_thresholds))]

    def multiplier_for(self, condition: MarketCondition | str) -> float:
        """The position multiplier of a market condition (an enum member or its name)."""
        if isinstance(condition, MarketCondition):
            member = condition
        elif condition in MarketCondition.__members__:
            member = MarketCondition[condition]
        else:
            names = list(MarketCondition.__members__)
            raise ConfigError(
                f"unknown market condition {condition!r}: use one of {names}.{did_you_mean(condition, names)}"
            )
        return self.settings.position_multipliers[CONDITIONS.index(member)]
