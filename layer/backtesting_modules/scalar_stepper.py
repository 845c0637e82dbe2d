"""The trade-by-trade loop on Python scalars, for when only a few combinations are still trading.

The vectorised loop pays tens of numpy calls per step whatever the number of combinations, so with one
combination (a single backtest) or the long tail of a sweep (the one combination with 2,000 trades that keeps
the loop alive after the rest finished) that overhead dominates. This module steps the same algorithm with
plain floats, `bisect` on the signal positions and scalar sparse-table queries. Tests hold it to exact
agreement with the vectorised loop and the per-bar reference.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from .bars import BarArrays
from .sim_core import (
    NO_SKIP,
    PHASE_CLOSE,
    PHASE_INTRABAR,
    PHASE_OPEN,
    KellyState,
    SignalIndex,
    SimSettings,
    buy_price,
    entry_fill,
    fees_paid,
    high_table,
    low_table,
    sale_proceeds,
    sell_price,
    units_for_budget,
)
from .trades import ExitReason, OrderSkip

TradeRow = tuple[int, int, int, float, float, float, float, float, float, int, float]
SkipRow = tuple[int, int, int, float]


@dataclass(frozen=True)
class _ScalarBars:
    """Prices as Python lists (scalar indexing of a list is ~5x cheaper than of an array); the sparse tables
    stay arrays (built only when a stop or target is set) because a trade reads only a few cells."""

    bars: BarArrays
    n: int
    opens: list[float]
    closes: list[float]

    @property
    def volumes(self) -> list[float]:  # only the volume participation reads them: built on first use
        return self.bars.memo(("scalar_volumes",), self.bars.volume.tolist)

    @property
    def low_levels(self) -> np.ndarray:
        return low_table(self.bars).table

    @property
    def high_levels(self) -> np.ndarray:  # holds -high: one 'min' search serves both tables
        return high_table(self.bars).table


def _scalar_bars(bars: BarArrays) -> _ScalarBars:
    def build() -> _ScalarBars:
        return _ScalarBars(
            bars=bars,
            n=len(bars),
            opens=bars.open.tolist(),
            closes=bars.close.tolist(),
        )

    return bars.memo(("scalar_bars",), build)


def _next_signal(keys: list[int], n: int, combo: int, start: int) -> int:
    """First signal bar >= start in `combo`'s column (n when none); keys end with a sentinel."""
    value = keys[bisect.bisect_left(keys, combo * n + min(start, n))]
    return value - combo * n if value // n == combo else n


def _first_touch(levels: np.ndarray, n: int, start: int, stop: int, signed_level: float) -> int:
    """First bar in [start, stop] whose signed value is <= signed_level, or -1 when none."""
    if start > stop:
        return -1
    k = (stop - start + 1).bit_length() - 1
    if min(levels[k, start], levels[k, stop - (1 << k) + 1]) > signed_level:
        return -1
    pos = start
    for k in range(levels.shape[0] - 1, -1, -1):
        width = 1 << k
        if pos + width <= n and levels[k, pos] > signed_level:
            pos += width
    return pos


def _key(bar: int, phase: int, priority: int) -> int:
    return bar * 32 + phase * 8 + priority


class ScalarStepper:
    """Runs remaining combinations to completion, sharing cash, Kelly state and search positions.

    Entries the exchange order rules skip are collected in `skipped` (combination, bar, reason, order
    value), exactly as the vectorised loop records them.
    """

    def __init__(
        self,
        bars: BarArrays,
        entry_index: SignalIndex,
        exit_index: SignalIndex,
        settings: SimSettings,
        cash: np.ndarray,
        kelly: KellyState,
        search_from: np.ndarray,
    ) -> None:
        self.b = _scalar_bars(bars)
        self.entry_keys = entry_index.flat.tolist()
        self.exit_keys = exit_index.flat.tolist()
        self.s = settings
        self.cash, self.kelly, self.search_from = cash, kelly, search_from
        self.skipped: list[SkipRow] = []

    def run(self, combo: int) -> list[TradeRow]:
        rows: list[TradeRow] = []
        while (row := self._step(combo)) is not None:
            if row[5] > 0:
                rows.append(row)
            if row[9] == ExitReason.END_OF_DATA or row[5] <= 0:
                break
        return rows

    def _exit_candidates(self, combo: int, entry_bar: int, entry_price: float) -> list[tuple[int, float]]:
        b, s = self.b, self.s
        n, shift = b.n, 1 if s.fill_next_open else 0
        end_phase = PHASE_OPEN if s.fill_next_open else PHASE_CLOSE
        prices = b.opens if s.fill_next_open else b.closes
        fill_bar = _next_signal(self.exit_keys, n, combo, entry_bar + 1 - shift) + shift
        candidates = [(_key(n - 1, PHASE_CLOSE, ExitReason.END_OF_DATA), b.closes[n - 1])]
        if fill_bar <= n - 1:
            candidates.append((_key(fill_bar, end_phase, ExitReason.SIGNAL), prices[fill_bar]))
        horizon = min(n - 1, fill_bar)
        if s.max_hold is not None and entry_bar + s.max_hold <= n - 1:
            hold_bar = entry_bar + s.max_hold
            candidates.append((_key(hold_bar, end_phase, ExitReason.MAX_HOLD), prices[hold_bar]))
            horizon = min(horizon, hold_bar)
        if s.stop_loss is not None:
            level = entry_price * (1.0 - s.stop_loss)
            bar = _first_touch(b.low_levels, n, entry_bar + 1, horizon, level)
            if bar >= 0:
                gap = b.opens[bar] <= level
                phase = PHASE_OPEN if gap else PHASE_INTRABAR
                candidates.append((_key(bar, phase, ExitReason.STOP_LOSS), b.opens[bar] if gap else level))
        if s.take_profit is not None:
            level = entry_price * (1.0 + s.take_profit)
            bar = _first_touch(b.high_levels, n, entry_bar + 1, horizon, -level)
            if bar >= 0:
                gap = b.opens[bar] >= level
                phase = PHASE_OPEN if gap else PHASE_INTRABAR
                candidates.append((_key(bar, phase, ExitReason.TAKE_PROFIT), b.opens[bar] if gap else level))
        return candidates

    def _budget(self, combo: int) -> float:
        s, cash = self.s, float(self.cash[combo])
        if s.sizing == "fixed":
            return min(s.fixed_amount, cash)
        if s.sizing == "percent":
            return min(s.size_value * cash, cash)
        k = self.kelly
        if k.trades[combo] < s.kelly_min_trades:
            fraction = min(s.size_value, 1.0)
        else:
            f_star = k.fraction_of(combo)
            fraction = min(max(f_star * s.kelly_scale, s.kelly_floor), s.kelly_max_fraction)
        return min(fraction * cash, cash)

    def _step(self, combo: int) -> TradeRow | None:
        """One trade of `combo`; None when it is done (no signal, no cash, below the minimum order value)."""
        b, s = self.b, self.s
        if s.ticks is None and not s.sizing_rules:  # no order rules: inline, this runs once per trade
            signal = _next_signal(self.entry_keys, b.n, combo, int(self.search_from[combo]))
            if signal >= b.n or self.cash[combo] <= 0:
                return None
            entry_bar = signal + (1 if s.fill_next_open else 0)
            entry_price = b.opens[entry_bar] if s.fill_next_open else b.closes[entry_bar]
            budget = self._budget(combo)
            size, spent, filled = units_for_budget(budget, entry_price, s.cost_rate), budget, 1.0
        elif (entry := self._next_entry(combo)) is not None:
            entry_bar, entry_price, budget, size, spent, filled = entry
        else:
            return None
        key, exit_price = min(self._exit_candidates(combo, entry_bar, entry_price))
        exit_bar, reason = key // 32, key % 8
        if s.ticks is not None:
            exit_price = sell_price(s, exit_price)
        f = s.cost_rate
        pnl = sale_proceeds(size, exit_price, f) - spent
        ret = pnl / spent if budget > 0 else 0.0
        self.cash[combo] += pnl
        if budget > 0:
            self.kelly.record(combo, ret)
        self.search_from[combo] = exit_bar
        fees = fees_paid(size, entry_price, exit_price, f)
        return (combo, entry_bar, exit_bar, entry_price, exit_price, size, fees, pnl, ret, reason, filled)

    def _next_entry(self, combo: int) -> tuple[int, float, float, float, float, float] | None:
        """The next entry that fills: (bar, price, budget, units, cash spent, filled fraction), or None.

        Entries the order rules skip are recorded on the way, as `simulation._skip_entries` records them:
        one without volume alone (the search goes on), one below the minimum order value with every later
        entry signal (no trade can change the budget any more: the combination is done).
        """
        b, s = self.b, self.s
        shift = 1 if s.fill_next_open else 0
        while True:
            signal = _next_signal(self.entry_keys, b.n, combo, int(self.search_from[combo]))
            if signal >= b.n or self.cash[combo] <= 0:
                return None
            entry_bar = signal + shift
            entry_price = b.opens[entry_bar] if s.fill_next_open else b.closes[entry_bar]
            if s.ticks is not None:
                entry_price = buy_price(s, entry_price)
            budget = self._budget(combo)
            if not (s.sizing_rules and budget > 0):
                return (
                    entry_bar,
                    entry_price,
                    budget,
                    units_for_budget(budget, entry_price, s.cost_rate),
                    budget,
                    1.0,
                )
            size, spent, filled, skip = entry_fill(s, budget, entry_price, b.volumes[entry_bar])
            if skip == NO_SKIP:
                return entry_bar, entry_price, budget, size, spent, filled
            value = budget / (1.0 + s.cost_rate)
            if skip == OrderSkip.NO_VOLUME:
                self.skipped.append((combo, entry_bar, skip, value))
                self.search_from[combo] = signal + 1
                continue
            keys, i = self.entry_keys, bisect.bisect_left(self.entry_keys, combo * b.n + signal)
            while keys[i] < (combo + 1) * b.n:  # the sentinel past every column ends the loop
                self.skipped.append((combo, keys[i] - combo * b.n + shift, skip, value))
                i += 1
            return None
