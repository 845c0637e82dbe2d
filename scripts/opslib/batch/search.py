"""An adaptive parameter search over the pipeline (docs/search.md): one growing batch whose jobs are added a
wave at a time. Per (strategy, symbol) an Optuna study (`search_sampler.SearchStudy`) is asked for a wave
of trials; the trials become jobs of explicit parameter sets (`plan_set_jobs`), one per window they are
scored on; the results come back through the collector like any batch's; the objectives are told to the
study and the next wave follows.

Two waves are in flight: wave k+1 is asked, planned and sent once every wave up to k-1 is told, so the
workers run wave k while the driver tells and asks. The order of asks and tells is fixed, so the same spec,
seed and bars ask the same trials (their jobs have the same ids) whatever the workers' timing; a resumed
search replays the same sequence and every job that already ran is reused from its stored result.

The objective: with `validation:`, the ranking metric averaged over the folds' test windows (the trials
are scored out of sample; the document's deflated Sharpe ratios account for the number of trials run);
with `validation: none`, the metric on all the bars, in sample, and the report says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from backtesting_modules import names
from backtesting_modules.jobs.planner import (
    DEFAULT_TARGET_SECONDS,
    DEFAULT_THROUGHPUT,
    Job,
    batch_throughput,
    plan_set_jobs,
    throughput_for,
)
from backtesting_modules.jobs.planner import batch_id as compute_batch_id
from backtesting_modules.jobs.results import decode_period_returns, result_frame
from backtesting_modules.jobs.spec import (
    BatchSpec,
    StrategySpec,
    ValidationKind,
    count_backtests,
    estimate_bars,
)
from backtesting_modules.metrics import HIGHER_IS_BETTER
from backtesting_modules.pipeline.errors import MissingObjectError
from backtesting_modules.pipeline.records import BatchRecord, JobRecord
from backtesting_modules.pipeline.summary import complete_batch

from ..errors import BatchIncompleteError, BatchTimeoutError
from ..stack import StackConfig
from .bars import PreparedData
from .execute import BatchOutcome
from .projection import Projection, project
from .search_document import compute_search_document
from .search_sampler import SearchStudy, TrialRecord
from .submitter import Submitter
from .validation import plan_batch_folds

# A wave's engine time per consumer the default wave size aims at: the driver's turnaround between waves
# (reading results, telling, asking, sending) is then a small share of it.
WAVE_SECONDS = 2.0
POLL_S = 0.05  # how often the driver reads the running wave's job records
MIN_WAVES = 5  # the default wave is at most a fifth of the budget, so the sampler learns from 4 waves first


@dataclass(frozen=True)
class SearchOutcome:
    """A finished search: its batch (every trial a stored row) and its search document."""

    train: BatchOutcome
    document: dict[str, Any]
    test: None = None  # the shape of `ValidatedOutcome`: the report code reads both alike


@dataclass(frozen=True)
class SearchProgress:
    waves: int
    trials: int  # told
    budget: int
    best: float | None
    stopped: bool = False


@dataclass
class _Unit:
    """The trials of one study scored on one window: the sets of each job, in order."""

    study: SearchStudy
    window: int


@dataclass
class _Wave:
    number: int
    trials: dict[tuple[str, str], list[TrialRecord]]
    jobs: list[Job]
    members: dict[str, tuple[tuple[str, str], int, list[int]]] = field(default_factory=dict)


def wave_size(
    spec: BatchSpec,
    item: StrategySpec,
    consumers: int,
    units: int,
    bars: int,
    throughput: float = DEFAULT_THROUGHPUT,
) -> int:
    """Trials per wave of one study: the spec's `wave`, or enough that every consumer runs about
    WAVE_SECONDS of engine time per wave (at least a trial each), but at most a fifth of the budget: the
    sampler must learn between waves, so a budget under five times the consumers leaves some idle."""
    search = item.search
    assert search is not None
    if search.wave is not None:
        return min(search.wave, search.trials)
    per_trial_s = max(1, bars) / throughput
    studies = len(spec.symbols) * sum(1 for s in spec.strategies if s.search is not None)
    busy = math.ceil(WAVE_SECONDS * consumers / (per_trial_s * units * max(1, studies)))
    return max(1, min(search.trials, max(consumers, busy), math.ceil(search.trials / MIN_WAVES)))


def sets_per_job(
    wave: int,
    consumers: int,
    units: int,
    bars: int,
    target_seconds: float,
    throughput: float = DEFAULT_THROUGHPUT,
) -> int:
    """Trials per job: a wave spread over at least two jobs per consumer, none above the target seconds."""
    most = max(1, int(target_seconds * throughput / max(1, bars)))
    jobs_per_unit = max(1, math.ceil(2 * consumers / max(1, units)))
    return max(1, min(most, math.ceil(wave / jobs_per_unit)))


class SearchDriver:
    """Drives the studies of a spec through one growing batch (see the module docstring)."""

    def __init__(
        self,
        submitter: Submitter,
        spec: BatchSpec,
        data: PreparedData,
        batch: str,
        *,
        consumers: int,
        target_seconds: float,
        reuse: bool,
    ) -> None:
        self.submitter, self.spec, self.data, self.batch = submitter, spec, data, batch
        self.store = submitter.store
        self.reuse = reuse
        folds = plan_batch_folds(spec, data) if spec.validation.enabled else []
        self.folds = folds
        self.windows: list[tuple[str, str] | None] = [
            (f.test_start.isoformat(), f.test_stop.isoformat()) for f in folds
        ] or [None]
        maximize = HIGHER_IS_BETTER[spec.ranking.metric]
        self.studies: dict[tuple[str, str], SearchStudy] = {}
        self.sizes: dict[tuple[str, str], tuple[int, int]] = {}  # (wave, sets per job)
        units = len(self.windows)
        for item in spec.strategies:
            assert item.search is not None
            rate = throughput_for(item.name, sets=True)
            wave = wave_size(spec, item, consumers, units, data.bars, rate)
            per_job = sets_per_job(wave, consumers, units, data.bars, target_seconds, rate)
            for symbol in spec.symbols:
                key = (item.name, symbol)
                self.studies[key] = SearchStudy(
                    item.name, symbol, item.search, fixed=item.params_dict(), maximize=maximize
                )
                self.sizes[key] = (wave, per_job)
        self.items = {item.name: item for item in spec.strategies}
        self.known: set[str] = {j.job_id for j in self.store.jobs(batch, attributes=("job_id",))}
        self.jobs: list[Job] = []
        self.returns: dict[tuple[str, str], dict[int, list[np.ndarray]]] = {k: {} for k in self.studies}
        self.period_starts: dict[tuple[str, str], dict[int, list[Any]]] = {k: {} for k in self.studies}
        self.waves_told = 0

    @property
    def budget(self) -> int:
        return sum(s.search.trials for s in self.studies.values())

    @property
    def told(self) -> int:
        return sum(len(s.best_by_trial) for s in self.studies.values())

    def best(self) -> float | None:
        values = [v for s in self.studies.values() if (v := s.best_value()) is not None]
        if not values:
            return None
        maximize = next(iter(self.studies.values())).maximize
        return max(values) if maximize else min(values)

    # --- asking and sending ------------------------------------------------------------------------

    def ask_and_send(self, number: int) -> _Wave | None:
        """The next wave of every study that still has budget and patience (None when none has), asked a
        job's worth of trials at a time and each job sent as soon as its trials are asked, so the workers
        start on a wave while the sampler is still asking the rest of it."""
        wave = _Wave(number, {}, [], {})
        for key, study in self.studies.items():
            if study.patience_spent or not study.budget_left:
                continue
            size, per_job = self.sizes[key]
            size = min(size, study.budget_left)
            asked: list[TrialRecord] = []
            while len(asked) < size:
                chunk = study.ask_trials(min(per_job, size - len(asked)), study.waves)
                if not chunk:
                    break
                asked += chunk
                self.send(self._plan(wave, key, chunk))
            if asked:
                study.waves += 1
                wave.trials[key] = asked
        return wave if wave.jobs else None

    def _plan(self, wave: _Wave, key: tuple[str, str], chunk: list[TrialRecord]) -> list[Job]:
        """One job per window for a chunk of trials (at most a job's worth), recorded in the wave."""
        sets = [tuple(sorted(t.params.items())) for t in chunk]
        jobs = []
        for w, window in enumerate(self.windows):
            (job,) = plan_set_jobs(
                self.spec, self.batch, self.items[key[0]], key[1], self.data.refs[key[1]], sets,
                per_job=len(sets), window=window,
            )  # fmt: skip
            wave.members[job.job_id] = (key, w, [t.number for t in chunk])
            jobs.append(job)
        wave.jobs.extend(jobs)
        return jobs

    def send(self, jobs: list[Job]) -> None:
        """Register jobs in the batch (those it does not hold yet), reuse the stored results of jobs that
        ran before, and send the others."""
        new = [j for j in jobs if j.job_id not in self.known]
        if new:
            self.store.grow_batch(self.batch, len(new), sum(j.stop - j.start for j in new))
            records = [JobRecord(j.job_id, strategy=j.strategy, symbols=tuple(j.symbols)) for j in new]
            self.store.put_pending_jobs(self.batch, records)
            self.known.update(j.job_id for j in new)
        self.jobs.extend(jobs)
        record = self.store.get_batch(self.batch)
        reused = self.submitter.reuse(record, jobs) if self.reuse else set()
        pending = [j for j in self.submitter.pending(self.batch, jobs) if j.job_id not in reused]
        self.submitter.send_now(pending)

    # --- waiting and telling -----------------------------------------------------------------------

    def finished(self, wave: _Wave) -> dict[str, JobRecord] | None:
        """The wave's job records once every one is terminal, else None."""
        wanted = {j.job_id for j in wave.jobs}
        attributes = ("job_id", "status", "result_key", "error")
        listed = self.store.jobs(self.batch, attributes=attributes)
        records = {r.job_id: r for r in listed if r.job_id in wanted}
        if len(records) < len(wanted) or not all(r.terminal for r in records.values()):
            return None
        return records

    def tell(self, wave: _Wave, records: dict[str, JobRecord]) -> None:
        """Score every trial of a finished wave from its jobs' results and tell the studies."""
        metric = self.spec.ranking.metric
        scores: dict[tuple[tuple[str, str], int], list[tuple[float, float]]] = {}
        failed: set[tuple[tuple[str, str], int]] = set()
        for job in wave.jobs:
            key, _, numbers = wave.members[job.job_id]
            record = records[job.job_id]
            body = self._body(record)
            if body is None:
                failed.update((key, n) for n in numbers)
                continue
            frame = result_frame(body)
            values = frame[metric].to_numpy(dtype=float) if metric in frame else np.full(len(numbers), np.nan)
            trades = frame["trades"].to_numpy(dtype=float) if "trades" in frame else np.zeros(len(numbers))
            decoded = decode_period_returns(body)
            for i, number in enumerate(numbers):
                scores.setdefault((key, number), []).append((values[i], trades[i]))
                if decoded is not None:
                    self.returns[key].setdefault(number, []).append(decoded[2][:, i].astype(np.float64))
                    self.period_starts[key].setdefault(number, []).append(decoded[1])
        for key, trials in wave.trials.items():
            for trial in trials:
                self._score(trial, scores.get((key, trial.number), []), (key, trial.number) in failed)
            self.studies[key].tell_wave(trials)
        self.waves_told += 1

    def _body(self, record: JobRecord) -> bytes | None:
        if record.result_key is None:
            return None  # failed: its trials are told FAIL (the report lists the job's error)
        try:
            return self.store.get_bytes(record.result_key)
        except MissingObjectError:
            return None

    def _score(self, trial: TrialRecord, scores: list[tuple[float, float]], failed: bool) -> None:
        """The trial's objective: the metric averaged over the windows it was scored on."""
        if failed or len(scores) < len(self.windows):
            trial.state = "failed"
            return
        values = [v for v, _ in scores]
        trial.folds = [float(v) if np.isfinite(v) else None for v in values]
        trial.trades = float(sum(t for _, t in scores if np.isfinite(t)))
        if trial.trades < self.spec.ranking.min_trades or not all(np.isfinite(values)):
            trial.state = "few_trades"
            return
        trial.state = "complete"
        trial.objective = float(np.mean(values))

    def progress(self, stopped: bool = False) -> SearchProgress:
        return SearchProgress(self.waves_told, self.told, self.budget, self.best(), stopped)


def execute_search(
    submitter: Submitter,
    spec: BatchSpec,
    batch_id: str | None = None,
    *,
    consumers: int,
    timeout_s: float,
    salt: str = "",
    reuse: bool = True,
    prepared: PreparedData | None = None,
    alive: Callable[[], bool] = lambda: True,
    on_batch: Callable[[str], None] | None = None,
    on_progress: Callable[[SearchProgress], None] | None = None,
    target_seconds: float = DEFAULT_TARGET_SECONDS,
) -> SearchOutcome:
    """Run the spec's searches to their budget (or patience) as one batch, then complete it and compute
    the search document (stored at `search/<batch>.json`). `batch_id` resumes a search."""
    started = time.monotonic()
    data = prepared or submitter.prepare(spec)
    batch = batch_id or compute_batch_id(spec, data.refs, salt)
    if on_batch is not None:
        on_batch(batch)
    submitter.register(spec, batch, [], data, growing=True)
    driver = SearchDriver(
        submitter, spec, data, batch, consumers=consumers, target_seconds=target_seconds, reuse=reuse
    )
    deadline = started + timeout_s
    _drive(driver, deadline, alive, on_progress, started)
    record = _close(driver, deadline, alive)
    summary = driver.store.get_summary(record)
    document = compute_search_document(driver)
    driver.store.put_json(names.search_key(batch), document)
    if on_progress is not None:
        on_progress(driver.progress(stopped=True))
    elapsed = time.monotonic() - started
    outcome = BatchOutcome(batch, driver.jobs, data.bars, record, summary, elapsed, 0)
    return SearchOutcome(outcome, document)


def _drive(
    driver: SearchDriver,
    deadline: float,
    alive: Callable[[], bool],
    on_progress: Callable[[SearchProgress], None] | None,
    started: float,
) -> None:
    """Two waves in flight: wave k+1 is asked once wave k-1 is told (see the module docstring)."""
    flight: list[_Wave] = []
    number = 0
    while True:
        while len(flight) < 2:
            wave = driver.ask_and_send(number)
            if wave is None:
                break
            flight.append(wave)
            number += 1
        if not flight:
            return
        records = _wait(driver, flight[0], deadline, alive, started)
        driver.tell(flight.pop(0), records)
        if on_progress is not None:
            on_progress(driver.progress())


def _wait(
    driver: SearchDriver, wave: _Wave, deadline: float, alive: Callable[[], bool], started: float
) -> dict[str, JobRecord]:
    """The wave's job records once all are terminal. Between checks only the batch record is read (one
    GetItem): the job records are listed again only when its counters moved."""
    counted = -1
    while True:
        _check(driver.batch, deadline, alive)
        done = driver.store.get_batch(driver.batch).done
        if done != counted:
            counted = done
            records = driver.finished(wave)
            if records is not None:
                return records
        time.sleep(POLL_S)


def _check(batch: str, deadline: float, alive: Callable[[], bool]) -> None:
    if not alive():
        raise BatchIncompleteError(
            f"every local worker process has exited (see the messages above); search {batch} is kept: "
            f"continue it with --resume {batch}.",
            batch,
        )
    if time.monotonic() > deadline:
        raise BatchTimeoutError(
            f"search {batch} did not finish in time; continue it with --resume {batch}.", batch
        )


def _close(driver: SearchDriver, deadline: float, alive: Callable[[], bool]) -> BatchRecord:
    """No more waves: the batch's totals set to the jobs it holds, then completed (summary written)."""
    store, batch = driver.store, driver.batch
    held = {j.job_id: j for j in driver.jobs}
    store.close_batch(batch, len(held), sum(j.stop - j.start for j in held.values()))
    while True:
        record = store.get_batch(batch)
        if record.complete:
            return record
        if record.counted:
            complete_batch(store, batch)
            continue
        _check(batch, deadline, alive)
        time.sleep(0.05)


# Seconds between a wave's last result and the next wave's first job on AWS (the collector's batch window,
# the driver's poll, telling and asking): a search's floor per wave however wide the pipeline is.
WAVE_TURNAROUND_S = 1.0


def estimate_search(spec: BatchSpec, stack: StackConfig, *, throughput: float | None = None) -> Projection:
    """`--estimate` of a search: every trial of the budget on every scoring window, in the waves the
    driver would send to the deployed worker's concurrency; the wall time is at least one job and one
    turnaround per wave (the waves run one after another). The engine runs at `throughput`, else at each
    strategy's calibrated rate on random parameter sets, weighted by its share of the trials."""
    bars = estimate_bars(spec)
    consumers = stack.worker.concurrency
    windows = spec.validation.folds if spec.validation.kind is ValidationKind.WALK_FORWARD else 1
    jobs = waves = 0
    for item in spec.strategies:
        assert item.search is not None
        rate = throughput_for(item.name, sets=True)
        wave = wave_size(spec, item, consumers, windows, bars, rate)
        per_job = sets_per_job(wave, consumers, windows, bars, DEFAULT_TARGET_SECONDS, rate)
        rounds = math.ceil(item.search.trials / wave)
        last = item.search.trials - (rounds - 1) * wave
        jobs += (
            len(spec.symbols)
            * windows
            * ((rounds - 1) * math.ceil(wave / per_job) + math.ceil(last / per_job))
        )
        waves = max(waves, rounds)
    backtests = count_backtests(spec) * windows
    projection = project(
        jobs,
        backtests,
        float(backtests) * bars,
        throughput_per_vcpu=throughput or batch_throughput(spec),
        memory_mb=stack.worker.memory_mb,
        concurrency=consumers,
        architecture=stack.layer.architecture,
    )
    floor = waves * (projection.job_seconds + WAVE_TURNAROUND_S)
    # The floor travels with the projection, so the scaling-mode comparison applies it to both modes.
    return replace(projection, wall_s=max(projection.wall_s, floor), wall_floor_s=floor)
