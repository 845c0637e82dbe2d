"""Properties of the batch-spec parser and the planner.

The oracle is the engine itself: a parameter set is valid when `resolve_params` accepts it (ranges and
constraints), and a grid is the cartesian product of its axes in YAML order, the last axis fastest. From a
generated spec mapping the oracle predicts whether it parses, which field the error names if not, how
many backtests it asks for, and which cartesian indices its jobs must cover exactly once.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from backtesting_modules.errors import StrategyError
from backtesting_modules.jobs import (
    JobType,
    SpecError,
    count_backtests,
    decode_job,
    encode_job,
    load_spec,
    parse_spec,
    plan_jobs,
    spec_hash,
)
from backtesting_modules.strategies import get_strategy, resolve_params
from tests.properties.generators import JUNK, KNOWN_KEYS, spec_mappings

# --- the oracle --------------------------------------------------------------------------------------------


def axis_values(value: Any) -> list[Any]:
    """The values an axis as written stands for (generated int ranges only; stop inclusive)."""
    if isinstance(value, str):
        start, stop, step = (int(part) for part in value.split(":"))
        return list(range(start, stop + 1, step))
    return list(value) if isinstance(value, list) else [value]


def valid_indices(entry: dict[str, Any]) -> list[int] | None:
    """Cartesian indices of the entry's grid that the engine accepts; None when its fixed params fail."""
    strategy = get_strategy(entry["name"])
    fixed = entry.get("params", {})
    try:
        resolve_params(strategy, fixed)
    except StrategyError:
        return None
    grid = entry.get("grid", {})
    valid = []
    for index, combo in enumerate(itertools.product(*(axis_values(v) for v in grid.values()))):
        try:
            resolve_params(strategy, {**fixed, **dict(zip(grid, combo, strict=True))})
        except StrategyError:
            continue
        valid.append(index)
    return valid


def tile_indices(grid: Any, tile: Any) -> list[int]:
    """The cartesian indices, in the whole grid, of a tile's combinations."""
    positions = [
        [list(values).index(v) for v in tile_values]
        for (_, values), (_, tile_values) in zip(grid, tile, strict=True)
    ]
    shape = [len(values) for _, values in grid]
    return [
        int(sum(p * math.prod(shape[k + 1 :]) for k, p in enumerate(combo)))
        for combo in itertools.product(*positions)
    ]


def expected_error(raw: dict[str, Any]) -> str | None:
    """The field path the parser must name, or None when the mapping is valid."""
    for i, entry in enumerate(raw["strategies"]):
        valid = valid_indices(entry)
        if valid is None:
            return f"strategies[{i}].params"
        if not valid:
            return f"strategies[{i}].grid"
    return None


def yaml_form(canonical: dict[str, Any]) -> dict[str, Any]:
    """`BatchSpec.to_dict()` turned back into the mapping a person writes (grid axes as a mapping, the
    synthetic source's bar interval as `freq`)."""
    out = dict(canonical)
    out["strategies"] = [
        {"name": s["name"], "grid": dict(s["grid"]), "params": s["params"]} for s in canonical["strategies"]
    ]
    data = dict(canonical["data"])
    if data["source"] == "synthetic":
        data["freq"] = data.pop("timeframe")
    out["data"] = data
    return out


# --- properties ------------------------------------------------------------------------------------------


@given(raw=spec_mappings())
def test_valid_specs_parse_and_invalid_ones_name_the_strategy_field(raw: dict[str, Any]) -> None:
    where = expected_error(raw)
    if where is None:
        spec = parse_spec(raw)
        assert [s.name for s in spec.strategies] == [e["name"] for e in raw["strategies"]]
    else:
        with pytest.raises(SpecError) as info:
            parse_spec(raw, source="generated.yaml")
        assert str(info.value).startswith(f"generated.yaml: {where}"), str(info.value)


@given(raw=spec_mappings())
def test_specs_round_trip_through_yaml_and_the_canonical_form(
    tmp_path_factory: pytest.TempPathFactory, raw: dict[str, Any]
) -> None:
    assume(expected_error(raw) is None)
    spec = parse_spec(raw)
    path = Path(tmp_path_factory.mktemp("spec")) / "batch.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    assert load_spec(path) == spec
    again = parse_spec(yaml_form(spec.to_dict()))
    assert again == spec and spec_hash(again) == spec_hash(spec)
    shuffled = dict(reversed(list(raw.items())))  # key order in the file never matters
    assert spec_hash(parse_spec(shuffled)) == spec_hash(spec)


@given(raw=spec_mappings(), per_job=st.integers(1, 40), bars=st.integers(10, 100_000))
def test_jobs_cover_every_valid_combination_exactly_once(
    raw: dict[str, Any], per_job: int, bars: int
) -> None:
    assume(expected_error(raw) is None)
    spec = parse_spec(raw)
    runs = 1 if spec.job_type is JobType.MULTI_STRATEGY else len(spec.symbols)
    # throughput = bars makes each PARAMETER_OPTIMIZATION job a tile of at most `per_job` combinations;
    # loop_throughput the same for MULTI_STRATEGY's bars × symbols.
    jobs = plan_jobs(
        spec,
        "b-property",
        target_seconds=per_job,
        throughput=bars,
        loop_throughput=bars * len(spec.symbols),
        bars=bars,
    )
    assert jobs == plan_jobs(
        spec,
        "b-property",
        target_seconds=per_job,
        throughput=bars,
        loop_throughput=bars * len(spec.symbols),
        bars=bars,
    )
    assert len({j.job_id for j in jobs}) == len(jobs)
    covered = 0
    for entry, item in zip(raw["strategies"], spec.strategies, strict=True):
        valid = valid_indices(entry) or []
        mine = [j for j in jobs if j.strategy == item.name]
        groups = {j.symbols for j in mine}
        assert groups == ({spec.symbols} if runs == 1 else {(s,) for s in spec.symbols})
        for group in groups:
            tiles = [j for j in mine if j.symbols == group]
            indices = sorted(i for j in tiles for i in tile_indices(item.grid, j.grid) if i in set(valid))
            assert indices == valid  # every valid combination once
            assert all(j.start == 0 and j.stop == math.prod(len(v) for _, v in j.grid) for j in tiles)
            if spec.job_type in (JobType.PARAMETER_OPTIMIZATION, JobType.MULTI_STRATEGY):
                assert all(j.stop <= per_job for j in tiles)  # a tile holds at most per_job combinations
            else:  # one parameter set per job
                assert all(j.stop == 1 for j in tiles)
            covered += len(indices)
    assert covered == count_backtests(spec)
    for job in jobs:
        assert decode_job(encode_job(job)) == job


@given(junk=JUNK)
def test_any_value_either_parses_or_raises_spec_error(junk: Any) -> None:
    with contextlib.suppress(SpecError):
        parse_spec(junk)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists (the root excluded)."""
    children: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    out = []
    for key, child in children:
        out.append((*prefix, key))
        out += _paths(child, (*prefix, key))
    return out


@given(raw=spec_mappings(), data=st.data())
def test_a_valid_spec_with_one_junk_change_parses_or_raises_spec_error(
    raw: dict[str, Any], data: Any
) -> None:
    path = data.draw(st.sampled_from(_paths(raw)), label="path")
    parent: Any = raw
    for key in path[:-1]:
        parent = parent[key]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]), label="action")
    if action == "replace" or isinstance(parent, list):
        parent[path[-1]] = data.draw(JUNK, label="junk")
    elif action == "delete":
        del parent[path[-1]]
    else:
        parent[data.draw(KNOWN_KEYS | st.text(max_size=8), label="key")] = data.draw(JUNK, label="junk")
    try:
        spec = parse_spec(raw)
    except SpecError:
        return
    assert count_backtests(spec) <= spec.max_backtests  # whatever parses respects the limit
