"""Scalar trading rules shared by the per-bar loops (the reference simulator and the portfolio simulator).

The vectorised simulator implements the same rules over arrays; tests hold the two to agreement.
"""

from __future__ import annotations

import numpy as np

from .sim_core import SimSettings
from .trades import ExitReason


def kelly_fraction(returns: list[float]) -> float:
    """f* = p - q / b over closed-trade returns; -1 without wins, p without losses; clamped to [-1, 1]."""
    wins = [r for r in returns if r > 0]
    losses = [r for r in returns if r <= 0]
    p = len(wins) / len(returns)
    if not wins:
        return -1.0
    if not losses:
        return p
    b = (sum(wins) / len(wins)) / (-sum(losses) / len(losses))
    return float(np.clip(p - (1 - p) / b, -1.0, 1.0))


def position_budget(settings: SimSettings, cash: float, closed: list[float]) -> float:
    """Currency to spend on an entry (fees included), capped at `cash`."""
    if settings.sizing == "fixed":
        budget = settings.fixed_amount
    elif settings.sizing == "percent":
        budget = settings.size_value * cash
    elif len(closed) < settings.kelly_min_trades:
        budget = min(settings.size_value, 1.0) * cash
    else:
        fraction = kelly_fraction(closed) * settings.kelly_scale
        budget = min(max(fraction, settings.kelly_floor), settings.kelly_max_fraction) * cash
    return min(budget, cash)


def intrabar_exit(
    settings: SimSettings, bar_open: float, low: float, high: float, entry_price: float
) -> tuple[float, ExitReason] | None:
    """Fill price and reason when the bar touches the stop or target (stop first; gaps fill at the open)."""
    stop = entry_price * (1 - settings.stop_loss) if settings.stop_loss is not None else None
    target = entry_price * (1 + settings.take_profit) if settings.take_profit is not None else None
    if stop is not None and bar_open <= stop:
        return bar_open, ExitReason.STOP_LOSS
    if target is not None and bar_open >= target:
        return bar_open, ExitReason.TAKE_PROFIT
    if stop is not None and low <= stop:
        return stop, ExitReason.STOP_LOSS
    if target is not None and high >= target:
        return target, ExitReason.TAKE_PROFIT
    return None
