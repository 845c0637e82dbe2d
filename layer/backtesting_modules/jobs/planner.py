"""Job planning: a validated `BatchSpec` and its bars' references split into `Job`s.

Pure: `plan_jobs` reads nothing and sends nothing; the same spec and references always give the same jobs,
with the same ids, in the same order.

Ids are content hashes. A job id hashes everything that decides the job's result — job type, strategy, its
sub-grid, fixed parameters, config, ranking metric, timeframe and the references of its bars (content hashes
or S3 ETags, `data_refs`) — and nothing else: not the batch id, not the priority. So any batch that plans a
job that ran before reuses its stored result. A batch id hashes the spec (its data section replaced by the
bars' references), so changing one bar gives a new batch, and an unchanged spec on unchanged bars finds
the batch that already ran.

Tiles. A PARAMETER_OPTIMIZATION job is one (strategy, symbol) and a *tile* of the strategy's grid: the
product of one block of values per axis. Blocks are anchored at the start of each axis; their sizes come
from the 1-2-3 series (1, 2, 3, 4, 6, 8, 12, 16, 24, ...), chosen from the last (fastest) axis outwards
so that a tile holds at most

    combos_per_job = max(1, round(target_seconds × throughput / bars))

combinations, each axis's block no larger than the axis rounded up in that series. Block sizes move in
coarse steps, so a tile is stable when the grid grows: appending values to an axis changes only the tiles
of its last, partial block and adds new ones; every other tile keeps its id, so widening a grid on
unchanged bars reruns only those (an axis that grows past a step of the series re-tiles the grid). Tiles
whose combinations all violate a constraint are not planned. `throughput` is the engine's sweep speed in
bar·combinations per second (default 2e7, about one core on hourly bars, see benchmarks). MULTI_STRATEGY
jobs run the portfolio (a per-bar loop) over all symbols, sized the same way with `loop_throughput` and
bars × symbols. TIMEZONE_ANALYSIS and PERFORMANCE_COMPARISON jobs carry one parameter set each (a tile of
one combination); SINGLE_STRATEGY jobs carry the one parameter set of their strategy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..names import result_key
from ..strategies import get_strategy
from .data_refs import DataRef
from .spec import (
    BatchSpec,
    GridAxes,
    JobType,
    Pairs,
    Priority,
    StrategySpec,
    canonical_json,
    data_hash,
    estimate_bars,
    sha256_hex,
    valid_positions,
)

DEFAULT_TARGET_SECONDS = 2.0
DEFAULT_THROUGHPUT = 2.0e7  # bar·combinations per second of `run_sweep` on one core
DEFAULT_LOOP_THROUGHPUT = 1.0e6  # bars per second of the per-bar portfolio loop (one parameter set)
PORTFOLIO_SYMBOL = "PORTFOLIO"
_ID_CHARS = 16
# Where bars come from, not which bars they are: replaced by the references in a batch's identity.
_DESCRIPTIVE_DATA_KEYS = ("source", "paths", "pattern", "uri", "exchange", "seed", "periods", "start", "bars")


# Re-exported: every storage key is named in backtesting_modules/names.py, the one module that owns names.
__all__ = ["Job", "batch_id", "described_refs", "job_id", "plan_jobs", "result_key"]


# ------------------------------------------------------------------------------------------------ jobs


@dataclass(frozen=True)
class Job:
    """One unit of work: a strategy over its symbols' bars for its tile `grid` (cartesian range
    [start, stop) of it: the whole tile)."""

    job_id: str
    batch_id: str
    job_type: JobType
    strategy: str
    symbols: tuple[str, ...]
    timeframe: str
    data_keys: tuple[str, ...]
    grid: GridAxes
    fixed: Pairs
    start: int
    stop: int
    config: Pairs
    ranking_metric: str
    priority: Priority
    attempt: int = 0

    def fixed_params(self) -> dict[str, Any]:
        return dict(self.fixed)

    def config_overrides(self) -> dict[str, Any]:
        return dict(self.config)

    def content(self) -> dict[str, Any]:
        """Everything that decides the job's result (not its ids, priority or attempt): hashed into job_id."""
        return {
            "job_type": self.job_type.value,
            "strategy": self.strategy,
            "symbols": list(self.symbols),
            "timeframe": self.timeframe,
            "data_keys": list(self.data_keys),
            "grid": [[name, list(values)] for name, values in self.grid],
            "fixed": dict(self.fixed),
            "start": self.start,
            "stop": self.stop,
            "config": dict(self.config),
            "ranking_metric": self.ranking_metric,
        }


def described_refs(spec: BatchSpec) -> dict[str, DataRef]:
    """References named after the spec's data section, not its bars: for planning without loading bars
    (`run_batch.py --estimate`, tests of the planner). A batch always plans with the bars' own references,
    which the driver resolves (`opslib.batch.bars`)."""
    source = data_hash(spec)
    return {symbol: DataRef(f"bars/described-{source}-{symbol}.npz") for symbol in spec.symbols}


def batch_id(spec: BatchSpec, refs: Mapping[str, DataRef | str] | None = None, salt: str = "") -> str:
    """Deterministic batch id: the spec with its data section replaced by the bars' references (so the same
    spec on changed bars is a new batch); a salt (e.g. a rerun label) gives a fresh id."""
    described = spec.to_dict()
    data = {k: v for k, v in described.pop("data").items() if k not in _DESCRIPTIVE_DATA_KEYS}
    resolved = refs if refs is not None else described_refs(spec)
    identity = {**described, "data": data, "bars": {s: str(r) for s, r in sorted(resolved.items())}}
    return "b-" + sha256_hex(f"{canonical_json(identity)}:{salt}")[:_ID_CHARS]


def job_id(content: Mapping[str, Any]) -> str:
    """A job's id: the hash of its content (`Job.content`), the same in every batch that plans it."""
    return "j-" + sha256_hex(canonical_json(dict(content)))[:_ID_CHARS]


def combos_per_job(bars: int, *, target_seconds: float, throughput: float) -> int:
    """Combinations per job so that bars × combinations / throughput ≈ target_seconds."""
    return max(1, round(target_seconds * throughput / max(1, bars)))


def _sizes_up_to(n: int) -> list[int]:
    """The block sizes a tile may use: 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (2^k and 3·2^k) up to `n`."""
    sizes, k = [], 1
    while k <= max(1, n):
        sizes += [k] + ([3 * k // 2] if k > 1 and 3 * k // 2 <= n else [])
        k *= 2
    return sorted(set(sizes))


def _size_floor(n: int) -> int:
    return _sizes_up_to(n)[-1]


def _size_ceil(n: int) -> int:
    return next(size for size in _sizes_up_to(4 * max(1, n)) if size >= n)


def compute_block_sizes(lengths: tuple[int, ...], per_job: int) -> tuple[int, ...]:
    """Per axis, the block size of a tile (see the module docstring): from the last axis outwards, the
    largest size of the 1-2-3 series (2^k, 3·2^k) that fits the room left, but no larger than the axis
    rounded up in that series; the room an axis leaves counts the values its block really covers."""
    sizes = [1] * len(lengths)
    room = max(1, per_job)
    for i in reversed(range(len(lengths))):
        sizes[i] = min(_size_ceil(lengths[i]), _size_floor(room))
        room = max(1, room // min(sizes[i], lengths[i]))
    return tuple(sizes)


def compute_tiles(grid: GridAxes, per_job: int) -> list[GridAxes]:
    """The tiles of `grid` in sweep order (outer axes slowest), each a grid of one block per axis."""
    if not grid:
        return [grid]
    sizes = compute_block_sizes(tuple(len(v) for _, v in grid), per_job)
    blocks = [
        [tuple(values[i : i + size]) for i in range(0, len(values), size)]
        for (_, values), size in zip(grid, sizes, strict=True)
    ]
    names = [name for name, _ in grid]
    return [tuple(zip(names, combo, strict=True)) for combo in _product(blocks)]


def _product(blocks: list[list[tuple[Any, ...]]]) -> Iterator[tuple[tuple[Any, ...], ...]]:
    if not blocks:
        yield ()
        return
    for first in blocks[0]:
        for rest in _product(blocks[1:]):
            yield (first, *rest)


def plan_jobs(
    spec: BatchSpec,
    batch: str,
    *,
    refs: Mapping[str, DataRef | str] | None = None,
    target_seconds: float = DEFAULT_TARGET_SECONDS,
    throughput: float = DEFAULT_THROUGHPUT,
    loop_throughput: float = DEFAULT_LOOP_THROUGHPUT,
    bars: int | None = None,
) -> list[Job]:
    """Split `spec` into jobs (see the module docstring). `refs` are the bars' references per symbol
    (`described_refs` when None: planning only); `bars` overrides the bars-per-symbol estimate."""
    n_bars = bars if bars is not None else estimate_bars(spec)
    resolved = {s: str(r) for s, r in (refs if refs is not None else described_refs(spec)).items()}
    jobs: list[Job] = []
    for item in spec.strategies:
        for symbols, tile in _units(spec, item, n_bars, target_seconds, throughput, loop_throughput):
            jobs.append(_job(spec, batch, item, symbols, tile, resolved))
    return jobs


def _units(
    spec: BatchSpec, item: StrategySpec, n_bars: int, target: float, throughput: float, loop: float
) -> Iterator[tuple[tuple[str, ...], GridAxes]]:
    strategy = get_strategy(item.name)
    fixed = item.params_dict()
    kind = spec.job_type
    if kind is JobType.MULTI_STRATEGY:
        per_job = combos_per_job(n_bars * len(spec.symbols), target_seconds=target, throughput=loop)
    elif kind is JobType.PARAMETER_OPTIMIZATION:
        per_job = combos_per_job(n_bars, target_seconds=target, throughput=throughput)
    else:  # one parameter set per job
        per_job = 1
    tiles = [t for t in compute_tiles(item.grid, per_job) if len(valid_positions(strategy, t, fixed))]
    if kind is JobType.MULTI_STRATEGY:
        for tile in tiles:
            yield spec.symbols, tile
        return
    for symbol in spec.symbols:
        for tile in tiles:
            yield (symbol,), tile


def _job(
    spec: BatchSpec,
    batch: str,
    item: StrategySpec,
    symbols: tuple[str, ...],
    tile: GridAxes,
    refs: Mapping[str, str],
) -> Job:
    missing = [s for s in symbols if s not in refs]
    if missing:
        raise ValueError(f"no bars reference for {', '.join(missing)}: resolve every symbol's bars first")
    draft = Job(
        job_id="",
        batch_id=batch,
        job_type=spec.job_type,
        strategy=item.name,
        symbols=symbols,
        timeframe=spec.data.timeframe,
        data_keys=tuple(refs[s] for s in symbols),
        grid=tile,
        fixed=item.params,
        start=0,
        stop=math.prod(len(values) for _, values in tile),
        config=spec.config,
        ranking_metric=spec.ranking.metric,
        priority=spec.priority,
    )
    return Job(**{**draft.__dict__, "job_id": job_id(draft.content())})
