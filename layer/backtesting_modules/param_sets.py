"""Explicit lists of parameter sets: what an adaptive search (not a grid) asks the engine to backtest.

`run_sets` backtests them, vectorised like a grid (`backtest.sweep_table`). This module owns turning `sets`
into the registry's parameter table (`compute_set_table`: what a set omits from `fixed`, then the
defaults; every value coerced and range-checked like `resolve_params`, errors naming the set), which sets
a strategy's constraints allow (`valid_sets`, no backtest), and putting the pruned sets' rows back in
place after the sweep of the others (`expand_set_rows`).

`sets` is either a sequence of mappings, one per set (``[{"fast": 10, "slow": 30}, {"fast": 7}]``), or a
table of columns, one value per set in each (``{"fast": [10, 7], "slow": [30, 30]}``, numpy arrays welcome).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .backtest import DEFAULT_BLOCK_CELLS, sweep_table
from .bars import BarArrays
from .config import StrategyConfig
from .errors import StrategyError, did_you_mean
from .metrics import METRIC_NAMES
from .strategies import Param, Strategy, get_strategy
from .strategies.registry import ParamTable
from .windows import PeriodReturns, TradeWindow, period_nanos

ParamSets = Sequence[Mapping[str, Any]] | Mapping[str, Any]


def run_sets(
    bars: pd.DataFrame | BarArrays,
    strategy: str | Strategy,
    sets: ParamSets,
    config: StrategyConfig | None = None,
    *,
    fixed: Mapping[str, Any] | None = None,
    block_cells: int = DEFAULT_BLOCK_CELLS,
    window: TradeWindow | None = None,
    period_returns: str | None = None,
) -> pd.DataFrame:
    """Backtest each parameter set of `sets` (a search's trials, not a grid), vectorised as `run_sweep`
    does: one row per set, in their order, with its columns (parameters, then metrics) and attrs. Row i
    is `run_backtest` of set i; `window` and `period_returns` are those of `run_sweep`.

    `sets`: a sequence of mappings or a table of columns (see the module docstring); what a set omits
    comes from `fixed`, then the defaults; values are checked as `resolve_params` does (errors name the
    set). A set violating a constraint is not backtested: its row has its parameters and NaN metrics (and
    NaN period returns), and its position is in ``attrs["skipped_indices"]`` (`valid_sets` tells which
    beforehand). ``attrs["combinations"]`` counts the sets backtested, ``attrs["skipped"]`` the others.

    >>> from backtesting_modules import StrategyConfig, run_sets, synthetic_bars
    >>> bars = synthetic_bars("KRW-BTC", periods=2000, seed=7)
    >>> sets = [{"fast": 10, "slow": 30}, {"fast": 40, "slow": 20}, {"fast": 7}]
    >>> frame = run_sets(bars, "SMA_Crossover", sets, StrategyConfig(filters=None))
    >>> frame["slow"].tolist(), frame.attrs["skipped_indices"], bool(frame["sharpe"].isna()[1])
    ([30, 20, 30], [1], True)
    """
    spec = get_strategy(strategy)
    if period_returns is not None:
        period_nanos(period_returns, "period_returns")  # refused before any work
    table = compute_set_table(spec, sets, fixed)
    valid = compute_valid(spec, table)
    options = (block_cells, window, period_returns)
    run = select_rows(table, np.flatnonzero(valid))
    frame = sweep_table(bars, spec, run, config or StrategyConfig(), int((~valid).sum()), options)
    return expand_set_rows(frame, table, valid)


def compute_set_table(
    strategy: str | Strategy, sets: ParamSets, fixed: Mapping[str, Any] | None = None
) -> ParamTable:
    """The parameter table of `sets`: every parameter of the strategy a column (int64 or float64), one row
    per set in their order. A value a set omits comes from `fixed`, else the parameter's default.

    Values are checked like `resolve_params` (a StrategyError names the set, the parameter and its range);
    constraints are not checked here (see `valid_sets`).
    """
    spec = get_strategy(strategy)
    if not spec.params:
        raise StrategyError(f"{spec.name} has no parameters: run it with run_backtest, not with sets.")
    base = spec.defaults()
    for name, value in (fixed or {}).items():
        base[name] = spec.param(name).coerce(value, f"{spec.name} (fixed)")
    columns, size = _given_columns(spec, sets, base)
    table: ParamTable = {}
    for param in spec.params:
        dtype = np.int64 if param.kind is int else np.float64
        given = columns.get(param.name)
        if given is None:
            table[param.name] = np.full(size, base[param.name], dtype=dtype)
        else:
            table[param.name] = _coerce_column(param, given, spec.name).astype(dtype)
    return table


def _given_columns(
    spec: Strategy, sets: ParamSets, base: Mapping[str, float]
) -> tuple[dict[str, Sequence[Any]], int]:
    """The values the sets give, as one column per parameter named anywhere, and the number of sets."""
    if isinstance(sets, Mapping):
        return _table_columns(spec, sets)
    rows, known = list(sets), set(spec.param_names)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise StrategyError(
                f"{spec.name}, set {i}: {row!r} is not a mapping of parameter names to values; give each set "
                f"as a dict such as {{{spec.params[0].name!r}: {spec.params[0].default!r}}}."
            )
        for name in row:
            _check_name(spec, known, name, f"set {i}")
    named = {name: None for row in rows for name in row}  # every name given, in first-seen order
    return {name: [row.get(name, base[name]) for row in rows] for name in named}, len(rows)


def _table_columns(spec: Strategy, table: Mapping[str, Any]) -> tuple[dict[str, Sequence[Any]], int]:
    if not table:
        raise StrategyError(
            f"{spec.name}: the table of sets has no column; give one column per parameter (one value per "
            "set), or a list of sets such as [{}] for the defaults."
        )
    columns: dict[str, Sequence[Any]] = {}
    known = set(spec.param_names)
    for name, values in table.items():
        _check_name(spec, known, name, "the table of sets")
        if np.ndim(values) != 1:
            raise StrategyError(
                f"{spec.name}: column {name!r} of the table of sets must be a sequence (one value per set), "
                f"got {values!r}; for a single set pass a list: [{{{name!r}: ...}}]."
            )
        columns[name] = values
    sizes = {name: len(values) for name, values in columns.items()}
    if len(set(sizes.values())) > 1:
        raise StrategyError(
            f"{spec.name}: the columns of the table of sets differ in length ({sizes}); give every column "
            "one value per set."
        )
    return columns, next(iter(sizes.values()))


def _check_name(spec: Strategy, known: set[str], name: Any, where: str) -> None:
    if name not in known:
        raise StrategyError(
            f"{spec.name}, {where}: no parameter {name!r}.{did_you_mean(str(name), spec.param_names)} "
            f"Its parameters: {', '.join(spec.param_names)}."
        )


def _coerce_column(param: Param, values: Sequence[Any], strategy: str) -> np.ndarray:
    """`Param.coerce` of every value, vectorised when the column is plainly numeric; when a value is not
    allowed, `Param.coerce` of each in turn words the error for the first one (naming its set)."""
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        numbers = None
    if numbers is not None and numbers.ndim == 1:
        allowed = (numbers >= param.low) & (numbers <= param.high)
        if param.kind is int:
            allowed &= np.isfinite(numbers) & (numbers == np.trunc(numbers))
        if allowed.all():
            return numbers
    return np.asarray([param.coerce(v, f"{strategy}, set {i}") for i, v in enumerate(values)])


def compute_valid(strategy: Strategy, table: ParamTable) -> np.ndarray:
    """Per row of a full parameter table, whether it satisfies every constraint of `strategy`."""
    size = len(next(iter(table.values()))) if table else 0
    valid = np.ones(size, dtype=bool)
    for constraint in strategy.constraints:
        valid &= np.asarray(constraint.check(table), dtype=bool)
    return valid


def valid_sets(
    strategy: str | Strategy, sets: ParamSets, *, fixed: Mapping[str, Any] | None = None
) -> np.ndarray:
    """Per set, True when it satisfies every constraint of `strategy` (no backtest): the sets `run_sets`
    would run; the others it prunes. Values are checked (and filled in) as `compute_set_table` does.

    >>> valid_sets("SMA_Crossover", [{"fast": 10, "slow": 30}, {"fast": 40}]).tolist()
    [True, False]
    """
    spec = get_strategy(strategy)
    return compute_valid(spec, compute_set_table(spec, sets, fixed))


def select_rows(table: ParamTable, rows: np.ndarray) -> ParamTable:
    return {name: column[rows] for name, column in table.items()}


def expand_set_rows(frame: pd.DataFrame, table: ParamTable, valid: np.ndarray) -> pd.DataFrame:
    """One row per set: `frame` (the sweep of the valid sets) with the pruned sets' rows put back in their
    places (their parameters, NaN metrics, NaN period returns); ``attrs["skipped_indices"]`` lists them."""
    pruned = np.flatnonzero(~valid)
    attrs = {**frame.attrs, "skipped_indices": pruned.tolist()}
    if pruned.size or len(frame.columns) == len(table):  # rows to put back, or no metric columns yet
        metric_names = [c for c in frame.columns if c not in table] or list(METRIC_NAMES)
        kept = np.flatnonzero(valid)
        metrics = {name: np.full(valid.size, np.nan) for name in metric_names}
        for name, column in metrics.items():
            if name in frame:
                column[kept] = frame[name].to_numpy()
        frame = pd.DataFrame({**table, **metrics})
        returns = attrs.get("period_returns")
        if isinstance(returns, PeriodReturns):
            values = np.full((returns.values.shape[0], valid.size), np.nan, dtype=np.float32)
            values[:, kept] = returns.values
            attrs["period_returns"] = PeriodReturns(returns.ends, values, returns.starts, returns.freq)
    frame.attrs.update(attrs)
    return frame
