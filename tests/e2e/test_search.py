"""An adaptive search end to end on the embedded default (docs/search.md): waves of Optuna trials as jobs of
explicit parameter sets through the real pipeline, scored out of sample on the validation's test windows,
reproducible from the seed, resumable after the driver dies, every trial a stored row, and the search
document (convergence, importances, deflated Sharpe from the trials run, ranges explored)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from backtesting_modules import get_strategy, names
from backtesting_modules.jobs.spec import BatchSpec, parse_spec
from backtesting_modules.param_sets import valid_sets
from opslib.batch.reports import render_report
from opslib.batch.search import SearchOutcome, execute_search
from opslib.batch.submitter import Submitter
from opslib.errors import BatchIncompleteError
from opslib.history.queries import History
from opslib.local.testbed import Testbed
from tests.script_loader import load_script

results_cli = load_script("results")

STRATEGIES = (
    "SMA_Crossover",
    "RSI_MeanReversion",
    "Donchian_Breakout",
    "Hybrid_VCP_Momentum",
    "Static_Donchian_Supertrend",
    "Simple_MA_Crossover",
    "Dynamic_RSI_MACD",
)


BED_PREFIX = "search0"  # the module's stack in the shared `bed` (tests/e2e/conftest.py)


def search_spec(
    strategies: list[dict[str, Any]],
    *,
    validation: Any = None,
    symbols: tuple[str, ...] = ("KRW-BTC",),
    min_trades: int = 1,
) -> BatchSpec:
    return parse_spec(
        {
            "name": "search",
            "job_type": "PARAMETER_OPTIMIZATION",
            "symbols": list(symbols),
            "data": {"source": "synthetic", "seed": 11, "periods": 3000},
            "config": {"filters": None, "min_volume": 0.0},
            "strategies": strategies,
            "ranking": {"metric": "sharpe", "top": 5, "min_trades": min_trades},
            "validation": validation or {"holdout": {"fraction": 0.3}},
        }
    )


def run(bed: Testbed, spec: BatchSpec, **kwargs: Any) -> SearchOutcome:
    submitter = Submitter(bed.clients, bed.names, bed.urls)
    return execute_search(submitter, spec, consumers=2, timeout_s=240, target_seconds=0.05, **kwargs)


SMA = {"name": "SMA_Crossover", "search": {"method": "tpe", "trials": 24, "wave": 6, "seed": 3}}


def study(outcome: SearchOutcome, index: int = 0) -> dict[str, Any]:
    return outcome.document["studies"][index]


def test_a_search_runs_in_waves_scores_out_of_sample_and_stores_every_trial(bed: Testbed) -> None:
    outcome = run(bed, search_spec([SMA]))
    record, document = outcome.train.record, outcome.document
    assert record.complete and record.failed == 0 and not record.growing
    found = study(outcome)
    assert found["trials_run"] == 24 and found["waves"] == 4 and found["stopped"] == "budget"
    assert found["pruned_by_constraints"] >= 0 and sum(found["states"].values()) == 24
    assert document["out_of_sample"] and "out-of-sample" in document["objective"]
    # Every counted trial ran on the holdout's test window as a row of the batch.
    assert record.total_jobs == len({j.job_id for j in outcome.train.jobs})
    assert sum(j.stop - j.start for j in outcome.train.jobs) == 24
    assert all(j.window == tuple(document["windows"][0]) for j in outcome.train.jobs)
    # Constraints hold for every trial that ran; the pruned ones were never sent.
    params = [t["params"] for t in found["trials"]]
    assert valid_sets("SMA_Crossover", params).all()
    convergence = [v for v in found["convergence"] if v is not None]
    assert convergence == sorted(convergence) and len(found["convergence"]) == 24
    best = found["best"][0]
    assert best["objective"] == max(convergence)
    assert best["deflated_sharpe"]["n_trials"] == 24
    assert set(found["importances"]) == {"fast", "slow"}
    fast = get_strategy("SMA_Crossover").param("fast")
    assert found["ranges"]["fast"]["allowed"] == [float(fast.low), float(fast.high)]
    assert bed.store.get_json(names.search_key(outcome.train.batch_id)) == document
    assert outcome.train.summary["ranking"]["top"]  # the summary ranks the trials like any batch's rows
    text = render_report(outcome.train.summary, [("spec", "test")], None, document)
    assert "## Search" in text and "Convergence" in text


def test_the_same_seed_asks_the_same_trials_and_reuses_every_job(bed: Testbed) -> None:
    first = run(bed, search_spec([SMA]))
    again = run(bed, search_spec([SMA]))  # same spec, seed and bars: the same batch, nothing runs again
    assert again.train.batch_id == first.train.batch_id
    assert [t["params"] for t in study(again)["trials"]] == [t["params"] for t in study(first)["trials"]]
    assert {j.job_id for j in again.train.jobs} == {j.job_id for j in first.train.jobs}
    other = run(bed, search_spec([{**SMA, "search": {**SMA["search"], "seed": 4}}]))
    assert [t["params"] for t in study(other)["trials"]] != [t["params"] for t in study(first)["trials"]]


def test_a_killed_driver_resumes_without_running_the_told_trials_again(bed: Testbed) -> None:
    spec = search_spec([{**SMA, "search": {**SMA["search"], "seed": 9, "trials": 30}}])
    told: list[int] = []

    def die_after_two_waves(progress: Any) -> None:
        told.append(progress.trials)
        if progress.waves == 2 and not progress.stopped:
            raise KeyboardInterrupt  # the driver dies between waves

    batches: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run(bed, spec, on_progress=die_after_two_waves, on_batch=batches.append)
    record = bed.store.get_batch(batches[0])
    assert record.growing and not record.complete
    ran_before = {j.job_id for j in bed.store.list_jobs(batches[0]) if j.terminal}
    resumed = run(bed, spec, batch_id=batches[0])
    assert resumed.train.record.complete and study(resumed)["trials_run"] == 30
    reused = {j.job_id for j in bed.store.list_jobs(batches[0]) if j.reused}
    assert ran_before and ran_before <= {j.job_id for j in resumed.train.jobs}
    fresh = run(bed, spec)  # the same spec from the start: the trials are the resumed run's
    assert [t["params"] for t in study(fresh)["trials"]] == [t["params"] for t in study(resumed)["trials"]]
    assert not reused & ran_before  # the jobs that had run kept their own outcome; none was re-sent


def test_a_budget_of_one_and_a_fixed_parameter(bed: Testbed) -> None:
    spec = search_spec(
        [
            {
                "name": "SMA_Crossover",
                "search": {"method": "random", "trials": 1, "seed": 1, "space": {"fast": {"fixed": 7}}},
            }
        ],
        validation="none",
    )
    outcome = run(bed, spec)
    found = study(outcome)
    assert found["trials_run"] == 1 and found["waves"] == 1
    assert found["trials"][0]["params"].keys() == {"slow"}
    assert all(dict(j.fixed)["fast"] == 7 for j in outcome.train.jobs)
    assert outcome.document["objective"].endswith("in sample (validation: none)")


def test_every_strategy_can_be_searched(bed: Testbed) -> None:
    entries = [
        {"name": name, "search": {"method": method, "trials": 8, "wave": 4, "seed": 2}}
        for name, method in zip(
            STRATEGIES, ["tpe", "cmaes", "random", "qmc", "tpe", "tpe", "random"], strict=True
        )
    ]
    outcome = run(bed, search_spec(entries, validation="none", min_trades=0))
    assert outcome.train.record.complete and outcome.train.record.failed == 0
    for entry in outcome.document["studies"]:
        assert entry["trials_run"] == 8, entry["strategy"]
        strategy = get_strategy(entry["strategy"])
        assert valid_sets(strategy, [t["params"] for t in entry["trials"]]).all()
    assert {e["strategy"] for e in outcome.document["studies"]} == set(STRATEGIES)


def test_a_dead_pool_stops_the_search_naming_the_resume(bed: Testbed) -> None:
    submitter = Submitter(bed.clients, bed.names, bed.urls)
    with pytest.raises(BatchIncompleteError, match="--resume"):
        fresh = {**SMA, "search": {**SMA["search"], "seed": 1234}}  # trials no earlier test ran
        execute_search(submitter, search_spec([fresh]), consumers=2, timeout_s=60, alive=lambda: False)


def test_results_cli_ranks_shows_and_exports_a_search_unchanged(
    capsys: pytest.CaptureFixture[str], bed: Testbed, tmp_path: Any
) -> None:
    outcome = run(bed, search_spec([SMA]))
    batch = outcome.train.batch_id
    history = History(bed.store)

    def cli(*args: str) -> Any:
        code = results_cli.main([*args, "--json"], history=history)
        out = capsys.readouterr()
        assert code == 0, out.err
        return json.loads(out.out)

    top = cli("top", batch, "-n", "5")["top"]
    assert len(top) == 5 and {"fast", "slow"} <= set(top[0]["params"])
    shown = cli("show", batch)
    assert shown["search"] == outcome.document and shown["summary"]["batch_id"] == batch
    code = results_cli.main(["show", batch, "--reports", str(tmp_path)], history=history)
    assert code == 0 and "## Search" in capsys.readouterr().out
    assert json.loads((tmp_path / "search.json").read_text()) == outcome.document
