"""Building blocks of the simulators: settings, fee arithmetic, the exchange order rules applied to an
entry (tick rounding, minimum order value, volume participation), event ordering, and the two indexes that
make the trade-by-trade loop fast (a sparse table over lows/highs and sorted signal positions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from .bars import BarArrays
from .config import SizingMethod, StrategyConfig
from .market_rules import TickTable, round_price, round_prices
from .trades import OrderSkip

# Events inside one bar are ordered: the open, then the intrabar path (stops and targets), then the close.
PHASE_OPEN, PHASE_INTRABAR, PHASE_CLOSE = 0, 1, 2
NO_EVENT = np.iinfo(np.int64).max


@dataclass(frozen=True)
class SimSettings:
    """The simulator's view of a `StrategyConfig` (plain numbers, validated once)."""

    fill_next_open: bool
    cost_rate: float
    stop_loss: float | None
    take_profit: float | None
    max_hold: int | None
    initial_cash: float
    sizing: SizingMethod
    size_value: float
    kelly_scale: float
    kelly_min_trades: int
    kelly_max_fraction: float
    kelly_floor: float
    # Exchange order rules (`StrategyConfig.order_rules`); None: off.
    min_order_value: float | None = None
    ticks: TickTable | None = None
    max_participation: float | None = None

    @classmethod
    def from_config(cls, config: StrategyConfig) -> SimSettings:
        config.validate()
        rules = config.order_rules()
        return cls(
            fill_next_open=config.fill == "next_open",
            cost_rate=config.cost_rate,
            stop_loss=config.stop_loss_pct,
            take_profit=config.take_profit_pct,
            max_hold=config.max_holding_bars,
            initial_cash=float(config.initial_cash),
            sizing=config.position_size_method,
            size_value=float(config.position_size_value),
            kelly_scale=config.kelly_scale,
            kelly_min_trades=config.kelly_min_trades,
            kelly_max_fraction=config.kelly_max_fraction,
            kelly_floor=config.kelly_floor,
            min_order_value=rules.min_order_value,
            ticks=rules.ticks,
            max_participation=rules.max_participation,
        )

    @property
    def sizing_rules(self) -> bool:
        """True when the minimum order value or the volume participation may change an entry's fill."""
        return self.min_order_value is not None or self.max_participation is not None

    @property
    def fixed_amount(self) -> float:
        """The currency amount of ``fixed`` sizing: values in (0, 1] are a fraction of initial cash."""
        return self.size_value * self.initial_cash if self.size_value <= 1.0 else self.size_value


# Fee convention of every fill, with f = `SimSettings.cost_rate` (commission + slippage on the notional):
# a buy spends its budget on units and the fee together, units = budget / (price × (1 + f)); a sale
# receives proceeds = units × price × (1 - f). The helpers below are plain arithmetic, so they serve Python
# floats and numpy arrays alike, and they keep one operation order so every simulator rounds identically.
FloatOrArray = TypeVar("FloatOrArray", float, np.ndarray)


def units_for_budget(budget: FloatOrArray, price: FloatOrArray, cost_rate: float) -> FloatOrArray:
    """Units a budget buys at `price` with the fee paid on top: budget / (price × (1 + f))."""
    return budget / (price * (1.0 + cost_rate))


def entry_cost(units: FloatOrArray, price: FloatOrArray, cost_rate: float) -> FloatOrArray:
    """Cash an entry of `units` at `price` costs, fee included: units × price × (1 + f)."""
    return units * price * (1.0 + cost_rate)


def sale_proceeds(units: FloatOrArray, price: FloatOrArray, cost_rate: float) -> FloatOrArray:
    """Cash a sale of `units` at `price` returns, net of the fee: units × price × (1 - f)."""
    return units * price * (1.0 - cost_rate)


def fees_paid(
    units: FloatOrArray, entry_price: FloatOrArray, exit_price: FloatOrArray, cost_rate: float
) -> FloatOrArray:
    """Fees of a round trip of `units` (both fills): units × f × (entry price + exit price)."""
    return units * cost_rate * (entry_price + exit_price)


def buy_price(settings: SimSettings, price: float) -> float:
    """An entry's fill price: on the tick at or above `price` when a tick table is set."""
    return price if settings.ticks is None else round_price(price, settings.ticks, up=True)


def sell_price(settings: SimSettings, price: float) -> float:
    """An exit's fill price: on the tick at or below `price` when a tick table is set."""
    return price if settings.ticks is None else round_price(price, settings.ticks, up=False)


def buy_prices(settings: SimSettings, prices: np.ndarray) -> np.ndarray:
    return prices if settings.ticks is None else round_prices(prices, settings.ticks, up=True)


def sell_prices(settings: SimSettings, prices: np.ndarray) -> np.ndarray:
    return prices if settings.ticks is None else round_prices(prices, settings.ticks, up=False)


# An entry under the order rules, given its budget (fees included), fill price and the fill bar's volume:
# - order value = budget / (1 + f), the quote value of the units; below `min_order_value` the order is not
#   placed (OrderSkip.MIN_ORDER_VALUE);
# - units = units_for_budget(...), capped at `max_participation` × volume; a capped fill is partial: it costs
#   entry_cost(cap, ...), the rest of the budget stays cash, filled fraction = cap / units wanted; a cap of
#   zero (no volume) fills nothing (OrderSkip.NO_VOLUME).
# A skipped entry has units and cost 0. The scalar and array versions keep one operation order.
NO_SKIP = -1


def entry_fill(
    settings: SimSettings, budget: float, price: float, volume: float
) -> tuple[float, float, float, int]:
    """Units, cash spent, filled fraction and skip code (NO_SKIP or an `OrderSkip`) of one entry."""
    f = settings.cost_rate
    if settings.min_order_value is not None and budget / (1.0 + f) < settings.min_order_value:
        return 0.0, 0.0, 0.0, int(OrderSkip.MIN_ORDER_VALUE)
    wanted = units_for_budget(budget, price, f)
    if settings.max_participation is None or wanted <= settings.max_participation * volume:
        return wanted, budget, 1.0, NO_SKIP
    cap = settings.max_participation * volume
    if cap <= 0:
        return 0.0, 0.0, 0.0, int(OrderSkip.NO_VOLUME)
    return cap, entry_cost(cap, price, f), cap / wanted, NO_SKIP


def entry_fills(
    settings: SimSettings, budget: np.ndarray, price: np.ndarray, volume: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`entry_fill` for arrays of entries (entries with a budget of 0 come out unskipped, with 0 units)."""
    f = settings.cost_rate
    wanted = units_for_budget(budget, price, f)
    units, spent, filled = wanted, budget, np.ones_like(wanted)
    skip = np.full(budget.shape, NO_SKIP, dtype=np.int8)
    if settings.max_participation is not None:
        cap = settings.max_participation * volume
        partial = wanted > cap
        units = np.where(partial, cap, wanted)
        spent = np.where(partial, entry_cost(cap, price, f), budget)
        filled = np.where(partial, np.divide(cap, wanted, out=np.zeros_like(cap), where=partial), 1.0)
        skip[partial & (cap <= 0)] = OrderSkip.NO_VOLUME
    if settings.min_order_value is not None:
        skip[(budget > 0) & (budget / (1.0 + f) < settings.min_order_value)] = OrderSkip.MIN_ORDER_VALUE
    skipped = skip != NO_SKIP
    return np.where(skipped, 0.0, units), np.where(skipped, 0.0, spent), np.where(skipped, 0.0, filled), skip


class SparseTable:
    """Range minimum (or maximum) queries in O(1) and first-passage searches in O(log n)."""

    def __init__(self, values: np.ndarray, *, maximum: bool) -> None:
        self.maximum = maximum
        self.n = int(values.shape[0])
        sign = -1.0 if maximum else 1.0
        depth = max(1, self.n.bit_length())
        # Signed so that one min-table serves both: max(x) == -min(-x).
        table = np.empty((depth, self.n))
        np.multiply(values, sign, out=table[0])
        span = 1
        for k in range(1, depth):
            prev, row = table[k - 1], table[k]
            np.minimum(prev[: self.n - span], prev[span:], out=row[: self.n - span])
            row[self.n - span :] = prev[self.n - span :]
            span *= 2
        self.table = table
        self.sign = sign

    def range_extreme(self, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        """min (or max) of values[start..stop] inclusive; requires start <= stop."""
        length = stop - start + 1
        k = np.floor(np.log2(length)).astype(np.intp)
        left = self.table[k, start]
        right = self.table[k, stop - (1 << k) + 1]
        return self.sign * np.minimum(left, right)

    def first_passage(self, start: np.ndarray, level: np.ndarray) -> np.ndarray:
        """First index i >= start with values[i] <= level (>= level for a max table); n if none."""
        pos = start.astype(np.intp).copy()
        signed_level = self.sign * level
        for k in range(self.table.shape[0] - 1, -1, -1):
            width = 1 << k
            inside = pos + width <= self.n
            probe = np.where(inside, pos, 0)
            jump = inside & (self.table[k, probe] > signed_level)
            pos += np.where(jump, width, 0)
        return pos


def low_table(bars: BarArrays) -> SparseTable:
    """Range-minimum table over lows (stop losses), built once per bar series."""
    return bars.memo(("sparse_low",), lambda: SparseTable(bars.low, maximum=False))


def high_table(bars: BarArrays) -> SparseTable:
    """Range-maximum table over highs (take profits), built once per bar series."""
    return bars.memo(("sparse_high",), lambda: SparseTable(bars.high, maximum=True))


def signal_keys(signals: np.ndarray, column_offset: int = 0) -> np.ndarray:
    """Sorted keys ``column * n_bars + bar`` of the True cells of an (n_bars, m) block of signals."""
    n = signals.shape[0]
    # Ravelling the transpose enumerates cells column by column, so the keys come out already sorted
    # (and strategies return transposed views, for which this is a plain copy).
    keys = np.flatnonzero(signals.T)
    if column_offset:
        keys += column_offset * n
    return keys.astype(np.int64, copy=False)


def allowed_entry_keys(
    entries: np.ndarray, exits: np.ndarray, entry_mask: np.ndarray | None, column_offset: int = 0
) -> np.ndarray:
    """Keys of fillable entries: not cancelled by an exit on the same bar, allowed by the mask, not last."""
    allowed = entries & ~exits
    if entry_mask is not None:
        allowed &= entry_mask[:, None]
    allowed[-1] = False  # nothing left to hold after the last bar
    return signal_keys(allowed, column_offset)


class SignalIndex:
    """Signal positions of many combinations, for 'next signal at or after bar i in column k' queries."""

    def __init__(self, n_bars: int, n_combos: int, keys: list[np.ndarray]) -> None:
        self.n = n_bars
        # A sentinel past every column keeps each search in bounds.
        self.flat = np.concatenate([*keys, np.asarray([n_bars * n_combos], dtype=np.int64)])

    def next_at_or_after(self, combos: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Per combination, the first signal bar >= start (n_bars when none)."""
        keys = combos * self.n + np.minimum(start, self.n)
        values = self.flat[np.searchsorted(self.flat, keys)]
        hit = np.full(combos.shape, self.n, dtype=np.int64)
        same_column = values // self.n == combos
        hit[same_column] = values[same_column] % self.n
        return hit


def event_key(bar: np.ndarray | int, phase: int | np.ndarray, priority: int) -> np.ndarray:
    """Sortable key of an exit event: bar, then phase inside the bar, then the reason's priority."""
    return np.asarray(bar * 32 + phase * 8 + priority, dtype=np.int64)


@dataclass
class KellyState:
    """Per-combination sums of closed-trade returns, enough to compute Kelly f* at each entry."""

    trades: np.ndarray
    wins: np.ndarray
    win_sum: np.ndarray
    loss_sum: np.ndarray

    @classmethod
    def zeros(cls, m: int) -> KellyState:
        return cls(np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m))

    def update(self, combos: np.ndarray, returns: np.ndarray) -> None:
        win = returns > 0
        self.trades[combos] += 1
        self.wins[combos] += win
        self.win_sum[combos] += np.where(win, returns, 0.0)
        self.loss_sum[combos] += np.where(win, 0.0, returns)

    def record(self, combo: int, ret: float) -> None:
        """`update` for one trade, on scalars (the scalar stepper's path)."""
        self.trades[combo] += 1
        if ret > 0:
            self.wins[combo] += 1
            self.win_sum[combo] += ret
        else:
            self.loss_sum[combo] += ret

    def fraction_of(self, combo: int) -> float:
        """`fraction` for one combination, on scalars (numpy calls cost more than the arithmetic here)."""
        trades, wins = float(self.trades[combo]), float(self.wins[combo])
        if wins == 0:
            return -1.0
        p = wins / trades
        if trades == wins:
            return p
        avg_win = float(self.win_sum[combo]) / wins
        avg_loss = -float(self.loss_sum[combo]) / (trades - wins)
        return min(max(p - (1.0 - p) * avg_loss / avg_win, -1.0), 1.0)

    def fraction(self, combos: np.ndarray) -> np.ndarray:
        """Kelly f* = p - q / b from the closed trades so far; see metrics.kelly_fraction."""
        trades = self.trades[combos]
        wins = self.wins[combos]
        losses = trades - wins
        p = np.divide(wins, trades, out=np.zeros_like(wins), where=trades > 0)
        avg_win = np.divide(self.win_sum[combos], wins, out=np.zeros_like(wins), where=wins > 0)
        avg_loss = np.divide(-self.loss_sum[combos], losses, out=np.zeros_like(wins), where=losses > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            kelly = p - (1.0 - p) * avg_loss / avg_win
        kelly = np.where(losses == 0, p, kelly)
        kelly = np.where(wins == 0, -1.0, kelly)
        return np.clip(kelly, -1.0, 1.0)
