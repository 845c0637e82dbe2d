"""The batch spec parser: YAML text or a loaded mapping in, a validated `BatchSpec` out.

`load_spec` reads a file, `parse_spec` validates a mapping section by section (top level, strategies and
their grids, data, config, ranking, limits) and checks the batch against `limits.max_backtests`.
`parse_range` expands one ``"start:stop:step"`` grid axis. Every failure is a `SpecError` naming the field
path and the fix; the single-field checks are in `spec_fields`, the model built is `spec_model`'s. Callers
import these three functions from `spec`, the spec's public face.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ..config import StrategyConfig
from ..errors import BacktestError, did_you_mean
from ..metrics import METRIC_NAMES
from ..strategies import Strategy, get_strategy, resolve_params
from .spec_fields import (
    _check_keys,
    _date,
    _enum,
    _exchange_timeframe,
    _FieldError,
    _freq,
    _list,
    _mapping,
    _nonnegative_int,
    _parse_range,
    _pattern,
    _positive_int,
    _string,
)
from .spec_model import (
    DEFAULT_MAX_BACKTESTS,
    DEFAULT_MIN_TRADES,
    DEFAULT_RANKING_METRIC,
    DEFAULT_TOP_N,
    BatchSpec,
    DataSource,
    DataSpec,
    JobType,
    Pairs,
    Priority,
    Ranking,
    Scalar,
    SpecError,
    StrategySpec,
    count_combinations,
    timeframe_delta,
    valid_positions,
)
from .spec_search import parse_search
from .spec_validation import parse_validation

_TOP_KEYS = (
    "name",
    "job_type",
    "strategies",
    "symbols",
    "data",
    "config",
    "priority",
    "ranking",
    "limits",
    "validation",
)
_REQUIRED_TOP = ("name", "job_type", "strategies", "symbols", "data")
_STRATEGY_KEYS = ("name", "grid", "params", "search")
_DATA_KEYS: dict[str, tuple[str, ...]] = {
    "synthetic": ("source", "seed", "periods", "freq", "start", "since", "until"),
    "files": ("source", "paths", "pattern", "timeframe", "bars", "since", "until", "gaps"),
    "s3": ("source", "uri", "timeframe", "bars", "since", "until", "gaps"),
    "exchange": ("source", "exchange", "timeframe", "since", "until", "bars", "gaps"),
}
GAP_POLICIES = ("keep", "fill")


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
    _check_one_kind(strategies)
    validation = parse_validation(top.get("validation"), "validation", job_type, strategies, ranking)
    spec = BatchSpec(name, job_type, strategies, symbols, data, config, priority, ranking, limit, validation)
    _check_limit(spec)
    return spec


def _check_one_kind(strategies: tuple[StrategySpec, ...]) -> None:
    """A batch searches or sweeps grids: a search's batch grows wave by wave (docs/search.md)."""
    searched = [i for i, s in enumerate(strategies) if s.search is not None]
    if searched and len(searched) < len(strategies):
        swept = next(i for i, s in enumerate(strategies) if s.search is None)
        raise _FieldError(
            f"strategies[{swept}]",
            f"sweeps a grid while strategies[{searched[0]}] searches; a batch does one or the other: give "
            f"strategies[{swept}] a search: section too, or run its grid in another batch.",
        )


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
    if "search" in item:
        return _searched(item, path, strategy, fixed, job_type)
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


def _searched(
    item: Mapping[str, Any], path: str, strategy: Strategy, fixed: dict[str, Scalar], job_type: JobType
) -> StrategySpec:
    """A strategy entry with `search:` instead of `grid:` (a PARAMETER_OPTIMIZATION batch only)."""
    if "grid" in item:
        raise _FieldError(f"{path}.search", "and grid both given; search a space or sweep a grid, not both.")
    if job_type is not JobType.PARAMETER_OPTIMIZATION:
        raise _FieldError(
            f"{path}.search",
            f"searches parameters; a {job_type.value} batch runs given ones: use job_type "
            "PARAMETER_OPTIMIZATION.",
        )
    search, pinned = parse_search(item["search"], f"{path}.search", strategy, fixed)
    params = {**fixed, **pinned}
    try:
        resolve_params(strategy, params)
    except BacktestError as exc:
        raise _FieldError(
            f"{path}.params", f"{exc} Change params so the defaults plus params are valid."
        ) from exc
    return StrategySpec(strategy.name, (), tuple(params.items()), search)


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


def _data(raw: Any, path: str) -> DataSpec:
    data = _mapping(raw, path, "a mapping with a 'source' key")
    _check_keys(data, tuple(sorted({k for keys in _DATA_KEYS.values() for k in keys})), path, ("source",))
    source = _enum(DataSource, data["source"], f"{path}.source", upper=False)
    _check_keys(data, _DATA_KEYS[source.value], path, ())
    since, until = _window(data, path, required=source is DataSource.EXCHANGE)
    if source is DataSource.SYNTHETIC:
        return DataSpec(
            source,
            timeframe=_freq(data.get("freq", "1h"), f"{path}.freq"),
            seed=_nonnegative_int(data.get("seed", 42), f"{path}.seed"),
            periods=_positive_int(data.get("periods", 8760), f"{path}.periods"),
            start=_date(data.get("start", "2021-01-01"), f"{path}.start"),
            since=since,
            until=until,
        )
    common = DataSpec(
        source,
        timeframe=_string(data.get("timeframe", "1h"), f"{path}.timeframe"),
        bars=_positive_int(data["bars"], f"{path}.bars") if "bars" in data else None,
        since=since,
        until=until,
        gaps=_gaps(data.get("gaps", "keep"), f"{path}.gaps"),
    )
    if source is DataSource.FILES:
        return replace(common, **_files(data, path))
    if source is DataSource.S3:
        _bar_timeframe(common.timeframe, f"{path}.timeframe")  # the gap policy measures bars by it
        return replace(common, uri=_s3_uri(data, path))
    if "exchange" not in data:
        raise _FieldError(
            f"{path}.exchange", "is required for source exchange; e.g. exchange: upbit, since: 2024-01-01."
        )
    _exchange_timeframe(common.timeframe, f"{path}.timeframe")
    return replace(common, exchange=_string(data["exchange"], f"{path}.exchange"))


def _files(data: Mapping[str, Any], path: str) -> dict[str, Any]:
    """`pattern` or `paths` of a files source (exactly one of them)."""
    if ("paths" in data) == ("pattern" in data):
        raise _FieldError(
            path, "give exactly one of paths ({symbol: path}) or pattern ('data/{symbol}.csv')."
        )
    if "pattern" in data:
        return {"pattern": _pattern(data["pattern"], f"{path}.pattern")}
    paths = _mapping(data["paths"], f"{path}.paths", "a mapping {symbol: path}")
    return {"paths": tuple((str(k), _string(v, f"{path}.paths.{k}")) for k, v in paths.items())}


def _s3_uri(data: Mapping[str, Any], path: str) -> str:
    if "uri" not in data:
        raise _FieldError(
            f"{path}.uri", "is required for source s3; e.g. 's3://bucket/bars/{symbol}.parquet'."
        )
    uri = _pattern(data["uri"], f"{path}.uri")
    if not uri.startswith("s3://") or "/" not in uri[len("s3://") :].strip("/"):
        raise _FieldError(
            f"{path}.uri", f"{uri!r} must be s3://bucket/key, e.g. 's3://bucket/bars/{{symbol}}.parquet'."
        )
    return uri


def _window(data: Mapping[str, Any], path: str, *, required: bool) -> tuple[str | None, str | None]:
    """`since` (inclusive) and `until` (exclusive), UTC dates; `since` is required for an exchange."""
    if required and "since" not in data:
        raise _FieldError(
            f"{path}.since", "is required for source exchange; e.g. exchange: upbit, since: 2024-01-01."
        )
    since = _date(data["since"], f"{path}.since") if "since" in data else None
    until = _date(data["until"], f"{path}.until") if "until" in data else None
    if since is not None and until is not None and pd.Timestamp(until) <= pd.Timestamp(since):
        raise _FieldError(f"{path}.until", f"{until} is not after since {since}; swap or fix the dates.")
    return since, until


def _bar_timeframe(text: str, path: str) -> None:
    """A fixed bar interval in exchange notation (1m, 15m, 1h, 4h, 1d, 1w)."""
    try:
        delta = timeframe_delta(text)
    except ValueError:
        delta = None
    if delta is None or delta <= pd.Timedelta(0):
        raise _FieldError(path, f"{text!r} is not a fixed bar interval; write e.g. 1m, 15m, 1h, 4h or 1d.")


def _gaps(value: Any, path: str) -> str:
    if value not in GAP_POLICIES:
        raise _FieldError(
            path,
            f"{value!r} is not a gap policy: use keep (leave missing bars out) or fill (insert them at "
            "the previous close, zero volume).",
        )
    return str(value)


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
    ranking = _mapping(raw, path, "a mapping {metric, top, min_trades}")
    _check_keys(ranking, ("metric", "top", "min_trades"), path, ())
    metric = _string(ranking.get("metric", DEFAULT_RANKING_METRIC), f"{path}.metric")
    if metric not in METRIC_NAMES:
        raise _FieldError(
            f"{path}.metric",
            f"unknown metric {metric!r}.{did_you_mean(metric, METRIC_NAMES)} "
            f"Metrics: {', '.join(METRIC_NAMES)}.",
        )
    top = _positive_int(ranking.get("top", DEFAULT_TOP_N), f"{path}.top")
    min_trades = _nonnegative_int(ranking.get("min_trades", DEFAULT_MIN_TRADES), f"{path}.min_trades")
    return Ranking(metric, top, min_trades)


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
