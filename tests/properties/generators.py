"""Hypothesis strategies: valid batch-spec mappings built from the strategy registry, jobs, and junk."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import strategies as st

from backtesting_modules.jobs import JobType, Priority
from backtesting_modules.jobs.planner import Job
from backtesting_modules.metrics import METRIC_NAMES
from backtesting_modules.strategies import get_strategy, list_strategies
from backtesting_modules.strategies.registry import Param

# --- junk ------------------------------------------------------------------------------------------------

RANGE_LIKE = st.from_regex(r"\A-?[0-9]{0,4}(\.[0-9]{1,2})?(e[0-9])?:-?[0-9]{0,5}(\.[0-9])?:-?[0-9.e]{0,4}\Z")
# Keys the parser knows, so junk often lands where validation is deep (filters, grid axes, ranking).
KNOWN_KEYS = st.sampled_from(
    [
        "name",
        "source",
        "grid",
        "params",
        "fast",
        "slow",
        "filters",
        "min_price",
        "stop_loss_pct",
        "metric",
        "top",
        "max_backtests",
        "periods",
        "freq",
        "seed",
        "uri",
        "pattern",
        "since",
        "timeframe",
        "paths",
    ]
)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**1024, max_value=2**1100)  # too large for a float
    | st.floats()
    | st.text(max_size=12)
    | RANGE_LIKE
    | st.sampled_from(["1h", "1M", "15min", "2024-01-01", "s3://b/{symbol}", "synthetic", "sharpe", ""])
)
JUNK = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(KNOWN_KEYS | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


# --- valid specs -----------------------------------------------------------------------------------------


def param_values(param: Param) -> st.SearchStrategy[Any]:
    """In-range values of one parameter, often near its default (so constraints between parameters hold)."""
    if param.kind is int:
        low, high, default = int(param.low), int(param.high), int(param.default)
        near = st.integers(max(low, default - 3), min(high, default + 3))
        return near | st.integers(low, high)
    a, b = sorted((param.default * 0.8, param.default * 1.2))
    near_f = st.floats(max(param.low, a), min(param.high, b))
    anywhere = st.floats(param.low, param.high, allow_nan=False)
    return (near_f | anywhere).map(lambda v: round(v, 6)).filter(lambda v: param.low <= v <= param.high)


@st.composite
def int_range(draw: st.DrawFn, param: Param) -> str:
    """A ``start:stop:step`` text (stop inclusive) inside an int parameter's bounds, at most 8 values."""
    low, high = int(param.low), int(param.high)
    start = draw(st.integers(low, high))
    step = draw(st.integers(1, 5))
    stop = draw(st.integers(start, min(high, start + 7 * step)))
    return f"{start}:{stop}:{step}"


@st.composite
def grid_axis(draw: st.DrawFn, param: Param) -> Any:
    if param.kind is int and draw(st.booleans()):
        return draw(int_range(param))
    values = draw(st.lists(param_values(param), min_size=1, max_size=5, unique=True))
    return values[0] if len(values) == 1 and draw(st.booleans()) else values


@st.composite
def strategy_entry(draw: st.DrawFn, name: str, single: bool) -> dict[str, Any]:
    params = get_strategy(name).params
    picked = draw(st.lists(st.sampled_from(params), max_size=min(5, len(params)), unique_by=lambda p: p.name))
    split = draw(st.integers(0, min(3, len(picked))))  # at most 3 grid axes: at most 512 combinations
    grid_params, fixed_params = ([], picked) if single else (picked[:split], picked[split:])
    entry: dict[str, Any] = {"name": name}
    if grid_params:
        entry["grid"] = {p.name: draw(grid_axis(p)) for p in grid_params}
    if fixed_params:
        entry["params"] = {p.name: draw(param_values(p)) for p in fixed_params}
    return entry


DATES = st.dates(min_value=date(2018, 1, 1), max_value=date(2025, 12, 31))


@st.composite
def data_section(draw: st.DrawFn) -> dict[str, Any]:
    source = draw(st.sampled_from(["synthetic", "files", "s3", "exchange"]))
    if source == "synthetic":
        return {
            "source": source,
            "seed": draw(st.integers(0, 2**32)),
            "periods": draw(st.integers(50, 50_000)),
            "freq": draw(st.sampled_from(["1h", "4h", "15min", "1D", "30min"])),
            "start": draw(DATES).isoformat(),
        }
    bars = {"bars": draw(st.integers(1, 100_000))} if draw(st.booleans()) else {}
    timeframe = draw(st.sampled_from(["1m", "15m", "1h", "4h", "1d"]))
    if source == "files":
        return {
            "source": source,
            "pattern": "data/{symbol}_" + timeframe + ".csv",
            "timeframe": timeframe,
            **bars,
        }
    if source == "s3":
        return {"source": source, "uri": "s3://bucket/bars/{symbol}.npz", "timeframe": timeframe, **bars}
    since = draw(DATES)
    until = draw(st.dates(min_value=since + timedelta(days=1), max_value=since + timedelta(days=366)))
    return {
        "source": source,
        "exchange": "upbit",
        "timeframe": timeframe,
        "since": since.isoformat(),
        "until": until.isoformat(),
        **bars,
    }


SYMBOLS = st.lists(st.from_regex(r"\AKRW-[A-Z]{2,5}\Z"), min_size=1, max_size=3, unique=True)


@st.composite
def spec_mappings(draw: st.DrawFn) -> dict[str, Any]:
    """A batch-spec mapping the way a person writes it in YAML; valid unless a constraint between
    parameters fails (the tests check that with the engine's own `resolve_params`)."""
    job_type = draw(st.sampled_from([t.value for t in JobType]))
    single = job_type == JobType.SINGLE_STRATEGY.value
    names = draw(st.lists(st.sampled_from(list_strategies()), min_size=1, max_size=3, unique=True))
    raw: dict[str, Any] = {
        "name": draw(st.from_regex(r"\A[a-z][a-z0-9-]{0,15}\Z")),
        "job_type": draw(st.sampled_from([job_type, job_type.lower()])),
        "symbols": draw(SYMBOLS),
        "data": draw(data_section()),
        "strategies": [draw(strategy_entry(name, single)) for name in names],
    }
    if draw(st.booleans()):
        raw["config"] = {"filters": None, "stop_loss_pct": draw(st.sampled_from([None, 0.05, 0.1]))}
    if draw(st.booleans()):
        raw["priority"] = draw(st.sampled_from(["normal", "high"]))
    if draw(st.booleans()):
        raw["ranking"] = {"metric": draw(st.sampled_from(METRIC_NAMES)), "top": draw(st.integers(1, 50))}
    if draw(st.booleans()):
        raw["limits"] = {"max_backtests": draw(st.integers(2_000_000, 5_000_000))}
    return raw


# --- jobs ------------------------------------------------------------------------------------------------

TEXT = st.text(min_size=1, max_size=20)
NUMBER = st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, allow_infinity=False)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | NUMBER | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    symbols = tuple(draw(st.lists(TEXT, min_size=1, max_size=4)))
    start = draw(st.integers(0, 10**9))
    axes = draw(st.lists(st.tuples(TEXT, st.lists(NUMBER, min_size=1, max_size=5).map(tuple)), max_size=4))
    return Job(
        job_id=draw(TEXT),
        batch_id=draw(TEXT),
        job_type=draw(st.sampled_from(list(JobType))),
        strategy=draw(TEXT),
        symbols=symbols,
        timeframe=draw(TEXT),
        data_keys=tuple(draw(TEXT) for _ in symbols),
        grid=tuple(axes),
        fixed=tuple(draw(st.dictionaries(st.text(max_size=10), JSON_VALUE, max_size=4)).items()),
        start=start,
        stop=start + draw(st.integers(1, 10**6)),
        config=tuple(sorted(draw(st.dictionaries(st.text(max_size=10), JSON_VALUE, max_size=4)).items())),
        ranking_metric=draw(TEXT),
        priority=draw(st.sampled_from(list(Priority))),
        attempt=draw(st.integers(0, 1000)),
    )
