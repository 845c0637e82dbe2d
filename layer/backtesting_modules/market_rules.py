"""Exchange order rules as data: price tick tables, the presets that bundle them, and tick rounding.

A tick table is a list of price bands (lower bound, tick); a fill price is moved onto the band's tick grid,
buys up to the next tick and sells down, so a simulated fill never gets a better price than the exchange
would allow. The rules themselves (minimum order value, volume participation) are applied by the
simulators through `sim_core`; this module holds the data, the pure arithmetic and the report notes on what
the rules did in a run (`RuleTally`, `render_rule_notes`).

Upbit KRW tick table: Upbit developer center, "원화(KRW) 마켓 주문 가격 단위 / 최소 주문 가능 금액",
https://docs.upbit.com/kr/docs/krw-market-info (page updated 2026-05-04), policy in force since 2025-07-31
(changelog https://docs.upbit.com/kr/changelog/krw_tick_unit_change_250731). The bands from 100 KRW up
were read on that page; the bands below 100 KRW agree with independent implementations citing the same
changelog (see docs/engine.md, "Exchange order rules").
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pandas as pd

from .errors import ConfigError, did_you_mean

# A price within this relative distance of a tick is on that tick: floats such as 0.3 or 10,000.0 / 10 are
# not exact, and without the slack 10,000.0 could round up to 10,010.
TICK_EPSILON = 1e-9

# (lower bound of the band, tick inside the band), in KRW, as exact decimals, ascending.
UPBIT_KRW_TICK_BANDS: tuple[tuple[str, str], ...] = (
    ("0", "0.00000001"),
    ("0.00001", "0.0000001"),
    ("0.0001", "0.000001"),
    ("0.001", "0.00001"),
    ("0.01", "0.0001"),
    ("0.1", "0.001"),
    ("1", "0.01"),
    ("10", "0.1"),
    ("100", "1"),
    ("1000", "1"),
    ("5000", "5"),
    ("10000", "10"),
    ("50000", "50"),
    ("100000", "100"),
    ("500000", "500"),
    ("1000000", "1000"),
    ("2000000", "1000"),
)
UPBIT_KRW_SOURCE = (
    "Upbit developer center, 원화(KRW) 마켓 주문 가격 단위 / 최소 주문 가능 금액, "
    "https://docs.upbit.com/kr/docs/krw-market-info (updated 2026-05-04; policy since 2025-07-31)"
)


@dataclass(frozen=True, eq=False)
class TickTable:
    """Price bands and their ticks. `tick = num / den` exactly (den a power of ten), so a rounded price is
    computed as `k * num / den`: one correctly rounded division, the float nearest to k exact ticks."""

    name: str
    source: str
    bands: tuple[tuple[str, str], ...]
    lower: np.ndarray = field(init=False, repr=False)
    tick: np.ndarray = field(init=False, repr=False)
    num: np.ndarray = field(init=False, repr=False)
    den: np.ndarray = field(init=False, repr=False)
    # The same columns as Python tuples, for the scalar simulators (cheaper to index than numpy arrays).
    bounds: tuple[float, ...] = field(init=False, repr=False)
    rows: tuple[tuple[float, float, float], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ticks = [Fraction(t) for _, t in self.bands]
        columns = {
            "lower": np.asarray([float(Fraction(lo)) for lo, _ in self.bands]),
            "tick": np.asarray([float(t) for t in ticks]),
            "num": np.asarray([float(t.numerator) for t in ticks]),
            "den": np.asarray([float(t.denominator) for t in ticks]),
        }
        if np.any(np.diff(columns["lower"]) <= 0) or columns["lower"][0] != 0:
            raise ConfigError(f"tick table {self.name!r}: band lower bounds must start at 0 and ascend.")
        for name, values in columns.items():
            object.__setattr__(self, name, values)
        rows = tuple(zip(*(columns[k].tolist() for k in ("tick", "num", "den")), strict=True))
        object.__setattr__(self, "bounds", tuple(columns["lower"].tolist()))
        object.__setattr__(self, "rows", rows)


TICK_TABLES: dict[str, TickTable] = {
    "upbit_krw": TickTable("upbit_krw", UPBIT_KRW_SOURCE, UPBIT_KRW_TICK_BANDS),
}


@dataclass(frozen=True)
class OrderRules:
    """The exchange order rules in force for a run (every field None: no rules)."""

    min_order_value: float | None = None
    ticks: TickTable | None = None
    max_participation: float | None = None

    @property
    def active(self) -> bool:
        return (
            self.min_order_value is not None or self.ticks is not None or self.max_participation is not None
        )


# `market_rules` presets: the values they fill in where the caller left a field None. Upbit KRW: 5,000 KRW
# minimum order (the page above, second section: 최소 주문 가능 금액); the 10 % participation is this
# project's liquidity assumption, not an Upbit rule (a larger share of a bar's volume would move the price).
PRESETS: dict[str, dict[str, float | str]] = {
    "upbit_krw": {"min_order_value": 5000.0, "tick_table": "upbit_krw", "max_volume_participation": 0.1},
}


def preset_defaults(name: str | None) -> dict[str, float | str]:
    """The field defaults of preset `name` ({} for None); ConfigError naming the known presets otherwise."""
    if name is None:
        return {}
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(
            f"market_rules={name!r} is not a known preset.{did_you_mean(str(name).lower(), PRESETS)} "
            f"Known presets: {sorted(PRESETS)}; None applies no exchange rules."
        )
    return PRESETS[name]


def tick_table(name: str) -> TickTable:
    if not isinstance(name, str) or name not in TICK_TABLES:
        raise ConfigError(
            f"tick_table={name!r} is not a known tick table.{did_you_mean(str(name).lower(), TICK_TABLES)} "
            f"Known tables: {sorted(TICK_TABLES)}; None keeps prices as they are."
        )
    return TICK_TABLES[name]


def round_prices(prices: np.ndarray, table: TickTable, *, up: bool) -> np.ndarray:
    """Prices moved onto their band's tick grid: up (buys) or down (sells); prices on a tick stay."""
    prices = np.asarray(prices, dtype=np.float64)
    band = np.maximum(np.searchsorted(table.lower, prices, side="right") - 1, 0)
    units = prices / table.tick[band]
    steps = np.ceil(units * (1.0 - TICK_EPSILON)) if up else np.floor(units * (1.0 + TICK_EPSILON))
    return steps * table.num[band] / table.den[band]


def round_price(price: float, table: TickTable, *, up: bool) -> float:
    """`round_prices` for one Python float, with the same operations in the same order (same result)."""
    band = max(bisect.bisect_right(table.bounds, price) - 1, 0)
    tick, num, den = table.rows[band]
    units = price / tick
    steps = math.ceil(units * (1.0 - TICK_EPSILON)) if up else math.floor(units * (1.0 + TICK_EPSILON))
    return float(steps) * num / den


@dataclass
class RuleTally:
    """What the order rules did in a run (or a sweep, block by block): entries filled and partially filled,
    and the entries skipped per `OrderSkip` name with the times of the first few."""

    entries: int = 0
    partial: int = 0
    partial_filled: float = 0.0  # sum of the partial fills' filled fractions
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[pd.Timestamp]] = field(default_factory=dict)

    def add(self, filled: np.ndarray, skipped: pd.DataFrame) -> RuleTally:
        """Count trades' filled fractions and skipped entries (`time` and `reason` columns)."""
        partial = filled < 1.0
        self.entries += int(filled.shape[0])
        self.partial += int(np.count_nonzero(partial))
        self.partial_filled += float(filled[partial].sum())
        if skipped.empty:
            return self
        for reason, times in skipped.groupby("reason", sort=False)["time"]:
            self.skipped[str(reason)] = self.skipped.get(str(reason), 0) + len(times)
            shown = self.examples.setdefault(str(reason), [])
            shown.extend(list(times[: max(0, 5 - len(shown))]))
        return self


def render_rule_notes(
    rules: OrderRules, preset: str | None, tally: RuleTally, *, combos: int = 1
) -> list[str]:
    """Report notes on the order rules of a run: which are in force, the entries they skipped and the
    partial fills. `combos` > 1: the counts are over that many parameter combinations."""
    if not rules.active:
        return []
    parts = []
    if rules.min_order_value is not None:
        parts.append(f"minimum order value {rules.min_order_value:,.8g}")
    if rules.ticks is not None:
        parts.append(f"{rules.ticks.name} price ticks (buys round up, sells down)")
    if rules.max_participation is not None:
        parts.append(f"an entry fills at most {rules.max_participation * 100:.4g}% of its bar's volume")
    named = f" (market_rules={preset})" if preset else ""
    notes = [f"exchange order rules{named}: {'; '.join(parts)}."]
    scope = f" over {combos} combinations" if combos > 1 else ""
    for reason, what in (
        ("MIN_ORDER_VALUE", "entries not placed: order value after fees below the minimum"),
        ("NO_VOLUME", "entries not filled: no volume on the fill bar"),
    ):
        count = tally.skipped.get(reason, 0)
        if count:
            shown = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in tally.examples[reason])
            notes.append(f"{count} {what}{scope} ({shown}{', …' if count > 5 else ''}).")
    if tally.partial:
        notes.append(
            f"{tally.partial} of {tally.entries} entries partially filled{scope} "
            f"(max_volume_participation); those filled {tally.partial_filled / tally.partial:.0%} of their "
            "order on average."
        )
    return notes
