"""Planner: content-addressed ids, job counts, tile sizes, tiles that cover the grid exactly once and stay
the same jobs when the grid grows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from backtesting_modules.jobs import DataRef, JobType, batch_id, described_refs, parse_spec, plan_jobs
from backtesting_modules.jobs.planner import combos_per_job, compute_block_sizes, throughput_for
from backtesting_modules.jobs.runner import compute_boxes
from backtesting_modules.jobs.spec import combo_table
from backtesting_modules.strategies import expand_grid, get_strategy


def spec_of(job_type: str = "PARAMETER_OPTIMIZATION", seed: int = 42, **grid: Any) -> Any:
    return parse_spec(
        {
            "name": "p",
            "job_type": job_type,
            "symbols": ["KRW-BTC", "KRW-ETH", "KRW-XRP"],
            "data": {"source": "synthetic", "periods": 1000, "seed": seed},
            "strategies": [
                {"name": "SMA_Crossover", "grid": grid or {"fast": "2:40:1", "slow": "3:60:1"}},
                {"name": "Donchian_Breakout", "grid": {"entry_period": [10, 20], "exit_period": [5, 10]}},
            ],
            "priority": "high",
        }
    )


def refs_of(spec: Any, **changed: str) -> dict[str, DataRef]:
    """Content-hash references per symbol (`changed`: symbols whose bars hash differently)."""
    return {s: DataRef.uploaded(changed.get(s, f"{s:0<64}".replace("-", "0"))[:64]) for s in spec.symbols}


def test_batch_id_hashes_the_spec_and_the_bars_not_where_they_came_from() -> None:
    spec = spec_of()
    refs = refs_of(spec)
    assert batch_id(spec, refs) == batch_id(spec_of(), refs_of(spec))
    assert batch_id(spec, refs, "rerun-1") != batch_id(spec, refs)
    assert batch_id(spec, refs).startswith("b-")
    # One changed bar of one symbol: a new batch.
    assert batch_id(spec, refs_of(spec, **{"KRW-ETH": "e" * 64})) != batch_id(spec, refs)
    # The same bars from another source description (e.g. another seed that happens to give them): the same.
    assert batch_id(spec_of(seed=7), refs) == batch_id(spec, refs)


def test_plan_is_deterministic_and_job_ids_do_not_name_the_batch() -> None:
    refs = refs_of(spec_of())
    a = plan_jobs(spec_of(), "b-1", refs=refs, target_seconds=0.01)
    assert a == plan_jobs(spec_of(), "b-1", refs=refs, target_seconds=0.01)
    assert len({j.job_id for j in a}) == len(a)
    other_batch = plan_jobs(spec_of(), "b-2", refs=refs, target_seconds=0.01)
    assert [j.job_id for j in other_batch] == [j.job_id for j in a]  # the same jobs, found by id
    changed = plan_jobs(
        spec_of(), "b-1", refs=refs_of(spec_of(), **{"KRW-ETH": "e" * 64}), target_seconds=0.01
    )
    moved = {j.job_id for j in changed} - {j.job_id for j in a}
    assert moved and all(j.symbols == ("KRW-ETH",) for j in changed if j.job_id in moved)
    assert all(j.job_id in {k.job_id for k in a} for j in changed if j.symbols != ("KRW-ETH",))


def test_combos_per_job_follows_the_work_estimate() -> None:
    # 2 s × 2e7 bar·combos/s over 8760 bars ≈ 4566 combinations per job.
    assert combos_per_job(8760, target_seconds=2.0, throughput=2e7) == 4566
    assert combos_per_job(10**9, target_seconds=2.0, throughput=2e7) == 1


@pytest.mark.parametrize(
    ("lengths", "per_job", "sizes"),
    [
        ((10, 39), 4566, (12, 48)),  # the whole grid fits one tile
        ((100, 300), 4566, (12, 384)),  # batches/benchmark.yaml: 9 tiles of 12 × 300 per symbol
        ((38, 57), 64, (1, 64)),
        ((38, 57), 100, (1, 64)),
        ((38, 57), 16, (1, 16)),
        ((5, 10, 200), 4096, (2, 12, 256)),
        ((3,), 1, (1,)),
    ],
)
def test_block_sizes_fill_the_job_from_the_last_axis_in_coarse_steps(
    lengths: tuple[int, ...], per_job: int, sizes: tuple[int, ...]
) -> None:
    assert compute_block_sizes(lengths, per_job) == sizes
    assert math.prod(min(b, n) for b, n in zip(sizes, lengths, strict=True)) <= max(per_job, 1)


def _valid_combos(spec: Any, index: int) -> list[tuple[Any, ...]]:
    item = spec.strategies[index]
    table, _ = expand_grid(get_strategy(item.name), item.grid_dict(), item.params_dict())
    return list(zip(*(table[name].tolist() for name, _ in item.grid), strict=True))


def _job_combos(job: Any) -> list[tuple[Any, ...]]:
    table, valid = combo_table(get_strategy(job.strategy), job.grid, job.fixed_params(), job.start, job.stop)
    return list(zip(*(table[name][valid].tolist() for name, _ in job.grid), strict=True))


@pytest.mark.parametrize("target", [0.001, 0.01, 0.05, 10.0])
def test_tiles_cover_every_valid_combination_exactly_once(target: float) -> None:
    spec = spec_of()
    jobs = plan_jobs(spec, "b", target_seconds=target)
    for index, item in enumerate(spec.strategies):
        # Each strategy's jobs are sized by its own calibrated throughput (`throughput_for`).
        per_job = combos_per_job(1000, target_seconds=target, throughput=throughput_for(item.name))
        expected = _valid_combos(spec, index)
        for symbol in spec.symbols:
            mine = [j for j in jobs if j.strategy == item.name and j.symbols == (symbol,)]
            combos = [c for j in mine for c in _job_combos(j)]
            assert sorted(combos) == sorted(expected) and len(combos) == len(expected)  # each exactly once
            assert all(j.start == 0 and j.stop == math.prod(len(v) for _, v in j.grid) for j in mine)
            assert all(1 <= len(_job_combos(j)) <= max(per_job, 1) for j in mine)  # no empty tile planned


def test_widening_a_grid_keeps_every_tile_it_does_not_touch() -> None:
    # Tiles of 1 × 64 on (fast, slow): appending fast values adds tiles, appending slow values past a full
    # block of 64 adds tiles; every job of the narrower grid is still planned, with the same id.
    refs = refs_of(spec_of())
    sizing: dict[str, Any] = {"bars": 1000, "target_seconds": 64 * 1000 / 2e7, "throughput": 2e7}
    narrow = plan_jobs(spec_of(fast="2:20:1", slow="3:66:1"), "b", refs=refs, **sizing)
    wide = plan_jobs(spec_of(fast="2:30:1", slow="3:90:1"), "b", refs=refs, **sizing)
    old = {j.job_id for j in narrow if j.strategy == "SMA_Crossover"}
    new = {j.job_id for j in wide if j.strategy == "SMA_Crossover"}
    assert old < new  # nothing of the narrow grid needs running again
    added = [j for j in wide if j.job_id in new - old]
    assert all(
        min(dict(j.grid)["fast"]) > 20 or min(dict(j.grid)["slow"]) > 66 for j in added
    )  # the new jobs hold only new combinations


def test_job_fields() -> None:
    spec = spec_of()
    job = plan_jobs(spec, "b-x", refs=refs_of(spec))[0]
    assert job.batch_id == "b-x" and job.attempt == 0
    assert job.job_type is JobType.PARAMETER_OPTIMIZATION
    assert job.data_keys == (str(refs_of(spec)["KRW-BTC"]),)
    assert job.data_keys[0].startswith("bars/") and job.data_keys[0].endswith(".npz")
    # Planning without bars names the references after the data section (for --estimate and tests only).
    described = plan_jobs(spec, "b-x")[0]
    assert described.data_keys == (str(described_refs(spec)["KRW-BTC"]),)
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
