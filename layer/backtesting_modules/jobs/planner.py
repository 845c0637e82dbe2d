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
bar·combinations per second on one core: each strategy's own, calibrated by benchmarks/calibrate.py
(`throughput_table`: ~1.8e7 for Dynamic_RSI_MACD to ~4.3e7 for SMA_Crossover on the machine that wrote
it), 2e7 for a strategy it has not measured. MULTI_STRATEGY
jobs run the portfolio (a per-bar loop) over all symbols, sized the same way with `loop_throughput` and
bars × symbols. TIMEZONE_ANALYSIS and PERFORMANCE_COMPARISON jobs carry one parameter set each (a tile of
one combination); SINGLE_STRATEGY jobs carry the one parameter set of their strategy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..names import result_key
from ..strategies import get_strategy
from ..validation import Fold
from .data_refs import DataRef
from .spec import (
    BatchSpec,
    GridAxes,
    JobType,
    Pairs,
    Priority,
    StrategySpec,
    canonical_json,
    count_combinations,
    data_hash,
    estimate_bars,
    sha256_hex,
    valid_positions,
)
from .throughput_table import MEASURED, MEASURED_SETS

DEFAULT_TARGET_SECONDS = 2.0
DEFAULT_THROUGHPUT = 2.0e7  # bar·combinations per second of `run_sweep` on one core
DEFAULT_LOOP_THROUGHPUT = 1.0e6  # bars per second of the per-bar portfolio loop (one parameter set)


def throughput_for(strategy: str, *, sets: bool = False) -> float:
    """The engine's bar·combinations per second for `strategy` on one core: its calibrated figure
    (`throughput_table`, benchmarks/calibrate.py: job-sized grid tiles run as a worker runs them), else
    DEFAULT_THROUGHPUT (a strategy a user registered). With `sets`, the rate on random parameter sets over
    the strategy's whole ranges (what a search sends: fewer shared indicators than a grid)."""
    if sets and strategy in MEASURED_SETS:
        return MEASURED_SETS[strategy]
    return MEASURED.get(strategy, DEFAULT_THROUGHPUT)


def batch_throughput(spec: BatchSpec) -> float:
    """One bar·combinations-per-second figure for a whole batch (the AWS projection's): each strategy's
    calibrated rate (`throughput_for`; a search's on parameter sets) weighted by its share of the work."""
    work = seconds = 0.0
    for item in spec.strategies:
        n = float(count_combinations(item))
        work += n
        seconds += n / throughput_for(item.name, sets=item.search is not None)
    return work / seconds if seconds > 0 else DEFAULT_THROUGHPUT


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
    # Validation (docs/validation.md): the bars the job trades on, [start, stop) as UTC ISO times (earlier
    # bars only warm its indicators up; later ones are never read), and the period of the returns its
    # result keeps for every combination (for PBO and the deflated Sharpe). None: all bars, no returns.
    window: tuple[str, str] | None = None
    period_returns: str | None = None
    # The batch's `ranking.min_trades`: the job's best row is the best with at least that many trades. Not
    # part of its content (the rows do not depend on it): a reused result keeps the best it was run with.
    min_trades: int = 0
    # An adaptive search's trials (docs/search.md): explicit parameter sets, run in this order instead of
    # the grid's range (then `grid` is empty and [start, stop) counts the sets).
    sets: tuple[Pairs, ...] | None = None

    def fixed_params(self) -> dict[str, Any]:
        return dict(self.fixed)

    def config_overrides(self) -> dict[str, Any]:
        return dict(self.config)

    def content(self) -> dict[str, Any]:
        """Everything that decides the job's result (not its ids, priority or attempt): hashed into job_id."""
        content: dict[str, Any] = {
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
        if self.window is not None:  # only when set: the ids of jobs without validation stay as they were
            content["window"] = list(self.window)
        if self.period_returns is not None:
            content["period_returns"] = self.period_returns
        if self.sets is not None:
            content["sets"] = [dict(s) for s in self.sets]
        return content


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
    throughput: float | None = None,
    loop_throughput: float = DEFAULT_LOOP_THROUGHPUT,
    bars: int | None = None,
    folds: Sequence[Fold] | None = None,
) -> list[Job]:
    """Split `spec` into jobs (see the module docstring). `refs` are the bars' references per symbol
    (`described_refs` when None: planning only); `bars` overrides the bars-per-symbol estimate; `throughput`
    (bar·combinations per second) overrides each strategy's calibrated figure (`throughput_for`).

    With `folds` (a validated sweep, `validation.folds.plan_folds`), the grid is swept once per fold on its
    train window, sized by the window's bars, each job keeping its rows' per-period returns; without them
    the whole bars are swept (planning only, or validation: none)."""
    n_bars = bars if bars is not None else estimate_bars(spec)
    resolved = {s: str(r) for s, r in (refs if refs is not None else described_refs(spec)).items()}
    sizing = (target_seconds, throughput, loop_throughput)
    if not folds or not spec.validation.enabled:
        return _plan(spec, batch, resolved, n_bars, sizing, window=None)
    jobs: list[Job] = []
    for fold in folds:
        window = (fold.train_start.isoformat(), fold.train_stop.isoformat())
        jobs += _plan(spec, batch, resolved, fold.train_bars, sizing, window=window)
    return jobs


def _plan(
    spec: BatchSpec,
    batch: str,
    refs: Mapping[str, str],
    n_bars: int,
    sizing: tuple[float, float | None, float],
    window: tuple[str, str] | None,
) -> list[Job]:
    jobs: list[Job] = []
    target, throughput, loop = sizing
    for item in spec.strategies:
        rate = throughput if throughput is not None else throughput_for(item.name)
        for symbols, tile in _units(spec, item, n_bars, target, rate, loop):
            job = _job(spec, batch, item, symbols, tile, refs)
            if window is not None:
                job = with_window(job, window, spec.validation.returns_period)
            jobs.append(job)
    return jobs


def with_window(job: Job, window: tuple[str, str], period_returns: str | None) -> Job:
    """`job` trading on `window` only and keeping its rows' per-period returns (a new content: a new id)."""
    draft = replace(job, window=window, period_returns=period_returns)
    return replace(draft, job_id=job_id(draft.content()))


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
        min_trades=spec.ranking.min_trades,
    )
    return Job(**{**draft.__dict__, "job_id": job_id(draft.content())})


# ------------------------------------------------------------------------------ out-of-sample jobs


@dataclass(frozen=True)
class Winner:
    """One of the top-k parameter sets of a fold's train sweep for one strategy and symbol."""

    fold: int
    strategy: str
    symbol: str
    rank: int  # 1 = the fold's winner
    params: Pairs


def plan_test_jobs(
    spec: BatchSpec,
    batch: str,
    refs: Mapping[str, DataRef | str],
    folds: Sequence[Fold],
    winners: Sequence[Winner],
) -> list[Job]:
    """One job per winner: its parameter set alone, traded on its fold's test window (earlier bars warm
    the indicators up), keeping its per-period returns for the stitched out-of-sample equity."""
    by_number = {fold.number: fold for fold in folds}
    items = {item.name: item for item in spec.strategies}
    resolved = {s: str(r) for s, r in refs.items()}
    jobs = []
    for winner in winners:
        item, fold = items[winner.strategy], by_number[winner.fold]
        params = dict(winner.params)
        tile = tuple((name, (params[name],)) for name, _ in item.grid)
        job = _job(spec, batch, item, (winner.symbol,), tile, resolved)
        window = (fold.test_start.isoformat(), fold.test_stop.isoformat())
        jobs.append(with_window(job, window, spec.validation.returns_period))
    return jobs


# ------------------------------------------------------------------------------------- search trials


def plan_set_jobs(
    spec: BatchSpec,
    batch: str,
    item: StrategySpec,
    symbol: str,
    ref: DataRef | str,
    sets: Sequence[Pairs],
    *,
    per_job: int,
    window: tuple[str, str] | None = None,
) -> list[Job]:
    """A search wave's trials as jobs of at most `per_job` explicit parameter sets each, in order, traded
    on `window` (a fold's test window) or all the bars; each keeps its per-period returns (the
    validation's `returns_period`: the search's deflated Sharpe ratios need them, validated or not)."""
    jobs = []
    for start in range(0, len(sets), max(1, per_job)):
        chunk = tuple(sets[start : start + max(1, per_job)])
        draft = replace(
            _job(spec, batch, item, (symbol,), (), {symbol: str(ref)}),
            start=0,
            stop=len(chunk),
            sets=chunk,
            window=window,
            period_returns=spec.validation.returns_period,
        )
        jobs.append(replace(draft, job_id=job_id(draft.content())))
    return jobs
