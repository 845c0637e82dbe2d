"""`TimezoneBacktester`: the engine plus global-session awareness on intraday bars.

On top of a strategy's signals it (a) gates entries by session — a minimum activity score, or chosen local
hours such as Makenaide's six pipeline runs in Asia/Seoul; (b) scales each position by the market
condition's multiplier; (c) enforces the dominant region's trading style: its stop loss, its take-profit
ladder (partial exits) and its maximum holding time.

An entry is judged at the moment it is placed: the close of its signal bar, which is the open of the bar
it fills on. Gating, multiplier and style all come from the analysis of that moment.

Because a ladder sells a position in tranches, this runs as a per-bar loop over one parameter set (a few
tens of milliseconds on 40,000 bars). With style exits and scaling off it is the plain engine with an entry
mask, and tests hold it to trade-for-trade agreement with `run_backtest`, exchange order rules included
(ticks on every sale, ladder tranches too; minimum order value and volume participation on entries, after
the condition multiplier).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..backtest import BacktestResult, RunInfo, compute_entry_mask, run_backtest
from ..bars import BarArrays
from ..config import StrategyConfig
from ..data import validate_bars
from ..errors import ConfigError
from ..market_rules import RuleTally, render_rule_notes
from ..metrics import buy_and_hold, compute_metrics
from ..rules import position_budget
from ..sim_core import NO_SKIP, SimSettings, buy_price, entry_fill, sale_proceeds, sell_price
from ..strategies import get_strategy, resolve_params
from ..trades import TRADE_COLUMNS, ExitReason, OrderSkip, TradeArrays
from .analyzer import TimezoneMarketAnalyzer
from .regions import MAKENAIDE_RUN_HOURS_KST, TimezoneSettings, require_intraday
from .trade_analysis import TradeSessionAnalysis, analyze_trades, compare_gated


@dataclass(frozen=True)
class SessionGate:
    """Which entries are allowed: activity score at least `min_activity`, and/or a local hour in
    `allowed_hours` (hours of `zone`). Both None: every entry is allowed."""

    min_activity: float | None = None
    allowed_hours: tuple[int, ...] | None = None
    zone: str = "Asia/Seoul"

    def __post_init__(self) -> None:
        if self.min_activity is not None and not 0 <= self.min_activity <= 100:
            raise ConfigError(
                f"min_activity={self.min_activity!r} must be within [0, 100] (an activity score)."
            )
        if self.allowed_hours is not None:
            bad = [h for h in self.allowed_hours if not (isinstance(h, int) and 0 <= h <= 23)]
            if bad or not self.allowed_hours:
                raise ConfigError(f"allowed_hours={self.allowed_hours!r} must be hours 0-23, at least one.")

    @classmethod
    def makenaide(cls) -> SessionGate:
        """Entries only at Makenaide's pipeline runs: 02, 09, 15, 18, 21 and 23 h Korean time."""
        return cls(allowed_hours=tuple(MAKENAIDE_RUN_HOURS_KST), zone="Asia/Seoul")

    def mask(self, decision_times: pd.DatetimeIndex, analysis: pd.DataFrame) -> np.ndarray:
        allowed = np.ones(len(decision_times), dtype=bool)
        if self.min_activity is not None:
            allowed &= analysis["activity_score"].to_numpy() >= self.min_activity
        if self.allowed_hours is not None:
            hours = np.asarray(decision_times.tz_convert(self.zone).hour)
            allowed &= np.isin(hours, self.allowed_hours)
        return allowed

    def describe(self) -> str:
        parts = []
        if self.min_activity is not None:
            parts.append(f"activity score ≥ {self.min_activity:g}")
        if self.allowed_hours is not None:
            parts.append(f"entries at {', '.join(f'{h:02d}' for h in self.allowed_hours)} h {self.zone}")
        return "; ".join(parts) or "none"


@dataclass
class TimezoneBacktestResult:
    """The backtest (`result`), the per-bar session analysis and the analysis of its trades."""

    result: BacktestResult
    sessions: pd.DataFrame
    trade_analysis: TradeSessionAnalysis
    gate: SessionGate
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Position:
    entry_bar: int
    price: float
    units: float  # remaining
    initial_units: float
    cost: float
    stop: float | None
    rungs: list[tuple[float, float]]  # (price level, units to sell), not yet hit
    max_hold: int | None
    proceeds: float = 0.0
    fees: float = 0.0
    partial_exits: int = 0
    filled: float = 1.0  # filled fraction of the entry order


class TimezoneBacktester:
    """Backtest a strategy with session gating, condition sizing and style exits (see module docstring)."""

    def __init__(
        self,
        config: StrategyConfig | None = None,
        settings: TimezoneSettings | None = None,
        *,
        gate: SessionGate | None = None,
        scale_by_condition: bool = True,
        style_exits: bool = True,
        zone: str = "Asia/Seoul",
    ) -> None:
        self.config = config or StrategyConfig()
        self.analyzer = TimezoneMarketAnalyzer(settings)
        self.gate = gate or SessionGate()
        self.scale_by_condition = scale_by_condition
        self.style_exits = style_exits
        self.zone = zone

    def sessions(self, bars: BarArrays) -> tuple[pd.DatetimeIndex, pd.DataFrame]:
        """The decision time of each bar (its close) and the session analysis at that time."""
        require_intraday(bars.index)
        decision = bars.index + pd.Timedelta(seconds=bars.interval_seconds())
        return decision, self.analyzer.analyze(decision, check_intraday=False)

    def run(
        self, bars: pd.DataFrame, strategy: str, params: Mapping[str, Any] | None = None
    ) -> TimezoneBacktestResult:
        spec = get_strategy(strategy)
        values = resolve_params(spec, params)
        table = {k: np.asarray([v]) for k, v in values.items()}
        frame = validate_bars(bars, min_bars=int(np.max(spec.warmup(table))) + 2)
        arrays = BarArrays.from_frame(frame, symbol=bars.attrs.get("symbol"))
        decision, sessions = self.sessions(arrays)
        entries, exits = spec.signals(arrays, table)
        filter_mask, notes = compute_entry_mask(arrays, self.config)
        mask = filter_mask & self.gate.mask(decision, sessions)
        trades, equity, skipped = _simulate(
            arrays, entries[:, 0], exits[:, 0], mask, self._per_bar_rules(arrays, sessions), self.config
        )
        result = _result(
            arrays, frame, (trades, skipped), equity, spec.name, values, self.config, notes, self.gate
        )
        analysis = analyze_trades(result.trades, self.analyzer, zone=self.zone)
        options = {"scale_by_condition": self.scale_by_condition, "style_exits": self.style_exits}
        return TimezoneBacktestResult(result, sessions, analysis, self.gate, options)

    def compare(
        self, bars: pd.DataFrame, strategy: str, params: Mapping[str, Any] | None = None
    ) -> tuple[BacktestResult, TimezoneBacktestResult, pd.DataFrame]:
        """PERFORMANCE_COMPARISON: the plain engine (ungated) against this backtester on the same bars."""
        plain = run_backtest(bars, strategy, params, self.config)
        gated = self.run(bars, strategy, params)
        return plain, gated, compare_gated(plain.metrics, gated.result.metrics)

    def _per_bar_rules(self, bars: BarArrays, sessions: pd.DataFrame) -> _BarRules:
        multiplier = (
            sessions["position_multiplier"].to_numpy(dtype=float) if self.scale_by_condition else None
        )
        if not self.style_exits:
            return _BarRules(multiplier, None, None, None)
        hours = sessions["max_hold_hours"].to_numpy(dtype=float)
        hold = np.ceil(hours * 3600.0 / bars.interval_seconds()).astype(np.int64)
        ladders = [self.analyzer.ladder_for(style) for style in sessions["style"].to_numpy()]
        return _BarRules(multiplier, sessions["stop_loss"].to_numpy(dtype=float), ladders, hold)


@dataclass(frozen=True)
class _BarRules:
    """Per decision bar: size multiplier, stop fraction, ladder and max hold (None: use the config's)."""

    multiplier: np.ndarray | None
    stop: np.ndarray | None
    ladder: list[tuple[tuple[float, float], ...]] | None
    max_hold: np.ndarray | None


def _entry_budget(
    settings: SimSettings, rules: _BarRules, signal: int, cash: float, closed: list[float]
) -> float:
    budget = position_budget(settings, cash, closed)
    if rules.multiplier is not None:
        budget *= float(rules.multiplier[signal])
    return budget


def _open_position(
    config: StrategyConfig,
    rules: _BarRules,
    signal: int,
    bar: int,
    price: float,
    fill: tuple[float, float, float],
) -> _Position:
    """The position an entry filled at `price` opens; `fill` is (units, cash spent, filled fraction)."""
    units, budget, filled = fill
    if rules.stop is not None and rules.ladder is not None and rules.max_hold is not None:
        stop_pct: float | None = float(rules.stop[signal])
        rungs = [(price * (1 + gain), units * part) for gain, part in rules.ladder[signal]]
        hold: int | None = int(rules.max_hold[signal])
    else:
        stop_pct = config.stop_loss_pct
        rungs = [(price * (1 + config.take_profit_pct), units)] if config.take_profit_pct is not None else []
        hold = config.max_holding_bars
    stop = price * (1 - stop_pct) if stop_pct is not None else None
    return _Position(bar, price, units, units, budget, stop, rungs, hold, filled=filled)


def _sell(pos: _Position, units: float, price: float, settings: SimSettings) -> None:
    """Sell `units` (at most what is left) at `price`, moved down onto the tick table when one is set."""
    f = settings.cost_rate
    price = sell_price(settings, price)
    units = min(units, pos.units)
    pos.units -= units
    pos.proceeds += sale_proceeds(units, price, f)
    pos.fees += units * price * f


def _intrabar(pos: _Position, o: float, lo: float, h: float, settings: SimSettings) -> ExitReason | None:
    """Stops and ladder rungs during one bar; returns the reason when the position is fully closed."""
    if pos.stop is not None and o <= pos.stop:
        _sell(pos, pos.units, o, settings)
        return ExitReason.STOP_LOSS
    hit_at_open = [r for r in pos.rungs if o >= r[0]]
    for rung in hit_at_open:
        _sell(pos, rung[1], o, settings)
        pos.rungs.remove(rung)
        pos.partial_exits += 1
    if pos.units <= 1e-12 * pos.initial_units:
        return ExitReason.TAKE_PROFIT
    if pos.stop is not None and lo <= pos.stop:
        _sell(pos, pos.units, pos.stop, settings)
        return ExitReason.STOP_LOSS
    for rung in [r for r in pos.rungs if h >= r[0]]:
        _sell(pos, rung[1], rung[0], settings)
        pos.rungs.remove(rung)
        pos.partial_exits += 1
    return ExitReason.TAKE_PROFIT if pos.units <= 1e-12 * pos.initial_units else None


class _StyledRun:
    """Bar-by-bar state of one parameter set: the engine's rules plus per-entry stops, ladders and holds."""

    def __init__(
        self,
        bars: BarArrays,
        exits: np.ndarray,
        allowed: np.ndarray,
        rules: _BarRules,
        config: StrategyConfig,
    ) -> None:
        self.bars, self.exits, self.allowed, self.rules, self.config = bars, exits, allowed, rules, config
        self.settings = SimSettings.from_config(config)
        self.f = self.settings.cost_rate
        self.cash = self.settings.initial_cash
        self.closed: list[float] = []
        self.rows: list[dict[str, Any]] = []
        self.pos: _Position | None = None
        self.pending: int | None = None
        self.pending_exit = False
        self.skipped: list[dict[str, Any]] = []  # entries the order rules skipped

    def close(self, t: int, price: float, reason: ExitReason) -> None:
        pos = self.pos
        if pos is None:
            return
        if pos.units > 0:
            _sell(pos, pos.units, price, self.settings)
        pnl = pos.proceeds - pos.cost
        self.cash += pnl
        self.closed.append(pnl / pos.cost)
        self.rows.append(
            {
                "entry_bar": pos.entry_bar,
                "exit_bar": t,
                "entry_price": pos.price,
                "exit_price": pos.proceeds / (pos.initial_units * (1 - self.f)),
                "size": pos.initial_units,
                "fees": pos.initial_units * pos.price * self.f + pos.fees,
                "pnl": pnl,
                "return_pct": pnl / pos.cost,
                "exit_reason": reason.name,
                "filled_fraction": pos.filled,
                "partial_exits": pos.partial_exits,
            }
        )
        self.pos = None

    def open(self, signal: int, t: int, price: float) -> None:
        budget = _entry_budget(self.settings, self.rules, signal, self.cash, self.closed)
        if budget <= 0:
            return
        price = buy_price(self.settings, price)
        units, spent, filled, skip = entry_fill(self.settings, budget, price, float(self.bars.volume[t]))
        if skip != NO_SKIP:
            value = budget / (1.0 + self.f)
            self.skipped.append({"bar": t, "reason": OrderSkip(skip).name, "order_value": value})
            return
        self.pos = _open_position(self.config, self.rules, signal, t, price, (units, spent, filled))

    def held_too_long(self, t: int) -> bool:
        return (
            self.pos is not None
            and self.pos.max_hold is not None
            and t - self.pos.entry_bar >= self.pos.max_hold
        )

    def at_open(self, t: int) -> None:
        """Next-open fills: signalled and time exits at the open, then the pending entry."""
        if self.pending_exit:
            self.close(t, self.bars.open[t], ExitReason.SIGNAL)
        if self.held_too_long(t):
            self.close(t, self.bars.open[t], ExitReason.MAX_HOLD)
        if self.pos is None and self.pending is not None:
            self.open(self.pending, t, self.bars.open[t])
        self.pending, self.pending_exit = None, False

    def after_open(self, t: int) -> None:
        """Stops and ladder rungs during the bar; with close fills, signal and time exits at the close."""
        b, pos = self.bars, self.pos
        if pos is not None and t > pos.entry_bar:
            reason = _intrabar(pos, b.open[t], b.low[t], b.high[t], self.settings)
            if reason is not None:
                self.close(t, 0.0, reason)
        if self.pos is not None and not self.settings.fill_next_open and t > self.pos.entry_bar:
            if self.exits[t]:
                self.close(t, b.close[t], ExitReason.SIGNAL)
            elif self.held_too_long(t):
                self.close(t, b.close[t], ExitReason.MAX_HOLD)
        if self.pos is not None and t == len(b) - 1:
            self.close(t, b.close[t], ExitReason.END_OF_DATA)

    def at_close(self, t: int) -> float:
        """Signals known at the close, then the equity marked at the close."""
        if self.pos is None and self.allowed[t] and self.cash > 0:
            if self.settings.fill_next_open:
                self.pending = t
            else:
                self.open(t, t, self.bars.close[t])
        elif self.pos is not None and self.settings.fill_next_open and self.exits[t]:
            self.pending_exit = True
        pos = self.pos
        if pos is None:
            return self.cash
        return self.cash - pos.cost + pos.proceeds + pos.units * self.bars.close[t]


def _simulate(
    bars: BarArrays,
    entries: np.ndarray,
    exits: np.ndarray,
    mask: np.ndarray,
    rules: _BarRules,
    config: StrategyConfig,
) -> tuple[list[dict[str, Any]], np.ndarray, list[dict[str, Any]]]:
    allowed = entries & ~exits & mask
    allowed[len(bars) - 1] = False
    run = _StyledRun(bars, exits, allowed, rules, config)
    equity = np.empty(len(bars))
    for t in range(len(bars)):
        if run.settings.fill_next_open:
            run.at_open(t)
        run.after_open(t)
        equity[t] = run.at_close(t)
    return run.rows, equity, run.skipped


def _result(
    bars: BarArrays,
    frame: pd.DataFrame,
    records: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    equity: np.ndarray,
    strategy: str,
    params: dict[str, float],
    config: StrategyConfig,
    notes: list[str],
    gate: SessionGate,
) -> BacktestResult:
    """`records`: the trade rows and the rows of the entries the order rules skipped."""
    rows, skipped_rows = records
    columns = [*TRADE_COLUMNS, "partial_exits"]
    trades = pd.DataFrame(rows, columns=columns)
    arrays = TradeArrays.from_records(trades)
    skipped = pd.DataFrame(skipped_rows, columns=["bar", "reason", "order_value"])
    skipped.insert(0, "time", bars.index[skipped["bar"].to_numpy(dtype=np.int64)])
    tally = RuleTally().add(arrays.filled_fraction, skipped)
    rule_notes = render_rule_notes(config.order_rules(), config.market_rules, tally)
    table = arrays.to_frame(bars.index)
    table["partial_exits"] = trades["partial_exits"].to_numpy(dtype=np.int64)
    seconds = bars.interval_seconds()
    # Buy and hold of the same bars with the same fees, as every engine result has it.
    benchmark = buy_and_hold(bars.close, initial_cash=config.initial_cash, cost_rate=config.cost_rate)
    metrics = compute_metrics(
        equity, arrays, initial_cash=config.initial_cash, bar_seconds=seconds, benchmark=benchmark
    )
    info = RunInfo(
        strategy=strategy,
        symbol=bars.symbol,
        start=bars.index[0],
        end=bars.index[-1],
        n_bars=len(bars),
        bar_seconds=seconds,
        data_source=str(frame.attrs.get("source", "dataframe")),
        synthetic=bool(frame.attrs.get("synthetic", False)),
        fill=config.fill,
        commission_rate=config.commission_rate,
        slippage_rate=config.slippage_rate,
        notes=(*notes, *rule_notes, f"session gate: {gate.describe()}"),
    )
    return BacktestResult(
        params=params,
        metrics={k: float(v[0]) for k, v in metrics.items()},
        trades=table,
        equity=pd.Series(equity, index=bars.index, name="equity"),
        config=config,
        info=info,
        extras={"skipped_orders": skipped} if rule_notes else {},
    )
