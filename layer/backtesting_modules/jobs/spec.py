"""The batch spec: YAML (`batches/*.yaml`) parsed into a frozen `BatchSpec`, validated before sending.

This module owns the spec's format, its validation (every error names the field path and the fix), the
grid semantics (lists or ``"start:stop:step"`` with an inclusive stop, expanded in the engine's order), the
count of backtests a spec asks for, and the spec's content hash. It performs no I/O except `load_spec`.

Grid order: the axes are taken in the order the YAML lists them and enumerated like
`strategies.expand_grid` (``itertools.product``: the last axis varies fastest). A *cartesian index* in
``[0, grid_size)`` names one combination of that product; combinations violating a strategy constraint
are skipped, exactly as `run_sweep` skips them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import yaml
from pandas.tseries.frequencies import to_offset

from ..config import StrategyConfig
from ..errors import BacktestError, did_you_mean
from ..metrics import METRIC_NAMES
from ..strategies import Strategy, get_strategy, resolve_params

DEFAULT_MAX_BACKTESTS = 2_000_000
DEFAULT_RANKING_METRIC = "sharpe"  # what a batch ranks by unless `ranking.metric` says otherwise
DEFAULT_TOP_N = 10  # rows a batch summary keeps unless `ranking.top` says otherwise
DEFAULT_BARS_ESTIMATE = 8760  # files / s3 sources: one year of hourly bars unless `data.bars` says otherwise
# Constraint checks run over this many cartesian combinations at a time (bounded memory for big grids).
_COUNT_BLOCK = 1 << 20
# A range axis is expanded into a list before any limit is checked: refuse absurd ones before expanding.
MAX_AXIS_VALUES = 100_000

Scalar = int | float
GridAxes = tuple[tuple[str, tuple[Scalar, ...]], ...]
Pairs = tuple[tuple[str, Any], ...]
E = TypeVar("E", bound=Enum)


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


@dataclass(frozen=True)
class StrategySpec:
    """One strategy of a batch: its grid axes (coerced values, YAML order) and fixed parameters."""

    name: str
    grid: GridAxes = ()
    params: Pairs = ()

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
    since: str | None = None
    until: str | None = None
    bars: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source.value, "timeframe": self.timeframe}
        for name in ("seed", "periods", "start", "pattern", "uri", "exchange", "since", "until", "bars"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.paths:
            out["paths"] = dict(self.paths)
        return out


@dataclass(frozen=True)
class Ranking:
    metric: str = DEFAULT_RANKING_METRIC
    top: int = DEFAULT_TOP_N


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

    def config_overrides(self) -> dict[str, Any]:
        return dict(self.config)

    def strategy_config(self) -> StrategyConfig:
        return StrategyConfig(**self.config_overrides())

    def to_dict(self) -> dict[str, Any]:
        """The canonical, JSON-ready form (grid axes as ordered lists: their order is the sweep order)."""
        return {
            "name": self.name,
            "job_type": self.job_type.value,
            "strategies": [
                {
                    "name": s.name,
                    "grid": [[name, list(values)] for name, values in s.grid],
                    "params": dict(s.params),
                }
                for s in self.strategies
            ],
            "symbols": list(self.symbols),
            "data": self.data.to_dict(),
            "config": dict(self.config),
            "priority": self.priority.value,
            "ranking": {"metric": self.ranking.metric, "top": self.ranking.top},
            "limits": {"max_backtests": self.max_backtests},
        }


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
    """Valid parameter combinations of one strategy entry (constraints applied)."""
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


# -------------------------------------------------------------------------------------------- parsing

_TOP_KEYS = ("name", "job_type", "strategies", "symbols", "data", "config", "priority", "ranking", "limits")
_REQUIRED_TOP = ("name", "job_type", "strategies", "symbols", "data")
_STRATEGY_KEYS = ("name", "grid", "params")
_DATA_KEYS: dict[str, tuple[str, ...]] = {
    "synthetic": ("source", "seed", "periods", "freq", "start"),
    "files": ("source", "paths", "pattern", "timeframe", "bars"),
    "s3": ("source", "uri", "timeframe", "bars"),
    "exchange": ("source", "exchange", "timeframe", "since", "until", "bars"),
}


def load_spec(path: str | Path) -> BatchSpec:
    """Read and validate a batch spec file (YAML)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{source}: cannot read the batch spec ({exc.strerror}); check the path.") from exc
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML ({exc}); fix the syntax at the position shown.") from exc
    return parse_spec(mapping, source=source)


def parse_spec(mapping: Any, source: str = "<spec>") -> BatchSpec:
    """Validate a spec mapping (as loaded from YAML) into a `BatchSpec`; SpecError names the field path."""
    try:
        return _parse(mapping)
    except _FieldError as exc:
        raise SpecError(f"{source}: {exc.path}: {exc.message}") from exc.__cause__


class _FieldError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path or "(top level)"
        self.message = message


def _parse(raw: Any) -> BatchSpec:
    top = _mapping(raw, "", "a mapping with keys " + ", ".join(_REQUIRED_TOP))
    _check_keys(top, _TOP_KEYS, "", _REQUIRED_TOP)
    name = _string(top["name"], "name")
    job_type = _enum(JobType, top["job_type"], "job_type", upper=True)
    priority = _enum(Priority, top.get("priority", "normal"), "priority", upper=False)
    symbols = _symbols(top["symbols"])
    data = _data(top["data"], "data")
    config = _config(top.get("config") or {}, "config")
    ranking = _ranking(top.get("ranking") or {}, "ranking")
    limit = _limits(top.get("limits") or {}, "limits")
    items = _list(top["strategies"], "strategies", "a list of {name, grid, params}")
    if not items:
        raise _FieldError("strategies", "is empty; list at least one strategy, e.g. [{name: SMA_Crossover}].")
    strategies = tuple(_strategy(item, f"strategies[{i}]", job_type) for i, item in enumerate(items))
    spec = BatchSpec(name, job_type, strategies, symbols, data, config, priority, ranking, limit)
    _check_limit(spec)
    return spec


def _check_limit(spec: BatchSpec) -> None:
    per_run = 1 if spec.job_type is JobType.MULTI_STRATEGY else len(spec.symbols)
    total = 0
    for i, item in enumerate(spec.strategies):
        if item.grid_size * per_run > 20 * spec.max_backtests:  # too big even to count cheaply
            raise _FieldError(
                f"strategies[{i}].grid",
                f"has {item.grid_size:,} combinations × {per_run} run(s), far above limits.max_backtests="
                f"{spec.max_backtests:,}; shrink the grid (coarser steps, fewer axes) "
                "or raise limits.max_backtests.",
            )
        total += count_combinations(item) * per_run
    if total > spec.max_backtests:
        raise _FieldError(
            "limits.max_backtests",
            f"the batch asks for {total:,} backtests, above the limit of {spec.max_backtests:,}; shrink the "
            "grids (coarser steps, fewer values or symbols) or raise limits.max_backtests.",
        )


def _strategy(raw: Any, path: str, job_type: JobType) -> StrategySpec:
    item = _mapping(raw, path, "a mapping {name, grid, params}")
    _check_keys(item, _STRATEGY_KEYS, path, ("name",))
    try:
        strategy = get_strategy(_string(item["name"], f"{path}.name"))
    except BacktestError as exc:
        raise _FieldError(f"{path}.name", str(exc)) from exc
    fixed = _engine_values(
        strategy, _mapping(item.get("params") or {}, f"{path}.params", "a mapping"), f"{path}.params"
    )
    grid_raw = _mapping(item.get("grid") or {}, f"{path}.grid", "a mapping {param: list | 'start:stop:step'}")
    axes = []
    for key, value in grid_raw.items():
        if key in fixed:
            raise _FieldError(f"{path}.grid.{key}", "is also in params; keep it in one of grid or params.")
        values = _grid_values(value, f"{path}.grid.{key}")
        axes.append(
            (str(key), tuple(_engine_values(strategy, {key: v}, f"{path}.grid")[str(key)] for v in values))
        )
    try:
        resolve_params(strategy, fixed)
    except BacktestError as exc:
        raise _FieldError(
            f"{path}.params", f"{exc} Change params so the defaults plus params are valid."
        ) from exc
    spec = StrategySpec(strategy.name, tuple(axes), tuple(fixed.items()))
    if job_type is JobType.SINGLE_STRATEGY and spec.grid_size != 1:
        raise _FieldError(
            f"{path}.grid",
            f"has {spec.grid_size} combinations but job_type SINGLE_STRATEGY runs one parameter set; "
            "move the values to params or use job_type PARAMETER_OPTIMIZATION.",
        )
    if not len(valid_positions(strategy, spec.grid, fixed)):
        raise _FieldError(
            f"{path}.grid",
            "has no combination satisfying the strategy's constraints "
            f"({', '.join(c.description for c in strategy.constraints)}); widen the ranges.",
        )
    return spec


def _engine_values(strategy: Strategy, values: Mapping[str, Any], path: str) -> dict[str, Scalar]:
    """Parameter values checked and coerced by the engine; its errors re-raised with the field path."""
    out: dict[str, Scalar] = {}
    for key, value in values.items():
        try:
            out[str(key)] = strategy.param(str(key)).coerce(value, strategy.name)
        except BacktestError as exc:
            raise _FieldError(f"{path}.{key}", str(exc)) from exc
        except OverflowError as exc:  # an integer too large for a float: outside every parameter's range
            param = strategy.param(str(key))
            raise _FieldError(
                f"{path}.{key}",
                f"a {len(str(value))}-digit number is too large; "
                f"choose a value in [{param.low}, {param.high}].",
            ) from exc
    return out


def _grid_values(value: Any, path: str) -> list[Any]:
    if isinstance(value, str):
        return _parse_range(value, path)
    if isinstance(value, list):
        if not value:
            raise _FieldError(path, "is an empty list; give at least one value.")
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value]
    raise _FieldError(
        path, f"{value!r} is not a list or a 'start:stop:step' range; write e.g. [5, 10] or '5:50:5'."
    )


def parse_range(text: str, path: str = "range") -> list[Scalar]:
    """``"start:stop:step"`` with an inclusive stop: ``"5:20:5"`` -> [5, 10, 15, 20]."""
    try:
        return _parse_range(text, path)
    except _FieldError as exc:
        raise SpecError(str(exc)) from None


def _parse_range(text: str, path: str) -> list[Scalar]:
    parts = text.split(":")
    if len(parts) != 3:
        raise _FieldError(path, f"{text!r} is not 'start:stop:step'; write e.g. '5:50:5' (stop inclusive).")
    try:
        numbers = [float(p) for p in parts]
    except ValueError as exc:
        raise _FieldError(path, f"{text!r} has a part that is not a number; write e.g. '5:50:5'.") from exc
    start, stop, step = numbers
    if not all(math.isfinite(n) for n in numbers) or step <= 0:
        raise _FieldError(path, f"{text!r} needs a positive step; write e.g. '5:50:5'.")
    if start > stop:
        raise _FieldError(path, f"{text!r} has start > stop; write 'start:stop:step' with start <= stop.")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_AXIS_VALUES:
        raise _FieldError(
            path,
            f"{text!r} expands to {count:,} values, more than {MAX_AXIS_VALUES:,} on one axis; "
            "use a larger step or a narrower range.",
        )
    integral = all(n == int(n) for n in numbers) and all("." not in p for p in parts)
    if integral:
        return [int(start) + i * int(step) for i in range(count)]
    return [round(start + i * step, 12) for i in range(count)]


def _data(raw: Any, path: str) -> DataSpec:
    data = _mapping(raw, path, "a mapping with a 'source' key")
    _check_keys(data, tuple(sorted({k for keys in _DATA_KEYS.values() for k in keys})), path, ("source",))
    source = _enum(DataSource, data["source"], f"{path}.source", upper=False)
    _check_keys(data, _DATA_KEYS[source.value], path, ())
    bars = _positive_int(data["bars"], f"{path}.bars") if "bars" in data else None
    if source is DataSource.SYNTHETIC:
        return DataSpec(
            source,
            timeframe=_freq(data.get("freq", "1h"), f"{path}.freq"),
            seed=_nonnegative_int(data.get("seed", 42), f"{path}.seed"),
            periods=_positive_int(data.get("periods", 8760), f"{path}.periods"),
            start=_date(data.get("start", "2021-01-01"), f"{path}.start"),
        )
    timeframe = _string(data.get("timeframe", "1h"), f"{path}.timeframe")
    if source is DataSource.FILES:
        if ("paths" in data) == ("pattern" in data):
            raise _FieldError(
                path, "give exactly one of paths ({symbol: path}) or pattern ('data/{symbol}.csv')."
            )
        if "pattern" in data:
            return DataSpec(
                source, timeframe, pattern=_pattern(data["pattern"], f"{path}.pattern"), bars=bars
            )
        paths = _mapping(data["paths"], f"{path}.paths", "a mapping {symbol: path}")
        return DataSpec(
            source,
            timeframe,
            paths=tuple((str(k), _string(v, f"{path}.paths.{k}")) for k, v in paths.items()),
            bars=bars,
        )
    if source is DataSource.S3:
        if "uri" not in data:
            raise _FieldError(
                f"{path}.uri", "is required for source s3; e.g. 's3://bucket/bars/{symbol}.parquet'."
            )
        uri = _pattern(data["uri"], f"{path}.uri")
        if not uri.startswith("s3://"):
            raise _FieldError(f"{path}.uri", f"{uri!r} must start with 's3://'.")
        return DataSpec(source, timeframe, uri=uri, bars=bars)
    for key in ("exchange", "since"):
        if key not in data:
            raise _FieldError(
                f"{path}.{key}", "is required for source exchange; e.g. exchange: upbit, since: 2024-01-01."
            )
    _exchange_timeframe(timeframe, f"{path}.timeframe")
    since = _date(data["since"], f"{path}.since")
    until = _date(data["until"], f"{path}.until") if "until" in data else None
    if until is not None and pd.Timestamp(until) <= pd.Timestamp(since):
        raise _FieldError(f"{path}.until", f"{until} is not after since {since}; swap or fix the dates.")
    return DataSpec(
        source,
        timeframe,
        exchange=_string(data["exchange"], f"{path}.exchange"),
        since=since,
        until=until,
        bars=bars,
    )


def _config(raw: Any, path: str) -> Pairs:
    overrides = _mapping(raw, path, "a mapping of StrategyConfig fields")
    _check_keys(overrides, tuple(StrategyConfig.field_names()), path, ())
    try:
        StrategyConfig(**overrides)
    except (BacktestError, TypeError, ValueError, OverflowError) as exc:
        named = str(exc).split("=", 1)[0].split(" ", 1)[0]
        field = named if named in StrategyConfig.field_names() else _failing_field(overrides)
        where = f"{path}.{field}" if field else path
        if isinstance(exc, BacktestError):
            raise _FieldError(where, f"{exc}") from exc
        # float() or int() on a value of the wrong type, deep in StrategyConfig: the error names no field.
        raise _FieldError(
            where, f"{exc}: a value of the wrong type; see the field in layer/backtesting_modules/config.py."
        ) from exc
    return tuple(sorted(overrides.items()))


def _failing_field(overrides: Mapping[str, Any]) -> str | None:
    """The first override StrategyConfig rejects on its own (None when only a combination fails)."""
    for key, value in overrides.items():
        try:
            StrategyConfig(**{key: value})
        except (BacktestError, TypeError, ValueError, OverflowError):
            return key
    return None


def _ranking(raw: Any, path: str) -> Ranking:
    ranking = _mapping(raw, path, "a mapping {metric, top}")
    _check_keys(ranking, ("metric", "top"), path, ())
    metric = _string(ranking.get("metric", DEFAULT_RANKING_METRIC), f"{path}.metric")
    if metric not in METRIC_NAMES:
        raise _FieldError(
            f"{path}.metric",
            f"unknown metric {metric!r}.{did_you_mean(metric, METRIC_NAMES)} "
            f"Metrics: {', '.join(METRIC_NAMES)}.",
        )
    return Ranking(metric, _positive_int(ranking.get("top", DEFAULT_TOP_N), f"{path}.top"))


def _limits(raw: Any, path: str) -> int:
    limits = _mapping(raw, path, "a mapping {max_backtests}")
    _check_keys(limits, ("max_backtests",), path, ())
    return _positive_int(limits.get("max_backtests", DEFAULT_MAX_BACKTESTS), f"{path}.max_backtests")


def _symbols(raw: Any) -> tuple[str, ...]:
    items = _list(raw, "symbols", "a list of market names such as [KRW-BTC, KRW-ETH]")
    if not items:
        raise _FieldError("symbols", "is empty; list at least one market, e.g. [KRW-BTC].")
    symbols = tuple(_string(s, f"symbols[{i}]") for i, s in enumerate(items))
    duplicates = sorted({s for s in symbols if symbols.count(s) > 1})
    if duplicates:
        raise _FieldError("symbols", f"lists {duplicates} more than once; list each market once.")
    return symbols


# ------------------------------------------------------------------------------------ small validators


def _check_keys(
    mapping: Mapping[str, Any], allowed: Sequence[str], path: str, required: Sequence[str]
) -> None:
    prefix = f"{path}." if path else ""
    for key in mapping:
        if key not in allowed:
            raise _FieldError(
                f"{prefix}{key}",
                f"unknown key.{did_you_mean(str(key), allowed)} Allowed keys here: {', '.join(allowed)}.",
            )
    for key in required:
        if key not in mapping:
            raise _FieldError(f"{prefix}{key}", "is required; add it.")


def _mapping(value: Any, path: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _FieldError(path, f"expected {what}, got {type(value).__name__}; fix the YAML there.")
    return {str(k): v for k, v in value.items()}


def _list(value: Any, path: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _FieldError(path, f"expected {what}, got {type(value).__name__}.")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _FieldError(path, f"{value!r} must be a non-empty string.")
    return value.strip()


def _pattern(value: Any, path: str) -> str:
    text = _string(value, path)
    if "{symbol}" not in text:
        raise _FieldError(path, f"{text!r} has no {{symbol}} placeholder; e.g. 'data/{{symbol}}_1h.csv'.")
    return text


def _freq(value: Any, path: str) -> str:
    """A fixed bar interval pandas understands (the synthetic generator's `freq`)."""
    text = _string(value, path)
    try:
        seconds = pd.Timedelta(to_offset(text)).total_seconds()  # type: ignore[arg-type]
    except (TypeError, ValueError):  # an unknown alias, or a calendar period (months, years)
        seconds = 0.0
    if seconds <= 0:
        raise _FieldError(path, f"{text!r} is not a fixed bar interval; write e.g. 1h, 4h, 1D or 15min.")
    return text


def timeframe_delta(timeframe: str) -> pd.Timedelta:
    """A ccxt timeframe (1m, 15m, 1h, 1d, 1w) as a Timedelta; ValueError for calendar periods (1M, 1y)."""
    units = {"m": "min", "d": "D", "w": "W"}  # ccxt's lower-case units in pandas' spelling
    return pd.Timedelta(timeframe[:-1] + units.get(timeframe[-1:], timeframe[-1:]))


def _exchange_timeframe(text: str, path: str) -> None:
    try:
        seconds = timeframe_delta(text).total_seconds()
    except ValueError:  # an unknown unit, or a calendar period (1M, 1y)
        seconds = 0.0
    if seconds <= 0:
        raise _FieldError(
            path, f"{text!r} is not a fixed-length timeframe; write e.g. 1m, 15m, 1h, 4h or 1d."
        )


def _date(value: Any, path: str) -> str:
    try:
        return pd.Timestamp(str(value)).isoformat()
    except ValueError as exc:
        raise _FieldError(path, f"{value!r} is not a date; write e.g. 2024-01-01.") from exc


def _positive_int(value: Any, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _FieldError(path, f"{value!r} must be an integer >= 1.")
    return value


def _nonnegative_int(value: Any, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _FieldError(path, f"{value!r} must be an integer >= 0.")
    return value


def _enum(kind: type[E], value: Any, path: str, *, upper: bool) -> E:
    names = [m.value for m in kind]
    text = str(value).upper() if upper else str(value).lower()
    for member in kind:
        if member.value == text:
            return member
    raise _FieldError(path, f"{value!r} is not one of {', '.join(names)}.{did_you_mean(text, names)}")
