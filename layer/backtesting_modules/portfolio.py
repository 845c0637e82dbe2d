"""Portfolio mode: one strategy over several symbols with shared cash and at most `max_positions` open.

Signals are computed vectorised per symbol; the book is then stepped bar by bar over the union of the
symbols' timestamps, because shared cash and slot limits couple the symbols. The per-position rules (fills,
fees, stops, targets, holding time, end of data) are those of the single-symbol simulator.

When more symbols signal an entry than there are free slots, candidates are ranked by the quote turnover
(close × volume) of their signal bar, most liquid first, then by symbol name, so a run is deterministic.
Sizing uses the portfolio's equity at the previous close (percent and kelly) and is capped by free cash.
The exchange order rules apply per position as in the single-symbol simulator (ticks on every fill, the
minimum order value and the volume participation on entries); a skipped entry leaves its slot free for the
next ranked candidate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .backtest import BacktestResult, RunInfo, compute_entry_mask
from .bars import BarArrays
from .config import StrategyConfig
from .data import validate_bars
from .errors import DataError
from .market_rules import RuleTally, render_rule_notes
from .metrics import buy_and_hold, compute_metrics
from .rules import intrabar_exit, position_budget
from .sim_core import NO_SKIP, SimSettings, buy_price, entry_fill, fees_paid, sale_proceeds, sell_price
from .strategies import Strategy, get_strategy, resolve_params
from .trades import TRADE_COLUMNS, ExitReason, OrderSkip, TradeArrays


@dataclass
class _Position:
    symbol: str
    bar: int  # timeline position of the entry fill
    price: float
    size: float
    cost: float
    filled: float = 1.0  # filled fraction of the entry order


@dataclass(frozen=True)
class _SymbolFrame:
    """A symbol's bars and signals aligned to the shared timeline (NaN / False where it has no bar)."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    present: np.ndarray
    entries: np.ndarray
    exits: np.ndarray
    turnover: np.ndarray
    volume: np.ndarray
    last_bar: int


def _align(
    symbol: str,
    bars: pd.DataFrame,
    timeline: pd.DatetimeIndex,
    strategy: Strategy,
    params: dict[str, float],
    config: StrategyConfig,
) -> _SymbolFrame:
    arrays = BarArrays.from_frame(bars, symbol=symbol)
    table = {k: np.asarray([v]) for k, v in params.items()}
    entries, exits = strategy.signals(arrays, table)
    mask, _ = compute_entry_mask(arrays, config)
    pos = timeline.get_indexer(arrays.index)

    def spread(values: np.ndarray, fill: Any) -> np.ndarray:
        out = np.full(len(timeline), fill, dtype=np.asarray(values).dtype)
        out[pos] = values
        return out

    return _SymbolFrame(
        open=spread(arrays.open, np.nan),
        high=spread(arrays.high, np.nan),
        low=spread(arrays.low, np.nan),
        close=pd.Series(spread(arrays.close, np.nan)).ffill().to_numpy(),
        present=spread(np.ones(len(arrays), dtype=bool), False),
        entries=spread(entries[:, 0] & ~exits[:, 0] & mask, False),
        exits=spread(exits[:, 0], False),
        turnover=spread(arrays.close * arrays.volume, 0.0),
        volume=spread(arrays.volume, 0.0),
        last_bar=int(pos[-1]),
    )


class _Book:
    """Cash, open positions and closed trades of the portfolio."""

    def __init__(self, settings: SimSettings, max_positions: int) -> None:
        self.settings = settings
        self.max_positions = max_positions
        self.cash = settings.initial_cash
        self.positions: dict[str, _Position] = {}
        self.closed: list[float] = []
        self.rows: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []  # entries the order rules skipped

    def close(self, symbol: str, bar: int, price: float, reason: ExitReason) -> None:
        pos = self.positions.pop(symbol)
        f = self.settings.cost_rate
        price = sell_price(self.settings, price)
        pnl = sale_proceeds(pos.size, price, f) - pos.cost
        self.cash += pos.cost + pnl
        self.closed.append(pnl / pos.cost)
        self.rows.append(
            {
                "symbol": symbol,
                "entry_bar": pos.bar,
                "exit_bar": bar,
                "entry_price": pos.price,
                "exit_price": price,
                "size": pos.size,
                "fees": fees_paid(pos.size, pos.price, price, f),
                "pnl": pnl,
                "return_pct": pnl / pos.cost,
                "exit_reason": reason.name,
                "filled_fraction": pos.filled,
            }
        )

    def open(self, symbol: str, bar: int, price: float, equity: float, volume: float) -> None:
        budget = min(position_budget(self.settings, equity, self.closed), self.cash)
        if budget <= 0:
            return
        price = buy_price(self.settings, price)
        size, cost, filled, skip = entry_fill(self.settings, budget, price, volume)
        if skip != NO_SKIP:
            value = budget / (1.0 + self.settings.cost_rate)
            self.skipped.append(
                {"symbol": symbol, "bar": bar, "reason": OrderSkip(skip).name, "order_value": value}
            )
            return
        self.cash -= cost
        self.positions[symbol] = _Position(symbol, bar, price, size, cost, filled)

    def value(self, frames: Mapping[str, _SymbolFrame], t: int) -> float:
        return self.cash + sum(p.size * frames[s].close[t] for s, p in self.positions.items())


def _ranked(candidates: list[str], frames: Mapping[str, _SymbolFrame], t: int) -> list[str]:
    return sorted(candidates, key=lambda s: (-frames[s].turnover[t], s))


def _exits_at_open(book: _Book, frames: Mapping[str, _SymbolFrame], t: int, pending_exit: set[str]) -> None:
    """Next-open fills: signalled exits and holding-time exits happen at bar t's open, before entries."""
    settings = book.settings
    for symbol in sorted(book.positions):
        frame, pos = frames[symbol], book.positions[symbol]
        if not frame.present[t]:
            continue
        if symbol in pending_exit:
            book.close(symbol, t, frame.open[t], ExitReason.SIGNAL)
        elif settings.max_hold is not None and t - pos.bar >= settings.max_hold:
            book.close(symbol, t, frame.open[t], ExitReason.MAX_HOLD)


def _exits_after_open(book: _Book, frames: Mapping[str, _SymbolFrame], t: int) -> None:
    """Exits during bar t after its open: stops and targets intrabar, then close fills and end of data."""
    settings = book.settings
    for symbol in sorted(book.positions):
        frame, pos = frames[symbol], book.positions[symbol]
        if not frame.present[t]:
            continue
        held = t - pos.bar
        if held > 0 and (
            hit := intrabar_exit(settings, frame.open[t], frame.low[t], frame.high[t], pos.price)
        ):
            book.close(symbol, t, hit[0], hit[1])
        elif not settings.fill_next_open and held > 0 and frame.exits[t]:
            book.close(symbol, t, frame.close[t], ExitReason.SIGNAL)
        elif not settings.fill_next_open and settings.max_hold is not None and held >= settings.max_hold:
            book.close(symbol, t, frame.close[t], ExitReason.MAX_HOLD)
        elif t == frame.last_bar:
            book.close(symbol, t, frame.close[t], ExitReason.END_OF_DATA)


def _fill_entries(
    book: _Book, frames: Mapping[str, _SymbolFrame], t: int, candidates: list[str], equity: float, price: str
) -> None:
    """Open positions for ranked candidates while slots and cash last."""
    for symbol in candidates:
        if len(book.positions) >= book.max_positions or book.cash <= 0:
            break
        frame = frames[symbol]
        # With close fills an entry on a symbol's last bar could not be held: skip it, as the simulator does.
        last_allowed = frame.last_bar - (1 if price == "close" else 0)
        if symbol in book.positions or not frame.present[t] or t > last_allowed:
            continue
        book.open(symbol, t, float(getattr(frame, price)[t]), equity, float(frame.volume[t]))


def run_portfolio_backtest(
    bars_by_symbol: Mapping[str, pd.DataFrame],
    strategy: str | Strategy,
    params: Mapping[str, Any] | None = None,
    config: StrategyConfig | None = None,
) -> BacktestResult:
    """Backtest one parameter set over several symbols with shared cash; trades carry a `symbol` column."""
    if not bars_by_symbol:
        raise DataError("bars_by_symbol is empty: pass at least one symbol's bars.")
    spec = get_strategy(strategy)
    config = config or StrategyConfig()
    values = resolve_params(spec, params)
    frames_in = {s: validate_bars(b, min_bars=2, name=s) for s, b in bars_by_symbol.items()}
    timeline = pd.DatetimeIndex(sorted(set().union(*(f.index for f in frames_in.values()))))
    frames = {s: _align(s, f, timeline, spec, values, config) for s, f in frames_in.items()}
    settings = SimSettings.from_config(config)
    book = _Book(settings, config.max_positions)
    equity = np.empty(len(timeline))
    pending_entry: list[str] = []
    pending_exit: set[str] = set()
    prev_equity = settings.initial_cash
    for t in range(len(timeline)):
        if settings.fill_next_open:
            _exits_at_open(book, frames, t, pending_exit)
            _fill_entries(book, frames, t, pending_entry, prev_equity, "open")
        _exits_after_open(book, frames, t)
        signalled = [s for s, f in frames.items() if f.entries[t] and s not in book.positions]
        pending_exit = {s for s in book.positions if frames[s].exits[t]}
        if settings.fill_next_open:
            pending_entry = _ranked(signalled, frames, t)
        else:
            _fill_entries(book, frames, t, _ranked(signalled, frames, t), book.value(frames, t), "close")
        equity[t] = prev_equity = book.value(frames, t)
    return _result(book, equity, timeline, spec, values, config, frames_in)


def _result(
    book: _Book,
    equity: np.ndarray,
    timeline: pd.DatetimeIndex,
    spec: Strategy,
    values: dict[str, float],
    config: StrategyConfig,
    frames_in: Mapping[str, pd.DataFrame],
) -> BacktestResult:
    trades = pd.DataFrame(book.rows, columns=["symbol", *TRADE_COLUMNS])
    trades = trades.sort_values(["entry_bar", "symbol"], kind="stable").reset_index(drop=True)
    trades.insert(1, "entry_time", timeline[trades["entry_bar"].to_numpy(dtype=np.int64)])
    trades.insert(2, "exit_time", timeline[trades["exit_bar"].to_numpy(dtype=np.int64)])
    arrays = TradeArrays.from_records(trades)
    skipped = _skipped_frame(book, timeline)
    seconds = BarArrays.from_frame(next(iter(frames_in.values()))).interval_seconds()
    # The benchmark: equal-weight buy and hold of the symbols, each from its first close to its last.
    closes = np.column_stack([f["close"].reindex(timeline).to_numpy(np.float64) for f in frames_in.values()])
    benchmark = buy_and_hold(closes, initial_cash=config.initial_cash, cost_rate=config.cost_rate)
    metrics = compute_metrics(
        equity[:, None], arrays, initial_cash=config.initial_cash, bar_seconds=seconds, benchmark=benchmark
    )
    info = RunInfo(
        strategy=spec.name,
        symbol=",".join(frames_in),
        start=timeline[0],
        end=timeline[-1],
        n_bars=len(timeline),
        bar_seconds=seconds,
        data_source="; ".join(str(f.attrs.get("source", "dataframe")) for f in frames_in.values()),
        synthetic=any(bool(f.attrs.get("synthetic", False)) for f in frames_in.values()),
        fill=config.fill,
        commission_rate=config.commission_rate,
        slippage_rate=config.slippage_rate,
        notes=tuple(
            render_rule_notes(
                config.order_rules(), config.market_rules, RuleTally().add(arrays.filled_fraction, skipped)
            )
        ),
    )
    return BacktestResult(
        params=values,
        metrics={k: float(v[0]) for k, v in metrics.items()},
        trades=trades,
        equity=pd.Series(equity, index=timeline, name="equity"),
        config=config,
        info=info,
        extras={
            "symbols": list(frames_in),
            **({"skipped_orders": skipped} if config.order_rules().active else {}),
        },
    )


def _skipped_frame(book: _Book, timeline: pd.DatetimeIndex) -> pd.DataFrame:
    """The entries the order rules skipped: symbol, time and position of the fill bar, reason, order value."""
    skipped = pd.DataFrame(book.skipped, columns=["symbol", "bar", "reason", "order_value"])
    skipped.insert(1, "time", timeline[skipped["bar"].to_numpy(dtype=np.int64)])
    return skipped
