"""The batch spec model: the frozen `BatchSpec` a batch file (YAML, `batches/*.yaml`) is validated into.

This module owns the spec's data model (dataclasses, enums, errors), the grid semantics (lists or
``"start:stop:step"`` with an inclusive stop, expanded in the engine's order), the count of backtests a spec
asks for, and the spec's content hash. It performs no I/O and imports nothing of the parser
(`spec_parser`, `spec_fields`), which builds on it; `spec` is the public face of both.

Grid order: the axes are taken in the order the YAML lists them and enumerated like
`strategies.expand_grid` (``itertools.product``: the last axis varies fastest). A *cartesian index* in
``[0, grid_size)`` names one combination of that product; combinations violating a strategy constraint
are skipped, exactly as `run_sweep` skips them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from ..config import StrategyConfig
from ..errors import BacktestError
from ..strategies import Strategy, get_strategy, resolve_params
from ..validation import Holdout, WalkForward

DEFAULT_MAX_BACKTESTS = 2_000_000
DEFAULT_RANKING_METRIC = "sharpe"  # what a batch ranks by unless `ranking.metric` says otherwise
DEFAULT_TOP_N = 10  # rows a batch summary keeps unless `ranking.top` says otherwise
# Variants with fewer closed trades are listed apart, never ranked as winners (`ranking.min_trades`).
DEFAULT_MIN_TRADES = 30
DEFAULT_PBO_BLOCKS = 16  # S of CSCV unless `validation.pbo_blocks` says (or the train windows are short)
DEFAULT_TOP_K = 5  # winners of each fold's train sweep run out of sample unless `validation.top_k` says
DEFAULT_BARS_ESTIMATE = 8760  # files / s3 sources: one year of hourly bars unless `data.bars` says otherwise
# Constraint checks run over this many cartesian combinations at a time (bounded memory for big grids).
_COUNT_BLOCK = 1 << 20
# A range axis is expanded into a list before any limit is checked: refuse absurd ones before expanding.
MAX_AXIS_VALUES = 100_000

Scalar = int | float
GridAxes = tuple[tuple[str, tuple[Scalar, ...]], ...]
Pairs = tuple[tuple[str, Any], ...]


class JobError(BacktestError):
    """Base of every error of the jobs package (spec, planning, messages, running)."""


class SpecError(JobError, ValueError):
    """A batch spec that cannot be run; the message names the field path and how to fix it."""


class JobType(Enum):
    SINGLE_STRATEGY = "SINGLE_STRATEGY"
    PARAMETER_OPTIMIZATION = "PARAMETER_OPTIMIZATION"
    TIMEZONE_ANALYSIS = "TIMEZONE_ANALYSIS"
    MULTI_STRATEGY = "MULTI_STRATEGY"
    PERFORMANCE_COMPARISON = "PERFORMANCE_COMPARISON"


class Priority(Enum):
    NORMAL = "normal"
    HIGH = "high"


class DataSource(Enum):
    SYNTHETIC = "synthetic"
    FILES = "files"
    S3 = "s3"
    EXCHANGE = "exchange"


class SearchMethod(Enum):
    """Optuna's samplers (on the driver only): TPE, CMA-ES, random, quasi-Monte Carlo (Sobol)."""

    TPE = "tpe"
    CMAES = "cmaes"
    RANDOM = "random"
    QMC = "qmc"


@dataclass(frozen=True)
class SearchRange:
    """Where a searched parameter may go: [low, high], on a log scale, or in steps of `step`."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass(frozen=True)
class SearchSpec:
    """An adaptive search instead of a grid (`search:`; docs/search.md): `trials` parameter sets asked of
    the sampler `wave` at a time (None: as many as keep every worker busy), stopping after `patience`
    waves without a better objective. `space` holds every searched parameter's range: those the spec
    named, the others from the strategy's `Param` ranges; fixed ones are the strategy's `params`."""

    method: SearchMethod
    trials: int
    space: tuple[tuple[str, SearchRange], ...]
    seed: int = 0
    wave: int | None = None
    patience: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method.value,
            "trials": self.trials,
            "seed": self.seed,
            "space": {name: r.to_dict() for name, r in self.space},
        }
        if self.wave is not None:
            out["wave"] = self.wave
        if self.patience is not None:
            out["patience"] = self.patience
        return out


@dataclass(frozen=True)
class StrategySpec:
    """One strategy of a batch: its grid axes (coerced values, YAML order) and fixed parameters, or — for
    an adaptive search — its search (then the grid is empty)."""

    name: str
    grid: GridAxes = ()
    params: Pairs = ()
    search: SearchSpec | None = None

    def grid_dict(self) -> dict[str, list[Scalar]]:
        return {name: list(values) for name, values in self.grid}

    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def grid_size(self) -> int:
        """Cartesian size of the grid (1 for no grid), before constraints."""
        return math.prod(len(values) for _, values in self.grid)


@dataclass(frozen=True)
class DataSpec:
    """Where the bars come from. Only the fields of `source` are set; `timeframe` is always set."""

    source: DataSource
    timeframe: str = "1h"
    seed: int | None = None
    periods: int | None = None
    start: str | None = None
    paths: Pairs = ()
    pattern: str | None = None
    uri: str | None = None
    exchange: str | None = None
    since: str | None = None  # window start, UTC, inclusive (every source)
    until: str | None = None  # window end, UTC, exclusive
    bars: int | None = None
    gaps: str = "keep"  # keep | fill: what loading does with missing bars

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source.value, "timeframe": self.timeframe}
        for name in ("seed", "periods", "start", "pattern", "uri", "exchange", "since", "until", "bars"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.gaps != "keep":
            out["gaps"] = self.gaps
        if self.paths:
            out["paths"] = dict(self.paths)
        return out


@dataclass(frozen=True)
class Ranking:
    metric: str = DEFAULT_RANKING_METRIC
    top: int = DEFAULT_TOP_N
    min_trades: int = DEFAULT_MIN_TRADES

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "top": self.top, "min_trades": self.min_trades}


class ValidationKind(Enum):
    NONE = "none"
    HOLDOUT = "holdout"
    WALK_FORWARD = "walk_forward"


Length = int | str  # a bar count, or a duration such as "90d"


@dataclass(frozen=True)
class ValidationSpec:
    """How a sweep's winners are checked out of sample (`validation:`; docs/validation.md).

    holdout: one fold, its test window the last `fraction` (or `period`) of the bars; walk_forward: `folds`
    consecutive test windows of `test` bars ending at the data's end, each after a train window of `train`
    (rolling) or everything before it (anchored), `gap` bars dropped in between. The `top_k` winners of each
    train sweep run on its test window; PBO splits the train periods' returns (one per `returns_period`)
    into `pbo_blocks` blocks."""

    kind: ValidationKind = ValidationKind.HOLDOUT
    folds: int = 1
    train: Length | None = None
    test: Length | None = None
    fraction: float | None = 0.25
    period: str | None = None
    anchored: bool = False
    gap: Length = 0
    top_k: int | None = None  # None: DEFAULT_TOP_K, at most ranking.top and the grid (`winners`)
    pbo_blocks: int | None = None  # None: DEFAULT_PBO_BLOCKS, fewer when a train window has fewer periods
    returns_period: str = "1d"

    @property
    def enabled(self) -> bool:
        return self.kind is not ValidationKind.NONE

    def winners(self, combinations: int, ranking_top: int) -> int:
        """How many winners of a fold's train sweep run out of sample (`top_k`, or its default clamped)."""
        if self.top_k is not None:
            return min(self.top_k, combinations)
        return max(1, min(DEFAULT_TOP_K, ranking_top, combinations))

    def scheme(self) -> WalkForward | Holdout | None:
        """The split the folds are planned by (`validation.plan_folds`); None without validation."""
        if self.kind is ValidationKind.HOLDOUT:
            return Holdout(fraction=self.fraction, period=self.period, gap=self.gap)
        if self.kind is ValidationKind.WALK_FORWARD:
            return WalkForward(self.folds, self.train, self.test or 1, anchored=self.anchored, gap=self.gap)
        return None

    def to_dict(self) -> dict[str, Any] | str:
        """The canonical form, as the parser reads it back (`validation: none`, or one split and options)."""
        if not self.enabled:
            return "none"
        if self.kind is ValidationKind.HOLDOUT:
            split: dict[str, Any] = (
                {"fraction": self.fraction} if self.period is None else {"period": self.period}
            )
        else:
            split = {"folds": self.folds, "test": self.test, "anchored": self.anchored}
            if self.train is not None:
                split["train"] = self.train
        split["gap"] = self.gap
        out: dict[str, Any] = {self.kind.value: split}
        if self.top_k is not None:
            out["top_k"] = self.top_k
        if self.pbo_blocks is not None:
            out["pbo_blocks"] = self.pbo_blocks
        return {**out, "returns_period": self.returns_period}


NO_VALIDATION = ValidationSpec(kind=ValidationKind.NONE)


@dataclass(frozen=True)
class BatchSpec:
    """A validated batch. Build it with `parse_spec` / `load_spec`, never by hand."""

    name: str
    job_type: JobType
    strategies: tuple[StrategySpec, ...]
    symbols: tuple[str, ...]
    data: DataSpec
    config: Pairs = ()
    priority: Priority = Priority.NORMAL
    ranking: Ranking = Ranking()
    max_backtests: int = DEFAULT_MAX_BACKTESTS
    validation: ValidationSpec = NO_VALIDATION  # the parser sets a holdout for PARAMETER_OPTIMIZATION

    @property
    def searches(self) -> bool:
        """An adaptive search (every strategy has `search:`; the parser refuses a mix with grids)."""
        return any(item.search is not None for item in self.strategies)

    def config_overrides(self) -> dict[str, Any]:
        return dict(self.config)

    def strategy_config(self) -> StrategyConfig:
        return StrategyConfig(**self.config_overrides())

    def to_dict(self) -> dict[str, Any]:
        """The canonical, JSON-ready form (grid axes as ordered lists: their order is the sweep order)."""
        return {
            "name": self.name,
            "job_type": self.job_type.value,
            "strategies": [_strategy_dict(s) for s in self.strategies],
            "symbols": list(self.symbols),
            "data": self.data.to_dict(),
            "config": dict(self.config),
            "priority": self.priority.value,
            "ranking": self.ranking.to_dict(),
            "limits": {"max_backtests": self.max_backtests},
            "validation": self.validation.to_dict(),
        }


def _strategy_dict(item: StrategySpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": item.name, "params": dict(item.params)}
    if item.search is not None:
        return {**out, "search": item.search.to_dict()}
    return {**out, "grid": [[name, list(values)] for name, values in item.grid]}


# --------------------------------------------------------------------------------------------- hashing


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted object keys: equal content gives equal text (lists keep their order)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def spec_hash(spec: BatchSpec) -> str:
    """sha256 of the spec's canonical JSON: the same batch, however it was written, has the same hash."""
    return sha256_hex(canonical_json(spec.to_dict()))


def data_hash(spec: BatchSpec) -> str:
    """Short hash of the data source alone: bars stored under it are shared by every batch using them."""
    return sha256_hex(canonical_json(spec.data.to_dict()))[:16]


# ------------------------------------------------------------------------------------- grid machinery


def combo_table(
    strategy: Strategy, grid: GridAxes, fixed: Mapping[str, Any], start: int, stop: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Parameter table of cartesian combinations [start, stop) and the mask of those passing constraints."""
    base = resolve_params(strategy, fixed)
    shape = tuple(len(values) for _, values in grid)
    positions = np.unravel_index(np.arange(start, stop), shape) if grid else ()
    axes = {name: (np.asarray(values), positions[i]) for i, (name, values) in enumerate(grid)}
    size = stop - start
    table: dict[str, np.ndarray] = {}
    for p in strategy.params:
        dtype = np.int64 if p.kind is int else np.float64
        if p.name in axes:
            values, at = axes[p.name]
            table[p.name] = values[at].astype(dtype)
        else:
            table[p.name] = np.full(size, base[p.name], dtype=dtype)
    valid = np.ones(size, dtype=bool)
    for constraint in strategy.constraints:
        valid &= np.asarray(constraint.check(table), dtype=bool)
    return table, valid


def valid_positions(strategy: Strategy, grid: GridAxes, fixed: Mapping[str, Any]) -> np.ndarray:
    """Cartesian indices of the combinations that pass the strategy's constraints, in sweep order."""
    total = math.prod(len(v) for _, v in grid)
    parts = []
    for start in range(0, total, _COUNT_BLOCK):
        stop = min(start + _COUNT_BLOCK, total)
        _, valid = combo_table(strategy, grid, fixed, start, stop)
        parts.append(np.flatnonzero(valid) + start)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def count_combinations(item: StrategySpec) -> int:
    """Valid parameter combinations of one strategy entry (constraints applied); a search's budget."""
    if item.search is not None:
        return item.search.trials
    return len(valid_positions(get_strategy(item.name), item.grid, item.params_dict()))


def count_backtests(spec: BatchSpec) -> int:
    """Backtests the batch runs: valid combinations × symbols (a portfolio run counts once)."""
    per_run = 1 if spec.job_type is JobType.MULTI_STRATEGY else len(spec.symbols)
    return sum(count_combinations(s) for s in spec.strategies) * per_run


def estimate_bars(spec: BatchSpec) -> int:
    """Bars per symbol the planner assumes: synthetic periods, the exchange period, or `data.bars`."""
    data = spec.data
    if data.bars is not None:
        return data.bars
    if data.source is DataSource.SYNTHETIC and data.periods is not None:
        return data.periods
    if data.source is DataSource.EXCHANGE and data.since:
        until = pd.Timestamp(data.until, tz="UTC") if data.until else pd.Timestamp("2030-01-01", tz="UTC")
        return max(1, int((until - pd.Timestamp(data.since, tz="UTC")) / timeframe_delta(data.timeframe)))
    return DEFAULT_BARS_ESTIMATE


def timeframe_delta(timeframe: str) -> pd.Timedelta:
    """A ccxt timeframe (1m, 15m, 1h, 1d, 1w) as a Timedelta; ValueError for calendar periods (1M, 1y)."""
    units = {"m": "min", "d": "D", "w": "W"}  # ccxt's lower-case units in pandas' spelling
    return pd.Timedelta(timeframe[:-1] + units.get(timeframe[-1:], timeframe[-1:]))
