"""Regions, trading styles and the settings of the timezone analysis; fitting an activity curve to bars.

Owns the configuration records (`Region`, `TradingStyle`, `TimezoneSettings`, `MarketCondition`), their
documented defaults (see docs/timezone.md for which numbers are the original's and which are ours), the
check that bars are intraday (`require_intraday`) and `fit_activity_curve`, which measures an activity
curve by UTC hour from real bars.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from itertools import pairwise
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from ..data import SECONDS_PER_DAY, bar_seconds
from ..errors import ConfigError, DataError, did_you_mean

HOURS_PER_DAY = 24

# Makenaide's trading pipeline runs at these Korean (Asia/Seoul) hours every day.
MAKENAIDE_RUN_HOURS_KST: tuple[int, ...] = (2, 9, 15, 18, 21, 23)

Volatility = Literal["high", "medium", "low"]
CurveBasis = Literal["local", "utc"]
ActivityMeasure = Literal["abs_return", "volume"]


class MarketCondition(Enum):
    """How busy the market is, from the activity score; ordered from busiest to quietest."""

    VERY_ACTIVE = "VERY_ACTIVE"
    ACTIVE = "ACTIVE"
    MODERATE = "MODERATE"
    QUIET = "QUIET"
    VERY_QUIET = "VERY_QUIET"


# The order matches TimezoneSettings.condition_thresholds (4 values) and position_multipliers (5 values).
CONDITIONS: tuple[MarketCondition, ...] = tuple(MarketCondition)


# --- validation (each helper checks one field so errors name it) ---------------------------------------


def _is_fraction(value: float, *, low_open: bool = True) -> bool:
    if not math.isfinite(value):
        return False
    return (0.0 < value <= 1.0) if low_open else (0.0 <= value <= 1.0)


def _check_region(region: Region) -> None:
    where = f"regions[{region.key!r}]"
    if not region.key.isidentifier() or region.key != region.key.lower():
        raise ConfigError(
            f"region key must be a lower-case identifier (it names a column), got {region.key!r}: "
            "use e.g. 'new_york'."
        )
    try:
        ZoneInfo(region.tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"{where}.tz {region.tz!r} is not an IANA time zone: use e.g. 'Asia/Seoul'."
        ) from exc
    if not (math.isfinite(region.weight) and region.weight >= 0):
        raise ConfigError(f"{where}.weight must be >= 0, got {region.weight}.")
    bad_hours = [h for h in region.peak_hours if not (isinstance(h, int) and 0 <= h < HOURS_PER_DAY)]
    if bad_hours:
        raise ConfigError(f"{where}.peak_hours must be whole hours 0-23, got {bad_hours}.")
    if region.volatility not in ("high", "medium", "low"):
        raise ConfigError(f"{where}.volatility must be 'high', 'medium' or 'low', got {region.volatility!r}.")


def _check_regions(regions: tuple[Region, ...]) -> None:
    if not regions:
        raise ConfigError("regions must not be empty: pass at least one Region.")
    keys = [r.key for r in regions]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"regions keys must be unique, got {keys}.")
    total = sum(r.weight for r in regions)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"regions weights must sum to 1, got {total:.6f}: rescale the Region weights.")


def _check_thresholds(thresholds: tuple[float, ...]) -> None:
    if len(thresholds) != len(CONDITIONS) - 1:
        raise ConfigError(
            f"condition_thresholds needs {len(CONDITIONS) - 1} values (VERY_ACTIVE, ACTIVE, MODERATE, QUIET "
            f"lower bounds), got {len(thresholds)}."
        )
    if not all(math.isfinite(t) for t in thresholds) or any(b >= a for a, b in pairwise(thresholds)):
        raise ConfigError(f"condition_thresholds must be strictly decreasing, got {thresholds}.")


def _check_multipliers(multipliers: tuple[float, ...]) -> None:
    if len(multipliers) != len(CONDITIONS):
        raise ConfigError(
            f"position_multipliers needs {len(CONDITIONS)} values (one per MarketCondition), "
            f"got {len(multipliers)}."
        )
    if not all(_is_fraction(m) for m in multipliers):
        raise ConfigError(f"position_multipliers must each be in (0, 1], got {multipliers}.")


def _check_curve(curve: tuple[float, ...]) -> None:
    if len(curve) != HOURS_PER_DAY:
        raise ConfigError(f"activity_curve needs 24 values (one per hour), got {len(curve)}.")
    if not all(_is_fraction(v, low_open=False) for v in curve):
        raise ConfigError(f"activity_curve values must each be in [0, 1], got {curve}.")


def _check_style(style: TradingStyle, where: str) -> None:
    ladder = style.take_profit_ladder
    if not all(math.isfinite(step[0]) and step[0] > 0 for step in ladder):
        raise ConfigError(f"{where}.take_profit_ladder gains must be > 0, got {ladder}.")
    if not all(_is_fraction(step[1]) for step in ladder):
        raise ConfigError(f"{where}.take_profit_ladder sell fractions must be in (0, 1], got {ladder}.")
    if sum(step[1] for step in ladder) > 1.0 + 1e-9:
        raise ConfigError(
            f"{where}.take_profit_ladder sell fractions must sum to <= 1, got {ladder}: "
            "a ladder cannot sell more than the whole position."
        )
    if any(b[0] <= a[0] for a, b in pairwise(ladder)):
        raise ConfigError(f"{where}.take_profit_ladder gains must be strictly increasing, got {ladder}.")
    if not (math.isfinite(style.max_hold_hours) and style.max_hold_hours > 0):
        raise ConfigError(f"{where}.max_hold_hours must be > 0, got {style.max_hold_hours}.")
    if style.stop_loss is not None and not (math.isfinite(style.stop_loss) and 0 < style.stop_loss < 1):
        raise ConfigError(f"{where}.stop_loss must be in (0, 1) or None, got {style.stop_loss}.")


def _check_styles(styles: Mapping[str, TradingStyle]) -> None:
    for name, style in styles.items():
        if style.name != name:
            raise ConfigError(f"styles[{name!r}].name is {style.name!r}: the key and the name must match.")
        _check_style(style, f"styles[{name!r}]")


def _check_stops(stops: Mapping[str, float]) -> None:
    for volatility, stop in stops.items():
        if not (math.isfinite(stop) and 0 < stop < 1):
            raise ConfigError(f"stop_loss_by_volatility[{volatility!r}] must be in (0, 1), got {stop}.")


def _check_references(settings: TimezoneSettings) -> None:
    """Every region's style and volatility class must be defined."""
    for region in settings.regions:
        if region.style not in settings.styles:
            names = sorted(settings.styles)
            raise ConfigError(
                f"regions[{region.key!r}].style {region.style!r} is not in styles: use one of {names}."
                f"{did_you_mean(region.style, names)}"
            )
        needs_stop = settings.styles[region.style].stop_loss is None
        if needs_stop and region.volatility not in settings.stop_loss_by_volatility:
            raise ConfigError(
                f"regions[{region.key!r}].volatility {region.volatility!r} has no stop_loss_by_volatility "
                "entry: add one or give the style its own stop_loss."
            )


@dataclass(frozen=True)
class TradingStyle:
    """How to trade while a region dominates.

    `take_profit_ladder` is a tuple of (gain over entry, fraction of the original position to sell),
    e.g. ((0.05, 0.5), (0.10, 0.5)) sells half at +5 % and the other half at +10 %. `stop_loss` is a
    fraction below entry; None (every default style) takes the stop from the dominant region's volatility,
    as the original did (high 10 %, medium 8 %, low 5 %).
    """

    name: str
    stop_loss: float | None
    take_profit_ladder: tuple[tuple[float, float], ...]
    max_hold_hours: float

    def __post_init__(self) -> None:
        try:
            ladder = tuple((float(gain), float(sell)) for gain, sell in self.take_profit_ladder)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"styles[{self.name!r}].take_profit_ladder must be (gain, sell fraction) pairs, "
                f"got {self.take_profit_ladder!r}: e.g. ((0.05, 0.5), (0.10, 0.5))."
            ) from exc
        object.__setattr__(self, "take_profit_ladder", ladder)
        _check_style(self, f"styles[{self.name!r}]")


@dataclass(frozen=True)
class Region:
    """A trading region: its zone, weight in the global score, peak local hours, style and volatility."""

    key: str
    name: str
    tz: str
    weight: float
    peak_hours: tuple[int, ...]
    style: str
    volatility: Volatility

    def __post_init__(self) -> None:
        _check_region(self)


# --- defaults ---------------------------------------------------------------------------------------------

# Regions, weights, peak hours, styles and volatility classes are the original's (MISSION.md).
DEFAULT_REGIONS: tuple[Region, ...] = (
    Region("seoul", "Seoul", "Asia/Seoul", 0.20, (9, 14, 18, 21), "momentum", "high"),
    Region("tokyo", "Tokyo", "Asia/Tokyo", 0.15, (9, 15, 20), "conservative", "medium"),
    Region("singapore", "Singapore", "Asia/Singapore", 0.10, (10, 16, 21), "institutional", "medium"),
    Region("london", "London", "Europe/London", 0.20, (8, 14, 19), "value", "medium"),
    Region("new_york", "New York", "America/New_York", 0.25, (9, 15, 20), "institutional", "low"),
    Region("los_angeles", "Los Angeles", "America/Los_Angeles", 0.10, (9, 14, 18), "tech", "medium"),
)

# The original's stop losses by volatility class.
DEFAULT_STOP_LOSS_BY_VOLATILITY: Mapping[str, float] = MappingProxyType(
    {"high": 0.10, "medium": 0.08, "low": 0.05}
)

# Ours: the original named the styles but its ladders and holding limits are unknown. Faster styles take
# profit sooner and hold shorter; value waits longest for the largest move.
DEFAULT_STYLES: Mapping[str, TradingStyle] = MappingProxyType(
    {
        "momentum": TradingStyle("momentum", None, ((0.06, 0.5), (0.12, 0.5)), 24.0),
        "conservative": TradingStyle("conservative", None, ((0.04, 0.5), (0.08, 0.5)), 72.0),
        "institutional": TradingStyle("institutional", None, ((0.05, 0.5), (0.10, 0.5)), 48.0),
        "value": TradingStyle("value", None, ((0.08, 0.5), (0.15, 0.5)), 120.0),
        "tech": TradingStyle("tech", None, ((0.07, 0.5), (0.14, 0.5)), 36.0),
    }
)

# Ours: activity by LOCAL hour, the same shape for every region. Night 00-06 is quiet (0.1), the morning
# ramps up (07: 0.3, 08: 0.5), business hours 09-18 are busy (0.7) and the evening 19-23 is half busy (0.5).
DEFAULT_ACTIVITY_CURVE: tuple[float, ...] = (0.1,) * 7 + (0.3, 0.5) + (0.7,) * 10 + (0.5,) * 5

DEFAULT_CONDITION_THRESHOLDS: tuple[float, ...] = (80.0, 60.0, 40.0, 20.0)
DEFAULT_POSITION_MULTIPLIERS: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4, 0.2)
DEFAULT_PEAK_BONUS = 0.3  # a region's peak hours add this to its curve value (capped at 1.0)


@dataclass(frozen=True)
class TimezoneSettings:
    """Everything the timezone analysis depends on; validated on construction.

    `activity_curve` has 24 values in [0, 1]. With `curve_basis="local"` it is indexed by each region's
    local hour and the score is the weighted sum over regions; with `curve_basis="utc"` it is indexed by
    the UTC hour (e.g. from `fit_activity_curve`) and the score is 100 x curve[utc hour].
    """

    regions: tuple[Region, ...] = DEFAULT_REGIONS
    condition_thresholds: tuple[float, ...] = DEFAULT_CONDITION_THRESHOLDS
    position_multipliers: tuple[float, ...] = DEFAULT_POSITION_MULTIPLIERS
    styles: Mapping[str, TradingStyle] = field(default_factory=lambda: DEFAULT_STYLES)
    stop_loss_by_volatility: Mapping[str, float] = field(
        default_factory=lambda: DEFAULT_STOP_LOSS_BY_VOLATILITY
    )
    activity_curve: tuple[float, ...] = DEFAULT_ACTIVITY_CURVE
    curve_basis: CurveBasis = "local"
    peak_bonus: float = DEFAULT_PEAK_BONUS

    def __post_init__(self) -> None:
        # Normalise sequences to tuples and freeze the mappings so a settings object cannot change later.
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "condition_thresholds", tuple(float(v) for v in self.condition_thresholds))
        object.__setattr__(self, "position_multipliers", tuple(float(v) for v in self.position_multipliers))
        object.__setattr__(self, "activity_curve", tuple(float(v) for v in self.activity_curve))
        object.__setattr__(self, "styles", MappingProxyType(dict(self.styles)))
        object.__setattr__(
            self, "stop_loss_by_volatility", MappingProxyType(dict(self.stop_loss_by_volatility))
        )
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first field that is out of range."""
        _check_regions(self.regions)
        _check_thresholds(self.condition_thresholds)
        _check_multipliers(self.position_multipliers)
        _check_curve(self.activity_curve)
        _check_styles(self.styles)
        _check_stops(self.stop_loss_by_volatility)
        _check_references(self)
        if self.curve_basis not in ("local", "utc"):
            raise ConfigError(f"curve_basis must be 'local' or 'utc', got {self.curve_basis!r}.")
        if not (math.isfinite(self.peak_bonus) and 0.0 <= self.peak_bonus <= 1.0):
            raise ConfigError(f"peak_bonus must be in [0, 1], got {self.peak_bonus}.")

    def region(self, key: str) -> Region:
        """The region called `key` (ConfigError with a suggestion if there is none)."""
        for region in self.regions:
            if region.key == key:
                return region
        keys = [r.key for r in self.regions]
        raise ConfigError(f"unknown region {key!r}: use one of {keys}.{did_you_mean(key, keys)}")

    def style(self, name: str) -> TradingStyle:
        """The trading style called `name` (ConfigError with a suggestion if there is none)."""
        if name not in self.styles:
            names = sorted(self.styles)
            raise ConfigError(f"unknown style {name!r}: use one of {names}.{did_you_mean(name, names)}")
        return self.styles[name]

    def stop_loss_for(self, region: Region) -> float:
        """The stop loss while `region` dominates: its style's own stop, else its volatility class's."""
        own = self.style(region.style).stop_loss
        return own if own is not None else self.stop_loss_by_volatility[region.volatility]


# --- bars ---------------------------------------------------------------------------------------------------


def utc_index(index: pd.Index, what: str = "index") -> pd.DatetimeIndex:
    """`index` as a UTC DatetimeIndex; a naive index is refused because its zone is unknown."""
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(
            f"{what} must be a DatetimeIndex, got {type(index).__name__}: index the bars by time."
        )
    if index.tz is None:
        raise DataError(
            f"{what} is naive (no time zone): localise it first, e.g. index.tz_localize('UTC'); "
            "local hours cannot be computed without knowing the zone."
        )
    return index.tz_convert("UTC")


def _describe_spacing(seconds: float) -> str:
    days = seconds / SECONDS_PER_DAY
    count = f"{days:g}"
    return f"{count} day" if count == "1" else f"{count} days"


def require_intraday(index: pd.DatetimeIndex) -> None:
    """Raise DataError when the bars are a day or more apart (every bar would sit at one hour).

    Fewer than two timestamps cannot be measured and pass: a single timestamp is a valid question.
    """
    if len(index) < 2:
        return
    seconds = bar_seconds(index)
    if seconds >= SECONDS_PER_DAY:
        raise DataError(
            f"timezone analysis needs intraday bars (e.g. 1h); got bars every {_describe_spacing(seconds)}: "
            "resample or load hourly data"
        )


def fit_activity_curve(bars: pd.DataFrame, measure: ActivityMeasure = "abs_return") -> tuple[float, ...]:
    """An activity curve by UTC hour measured from `bars` (use it with `curve_basis="utc"`).

    `abs_return`: the mean |close-to-close change| of the bars starting in each UTC hour; `volume`: their
    mean volume. Normalised so the busiest hour is 1.0; hours without bars get 0.
    """
    if measure not in ("abs_return", "volume"):
        raise ConfigError(f"measure must be 'abs_return' or 'volume', got {measure!r}.")
    column = "close" if measure == "abs_return" else "volume"
    if column not in bars.columns:
        raise DataError(f"fit_activity_curve(measure={measure!r}) needs a {column!r} column: add it.")
    index = utc_index(bars.index, "bars.index")
    require_intraday(index)
    values = bars[column].to_numpy(dtype=np.float64)
    if measure == "abs_return":
        values = np.abs(np.diff(values, prepend=np.nan) / np.concatenate(([np.nan], values[:-1])))
    finite = np.isfinite(values)
    hours = index.hour.to_numpy()[finite]
    sums = np.bincount(hours, weights=values[finite], minlength=HOURS_PER_DAY)
    counts = np.bincount(hours, minlength=HOURS_PER_DAY)
    means = np.divide(sums, counts, out=np.zeros(HOURS_PER_DAY), where=counts > 0)
    peak = means.max()
    if not peak > 0:
        raise DataError(
            f"fit_activity_curve found no {measure} activity in the bars: check the {column} column."
        )
    return tuple(float(v) for v in means / peak)
