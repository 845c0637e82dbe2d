"""The single-symbol simulator: entry/exit signals in, trades and an equity curve out, for many parameter
combinations at once.

Trading rules (long-only spot, fractional units, one position per combination at a time):
- A signal is known at a bar's close. With ``fill="next_open"`` it fills at the next bar's open; with
  ``fill="close"`` at the signal bar's close. An entry and an exit signal on the same bar cancel the entry.
- Commission and slippage are charged on the notional of every fill (see `StrategyConfig`).
- Stop loss and take profit are checked intrabar against low/high from the bar after the entry bar. When both
  levels lie inside one bar the stop wins (the conservative reading of an OHLC bar). A bar that opens through a
  level fills at its open.
- An optional maximum holding time closes the position `max_holding_bars` bars after the entry fill.
- A position still open on the last bar is closed at its close, reason END_OF_DATA.

Why it is fast: instead of stepping bar by bar, the loop steps *trade by trade* for all combinations together.
Each step finds, per combination, the next entry signal (a binary search in the sorted signal positions), the
next exit signal, and the first bar that touches the stop or target (an O(1) range-min query on a sparse table,
then a binary-lifting search only where a level is touched). The equity curve is then built from the trades
with one scatter and two cumulative sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bars import BarArrays
from .config import StrategyConfig
from .errors import ConfigError
from .trades import ExitReason, TradeArrays

# Events inside one bar are ordered: the open, then the intrabar path (stops and targets), then the close.
_PHASE_OPEN, _PHASE_INTRABAR, _PHASE_CLOSE = 0, 1, 2
_NO_EVENT = np.iinfo(np.int64).max


@dataclass(frozen=True)
class SimSettings:
    """The simulator's view of a `StrategyConfig` (plain numbers, validated once)."""

    fill_next_open: bool
    cost_rate: float
    stop_loss: float | None
    take_profit: float | None
    max_hold: int | None
    initial_cash: float
    sizing: str
    size_value: float
    kelly_scale: float
    kelly_min_trades: int
    kelly_max_fraction: float
    kelly_floor: float

    @classmethod
    def from_config(cls, config: StrategyConfig) -> SimSettings:
        config.validate()
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
        )

    @property
    def fixed_amount(self) -> float:
        """The currency amount of ``fixed`` sizing: values in (0, 1] are a fraction of initial cash."""
        return self.size_value * self.initial_cash if self.size_value <= 1.0 else self.size_value


@dataclass(frozen=True)
class SimOutput:
    trades: TradeArrays
    n_combos: int


class _SparseTable:
    """Range minimum (or maximum) queries in O(1) and first-passage searches in O(log n)."""

    def __init__(self, values: np.ndarray, *, maximum: bool) -> None:
        self.maximum = maximum
        self.n = int(values.shape[0])
        sign = -1.0 if maximum else 1.0
        levels = [sign * values]
        span = 1
        while span * 2 <= self.n:
            prev = levels[-1]
            nxt = prev.copy()
            nxt[: self.n - span] = np.minimum(prev[: self.n - span], prev[span:])
            levels.append(nxt)
            span *= 2
        # Signed so that one min-table serves both: max(x) == -min(-x).
        self.table = np.stack(levels)
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


def _sparse_tables(bars: BarArrays) -> tuple[_SparseTable, _SparseTable]:
    return bars.memo(
        ("sparse_tables",),
        lambda: (_SparseTable(bars.low, maximum=False), _SparseTable(bars.high, maximum=True)),
    )


class _SignalIndex:
    """Sorted positions of True cells, column-major, for 'next signal at or after bar i in column k'."""

    def __init__(self, signals: np.ndarray) -> None:
        self.n = int(signals.shape[0])
        positions = np.flatnonzero(np.asfortranarray(signals).T.reshape(-1)).astype(np.int64)
        # A sentinel past every column keeps each search in bounds.
        self.flat = np.append(positions, signals.size)

    def next_at_or_after(self, combos: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Per combination, the first signal bar >= start (self.n when none)."""
        keys = combos * self.n + np.minimum(start, self.n)
        values = self.flat[np.searchsorted(self.flat, keys)]
        hit = np.full(combos.shape, self.n, dtype=np.int64)
        same_column = values // self.n == combos
        hit[same_column] = values[same_column] % self.n
        return hit


@dataclass
class _KellyState:
    trades: np.ndarray
    wins: np.ndarray
    win_sum: np.ndarray
    loss_sum: np.ndarray

    @classmethod
    def zeros(cls, m: int) -> _KellyState:
        return cls(np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m))

    def update(self, combos: np.ndarray, returns: np.ndarray) -> None:
        win = returns > 0
        self.trades[combos] += 1
        self.wins[combos] += win
        self.win_sum[combos] += np.where(win, returns, 0.0)
        self.loss_sum[combos] += np.where(win, 0.0, returns)

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


def _position_budget(
    settings: SimSettings, cash: np.ndarray, combos: np.ndarray, kelly: _KellyState
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


def _event_key(bar: np.ndarray, phase: int | np.ndarray, priority: int) -> np.ndarray:
    return bar * 32 + phase * 8 + priority


def _level_hits(
    table: _SparseTable,
    opens: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    level: np.ndarray,
    priority: int,
    *,
    below: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Event keys and fill prices of the first bar in [start, stop] whose range touches `level`."""
    key = np.full(start.shape, _NO_EVENT, dtype=np.int64)
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
    key[idx] = _event_key(bar, np.where(gap, _PHASE_OPEN, _PHASE_INTRABAR), priority)
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


def simulate(
    bars: BarArrays,
    entries: np.ndarray,
    exits: np.ndarray,
    settings: SimSettings,
    entry_mask: np.ndarray | None = None,
) -> SimOutput:
    """Run the trading rules for every column of `entries`/`exits` (shape (n_bars, m)).

    `entry_mask` (shape (n_bars,)) marks bars on which entries are allowed (filters, session gating).
    """
    n, m = entries.shape
    if exits.shape != (n, m) or n != len(bars):
        raise ConfigError(f"signals have shape {entries.shape}/{exits.shape}, bars have {len(bars)} rows.")
    allowed = entries & ~exits
    if entry_mask is not None:
        allowed &= entry_mask[:, None]
    allowed[n - 1] = False  # nothing left to hold after the last bar
    entry_index, exit_index = _SignalIndex(allowed), _SignalIndex(exits)
    low_table, high_table = _sparse_tables(bars)
    opens, closes = bars.open, bars.close
    f = settings.cost_rate
    shift = 1 if settings.fill_next_open else 0
    end_phase = _PHASE_OPEN if settings.fill_next_open else _PHASE_CLOSE

    cash = np.full(m, settings.initial_cash)
    kelly = _KellyState.zeros(m)
    search_from = np.zeros(m, dtype=np.int64)
    active = np.arange(m, dtype=np.int64)
    parts: list[tuple[np.ndarray, ...]] = []

    while active.size:
        signal_bar = entry_index.next_at_or_after(active, search_from[active])
        keep = (signal_bar < n) & (cash[active] > 0)
        active, signal_bar = active[keep], signal_bar[keep]
        if not active.size:
            break
        entry_bar = signal_bar + shift
        entry_price = opens[entry_bar] if settings.fill_next_open else closes[entry_bar]

        exit_signal = exit_index.next_at_or_after(active, entry_bar + (1 - shift))
        fill_bar = exit_signal + shift
        has_signal = fill_bar <= n - 1
        fill_bar_safe = np.minimum(fill_bar, n - 1)
        signal_key = np.where(has_signal, _event_key(fill_bar_safe, end_phase, ExitReason.SIGNAL), _NO_EVENT)
        signal_price = opens[fill_bar_safe] if settings.fill_next_open else closes[fill_bar_safe]
        candidates = [(signal_key, signal_price)]

        last = np.full(active.shape, n - 1, dtype=np.int64)
        candidates.append(
            (np.full(active.shape, _event_key(n - 1, _PHASE_CLOSE, ExitReason.END_OF_DATA)), closes[last])
        )
        if settings.max_hold is not None:
            hold_bar = entry_bar + settings.max_hold
            has_hold = hold_bar <= n - 1
            hold_safe = np.minimum(hold_bar, n - 1)
            hold_key = np.where(has_hold, _event_key(hold_safe, end_phase, ExitReason.MAX_HOLD), _NO_EVENT)
            hold_price = opens[hold_safe] if settings.fill_next_open else closes[hold_safe]
            candidates.append((hold_key, hold_price))
            last = np.minimum(last, hold_safe)
        # Stops and targets only matter up to the earliest bar another exit would already fire.
        horizon = np.minimum(last, fill_bar_safe)
        if settings.stop_loss is not None:
            level = entry_price * (1.0 - settings.stop_loss)
            candidates.append(
                _level_hits(
                    low_table, opens, entry_bar + 1, horizon, level, ExitReason.STOP_LOSS, below=True
                )
            )
        if settings.take_profit is not None:
            level = entry_price * (1.0 + settings.take_profit)
            candidates.append(
                _level_hits(
                    high_table, opens, entry_bar + 1, horizon, level, ExitReason.TAKE_PROFIT, below=False
                )
            )
        exit_bar, exit_price, reason = _choose_exit(candidates)

        budget = _position_budget(settings, cash, active, kelly)
        tradable = budget > 0
        size = budget / (entry_price * (1.0 + f))
        proceeds = size * exit_price * (1.0 - f)
        pnl = proceeds - budget
        returns = np.divide(pnl, budget, out=np.zeros_like(pnl), where=tradable)
        fees = size * f * (entry_price + exit_price)
        rows = np.flatnonzero(tradable)
        parts.append(
            (
                active[rows],
                entry_bar[rows],
                exit_bar[rows],
                entry_price[rows],
                exit_price[rows],
                size[rows],
                fees[rows],
                pnl[rows],
                returns[rows],
                reason[rows],
            )
        )
        cash[active] += pnl
        kelly.update(active[rows], returns[rows])
        search_from[active] = exit_bar
        # END_OF_DATA ends a combination; so does a budget of zero (nothing left to trade with).
        still = tradable & (reason != ExitReason.END_OF_DATA)
        active = active[still]

    return SimOutput(trades=_collect_trades(parts), n_combos=m)


def _collect_trades(parts: list[tuple[np.ndarray, ...]]) -> TradeArrays:
    if not parts:
        return TradeArrays.empty()
    columns = [np.concatenate(col) for col in zip(*parts, strict=True)]
    order = np.lexsort((columns[1], columns[0]))
    names = (
        "combo",
        "entry_bar",
        "exit_bar",
        "entry_price",
        "exit_price",
        "size",
        "fees",
        "pnl",
        "return_pct",
        "exit_reason",
    )
    values = {name: col[order] for name, col in zip(names, columns, strict=True)}
    values["exit_reason"] = values["exit_reason"].astype(np.int8)
    return TradeArrays(**values)


def equity_curves(
    bars: BarArrays, trades: TradeArrays, combos: np.ndarray, settings: SimSettings
) -> np.ndarray:
    """Equity of the given combinations marked at each close, shape (n_bars, len(combos)).

    Cash changes on the entry and exit fill bars; the position is valued at the close in between.
    """
    n = len(bars)
    m = int(combos.shape[0])
    f = settings.cost_rate
    column = np.full(int(combos.max()) + 1 if m else 0, -1, dtype=np.int64)
    column[combos] = np.arange(m)
    in_range = trades.combo < column.shape[0]
    rows = np.where(in_range, column[np.where(in_range, trades.combo, 0)], -1)
    picked = rows >= 0
    col = rows[picked]
    size = trades.size[picked]
    cost = size * trades.entry_price[picked] * (1.0 + f)
    proceeds = size * trades.exit_price[picked] * (1.0 - f)
    flat_entry = trades.entry_bar[picked] * m + col
    flat_exit = trades.exit_bar[picked] * m + col
    cash = np.bincount(flat_entry, weights=-cost, minlength=n * m)
    cash += np.bincount(flat_exit, weights=proceeds, minlength=n * m)
    units = np.bincount(flat_entry, weights=size, minlength=n * m)
    units -= np.bincount(flat_exit, weights=size, minlength=n * m)
    cash = cash.reshape(n, m)
    units = units.reshape(n, m)
    np.cumsum(cash, axis=0, out=cash)
    np.cumsum(units, axis=0, out=units)
    units *= bars.close[:, None]
    units += cash
    units += settings.initial_cash
    return units
