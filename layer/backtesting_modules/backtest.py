"""The engine's public entry points: `run_backtest` (one parameter set) and `run_sweep` (a grid), and
`sweep_table`, the sweep of any parameter table (`param_sets.run_sets` sweeps a list of sets with it).

All go through the same path: validate bars, compute signals for a block of parameter combinations, apply
the entry filters, simulate, build equity curves, compute metrics. A sweep row is therefore exactly the
result `run_backtest` gives for those parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from . import indicators
from .bars import BarArrays
from .config import StrategyConfig
from .data import preparation_note, validate_bars
from .errors import ConfigError, DataError, did_you_mean
from .market_rules import RuleTally, render_rule_notes
from .metrics import HIGHER_IS_BETTER, buy_and_hold, compute_metrics, legacy_metrics
from .simulation import (
    SignalIndex,
    SimOutput,
    SimSettings,
    allowed_entry_keys,
    equity_curves,
    signal_keys,
    simulate_indexed,
)
from .strategies import Strategy, expand_grid, get_strategy, resolve_params
from .strategies.registry import ParamTable
from .trades import TradeArrays
from .windows import (
    PeriodCollector,
    PeriodPlan,
    PeriodReturns,
    TradeWindow,
    compute_period_returns,
    empty_period_returns,
    head_bars,
    period_nanos,
    resolve_window,
    shift_trades,
    tail_bars,
    window_note,
)

ENGINE_VERSION = "0.1.0"
# Cells (bars × combinations) of one block of dense work: signals, equity curves, metrics. At 3M cells a
# float64 block is 24 MB, under glibc's 32 MB dynamic mmap threshold, so its memory is recycled between
# blocks instead of being returned to the OS and page-faulted in again (that alone halves sweep time).
DEFAULT_BLOCK_CELLS = 3_000_000
# Combinations per trade loop: the loop's cost is per iteration (one trade of every combination), so it
# runs over many combinations at once; this only bounds the memory of the trade list.
_LOOP_COMBOS = 4096


@dataclass(frozen=True)
class RunInfo:
    """What was run: every report shows these conditions next to its numbers."""

    strategy: str
    symbol: str | None
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    n_bars: int
    bar_seconds: float
    data_source: str
    synthetic: bool
    fill: str
    commission_rate: float
    slippage_rate: float
    engine_version: str = ENGINE_VERSION
    notes: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunInfo:
        """The inverse of `to_dict` (a sweep keeps its RunInfo as a dict in `DataFrame.attrs["info"]`)."""

        def stamp(value: Any) -> pd.Timestamp | None:
            return pd.Timestamp(value) if value is not None else None

        return cls(
            **{
                **data,
                "start": stamp(data["start"]),
                "end": stamp(data["end"]),
                "notes": tuple(data["notes"]),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "symbol": self.symbol,
            "start": self.start.isoformat() if self.start is not None else None,
            "end": self.end.isoformat() if self.end is not None else None,
            "n_bars": self.n_bars,
            "bar_seconds": self.bar_seconds,
            "data_source": self.data_source,
            "synthetic": self.synthetic,
            "fill": self.fill,
            "commission_rate": self.commission_rate,
            "slippage_rate": self.slippage_rate,
            "engine_version": self.engine_version,
            "notes": list(self.notes),
        }


@dataclass
class BacktestResult:
    """The result of one backtest: `.metrics`, `.trades` (DataFrame), `.equity` (Series at each close)."""

    params: dict[str, float]
    metrics: dict[str, float]
    trades: pd.DataFrame
    equity: pd.Series
    config: StrategyConfig
    info: RunInfo
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def strategy(self) -> str:
        return self.info.strategy

    def to_legacy(self) -> dict[str, float]:
        """The metrics under the original system's field names (win_rate, mdd, sharpe_ratio, ...)."""
        return legacy_metrics(self.metrics)

    def period_returns(self, freq: str) -> PeriodReturns:
        """Returns of `.equity` per UTC period of the fixed frequency `freq` (one column), as a sweep's
        ``attrs["period_returns"]`` has them for each row; see `PeriodReturns`."""
        index = pd.DatetimeIndex(self.equity.index)
        return compute_period_returns(self.equity.to_numpy(), index, freq, self.config.initial_cash)


@dataclass(frozen=True)
class _Prepared:
    """Bars to signal and trade on (all bars before a window's stop), and the bars equity and metrics cover
    (`metric_bars`, from position `first` of `bars`: the window's, or `bars` themselves)."""

    bars: BarArrays
    settings: SimSettings
    entry_mask: np.ndarray
    info: RunInfo
    metric_bars: BarArrays
    first: int = 0


def _prepare(
    bars: pd.DataFrame | BarArrays,
    strategy: Strategy,
    params: ParamTable,
    config: StrategyConfig,
    window: TradeWindow | None = None,
) -> _Prepared:
    frame_attrs: Mapping[Any, Any] = {}
    if isinstance(bars, pd.DataFrame):
        frame_attrs = bars.attrs
        arrays = BarArrays.from_frame(validate_bars(bars, min_bars=2), symbol=frame_attrs.get("symbol"))
    else:
        arrays = bars
    notes: list[str] = []
    first = 0
    if window is not None:  # no look-ahead: the bars from the window's stop on are never read
        bounds = resolve_window(arrays.index, window)
        notes.append(window_note(bounds, arrays.index))
        arrays, first = head_bars(arrays, bounds.stop), bounds.first
    # The warm-up plus one bar to signal on and one to fill on.
    needed = int(np.max(strategy.warmup(params))) + 2 if params else 2
    if len(arrays) < needed:
        raise DataError(
            f"{strategy.name} needs at least {needed} bars for these parameters, got {len(arrays)}: "
            "load a longer period or use shorter windows."
        )
    mask, filter_notes = compute_entry_mask(arrays, config, first=first)
    prepared_note = preparation_note(frame_attrs)
    notes = [*([prepared_note] if prepared_note is not None else []), *notes, *filter_notes]
    metric_bars = tail_bars(arrays, first)
    info = _run_info(metric_bars, strategy, config, frame_attrs, notes)
    return _Prepared(arrays, SimSettings.from_config(config), mask, info, metric_bars, first)


def _run_info(
    bars: BarArrays,
    strategy: Strategy,
    config: StrategyConfig,
    frame_attrs: Mapping[Any, Any],
    notes: list[str],
) -> RunInfo:
    index = bars.index
    return RunInfo(
        strategy=strategy.name,
        symbol=bars.symbol,
        start=index[0] if len(index) else None,
        end=index[-1] if len(index) else None,
        n_bars=len(bars),
        bar_seconds=bars.interval_seconds(),
        data_source=str(frame_attrs.get("source", "dataframe")),
        synthetic=bool(frame_attrs.get("synthetic", False)),
        fill=config.fill,
        commission_rate=config.commission_rate,
        slippage_rate=config.slippage_rate,
        notes=tuple(notes),
    )


def compute_entry_mask(
    bars: BarArrays, config: StrategyConfig, *, first: int = 0
) -> tuple[np.ndarray, list[str]]:
    """Bars on which `StrategyConfig.filters` and `min_volume` allow an entry, plus notes for the report.

    Bars before position `first` (a trade window's warm-up) allow none; the notes count the bars from it.
    """
    filters = config.entry_filters()
    notes: list[str] = []
    mask = np.ones(len(bars), dtype=bool)
    if filters.excludes(bars.symbol):
        notes.append(f"{bars.symbol} is in filters.exclude_symbols: no entries.")
        mask[:] = False
        return mask, notes
    if filters.min_price is not None:
        mask &= bars.close >= filters.min_price
    if filters.max_price is not None:
        mask &= bars.close <= filters.max_price
    if filters.volume_ma_ratio is not None:
        period = filters.volume_ma_period
        ratio = bars.memo(("volume_ratio", period), lambda: indicators.volume_ratio(bars.volume, period))
        mask &= np.greater_equal(ratio, filters.volume_ma_ratio)
    if config.min_volume > 0:
        mask &= bars.close * bars.volume >= config.min_volume
    counted = len(bars) - first
    blocked = int((~mask[first:]).sum())
    mask[:first] = False
    if blocked:
        notes.append(f"entry filters block {blocked} of {counted} bars ({blocked / counted:.0%}).")
    return mask, notes


def _block_signals(
    prepared: _Prepared, strategy: Strategy, params: ParamTable, m: int
) -> tuple[np.ndarray, np.ndarray]:
    entries, exits = strategy.signals(prepared.bars, params)
    expected = (len(prepared.bars), m)
    if entries.shape != expected or exits.shape != expected:
        raise ConfigError(
            f"strategy {strategy.name} returned signals of shape {entries.shape}/{exits.shape}, expected "
            f"{expected}; fix its signal function."
        )
    return entries, exits


def _slice(table: ParamTable, start: int, stop: int) -> ParamTable:
    return {k: v[start:stop] for k, v in table.items()}


def _combos_trades(
    prepared: _Prepared, strategy: Strategy, table: ParamTable, total: int, step: int
) -> SimOutput:
    """Signals block by block (bounded memory), indexed sparsely, then one trade loop over them all."""
    n = len(prepared.bars)
    entry_keys, exit_keys = [], []
    for start in range(0, total, step):
        stop = min(start + step, total)
        entries, exits = _block_signals(prepared, strategy, _slice(table, start, stop), stop - start)
        entry_keys.append(allowed_entry_keys(entries, exits, prepared.entry_mask, start))
        exit_keys.append(signal_keys(exits, start))
        del entries, exits
    output = simulate_indexed(
        prepared.bars,
        SignalIndex(n, total, entry_keys),
        SignalIndex(n, total, exit_keys),
        total,
        prepared.settings,
    )
    return output


def _combo_range(trades: TradeArrays, start: int, stop: int) -> TradeArrays:
    """Trades of combinations [start, stop), renumbered from 0 (trades are grouped by combination)."""
    lo, hi = np.searchsorted(trades.combo, [start, stop])
    part = trades.select(slice(lo, hi))  # type: ignore[arg-type]
    return TradeArrays(**{**part.__dict__, "combo": part.combo - start})


def _block_metrics(
    prepared: _Prepared, trades: TradeArrays, start: int, stop: int, config: StrategyConfig
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    # A window's trades all lie in its bars: counted from its first bar, they give the window's curves.
    part = shift_trades(_combo_range(trades, start, stop), prepared.first)
    bars = prepared.metric_bars
    equity = _equity_curves(bars, part, stop - start, prepared.settings)
    cash, cost_rate = prepared.settings.initial_cash, prepared.settings.cost_rate
    # Buy and hold of the same bars with the same fees: one curve for every block of a sweep.
    benchmark = bars.memo(
        ("buy_and_hold", cash, cost_rate),
        lambda: buy_and_hold(bars.close, initial_cash=cash, cost_rate=cost_rate),
    )
    metrics = compute_metrics(
        equity,
        part,
        initial_cash=config.initial_cash,
        bar_seconds=prepared.info.bar_seconds,
        benchmark=benchmark,
    )
    return metrics, equity


def _equity_curves(bars: BarArrays, trades: TradeArrays, m: int, settings: SimSettings) -> np.ndarray:
    """`equity_curves`, but the combinations after a block's last trade are flat at initial cash without
    it: `equity_curves` indexes past its trades (IndexError) when a block's last combinations have none."""
    traded = int(trades.combo[-1]) + 1 if trades.combo.size else m
    if traded == m:
        return equity_curves(bars, trades, m, settings)
    equity = np.full((m, len(bars)), settings.initial_cash)
    equity[:traded] = equity_curves(bars, trades, traded, settings).T
    return equity.T  # F-ordered like equity_curves': each curve contiguous for the metrics


def run_backtest(
    bars: pd.DataFrame | BarArrays,
    strategy: str | Strategy,
    params: Mapping[str, Any] | None = None,
    config: StrategyConfig | None = None,
    *,
    window: TradeWindow | None = None,
) -> BacktestResult:
    """Backtest one parameter set of `strategy` on `bars`.

    `window`: trade only in [start, stop) (see `TradeWindow`): the bars before `stop` warm the indicators
    up, entries come from signal bars at or after `start`, and equity, metrics and `.info` describe the
    window's bars. Trade bar positions (`entry_bar`, `exit_bar`) still count from the first bar of `bars`.

    >>> from backtesting_modules import run_backtest, synthetic_bars, StrategyConfig
    >>> bars = synthetic_bars("KRW-BTC", periods=2000, seed=7)
    >>> result = run_backtest(bars, "SMA_Crossover", {"fast": 10, "slow": 30}, StrategyConfig(filters=None))
    >>> sorted(result.metrics)[:3]
    ['avg_holding_bars', 'avg_holding_hours', 'avg_loss']
    """
    spec = get_strategy(strategy)
    config = config or StrategyConfig()
    values = resolve_params(spec, params)
    table = {k: np.asarray([v]) for k, v in values.items()}
    prepared = _prepare(bars, spec, table, config, window)
    output = _combos_trades(prepared, spec, table, 1, 1)
    trades = output.trades
    metrics, equity = _block_metrics(prepared, trades, 0, 1, config)
    info = _with_rule_notes(prepared, config, _tally(prepared, output))
    extras = {"skipped_orders": output.skipped.to_frame(prepared.bars.index)} if _rules_on(prepared) else {}
    return BacktestResult(
        params=values,
        metrics={k: float(v[0]) for k, v in metrics.items()},
        trades=trades.to_frame(prepared.bars.index),
        equity=pd.Series(equity[:, 0], index=prepared.metric_bars.index, name="equity"),
        config=config,
        info=info,
        extras=extras,
    )


def _rules_on(prepared: _Prepared) -> bool:
    return prepared.settings.ticks is not None or prepared.settings.sizing_rules


def _tally(prepared: _Prepared, output: SimOutput, tally: RuleTally | None = None) -> RuleTally:
    """What the exchange order rules did in `output`, added to `tally` (nothing when no rule is set)."""
    tally = RuleTally() if tally is None else tally
    if _rules_on(prepared):
        tally.add(output.trades.filled_fraction, output.skipped.to_frame(prepared.bars.index))
    return tally


def _with_rule_notes(
    prepared: _Prepared, config: StrategyConfig, tally: RuleTally, combos: int = 1
) -> RunInfo:
    """The run's info with the notes on the exchange order rules (unchanged when no rule is set)."""
    notes = render_rule_notes(config.order_rules(), config.market_rules, tally, combos=combos)
    return replace(prepared.info, notes=(*prepared.info.notes, *notes)) if notes else prepared.info


def block_size(n_bars: int, block_cells: int = DEFAULT_BLOCK_CELLS) -> int:
    """Combinations per dense block so that one (n_bars × block) array stays within `block_cells` cells."""
    return max(1, block_cells // max(1, n_bars))


def run_sweep(
    bars: pd.DataFrame | BarArrays,
    strategy: str | Strategy,
    grid: Mapping[str, Sequence[Any]],
    config: StrategyConfig | None = None,
    *,
    fixed: Mapping[str, Any] | None = None,
    block_cells: int = DEFAULT_BLOCK_CELLS,
    window: TradeWindow | None = None,
    period_returns: str | None = None,
) -> pd.DataFrame:
    """Backtest every valid combination of `grid`; one row per combination (parameters, then metrics).

    Combinations violating a strategy constraint are skipped and counted in ``df.attrs["skipped"]``.
    Work proceeds in blocks of combinations so memory stays bounded whatever the grid size. `window`: as
    in `run_backtest`, for every row. `period_returns`: a fixed pandas frequency ("1D", "4h"); each row's
    returns per UTC period of it go to ``df.attrs["period_returns"]`` (`PeriodReturns`, column j for the
    row labelled j).
    """
    spec = get_strategy(strategy)
    if period_returns is not None:
        period_nanos(period_returns, "period_returns")  # refused before any work
    table, skipped = expand_grid(spec, grid, fixed)
    return sweep_table(
        bars, spec, table, config or StrategyConfig(), skipped, (block_cells, window, period_returns)
    )


def sweep_table(
    bars: pd.DataFrame | BarArrays,
    spec: Strategy,
    table: ParamTable,
    config: StrategyConfig,
    skipped: int,
    options: tuple[int, TradeWindow | None, str | None],
) -> pd.DataFrame:
    """The sweep of every combination of a full parameter table (`run_sweep`'s frame and attrs; `skipped`
    goes to ``attrs["skipped"]``). `options`: block cells, trade window, period-returns frequency."""
    block_cells, window, period_returns = options
    total = len(next(iter(table.values()))) if table else 1
    if total == 0:
        frame = pd.DataFrame(columns=[*spec.param_names])
        frame.attrs.update(combinations=0, skipped=skipped)
        if period_returns is not None:
            index = bars.index if isinstance(bars, BarArrays) else validate_bars(bars, min_bars=2).index
            frame.attrs["period_returns"] = empty_period_returns(
                pd.DatetimeIndex(index), window, period_returns
            )
        return frame
    prepared = _prepare(bars, spec, table, config, window)
    periods = None
    if period_returns is not None:
        plan = PeriodPlan.of(prepared.metric_bars.index, period_returns, "period_returns")
        periods = PeriodCollector(plan, total, prepared.settings.initial_cash)
    frame, tally = _sweep_rows(prepared, spec, table, config, (block_cells, periods))
    info = _with_rule_notes(prepared, config, tally, combos=total)
    frame.attrs.update(combinations=total, skipped=skipped, info=info.to_dict())
    if periods is not None:
        frame.attrs["period_returns"] = periods.result()
    return frame


def _sweep_rows(
    prepared: _Prepared,
    spec: Strategy,
    table: ParamTable,
    config: StrategyConfig,
    options: tuple[int, PeriodCollector | None],
) -> tuple[pd.DataFrame, RuleTally]:
    """The rows of every combination of `table`, trade loop by trade loop, metric block by metric block."""
    block_cells, periods = options
    total = len(next(iter(table.values()))) if table else 1
    step = block_size(len(prepared.bars), block_cells)
    metric_step = block_size(len(prepared.metric_bars), block_cells)  # a window's curves are shorter
    parts: list[pd.DataFrame] = []
    tally = RuleTally()
    for big in range(0, total, _LOOP_COMBOS):
        big_stop = min(big + _LOOP_COMBOS, total)
        big_table = _slice(table, big, big_stop)
        output = _combos_trades(prepared, spec, big_table, big_stop - big, step)
        _tally(prepared, output, tally)
        trades = output.trades
        for start in range(0, big_stop - big, metric_step):
            stop = min(start + metric_step, big_stop - big)
            metrics, equity = _block_metrics(prepared, trades, start, stop, config)
            if periods is not None:
                periods.add(big + start, equity)
            parts.append(pd.DataFrame({**_slice(big_table, start, stop), **metrics}))
    return pd.concat(parts, ignore_index=True), tally


def rank_sweep(frame: pd.DataFrame, metric: str, top: int | None = None) -> pd.DataFrame:
    """Sort a sweep by `metric` (best first, NaN last); the direction comes from `HIGHER_IS_BETTER`."""
    if metric not in frame.columns:
        raise ConfigError(
            f"unknown metric {metric!r}.{did_you_mean(metric, HIGHER_IS_BETTER)} "
            f"Metrics: {', '.join(HIGHER_IS_BETTER)}."
        )
    ranked = frame.sort_values(metric, ascending=not HIGHER_IS_BETTER.get(metric, True), na_position="last")
    return ranked.head(top) if top is not None else ranked
