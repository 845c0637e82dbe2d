"""A plain per-bar event loop implementing the same trading rules as `simulation.simulate`, one combination.

It is the executable specification: slow, obvious, and independent of the vectorised code. Tests check that
both agree trade for trade; `benchmarks/engine.py` uses it as the baseline. It deliberately writes its fee
arithmetic out instead of sharing the engine's fee helpers (`sim_core.units_for_budget` and co.), so that a
mistake in those helpers cannot hide from the cross-check.
"""

from __future__ import annotations

import numpy as np

from .bars import BarArrays
from .rules import intrabar_exit, position_budget
from .sim_core import SimSettings
from .trades import ExitReason, TradeArrays


def reference_backtest(  # noqa: C901, PLR0912 - a deliberately literal transcription of the rules
    bars: BarArrays,
    entries: np.ndarray,
    exits: np.ndarray,
    settings: SimSettings,
    entry_mask: np.ndarray | None = None,
) -> TradeArrays:
    """Trades of one combination (`entries`, `exits` are 1-D boolean arrays).

    It is one function on purpose: the independent cross-check is written out plainly, every rule in the order
    a bar applies it, so it can be read against the rules line by line without following helpers.
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
                )
            )
            cash += pnl
            closed.append(pnl / budget)
            position = None
        pending_exit = False
        if next_open and pending_entry and position is None:
            budget = position_budget(settings, cash, closed)
            if budget > 0:
                position = {"bar": t, "price": o, "size": budget / (o * (1 + f)), "budget": budget}
                if t == n - 1:
                    pnl = position["size"] * c * (1 - f) - budget
                    rows.append(
                        (
                            t,
                            t,
                            o,
                            c,
                            position["size"],
                            position["size"] * f * (o + c),
                            pnl,
                            pnl / budget,
                            int(ExitReason.END_OF_DATA),
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
                    position = {"bar": t, "price": c, "size": budget / (c * (1 + f)), "budget": budget}
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
    )
