"""A validated sweep on any target (docs/validation.md): the folds planned on the bars, each fold's train
sweep as ordinary jobs (one batch), the top-k winners of every (fold, strategy, symbol) run on their test
windows as jobs too (a second batch), then the validation document — probability of backtest
overfitting, deflated Sharpe ratios, out-of-sample metrics, the stitched out-of-sample equity, walk-forward
efficiency, parameter stability — computed on the driver and stored at `validation/<batch>.json`.

Everything is deterministic in the spec and the bars: the train batch id is `execute_batch`'s, the test
batch id derives from it, and a stored document is read back instead of computed again, so a second run
(or a resume) costs nothing that already ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtesting_modules import names
from backtesting_modules.jobs.planner import DEFAULT_TARGET_SECONDS, Job, Winner, plan_test_jobs
from backtesting_modules.jobs.results import decode_period_returns, result_frame
from backtesting_modules.jobs.spec import (
    DEFAULT_PBO_BLOCKS,
    BatchSpec,
    DataSource,
    StrategySpec,
    count_combinations,
    sha256_hex,
    timeframe_delta,
)
from backtesting_modules.pipeline.errors import MissingObjectError
from backtesting_modules.pipeline.records import BatchRecord
from backtesting_modules.strategies import expand_grid, get_strategy
from backtesting_modules.validation import Fold, ValidationError, plan_folds
from backtesting_modules.validation.pbo import MIN_BLOCKS

from ..errors import BatchInputError
from .bars import PreparedData, bar_interval
from .execute import BatchOutcome, Driving, execute_batch, run_planned
from .submitter import Submitter
from .validation_compute import VALIDATION_VERSION, OutOfSample, compute_validation_document, winners_of
from .validation_scan import GroupKey, scan_train_results


@dataclass(frozen=True)
class ValidatedOutcome:
    """A sweep and its validation: the train batch, the out-of-sample batch of the winners (None without
    validation or winners) and the validation document (None without validation)."""

    train: BatchOutcome
    test: BatchOutcome | None = None
    document: dict[str, Any] | None = None


def execute_validated(
    submitter: Submitter,
    spec: BatchSpec,
    batch_id: str | None = None,
    *,
    depth: int,
    timeout_s: float,
    salt: str = "",
    reuse: bool = True,
    prepared: PreparedData | None = None,
    alive: Callable[[], bool] = lambda: True,
    on_batch: Callable[[str], None] | None = None,
    on_progress: Callable[[BatchRecord], None] | None = None,
    target_seconds: float = DEFAULT_TARGET_SECONDS,
) -> ValidatedOutcome:
    """`execute_batch` for a spec, then (with `validation`) its winners out of sample and the document."""
    data = prepared or submitter.prepare(spec)
    folds = plan_batch_folds(spec, data) if spec.validation.enabled else None
    train = execute_batch(
        submitter, spec, batch_id, depth=depth, timeout_s=timeout_s, salt=salt, reuse=reuse, prepared=data,
        alive=alive, on_batch=on_batch, on_progress=on_progress, target_seconds=target_seconds, folds=folds,
    )  # fmt: skip
    if folds is None:
        return ValidatedOutcome(train)
    store = submitter.store
    key = names.validation_key(train.batch_id)
    if reuse and store.has_object(key):
        stored = store.get_json(key)
        if stored.get("version") == VALIDATION_VERSION:  # an older layout is computed again
            return ValidatedOutcome(train, None, stored)
    blocks = pbo_blocks(spec, folds)
    scans = scan_train_results(
        store,
        _train_groups(submitter, train, folds),
        metric=spec.ranking.metric,
        min_trades=spec.ranking.min_trades,
        top_k=_top_k(spec, train.jobs, folds),
        blocks=blocks,
    )
    winners = winners_of(scans)
    test_id = out_of_sample_batch_id(train.batch_id)
    test_jobs = plan_test_jobs(spec, test_id, data.refs, folds, winners)
    test = None
    if test_jobs:
        driving = Driving(depth, timeout_s, reuse, alive, on_progress, time.monotonic())
        test = run_planned(
            submitter, spec, test_id, test_jobs, data, driving, name=f"{spec.name} (out of sample)"
        )
    oos = _out_of_sample(submitter, test, winners) if test is not None else {}
    document = compute_validation_document(
        spec,
        folds,
        scans,
        oos,
        train_batch=train.batch_id,
        test_batch=test.batch_id if test else None,
        blocks=blocks,
    )
    store.put_json(key, document)
    return ValidatedOutcome(train, test, document)


def out_of_sample_batch_id(train_batch: str) -> str:
    """The out-of-sample batch of a train batch: derived from it, so a resume finds it."""
    return "b-" + sha256_hex(f"{train_batch}:out-of-sample")[:16]


def plan_batch_folds(spec: BatchSpec, data: PreparedData) -> list[Fold]:
    """The folds of the spec's validation over the span every symbol covers, on the bar grid (lengths in
    bars count bar intervals of the timeframe); a BatchInputError when they do not fit, before anything
    is sent."""
    interval = bar_interval(spec)
    first, last = _common_span(spec, data, interval)
    index = pd.date_range(first, last, freq=interval)
    scheme = spec.validation.scheme()
    if scheme is None:
        raise BatchInputError("validation: none; there are no folds to plan (set validation: holdout).")
    try:
        folds = plan_folds(index, scheme, min_train_bars=_warmup(spec) + 2, interval=interval)
    except ValidationError as exc:
        raise BatchInputError(f"{exc} (the common span of the symbols: {first} to {last})") from exc
    pbo_blocks(spec, folds)  # an explicit S that cannot fit is refused here, before anything is sent
    return folds


def _common_span(
    spec: BatchSpec, data: PreparedData, interval: pd.Timedelta
) -> tuple[pd.Timestamp, pd.Timestamp]:
    facts = data.facts["symbols"]
    first = max(pd.Timestamp(f["first"]) for f in facts.values())
    last = min(pd.Timestamp(f["last"]) for f in facts.values())
    if (
        spec.data.source is DataSource.S3
    ):  # the facts are the objects' range; the window cuts it in the worker
        if spec.data.since:
            first = max(first, pd.Timestamp(spec.data.since, tz="UTC"))
        if spec.data.until:
            last = min(last, pd.Timestamp(spec.data.until, tz="UTC") - interval)
    if last <= first:
        raise BatchInputError(
            f"validation: the symbols share no bars ({', '.join(spec.symbols)} cover no common span): "
            "validate them in separate batches, or fetch a common period."
        )
    return first, last


def _warmup(spec: BatchSpec) -> int:
    """The most bars any combination of the spec needs before its first signal."""
    return max(_item_warmup(item) for item in spec.strategies)


def _item_warmup(item: StrategySpec) -> int:
    """A grid's most warm-up; for a search, the most of its space's lows and highs (a longer lookback
    never needs fewer bars)."""
    if item.search is None:
        return grid_warmup(item.name, item.grid_dict(), item.params_dict())
    strategy = get_strategy(item.name)
    corners = []
    for pick in (0, 1):
        grid = {}
        for name, space in item.search.space:
            value = (space.low, space.high)[pick]
            grid[name] = [round(value) if strategy.param(name).kind is int else value]
        corners.append(grid_warmup(item.name, grid, item.params_dict()))
    return max(corners)


def grid_warmup(strategy_name: str, grid: Mapping[str, Sequence[Any]], fixed: Mapping[str, Any]) -> int:
    """The most bars a combination of `grid` needs before its first signal (0 for an empty grid)."""
    strategy = get_strategy(strategy_name)
    table, _ = expand_grid(strategy, grid, fixed)
    if not table or not len(next(iter(table.values()))):
        return 0
    return int(np.max(strategy.warmup(table)))


def pbo_blocks(spec: BatchSpec, folds: list[Fold]) -> int:
    """S of the probability of backtest overfitting (`fit_pbo_blocks` of the spec's validation)."""
    return fit_pbo_blocks(spec.validation.pbo_blocks, spec.validation.returns_period, folds)


def fit_pbo_blocks(asked: int | None, returns_period: str, folds: Sequence[Fold]) -> int:
    """`asked` blocks (each train window must then hold that many returns periods, else a BatchInputError),
    or the default of 16 lowered to what the shortest train window holds (0: too short for any, and the
    report says PBO was not computed)."""
    period = timeframe_delta(returns_period)
    fewest = min(int((f.train_stop - f.train_start) / period) for f in folds)
    if asked is None:
        fitting = min(DEFAULT_PBO_BLOCKS, fewest - fewest % 2)
        return fitting if fitting >= MIN_BLOCKS else 0
    if fewest < asked:
        short = min(folds, key=lambda f: f.train_stop - f.train_start)
        raise BatchInputError(
            f"validation.pbo_blocks: {asked} blocks need at least {asked} periods of returns_period "
            f"{returns_period} in every train window; fold {short.number}'s "
            f"({short.train_start:%Y-%m-%d %H:%M} to {short.train_stop:%Y-%m-%d %H:%M}) has {fewest}: "
            "use fewer blocks, a shorter returns_period, or a longer train window."
        )
    return asked


def _train_groups(submitter: Submitter, train: BatchOutcome, folds: list[Fold]) -> list[tuple[GroupKey, Any]]:
    fold_of = {(f.train_start.isoformat(), f.train_stop.isoformat()): f.number for f in folds}
    records = {r.job_id: r for r in submitter.store.list_jobs(train.batch_id)}
    groups = []
    for job in train.jobs:
        if job.window is None or job.job_id not in records:
            continue
        groups.append(((fold_of[job.window], job.strategy, job.symbols[0]), records[job.job_id]))
    return groups


def _top_k(spec: BatchSpec, jobs: list[Job], folds: list[Fold]) -> dict[GroupKey, int]:
    sizes = {item.name: count_combinations(item) for item in spec.strategies}
    return {
        (fold.number, job.strategy, job.symbols[0]): spec.validation.winners(
            sizes[job.strategy], spec.ranking.top
        )
        for job in jobs
        for fold in folds
    }


def _out_of_sample(
    submitter: Submitter, test: BatchOutcome, winners: list[Winner]
) -> dict[tuple[int, str, str, int], OutOfSample]:
    """Each winner's test-window run (the test jobs are planned in the winners' order)."""
    records = {r.job_id: r for r in submitter.store.list_jobs(test.batch_id)}
    out = {}
    for job, winner in zip(test.jobs, winners, strict=True):
        record = records.get(job.job_id)
        if record is None or record.result_key is None:
            continue  # failed: the report shows the fold without its out-of-sample run
        try:
            body = submitter.store.get_bytes(record.result_key)
        except MissingObjectError:
            continue
        frame = result_frame(body)
        decoded = decode_period_returns(body)
        if frame.empty or decoded is None:
            continue
        skip = ("job_id", "strategy", "symbol", "extras")
        metrics = {c: float(frame[c].iloc[0]) for c in frame.columns if c not in skip and "." not in c}
        key = (winner.fold, winner.strategy, winner.symbol, winner.rank)
        out[key] = OutOfSample(metrics, decoded[2][:, 0].copy(), decoded[1])
    return out
