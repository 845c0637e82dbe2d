"""The single-symbol simulator: entry/exit signals in, trades and an equity curve out, for many parameter
combinations at once.

Trading rules (long-only spot, fractional units, one position per combination at a time):
- A signal is known at a bar's close. With ``fill="next_open"`` it fills at the next bar's open; with
  ``fill="close"`` at the signal bar's close. An entry and an exit signal on the same bar cancel the entry.
- Commission and slippage are charged on the notional of every fill (see `StrategyConfig`).
- Stop loss and take profit are checked intrabar against low/high from the bar after the entry bar. When both
  levels lie inside one bar the stop wins (the conservative reading of an OHLC bar). A bar that opens
  through a level fills at its open.
- An optional maximum holding time closes the position `max_holding_bars` bars after the entry fill.
- A position still open on the last bar is closed at its close, reason END_OF_DATA.
- Exchange order rules, when set: fill prices on the tick table (buys up, sells down; stop and target levels
  derive from the rounded entry price), entries below the minimum order value not placed, entries capped at
  a fraction of the fill bar's volume (see `sim_core.entry_fill`).

Why it is fast: instead of stepping bar by bar, the loop steps *trade by trade* for all combinations together.
Each step finds, per combination, the next entry signal (a binary search in the sorted signal positions), the
next exit signal, and the first bar that touches the stop or target (an O(1) range-min query on a sparse
table, then a binary-lifting search only where a level is touched). The equity curve is then expanded from
the trades as runs of constant cash and units (`equity_curves`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bars import BarArrays
from .errors import ConfigError
from .scalar_stepper import ScalarStepper
from .sim_core import (
    NO_EVENT,
    NO_SKIP,
    PHASE_CLOSE,
    PHASE_INTRABAR,
    PHASE_OPEN,
    KellyState,
    SignalIndex,
    SimSettings,
    SparseTable,
    allowed_entry_keys,
    buy_prices,
    entry_cost,
    entry_fills,
    event_key,
    fees_paid,
    high_table,
    low_table,
    sale_proceeds,
    sell_prices,
    signal_keys,
    units_for_budget,
)
from .trades import TRADE_COLUMNS, ExitReason, OrderSkip, SkippedOrders, TradeArrays

# Below this many combinations still trading, the scalar stepper is faster than a vectorised step
# (measured: a vectorised step costs ~90 µs of numpy calls, a scalar trade ~10 µs).
SCALAR_BELOW = 8

__all__ = [
    "SignalIndex",
    "SimOutput",
    "SimSettings",
    "allowed_entry_keys",
    "equity_curves",
    "signal_keys",
    "simulate",
    "simulate_indexed",
]


@dataclass(frozen=True)
class SimOutput:
    """The trades, and the entries the exchange order rules skipped (empty when no rule is set)."""

    trades: TradeArrays
    skipped: SkippedOrders = field(default_factory=lambda: SkippedOrders.from_rows([]))


def _position_budget(
    settings: SimSettings, cash: np.ndarray, combos: np.ndarray, kelly: KellyState
) -> np.ndarray:
    """Currency to spend on an entry (fees included), capped at the cash available."""
    cash_now = cash[combos]
    if settings.sizing == "fixed":
        budget = np.full(combos.shape, settings.fixed_amount)
    elif settings.sizing == "percent":
        budget = settings.size_value * cash_now
    elif settings.sizing == "kelly":
        warmup = min(settings.size_value, 1.0)
        fraction = np.clip(
            kelly.fraction(combos) * settings.kelly_scale, settings.kelly_floor, settings.kelly_max_fraction
        )
        fraction = np.where(kelly.trades[combos] < settings.kelly_min_trades, warmup, fraction)
        budget = fraction * cash_now
    else:
        raise ConfigError(f"position_size_method={settings.sizing!r} is not supported.")
    return np.minimum(budget, cash_now)


def _level_hits(
    table: SparseTable,
    opens: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    level: np.ndarray,
    priority: int,
    *,
    below: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Event keys and fill prices of the first bar in [start, stop] whose range touches `level`."""
    key = np.full(start.shape, NO_EVENT, dtype=np.int64)
    price = np.zeros(start.shape)
    window = start <= stop
    if not window.any():
        return key, price
    idx = np.flatnonzero(window)
    extreme = table.range_extreme(start[idx], stop[idx])
    touched = extreme <= level[idx] if below else extreme >= level[idx]
    idx = idx[touched]
    if idx.size == 0:
        return key, price
    bar = table.first_passage(start[idx], level[idx])
    bar_open = opens[bar]
    gap = bar_open <= level[idx] if below else bar_open >= level[idx]
    key[idx] = event_key(bar, np.where(gap, PHASE_OPEN, PHASE_INTRABAR), priority)
    price[idx] = np.where(gap, bar_open, level[idx])
    return key, price


def _choose_exit(
    candidates: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The earliest candidate per combination: (exit bar, exit price, reason code)."""
    keys = np.stack([k for k, _ in candidates])
    prices = np.stack([p for _, p in candidates])
    best = np.argmin(keys, axis=0)
    cols = np.arange(keys.shape[1])
    best_key = keys[best, cols]
    return best_key // 32, prices[best, cols], (best_key % 8).astype(np.int8)


def _vector_exit(
    bars: BarArrays,
    exit_index: SignalIndex,
    settings: SimSettings,
    active: np.ndarray,
    entry_bar: np.ndarray,
    entry_price: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exit bar, price and reason of one trade of each active combination (the earliest exit event)."""
    n, opens, closes = len(bars), bars.open, bars.close
    shift = 1 if settings.fill_next_open else 0
    end_phase = PHASE_OPEN if settings.fill_next_open else PHASE_CLOSE
    exit_signal = exit_index.next_at_or_after(active, entry_bar + (1 - shift))
    fill_bar = exit_signal + shift
    has_signal = fill_bar <= n - 1
    fill_bar_safe = np.minimum(fill_bar, n - 1)
    signal_key = np.where(has_signal, event_key(fill_bar_safe, end_phase, ExitReason.SIGNAL), NO_EVENT)
    signal_price = opens[fill_bar_safe] if settings.fill_next_open else closes[fill_bar_safe]
    candidates = [(signal_key, signal_price)]

    last = np.full(active.shape, n - 1, dtype=np.int64)
    candidates.append(
        (np.full(active.shape, event_key(n - 1, PHASE_CLOSE, ExitReason.END_OF_DATA)), closes[last])
    )
    if settings.max_hold is not None:
        hold_bar = entry_bar + settings.max_hold
        has_hold = hold_bar <= n - 1
        hold_safe = np.minimum(hold_bar, n - 1)
        hold_key = np.where(has_hold, event_key(hold_safe, end_phase, ExitReason.MAX_HOLD), NO_EVENT)
        hold_price = opens[hold_safe] if settings.fill_next_open else closes[hold_safe]
        candidates.append((hold_key, hold_price))
        last = np.minimum(last, hold_safe)
    # Stops and targets only matter up to the earliest bar another exit would already fire.
    horizon = np.minimum(last, fill_bar_safe)
    if settings.stop_loss is not None:
        level = entry_price * (1.0 - settings.stop_loss)
        candidates.append(
            _level_hits(
                low_table(bars), opens, entry_bar + 1, horizon, level, ExitReason.STOP_LOSS, below=True
            )
        )
    if settings.take_profit is not None:
        level = entry_price * (1.0 + settings.take_profit)
        candidates.append(
            _level_hits(
                high_table(bars), opens, entry_bar + 1, horizon, level, ExitReason.TAKE_PROFIT, below=False
            )
        )
    exit_bar, exit_price, reason = _choose_exit(candidates)
    return exit_bar, sell_prices(settings, exit_price), reason


def simulate(
    bars: BarArrays,
    entries: np.ndarray,
    exits: np.ndarray,
    settings: SimSettings,
    entry_mask: np.ndarray | None = None,
    *,
    scalar_below: int = SCALAR_BELOW,
) -> SimOutput:
    """Run the trading rules for every column of `entries`/`exits` (shape (n_bars, m)).

    `entry_mask` (shape (n_bars,)) marks bars on which entries are allowed (filters, session gating).
    `scalar_below` picks when the scalar stepper takes over (0: never; a large number: always).
    """
    n, m = entries.shape
    if exits.shape != (n, m) or n != len(bars):
        raise ConfigError(f"signals have shape {entries.shape}/{exits.shape}, bars have {len(bars)} rows.")
    entry_index = SignalIndex(n, m, [allowed_entry_keys(entries, exits, entry_mask)])
    exit_index = SignalIndex(n, m, [signal_keys(exits)])
    return simulate_indexed(bars, entry_index, exit_index, m, settings, scalar_below=scalar_below)


def simulate_indexed(
    bars: BarArrays,
    entry_index: SignalIndex,
    exit_index: SignalIndex,
    m: int,
    settings: SimSettings,
    *,
    scalar_below: int = SCALAR_BELOW,
) -> SimOutput:
    """The trade-by-trade loop over `m` combinations whose signals are already indexed.

    Once fewer than `scalar_below` combinations are still trading, they finish on the scalar stepper.
    """
    n = len(bars)
    opens, closes = bars.open, bars.close
    shift = 1 if settings.fill_next_open else 0

    cash = np.full(m, settings.initial_cash)
    kelly = KellyState.zeros(m)
    search_from = np.zeros(m, dtype=np.int64)
    active = np.arange(m, dtype=np.int64)
    parts: list[tuple[np.ndarray, ...]] = []
    skipped: list[tuple[int, int, int, float]] = []

    while active.size:
        if active.size < scalar_below:
            stepper = ScalarStepper(bars, entry_index, exit_index, settings, cash, kelly, search_from)
            scalar_rows = [row for combo in active.tolist() for row in stepper.run(combo)]
            if scalar_rows:
                parts.append(tuple(np.asarray(col) for col in zip(*scalar_rows, strict=True)))
            skipped += stepper.skipped
            break
        signal_bar = entry_index.next_at_or_after(active, search_from[active])
        keep = (signal_bar < n) & (cash[active] > 0)
        active, signal_bar = active[keep], signal_bar[keep]
        if not active.size:
            break
        entry_bar = signal_bar + shift
        entry_price = buy_prices(settings, opens[entry_bar] if settings.fill_next_open else closes[entry_bar])

        exit_bar, exit_price, reason = _vector_exit(
            bars, exit_index, settings, active, entry_bar, entry_price
        )
        trades, tradable, skip = _settle(
            settings, bars, cash, kelly, active, entry_bar, (exit_bar, entry_price, exit_price, reason)
        )
        parts.append(trades)
        search_from[active] = exit_bar
        # END_OF_DATA ends a combination; so does a budget of zero (nothing left to trade with).
        still = tradable & (reason != ExitReason.END_OF_DATA)
        if skip is not None:
            _skip_entries(entry_index, settings, (active, signal_bar), skip, (still, search_from), skipped)
        active = active[still]

    return SimOutput(trades=_collect_trades(parts), skipped=SkippedOrders.from_rows(skipped))


def _skip_entries(
    entry_index: SignalIndex,
    settings: SimSettings,
    entries: tuple[np.ndarray, np.ndarray],
    skips: tuple[np.ndarray, np.ndarray],
    state: tuple[np.ndarray, np.ndarray],
    skipped: list[tuple[int, int, int, float]],
) -> None:
    """Record the entries the order rules skipped; update which combinations go on (`still`) and where their
    next entry search starts (`search_from`).

    An entry without volume is skipped alone: the search resumes on the next bar. An entry below the minimum
    order value ends its combination: with no trade, its cash and Kelly state cannot change, so every later
    entry signal would get the same budget and be skipped too; they are all recorded here at once.
    """
    (active, signal_bar), (code, value), (still, search_from) = entries, skips, state
    n, keys = entry_index.n, entry_index.flat
    shift = 1 if settings.fill_next_open else 0
    for i in np.flatnonzero(code == OrderSkip.NO_VOLUME).tolist():
        combo, bar = int(active[i]), int(signal_bar[i])
        skipped.append((combo, bar + shift, int(OrderSkip.NO_VOLUME), float(value[i])))
        search_from[combo] = bar + 1
        still[i] = True
    for i in np.flatnonzero(code == OrderSkip.MIN_ORDER_VALUE).tolist():
        combo = int(active[i])
        lo, hi = np.searchsorted(keys, [combo * n + int(signal_bar[i]), (combo + 1) * n])
        reason, order_value = int(OrderSkip.MIN_ORDER_VALUE), float(value[i])
        skipped.extend((combo, key - combo * n + shift, reason, order_value) for key in keys[lo:hi].tolist())
        still[i] = False


def _settle(
    settings: SimSettings,
    bars: BarArrays,
    cash: np.ndarray,
    kelly: KellyState,
    active: np.ndarray,
    entry_bar: np.ndarray,
    fills: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[tuple[np.ndarray, ...], np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Size and book one trade per active combination, whose fills (exit bar, entry and exit price, exit
    reason) are known; updates `cash` and `kelly`.

    Returns the trades made (combination, then the `TRADE_COLUMNS`), which combinations could afford one (a
    budget of zero trades nothing) and, when an order rule is set, each entry's `OrderSkip` code (or
    `NO_SKIP`) with its order value.
    """
    exit_bar, entry_price, exit_price, reason = fills
    f = settings.cost_rate
    budget = _position_budget(settings, cash, active, kelly)
    tradable = budget > 0
    skips = None
    if settings.sizing_rules:
        size, spent, filled, code = entry_fills(settings, budget, entry_price, bars.volume[entry_bar])
        booked = tradable & (code == NO_SKIP)
        skips = (code, budget / (1.0 + f))
    else:
        size, spent, filled, booked = units_for_budget(budget, entry_price, f), budget, None, tradable
    proceeds = sale_proceeds(size, exit_price, f)
    pnl = proceeds - spent
    returns = np.divide(pnl, spent, out=np.zeros_like(pnl), where=booked)
    fees = fees_paid(size, entry_price, exit_price, f)
    rows = np.flatnonzero(booked)
    cash[active] += pnl
    kelly.update(active[rows], returns[rows])
    columns = (active, entry_bar, exit_bar, entry_price, exit_price, size, fees, pnl, returns, reason)
    trades = tuple(col[rows] for col in columns)
    trades += (filled[rows] if filled is not None else np.ones(rows.size),)
    return trades, tradable, skips


def _collect_trades(parts: list[tuple[np.ndarray, ...]]) -> TradeArrays:
    if not parts:
        return TradeArrays.empty()
    columns = [np.concatenate(col) for col in zip(*parts, strict=True)]
    order = np.lexsort((columns[1], columns[0]))
    names = ("combo", *TRADE_COLUMNS)
    values = {name: col[order] for name, col in zip(names, columns, strict=True)}
    values["exit_reason"] = values["exit_reason"].astype(np.int8)
    return TradeArrays(**values)


def equity_curves(bars: BarArrays, trades: TradeArrays, n_combos: int, settings: SimSettings) -> np.ndarray:
    """Equity of combinations 0..n_combos-1 marked at each close, shape (n_bars, n_combos).

    `trades` must be those of exactly these combinations, grouped by combination and ordered by entry, as
    `simulate` returns them (`TradeArrays` documents that order).

    A combination's book is a run of segments: flat (cash only) until the first entry bar, in position
    (cash after paying the entry, plus units valued at each close) until the exit bar, flat again, and so
    on. The segments are laid out column after column and expanded with one `np.repeat`, which is far
    cheaper than scattering cash flows into an (n, m) grid and summing it. The result is a transposed
    view (F-ordered), so each combination's curve is contiguous for the metrics that scan along time.
    """
    n, m = len(bars), n_combos
    col, entry, exit_ = trades.combo, trades.entry_bar, trades.exit_bar
    size, pnl = trades.size, trades.pnl
    cost = entry_cost(size, trades.entry_price, settings.cost_rate)

    counts = np.bincount(col, minlength=m)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))  # index of each combination's first trade
    cum_pnl = np.cumsum(pnl)
    before = np.concatenate(([0.0], cum_pnl[:-1]))
    cash_before = settings.initial_cash + before - before[first][col] if col.size else before
    g = np.arange(col.shape[0])
    next_entry = np.append(entry[1:], n)
    last_of_combo = np.append(col[1:] != col[:-1], True)
    next_entry = np.where(last_of_combo, n, next_entry)

    segments = m + 2 * col.shape[0]
    length = np.zeros(segments, dtype=np.int64)
    cash = np.full(segments, settings.initial_cash)
    units = np.zeros(segments)
    flat0 = np.arange(m) + 2 * first
    length[flat0] = np.where(
        counts > 0, entry[np.minimum(first, max(col.shape[0] - 1, 0))] if col.size else n, n
    )
    held = col + 2 * g + 1
    length[held] = exit_ - entry
    cash[held] = cash_before - cost
    units[held] = size
    after = held + 1
    length[after] = next_entry - exit_
    cash[after] = cash_before + pnl
    equity = np.repeat(units, length).reshape(m, n)
    equity *= bars.close
    equity += np.repeat(cash, length).reshape(m, n)
    return equity.T
