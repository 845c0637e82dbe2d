"""The sampler side of a search (opslib/batch/search_sampler.py) and the driver's sizing: seeded studies ask
the same trials, constraint-violating proposals are never counted, the budget and patience stop a study,
distributions follow the spec's space, waves and jobs are sized from the consumers, and --estimate prices a
search from its budget without sending anything."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from backtesting_modules.jobs.spec import SearchMethod, SearchRange, SearchSpec, parse_spec
from backtesting_modules.param_sets import valid_sets
from backtesting_modules.strategies import get_strategy
from opslib.batch.search import WAVE_SECONDS, sets_per_job, wave_size
from opslib.batch.search_sampler import SearchStudy, distributions, study_seed
from tests.script_loader import load_script, run_main


def space_of(strategy: str) -> tuple[tuple[str, SearchRange], ...]:
    return tuple(
        (p.name, SearchRange(float(p.low), float(p.high), step=1.0 if p.kind is int else None))
        for p in get_strategy(strategy).params
    )


def study(method: SearchMethod, seed: int = 1, trials: int = 40, **kw: Any) -> SearchStudy:
    search = SearchSpec(method, trials, space_of("SMA_Crossover"), seed=seed, **kw)
    return SearchStudy("SMA_Crossover", "KRW-BTC", search, fixed={}, maximize=True)


def drive(
    s: SearchStudy, wave: int, score: Any = lambda p: -abs(p["fast"] - 20) - abs(p["slow"] - 90)
) -> None:
    """Ask and tell with one wave in flight, as the driver does."""
    flight = [s.ask_wave(wave)]
    while flight:
        nxt = s.ask_wave(wave)
        if nxt:
            flight.append(nxt)
        done = flight.pop(0)
        for t in done:
            t.state, t.objective = "complete", float(score(t.params))
        s.tell_wave(done)


@pytest.mark.parametrize("method", list(SearchMethod))
def test_a_seeded_study_asks_the_same_trials_and_only_valid_ones(method: SearchMethod) -> None:
    first, again, other = study(method), study(method), study(method, seed=2)
    for s in (first, again, other):
        drive(s, 8)
    params = [t.params for t in first.trials]
    assert params == [t.params for t in again.trials] and params != [t.params for t in other.trials]
    assert len(first.trials) == 40 and first.waves == 5
    assert valid_sets("SMA_Crossover", params).all()  # fast < slow on every counted trial
    assert first.pruned > 0  # about half of SMA's box violates fast < slow: proposed, told FAIL, not counted
    assert [t.index for t in first.trials] == list(range(1, 41))
    best = [v for v in first.best_by_trial if v is not None]
    assert best == sorted(best) and best[-1] == first.best_value()


def test_tpe_beats_its_own_random_start_on_a_smooth_objective() -> None:
    s = study(SearchMethod.TPE, trials=80)
    drive(s, 8)
    first_wave = max(t.objective or -1e9 for t in s.trials[:8])
    assert s.best_value() is not None and s.best_value() > first_wave


def test_patience_stops_a_study_that_stopped_improving() -> None:
    s = study(SearchMethod.RANDOM, trials=400, patience=2)
    drive(s, 4, score=lambda p: 1.0)  # a flat objective: the first wave's best is never beaten
    # The first wave improves (from nothing), the next two do not: no wave is asked after that.
    assert s.patience_spent and s.asked == 3 * 4 and s.waves == 3


def test_trials_too_few_trades_or_failed_are_counted_not_scored() -> None:
    s = study(SearchMethod.RANDOM, trials=6)
    wave = s.ask_wave(6)
    states = ["complete", "few_trades", "failed", "complete", "few_trades", "complete"]
    for t, state in zip(wave, states, strict=True):
        t.state, t.objective = state, (1.0 if state == "complete" else None)
    s.tell_wave(wave)
    assert s.budget_left == 0 and len(s.best_trials(10)) == 3
    assert s.ask_wave(5) == []


def test_a_space_the_constraints_reject_is_refused_naming_the_fix() -> None:
    search = SearchSpec(
        SearchMethod.RANDOM,
        5,
        (("fast", SearchRange(60, 100, step=1.0)), ("slow", SearchRange(10, 40, step=1.0))),
    )
    s = SearchStudy("SMA_Crossover", "KRW-BTC", search, fixed={}, maximize=True)
    with pytest.raises(Exception, match=r"narrow the search space \(search.space\)"):
        s.ask_wave(5)


def test_distributions_follow_the_space() -> None:
    strategy = get_strategy("Hybrid_VCP_Momentum")
    search = SearchSpec(
        SearchMethod.TPE,
        10,
        (
            ("high_period", SearchRange(20, 200, step=5.0)),
            ("pullback_min", SearchRange(0.01, 0.5, log=True)),
            ("ma_long", SearchRange(50, 400, log=True)),
        ),
    )
    found = distributions(strategy, search)
    assert found["high_period"] == IntDistribution(20, 200, step=5)
    assert found["pullback_min"] == FloatDistribution(0.01, 0.5, log=True)
    assert found["ma_long"] == IntDistribution(50, 400, log=True)
    assert study_seed(7, "A", "KRW-BTC") != study_seed(7, "A", "KRW-ETH") == study_seed(7, "A", "KRW-ETH")


def search_spec(trials: int = 1000, wave: int | None = None, validation: Any = "none") -> Any:
    search: dict[str, Any] = {"method": "tpe", "trials": trials}
    if wave is not None:
        search["wave"] = wave
    return parse_spec(
        {
            "name": "s",
            "job_type": "PARAMETER_OPTIMIZATION",
            "symbols": ["KRW-BTC", "KRW-ETH"],
            "data": {"source": "synthetic", "seed": 1, "periods": 8760},
            "strategies": [{"name": "Hybrid_VCP_Momentum", "search": search}],
            "validation": validation,
        }
    )


def test_waves_keep_every_consumer_busy_within_a_fifth_of_the_budget() -> None:
    spec = search_spec()
    (item,) = spec.strategies
    assert wave_size(search_spec(wave=64), search_spec(wave=64).strategies[0], 2, 1, 8760) == 64
    # 2 s per consumer would be ~2,300 trials of each of the two studies: capped at a fifth of 1,000.
    assert wave_size(spec, item, consumers=2, units=1, bars=8760) == 200
    many_bars = wave_size(spec, item, consumers=2, units=3, bars=2_000_000)
    assert many_bars == math.ceil(WAVE_SECONDS * 2 / (2_000_000 / 2e7 * 3 * 2)) == 7
    assert wave_size(spec, item, consumers=1000, units=1, bars=8760) == 200  # adaptivity before width
    assert sets_per_job(200, consumers=2, units=1, bars=8760, target_seconds=2.0) == 50  # 2 jobs/consumer
    assert sets_per_job(200, consumers=2, units=1, bars=10_000_000, target_seconds=2.0) == 4  # ≤ 2 s each


def test_estimate_prices_a_search_from_its_budget(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(load_script("run_batch"), capsys, "batches/search.yaml", "--estimate", "--json")
    assert code == 0
    doc = json.loads(out.strip().splitlines()[-1])
    assert doc["backtests"] == 300 * 2 * 3  # trials × symbols × walk-forward test windows
    # 5 waves of 60 trials (a fifth of the budget), each at least one job and one turnaround long.
    assert doc["jobs"] >= 5 * 2 * 3 and doc["wall_s"] >= 5
    assert 0 < doc["total_usd"] < 1
