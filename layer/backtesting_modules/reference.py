"""A plain per-bar event loop implementing the same trading rules as `simulation.simulate`, one combination.

It is the executable specification: slow, obvious, and independent of the vectorised code. Tests check that
both agree trade for trade; `benchmarks/engine.py` uses it as the baseline. It deliberately writes its fee
arithmetic out instead of sharing the engine's fee helpers (`sim_core.units_for_budget` and co.), so that a
mistake in those helpers cannot hide from the cross-check; likewise the exchange order rules (tick rounding,
minimum order value, volume participation) are written out here again (`_on_tick`, `_order`), sharing only
the tick table's data with the engine.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .bars import BarArrays
from .market_rules import TICK_EPSILON
from .rules import intrabar_exit, position_budget
from .sim_core import SimSettings
from .trades import ExitReason, OrderSkip, TradeArrays

# A skipped entry: (bar it would have filled on, `OrderSkip` code, order value).
SkipRecord = tuple[int, int, float]


def _on_tick(settings: SimSettings, price: float, *, up: bool) -> float:
    """`price` on its band's tick grid, up for a buy and down for a sale (unchanged without a tick table)."""
    if settings.ticks is None:
        return price
    tick = Fraction(0)
    for lower, band_tick in settings.ticks.bands:  # ascending: the last band whose lower bound <= price
        if price >= float(Fraction(lower)):
            tick = Fraction(band_tick)
    units = price / float(tick)
    steps = math.ceil(units * (1 - TICK_EPSILON)) if up else math.floor(units * (1 + TICK_EPSILON))
    return float(steps * tick)


def _order(
    settings: SimSettings, budget: float, price: float, volume: float
) -> tuple[float, float, float] | OrderSkip:
    """(units, cash paid, filled fraction) of an entry with this budget, or why the order is not filled."""
    f = settings.cost_rate
    if settings.min_order_value is not None and budget / (1 + f) < settings.min_order_value:
        return OrderSkip.MIN_ORDER_VALUE
    units = budget / (price * (1 + f))
    if settings.max_participation is not None and units > settings.max_participation * volume:
        most = settings.max_participation * volume
        if most <= 0:
            return OrderSkip.NO_VOLUME
        return most, most * price * (1 + f), most / units
    return units, budget, 1.0


def _enter(
    settings: SimSettings,
    t: int,
    price: float,
    budget: float,
    volume: float,
    skipped: list[SkipRecord] | None,
) -> dict[str, float] | None:
    """The position an entry at `price` on bar `t` opens, or None (recorded in `skipped`) under the rules."""
    price = _on_tick(settings, price, up=True)  # a buy: on the tick at or above
    order = _order(settings, budget, price, volume)
    if isinstance(order, OrderSkip):
        if skipped is not None:
            skipped.append((t, int(order), budget / (1 + settings.cost_rate)))
        return None
    size, paid, filled = order
    return {"bar": t, "price": price, "size": size, "budget": paid, "filled": filled}


def reference_backtest(  # noqa: C901, PLR0912 - a deliberately literal transcription of the rules
    bars: BarArrays,
    entries: np.ndarray,
    exits: np.ndarray,
    settings: SimSettings,
    entry_mask: np.ndarray | None = None,
    skipped: list[SkipRecord] | None = None,
) -> TradeArrays:
    """Trades of one combination (`entries`, `exits` are 1-D boolean arrays). Entries the order rules skip
    are appended to `skipped` when a list is given.

    It is one function on purpose: the independent cross-check is written out plainly, every rule in the order
    a bar applies it, so it can be read against the rules line by line without following helpers (but for the
    exchange order rules: `_enter` places an entry under them the same way for both fill conventions).
    """
    n = len(bars)
    f = settings.cost_rate
    next_open = settings.fill_next_open
    cash = settings.initial_cash
    closed: list[float] = []
    rows: list[tuple[float, ...]] = []
    position: dict[str, float] | None = None
    pending_entry = pending_exit = False
    for t in range(n):
        o, h, lo, c = bars.open[t], bars.high[t], bars.low[t], bars.close[t]
        exit_fill: tuple[float, ExitReason] | None = None
        if position is not None and next_open and pending_exit:
            exit_fill = (o, ExitReason.SIGNAL)
        held_long_enough = position is not None and t - position["bar"] >= (settings.max_hold or n + 1)
        if position is not None and exit_fill is None and next_open and held_long_enough:
            exit_fill = (o, ExitReason.MAX_HOLD)
        if position is not None and exit_fill is None and t > position["bar"]:
            exit_fill = intrabar_exit(settings, o, lo, h, position["price"])
        if position is not None and exit_fill is None and not next_open:
            if exits[t] and t > position["bar"]:
                exit_fill = (c, ExitReason.SIGNAL)
            elif settings.max_hold is not None and t - position["bar"] >= settings.max_hold:
                exit_fill = (c, ExitReason.MAX_HOLD)
        if position is not None and exit_fill is None and t == n - 1:
            exit_fill = (c, ExitReason.END_OF_DATA)
        if position is not None and exit_fill is not None:
            price, reason = exit_fill
            price = _on_tick(settings, price, up=False)  # a sale: on the tick at or below
            size, budget = position["size"], position["budget"]
            pnl = size * price * (1 - f) - budget
            rows.append(
                (
                    position["bar"],
                    t,
                    position["price"],
                    price,
                    size,
                    size * f * (position["price"] + price),
                    pnl,
                    pnl / budget,
                    int(reason),
                    position["filled"],
                )
            )
            cash += pnl
            closed.append(pnl / budget)
            position = None
        pending_exit = False
        if next_open and pending_entry and position is None:
            budget = position_budget(settings, cash, closed)
            if budget > 0:
                position = _enter(settings, t, o, budget, bars.volume[t], skipped)
                if position is not None and t == n - 1:
                    price, paid = position["price"], position["budget"]
                    sale = _on_tick(settings, c, up=False)
                    pnl = position["size"] * sale * (1 - f) - paid
                    rows.append(
                        (
                            t,
                            t,
                            price,
                            sale,
                            position["size"],
                            position["size"] * f * (price + sale),
                            pnl,
                            pnl / paid,
                            int(ExitReason.END_OF_DATA),
                            position["filled"],
                        )
                    )
                    cash += pnl
                    position = None
        pending_entry = False
        allowed = bool(entries[t]) and not bool(exits[t]) and t < n - 1
        if entry_mask is not None:
            allowed = allowed and bool(entry_mask[t])
        if position is None and allowed and cash > 0:
            if next_open:
                pending_entry = True
            else:
                budget = position_budget(settings, cash, closed)
                if budget > 0:
                    position = _enter(settings, t, c, budget, bars.volume[t], skipped)
        elif position is not None and next_open and exits[t]:
            pending_exit = True
    return _to_arrays(rows)


def _to_arrays(rows: list[tuple[float, ...]]) -> TradeArrays:
    if not rows:
        return TradeArrays.empty()
    cols = list(zip(*rows, strict=True))
    return TradeArrays(
        combo=np.zeros(len(rows), dtype=np.int64),
        entry_bar=np.asarray(cols[0], dtype=np.int64),
        exit_bar=np.asarray(cols[1], dtype=np.int64),
        entry_price=np.asarray(cols[2], dtype=np.float64),
        exit_price=np.asarray(cols[3], dtype=np.float64),
        size=np.asarray(cols[4], dtype=np.float64),
        fees=np.asarray(cols[5], dtype=np.float64),
        pnl=np.asarray(cols[6], dtype=np.float64),
        return_pct=np.asarray(cols[7], dtype=np.float64),
        exit_reason=np.asarray(cols[8], dtype=np.int8),
        filled_fraction=np.asarray(cols[9], dtype=np.float64),
    )
