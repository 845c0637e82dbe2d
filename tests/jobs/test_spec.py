"""Batch spec: parsing, grid ranges, validation errors (path + fix), limits and hash stability."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from backtesting_modules.jobs import (
    JobType,
    Priority,
    SpecError,
    count_backtests,
    load_spec,
    parse_spec,
    spec_hash,
)
from backtesting_modules.jobs.spec import DataSource, parse_range

ROOT = Path(__file__).resolve().parents[2]


def base() -> dict[str, Any]:
    return {
        "name": "t",
        "job_type": "PARAMETER_OPTIMIZATION",
        "symbols": ["KRW-BTC", "KRW-ETH"],
        "data": {"source": "synthetic", "seed": 1, "periods": 500, "freq": "1h"},
        "strategies": [
            {"name": "SMA_Crossover", "grid": {"fast": "5:15:5", "slow": [20, 30]}},
            {"name": "RSI_MeanReversion", "params": {"period": 10}},
        ],
        "ranking": {"metric": "sharpe", "top": 5},
    }


def with_change(path: str, value: Any) -> dict[str, Any]:
    """The base spec with `value` set at a dotted path ('strategies.0.grid.fats'); value DELETE removes it."""
    spec = copy.deepcopy(base())
    *parents, last = path.split(".")
    node: Any = spec
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is DELETE:
        del node[last]
    else:
        node[int(last) if isinstance(node, list) else last] = value
    return spec


DELETE = object()

ERROR_CASES = [
    # (change path, value, expected path in message, expected fix hint)
    ("strategies.0.grid.fats", [3], "strategies[0].grid.fats", "Did you mean 'fast'"),
    ("strategies.0.name", "SMA_Crossovr", "strategies[0].name", "Did you mean 'SMA_Crossover'"),
    ("strategies.0.grid.fast", "5:1:1", "strategies[0].grid.fast", "start <= stop"),
    ("strategies.0.grid.fast", "5:10", "strategies[0].grid.fast", "'start:stop:step'"),
    ("strategies.0.grid.fast", "5:10:0", "strategies[0].grid.fast", "positive step"),
    ("strategies.0.grid.fast", [1, 5], "strategies[0].grid.fast", "choose a value in that range"),
    ("strategies.0.grid.fast", [], "strategies[0].grid.fast", "at least one value"),
    ("strategies.1.params.perod", 3, "strategies[1].params.perod", "Did you mean 'period'"),
    ("strategies.0.grid.slow", [5], "strategies[0].grid", "widen the ranges"),
    ("symbols", [], "symbols", "at least one market"),
    ("ranking.metric", "sharpee", "ranking.metric", "Did you mean 'sharpe'"),
    ("ranking.top", 0, "ranking.top", "integer >= 1"),
    ("job_type", "OPTIMISE", "job_type", "PARAMETER_OPTIMIZATION"),
    ("priority", "urgent", "priority", "normal, high"),
    ("nmae", "x", "nmae", "Did you mean 'name'"),
    ("data.seeed", 3, "data.seeed", "Did you mean 'seed'"),
    ("data.source", "ftp", "data.source", "synthetic, files, s3, exchange"),
    ("data.periods", -5, "data.periods", "integer >= 1"),
    ("config.stop_loss_pct", 2.0, "config.stop_loss_pct", "set it within that range"),
    ("config.comission_rate", 0.1, "config.comission_rate", "Did you mean 'commission_rate'"),
    ("limits.max_backtests", 5, "limits.max_backtests", "raise limits.max_backtests"),
    ("data", DELETE, "data", "is required; add it"),
]


@pytest.mark.parametrize(("path", "value", "where", "hint"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_spec_errors_name_the_field_and_the_fix(path: str, value: Any, where: str, hint: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(with_change(path, value), source="batch.yaml")
    message = str(info.value)
    assert message.startswith(f"batch.yaml: {where}:"), message
    assert hint in message, message


def test_data_sources_validate_their_own_fields() -> None:
    files = with_change("data", {"source": "files", "pattern": "data/{symbol}_1h.csv", "timeframe": "1h"})
    assert parse_spec(files).data.source is DataSource.FILES
    s3 = with_change("data", {"source": "s3", "uri": "s3://bucket/bars/{symbol}.parquet"})
    assert parse_spec(s3).data.uri == "s3://bucket/bars/{symbol}.parquet"
    exchange = with_change(
        "data",
        {
            "source": "exchange",
            "exchange": "upbit",
            "since": "2024-01-01",
            "until": "2024-02-01",
            "timeframe": "1h",
        },
    )
    assert parse_spec(exchange).data.exchange == "upbit"
    for bad, where in [
        ({"source": "files", "pattern": "data/x.csv"}, "data.pattern"),
        ({"source": "s3", "uri": "http://x/{symbol}"}, "data.uri"),
        (
            {"source": "exchange", "exchange": "upbit", "since": "2024-02-01", "until": "2024-01-01"},
            "data.until",
        ),
        ({"source": "synthetic", "uri": "s3://x/{symbol}"}, "data.uri"),
    ]:
        with pytest.raises(SpecError, match=rf": {where}:"):
            parse_spec(with_change("data", bad))


def test_parse_range_is_inclusive_and_typed() -> None:
    assert parse_range("5:20:5") == [5, 10, 15, 20]
    assert parse_range("5:22:5") == [5, 10, 15, 20]
    assert parse_range("3:3:1") == [3]
    assert parse_range("0.1:0.3:0.1") == [0.1, 0.2, 0.3]
    assert all(isinstance(v, int) for v in parse_range("1:4:1"))
    with pytest.raises(SpecError, match="start <= stop"):
        parse_range("4:1:1")


def test_parsed_spec_fields() -> None:
    spec = parse_spec(base())
    assert spec.job_type is JobType.PARAMETER_OPTIMIZATION
    assert spec.priority is Priority.NORMAL
    assert spec.strategies[0].grid == (("fast", (5, 10, 15)), ("slow", (20, 30)))
    assert spec.strategies[1].params == (("period", 10),)
    assert spec.data.timeframe == "1h"
    assert spec.max_backtests == 2_000_000
    # SMA: 3 × 2 combinations, all valid (fast < slow); RSI: one parameter set; two symbols.
    assert count_backtests(spec) == (6 + 1) * 2


def test_count_skips_constraint_violations_and_portfolio_counts_once() -> None:
    raw = with_change(
        "strategies", [{"name": "SMA_Crossover", "grid": {"fast": [10, 20, 30], "slow": [20, 30]}}]
    )
    assert count_backtests(parse_spec(raw)) == 3 * 2  # (10,20) (10,30) (20,30) on two symbols
    raw["job_type"] = "MULTI_STRATEGY"
    assert count_backtests(parse_spec(raw)) == 3


def test_limit_error_says_size_limit_and_how_to_fix() -> None:
    raw = with_change("limits", {"max_backtests": 10})
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    message = str(info.value)
    assert "14 backtests" in message and "limit of 10" in message
    assert "shrink the grids" in message and "raise limits.max_backtests" in message


def test_single_strategy_refuses_a_grid() -> None:
    with pytest.raises(SpecError, match=r"strategies\[0\]\.grid: .*PARAMETER_OPTIMIZATION"):
        parse_spec(with_change("job_type", "SINGLE_STRATEGY"))


def test_hash_is_stable_and_content_sensitive() -> None:
    one = parse_spec(base())
    reordered = dict(reversed(list(base().items())))
    assert spec_hash(one) == spec_hash(parse_spec(reordered))
    assert spec_hash(one) == spec_hash(parse_spec(with_change("strategies.0.grid.fast", [5, 10, 15])))
    assert spec_hash(one) != spec_hash(parse_spec(with_change("data.seed", 2)))
    # The grid axis order is the sweep order: it changes the hash.
    swapped = with_change("strategies.0.grid", {"slow": [20, 30], "fast": "5:15:5"})
    assert spec_hash(one) != spec_hash(parse_spec(swapped))
    assert len(spec_hash(one)) == 64


@pytest.mark.parametrize(
    ("name", "low", "high"), [("demo", 5_000, 20_000), ("benchmark", 100_000, 200_000), ("search", 600, 600)]
)
def test_shipped_batches_validate(name: str, low: int, high: int) -> None:
    spec = load_spec(ROOT / "batches" / f"{name}.yaml")
    assert low <= count_backtests(spec) <= high
    assert len({s.name for s in spec.strategies}) == len(spec.strategies)


def test_load_spec_reports_yaml_and_io_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    bad.write_text("- a list\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(bad)
