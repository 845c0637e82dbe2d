"""The sampler side of an adaptive search (docs/search.md): one Optuna study per (strategy, symbol), asked
for a wave of trials at a time and told their objectives in trial order. Nothing here knows where the
trials run: the pipeline driver (`opslib.batch.search`) and the search benchmark both drive a `SearchStudy`.

Determinism: a study's sampler is seeded from the spec's seed and the (strategy, symbol) pair, and the
driver asks and tells in a fixed order (wave k+1 is asked once waves up to k-1 are told, trial by trial in
trial order; wave k is still RUNNING, which TPE's constant liar accounts for), so the same spec, seed and
bars ask the same trials whatever the timing of the workers.

A trial the strategy's constraints reject is told FAIL at once, without a backtest, and does not count
against the budget: Optuna's samplers leave failed trials out of their models (ranking them as bad trials
instead made TPE's every ask slower and, measured on Hybrid_VCP_Momentum, steered it into more rejected
points, not fewer). A trial with fewer trades than `ranking.min_trades` ran (it counts) and is told PRUNED:
it has no objective a trader could rank by, and TPE ranks pruned trials below every completed one.
"""

from __future__ import annotations

import math
import time
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.trial import Trial, TrialState

from backtesting_modules.jobs.spec import SearchMethod, SearchSpec
from backtesting_modules.param_sets import valid_sets
from backtesting_modules.strategies import Strategy, get_strategy

from ..errors import BatchInputError

# A wave whose asks the constraints keep rejecting gives up after this many asks per trial wanted.
MAX_ASKS_PER_TRIAL = 50


def make_sampler(method: SearchMethod, seed: int) -> optuna.samplers.BaseSampler:
    """Optuna's sampler for `method`, seeded. TPE keeps its constant liar on (trials of the wave still
    running are taken as bad, so one wave's trials spread out instead of piling on one point)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if method is SearchMethod.TPE:
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        if method is SearchMethod.CMAES:
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if method is SearchMethod.QMC:
            return optuna.samplers.QMCSampler(
                seed=seed, scramble=True, warn_asynchronous_seeding=False, warn_independent_sampling=False
            )
        return optuna.samplers.RandomSampler(seed=seed)


def study_seed(seed: int, strategy: str, symbol: str) -> int:
    """The sampler seed of one (strategy, symbol) study: the spec's seed mixed with the pair, so symbols
    are searched independently and reproducibly."""
    return (seed * 1_000_003 + zlib.crc32(f"{strategy}/{symbol}".encode())) % (2**32)


def distributions(strategy: Strategy, search: SearchSpec) -> dict[str, BaseDistribution]:
    """Optuna distributions of the searched parameters (integer parameters in integer steps)."""
    out: dict[str, BaseDistribution] = {}
    for name, space in search.space:
        if strategy.param(name).kind is int:
            step = int(space.step) if space.step is not None and not space.log else 1
            low, high = math.ceil(space.low), math.floor(space.high)
            out[name] = IntDistribution(low, high, log=space.log, step=1 if space.log else step)
        else:
            out[name] = FloatDistribution(space.low, space.high, log=space.log, step=space.step)
    return out


@dataclass
class TrialRecord:
    """One trial as the search document keeps it."""

    number: int  # Optuna's trial number (rejected proposals have numbers too)
    wave: int
    params: dict[str, Any]
    index: int = 0  # 1-based among the trials that count: what reports call trial i
    state: str = "running"  # running | complete | pruned (constraints) | few_trades | failed
    objective: float | None = None
    trades: float | None = None
    folds: list[float | None] = field(default_factory=list)  # the metric on each fold's window

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"trial": self.index, "number": self.number, "wave": self.wave}
        out["state"] = self.state
        out["params"] = self.params
        if self.objective is not None:
            out["objective"] = self.objective
        if self.trades is not None:
            out["trades"] = self.trades
        if self.folds:
            out["folds"] = self.folds
        return out


class SearchStudy:
    """One (strategy, symbol) search: an in-memory Optuna study with ask/tell by waves."""

    def __init__(
        self,
        strategy: str,
        symbol: str,
        search: SearchSpec,
        *,
        fixed: Mapping[str, Any],
        maximize: bool,
    ) -> None:
        self.strategy = get_strategy(strategy)
        self.symbol = symbol
        self.search = search
        self.fixed = dict(fixed)
        self.maximize = maximize
        self.seed = study_seed(search.seed, self.strategy.name, symbol)
        self.space = distributions(self.strategy, search)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(
            direction="maximize" if maximize else "minimize",
            sampler=make_sampler(search.method, self.seed),
            study_name=f"{self.strategy.name}/{symbol}",
        )
        self.trials: list[TrialRecord] = []  # the trials that count (ran or are running), in ask order
        self.pruned = 0  # asked and rejected by the constraints: not backtested, not counted
        self._open: dict[int, Trial] = {}
        self.best_by_trial: list[float | None] = []  # the best objective after each counted trial is told
        self.waves = 0
        self.stale_waves = 0  # waves told in a row without a better objective (the patience rule)
        self.sampler_s = 0.0  # the driver's time in this study's asks and tells (the sampler's own cost)

    @property
    def asked(self) -> int:
        return len(self.trials)

    @property
    def budget_left(self) -> int:
        return max(0, self.search.trials - self.asked)

    def ask_wave(self, size: int) -> list[TrialRecord]:
        """Up to `size` new trials (fewer when the budget ends, none once patience is spent) that satisfy
        the strategy's constraints; the others are told FAIL as they come (not counted). A BatchInputError
        when the constraints reject almost every point of the space (the space should be narrowed)."""
        if self.patience_spent:
            return []
        wave = self.ask_trials(size, self.waves)
        self.waves += 1 if wave else 0
        return wave

    def ask_trials(self, size: int, wave_number: int) -> list[TrialRecord]:
        """`ask_wave` in parts: up to `size` more trials of wave `wave_number` (the caller counts the wave
        once it is asked whole: `waves`). Asking a wave in parts asks the same trials as in one go."""
        began = time.perf_counter()
        try:
            return self._ask(size, wave_number)
        finally:
            self.sampler_s += time.perf_counter() - began

    def _ask(self, size: int, wave_number: int) -> list[TrialRecord]:
        wanted = min(size, self.budget_left)
        wave: list[TrialRecord] = []
        asks = 0
        while len(wave) < wanted:
            asks += 1
            if asks > MAX_ASKS_PER_TRIAL * max(1, wanted):
                raise BatchInputError(
                    f"{self.strategy.name} on {self.symbol}: the sampler proposed {asks - 1} parameter sets "
                    f"and the strategy's constraints rejected {asks - 1 - len(wave)} of them; narrow the "
                    "search space (search.space) to where the constraints hold."
                )
            trial = self.study.ask(self.space)
            params = dict(trial.params)
            if not bool(valid_sets(self.strategy, [params], fixed=self.fixed)[0]):
                self.study.tell(trial, state=TrialState.FAIL)
                self.pruned += 1
                continue
            record = TrialRecord(trial.number, wave_number, params, index=len(self.trials) + 1)
            self._open[trial.number] = trial
            self.trials.append(record)
            wave.append(record)
        return wave

    def tell_wave(self, wave: list[TrialRecord]) -> bool:
        """Tell every trial of a finished wave, in trial order (`state` and `objective` filled in by the
        caller); returns whether the wave improved the best objective."""
        began = time.perf_counter()
        before = self.best_value()
        for record in sorted(wave, key=lambda r: r.number):
            trial = self._open.pop(record.number)
            if record.state == "complete" and record.objective is not None:
                self.study.tell(trial, record.objective)
            elif record.state == "failed":
                self.study.tell(trial, state=TrialState.FAIL)
            else:
                self.study.tell(trial, state=TrialState.PRUNED)
            self.best_by_trial.append(self.best_value())
        after = self.best_value()
        improved = after is not None and (before is None or self._better(after, before))
        self.stale_waves = 0 if improved else self.stale_waves + 1
        self.sampler_s += time.perf_counter() - began
        return improved

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.maximize else a < b

    def best_value(self) -> float | None:
        values = [t.objective for t in self.trials if t.state == "complete" and t.objective is not None]
        if not values:
            return None
        return max(values) if self.maximize else min(values)

    def best_trials(self, count: int) -> list[TrialRecord]:
        done = [t for t in self.trials if t.state == "complete" and t.objective is not None]
        sign = -1.0 if self.maximize else 1.0
        return sorted(done, key=lambda t: (sign * (t.objective or 0.0), t.number))[:count]

    @property
    def patience_spent(self) -> bool:
        return self.search.patience is not None and self.stale_waves >= self.search.patience

    def importances(self) -> dict[str, float]:
        """Optuna's parameter importances (its default evaluator, fANOVA) over the completed trials; empty
        with fewer than two completed trials or a single searched parameter that never varied."""
        complete = [t for t in self.study.trials if t.state is TrialState.COMPLETE]
        if len(complete) < 2:
            return {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = optuna.importance.get_param_importances(self.study)
        except (ValueError, RuntimeError):  # e.g. every completed trial has the same parameters
            return {}
        return {name: float(value) for name, value in found.items()}
