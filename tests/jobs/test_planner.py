"""Planner: deterministic ids, job counts, chunk sizes, and chunks that cover the grid exactly once."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from backtesting_modules.jobs import JobType, bars_key, batch_id, parse_spec, plan_jobs
from backtesting_modules.jobs.planner import chunk_size
from backtesting_modules.jobs.runner import compute_boxes
from backtesting_modules.jobs.spec import combo_table, data_hash
from backtesting_modules.strategies import expand_grid, get_strategy


def spec_of(job_type: str = "PARAMETER_OPTIMIZATION", **grid: Any) -> Any:
    return parse_spec(
        {
            "name": "p",
            "job_type": job_type,
            "symbols": ["KRW-BTC", "KRW-ETH", "KRW-XRP"],
            "data": {"source": "synthetic", "periods": 1000},
            "strategies": [
                {"name": "SMA_Crossover", "grid": grid or {"fast": "2:40:1", "slow": "3:60:1"}},
                {"name": "Donchian_Breakout", "grid": {"entry_period": [10, 20], "exit_period": [5, 10]}},
            ],
            "priority": "high",
        }
    )


def test_batch_id_is_deterministic_and_salted() -> None:
    spec = spec_of()
    assert batch_id(spec) == batch_id(spec_of())
    assert batch_id(spec, "rerun-1") != batch_id(spec)
    assert batch_id(spec).startswith("b-")


def test_plan_is_deterministic() -> None:
    a = plan_jobs(spec_of(), "b-1", target_seconds=0.01)
    b = plan_jobs(spec_of(), "b-1", target_seconds=0.01)
    assert a == b
    assert len({j.job_id for j in a}) == len(a)
    assert {j.job_id for j in a}.isdisjoint(
        j.job_id for j in plan_jobs(spec_of(), "b-2", target_seconds=0.01)
    )


def test_chunk_size_follows_the_work_estimate() -> None:
    # 2 s × 2e7 bar·combos/s over 8760 bars ≈ 4566 combinations per job, clamped to [1, valid].
    assert chunk_size(100_000, 8760, target_seconds=2.0, throughput=2e7) == 4566
    assert chunk_size(100, 8760, target_seconds=2.0, throughput=2e7) == 100
    assert chunk_size(100, 10**9, target_seconds=2.0, throughput=2e7) == 1


def _valid_combos(spec: Any, index: int) -> list[tuple[Any, ...]]:
    item = spec.strategies[index]
    table, _ = expand_grid(get_strategy(item.name), item.grid_dict(), item.params_dict())
    return list(zip(*(table[name].tolist() for name, _ in item.grid), strict=True))


def _job_combos(job: Any) -> list[tuple[Any, ...]]:
    table, valid = combo_table(get_strategy(job.strategy), job.grid, job.fixed_params(), job.start, job.stop)
    return list(zip(*(table[name][valid].tolist() for name, _ in job.grid), strict=True))


@pytest.mark.parametrize("target", [0.001, 0.01, 0.05, 10.0])
def test_chunks_cover_every_valid_combination_exactly_once(target: float) -> None:
    spec = spec_of()
    jobs = plan_jobs(spec, "b", target_seconds=target)
    per_job = chunk_size(10**9, 1000, target_seconds=target, throughput=2e7)
    for index, item in enumerate(spec.strategies):
        expected = _valid_combos(spec, index)
        for symbol in spec.symbols:
            mine = [j for j in jobs if j.strategy == item.name and j.symbols == (symbol,)]
            assert mine[0].start == 0 and mine[-1].stop == item.grid_size
            assert all(a.stop == b.start for a, b in itertools.pairwise(mine))
            combos = [c for j in mine for c in _job_combos(j)]
            assert combos == expected  # same order as expand_grid, each exactly once
            sizes = [len(_job_combos(j)) for j in mine]
            assert all(s == min(per_job, len(expected)) for s in sizes[:-1]) and 1 <= sizes[-1] <= per_job
            assert len(mine) == math.ceil(len(expected) / min(per_job, len(expected)))


def test_job_fields() -> None:
    spec = spec_of()
    job = plan_jobs(spec, "b-x")[0]
    assert job.batch_id == "b-x" and job.attempt == 0
    assert job.job_type is JobType.PARAMETER_OPTIMIZATION
    assert job.data_keys == (bars_key(data_hash(spec), "KRW-BTC"),)
    assert job.data_keys[0].startswith("bars/") and job.data_keys[0].endswith("/KRW-BTC.npz")
    assert job.priority.value == "high" and job.timeframe == "1h" and job.ranking_metric == "sharpe"


def test_one_job_per_parameter_set_for_timezone_and_comparison() -> None:
    for kind in ("TIMEZONE_ANALYSIS", "PERFORMANCE_COMPARISON"):
        spec = spec_of(kind, fast=[5, 10], slow=[10, 30])  # (5,10) (5,30) (10,30): (10,10) is invalid
        jobs = plan_jobs(spec, "b")
        assert len(jobs) == (3 + 4) * 3
        assert all(len(_job_combos(j)) == 1 for j in jobs)


def test_portfolio_jobs_span_all_symbols() -> None:
    spec = spec_of("MULTI_STRATEGY", fast=[5, 10], slow=[20, 30])
    jobs = plan_jobs(spec, "b", target_seconds=0.01, loop_throughput=1e6)  # 3 000 bars per combo: 3 per job
    assert all(j.symbols == spec.symbols and len(j.data_keys) == 3 for j in jobs)
    assert sum(len(_job_combos(j)) for j in jobs) == 4 + 4
    assert len(jobs) == 2 + 2


@pytest.mark.parametrize(
    ("shape", "start", "stop"),
    [
        ((3, 4, 5), 0, 60),
        ((3, 4, 5), 7, 53),
        ((3, 4, 5), 21, 22),
        ((7,), 2, 5),
        ((2, 3), 1, 6),
        ((4, 1, 3), 2, 11),
    ],
)
def test_boxes_enumerate_a_range_exactly(shape: tuple[int, ...], start: int, stop: int) -> None:
    grid = tuple((f"p{i}", tuple(range(n))) for i, n in enumerate(shape))
    boxes = compute_boxes(grid, start, stop)
    assert len(boxes) <= 2 * len(shape)
    seen: list[int] = []
    for box in boxes:
        axes = [box[name] for name, _ in grid]
        mesh = np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(shape), -1).T
        seen.extend(int(np.ravel_multi_index(tuple(row), shape)) for row in mesh)
    assert seen == list(range(start, stop))
