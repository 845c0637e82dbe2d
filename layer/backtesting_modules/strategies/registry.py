"""The strategy registry: what a strategy declares and how parameters are checked and expanded.

A strategy declares its parameters (type, default, allowed range), constraints between them, the history it
needs, and a signal function vectorised over parameter combinations:

    signals(bars: BarArrays, params: Mapping[str, np.ndarray]) -> (entries, exits)

`params[name]` is a 1-D array with one value per combination (length m); `entries` and `exits` are boolean
arrays of shape (len(bars), m). A signal at bar t is known at t's close. Bars whose indicators are not yet
defined (NaN) must produce False.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..bars import BarArrays
from ..errors import StrategyError, did_you_mean

ParamTable = dict[str, np.ndarray]
SignalFn = Callable[[BarArrays, Mapping[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]
WarmupFn = Callable[[Mapping[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Param:
    """One tunable parameter: `kind` is int or float; values must lie in [low, high]."""

    name: str
    default: float
    low: float
    high: float
    kind: type = float
    doc: str = ""

    def coerce(self, value: Any, strategy: str) -> float:
        """Convert and range-check one value; StrategyError names the parameter and its range."""
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise StrategyError(f"{strategy}: parameter {self.name}={value!r} is not a number.") from exc
        if self.kind is int:
            if not math.isfinite(number) or number != int(number):
                raise StrategyError(f"{strategy}: parameter {self.name}={value!r} must be an integer.")
            number = int(number)
        if not (self.low <= number <= self.high):
            raise StrategyError(
                f"{strategy}: parameter {self.name}={value!r} is outside [{self.low}, {self.high}]; "
                f"choose a value in that range (default {self.default})."
            )
        return number


@dataclass(frozen=True)
class Constraint:
    """A rule between parameters, e.g. ``Constraint("fast < slow", lambda p: p["fast"] < p["slow"])``."""

    description: str
    check: Callable[[Mapping[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Strategy:
    """A registered strategy. `warmup(params)` returns, per combination, the bars needed before a signal."""

    name: str
    description: str
    params: tuple[Param, ...]
    signals: SignalFn
    warmup: WarmupFn
    constraints: tuple[Constraint, ...] = ()

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise StrategyError(
            f"{self.name} has no parameter {name!r}.{did_you_mean(name, self.param_names)} "
            f"Its parameters: {', '.join(self.param_names) or '(none)'}."
        )

    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.params}


_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Add a strategy to the registry (a second registration under the same name is an error)."""
    if strategy.name in _REGISTRY and _REGISTRY[strategy.name] is not strategy:
        raise StrategyError(f"strategy {strategy.name!r} is already registered; pick another name.")
    _REGISTRY[strategy.name] = strategy
    return strategy


def list_strategies() -> list[str]:
    return sorted(_REGISTRY)


def get_strategy(name: str | Strategy) -> Strategy:
    """Look a strategy up by name; unknown names get a 'did you mean' error."""
    if isinstance(name, Strategy):
        return name
    if name not in _REGISTRY:
        raise StrategyError(
            f"unknown strategy {name!r}.{did_you_mean(name, _REGISTRY)} "
            f"Registered strategies: {', '.join(list_strategies())}."
        )
    return _REGISTRY[name]


def resolve_params(strategy: Strategy, params: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Defaults overlaid with `params`, each checked; constraints checked on the result."""
    values = strategy.defaults()
    for name, value in (params or {}).items():
        values[name] = strategy.param(name).coerce(value, strategy.name)
    table = {k: np.asarray([v]) for k, v in values.items()}
    for constraint in strategy.constraints:
        if not bool(np.asarray(constraint.check(table))[0]):
            raise StrategyError(
                f"{strategy.name}: parameters {values} violate the constraint {constraint.description!r}."
            )
    return values


def expand_grid(
    strategy: Strategy, grid: Mapping[str, Sequence[Any]], fixed: Mapping[str, Any] | None = None
) -> tuple[ParamTable, int]:
    """Cartesian product of `grid` (other parameters from `fixed` or defaults).

    Returns the table of valid combinations (name -> array, all of length m) and how many combinations
    were skipped because they violate a constraint.
    """
    base = resolve_params(strategy, fixed)
    names = list(grid)
    axes: list[list[float]] = []
    for name in names:
        param = strategy.param(name)
        values = list(grid[name])
        if not values:
            raise StrategyError(f"{strategy.name}: grid for {name!r} is empty; give at least one value.")
        axes.append([param.coerce(v, strategy.name) for v in values])
    combos = list(itertools.product(*axes)) if names else [()]
    table: ParamTable = {}
    for p in strategy.params:
        at = names.index(p.name) if p.name in names else None
        column = [c[at] for c in combos] if at is not None else [base[p.name]] * len(combos)
        table[p.name] = np.asarray(column, dtype=np.int64 if p.kind is int else np.float64)
    valid = np.ones(len(combos), dtype=bool)
    for constraint in strategy.constraints:
        valid &= np.asarray(constraint.check(table), dtype=bool)
    skipped = int((~valid).sum())
    return {k: v[valid] for k, v in table.items()}, skipped


def table_rows(table: ParamTable) -> list[dict[str, float]]:
    """The combinations of a table as a list of plain dicts (ints stay ints)."""
    names = list(table)
    size = len(next(iter(table.values()))) if table else 1
    return [{n: table[n][i].item() for n in names} for i in range(size)]
