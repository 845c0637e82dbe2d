"""scripts/results.py on the embedded default: batches run by this module on one shared local runtime (a
moto server, worker and collector processes), queried through the CLI's main.

Batch A and B share their data; B doubles the commission (every shared row changes), adds fast=15 to the
SMA grid (added rows) and drops Donchian_Breakout (removed rows). Batch F loses one symbol's bars after it
is registered, so that symbol's job fails.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backtesting_modules.jobs.planner import batch_id, plan_jobs
from backtesting_modules.jobs.spec import BatchSpec, parse_spec
from backtesting_modules.metrics import METRIC_NAMES
from opslib.batch.execute import execute_batch
from opslib.history.compute import compute_comparison, compute_export_schema, compute_keyed
from opslib.history.queries import History
from opslib.local.pollers import wait_until
from opslib.local.provision import ensure_stack
from opslib.local.runtime import LocalRuntime
from opslib.stack import load_stack
from tests.script_loader import load_script

cli = load_script("results")

DATA = {"source": "synthetic", "seed": 11, "periods": 1500, "freq": "1h"}
SPEC_A = {
    "name": "alpha",
    "job_type": "PARAMETER_OPTIMIZATION",
    "symbols": ["KRW-ETH", "KRW-XRP"],
    "data": DATA,
    "config": {"filters": None, "commission_rate": 0.0005},
    "strategies": [
        {"name": "SMA_Crossover", "grid": {"fast": [5, 10], "slow": [20, 40]}},
        {"name": "Donchian_Breakout", "grid": {"entry_period": [10, 20], "exit_period": [5]}},
    ],
    "ranking": {"metric": "sharpe", "top": 5, "min_trades": 0},  # these tests query every row
}
SPEC_B = {
    **SPEC_A,
    "name": "beta",
    "config": {"filters": None, "commission_rate": 0.001},
    "strategies": [{"name": "SMA_Crossover", "grid": {"fast": [5, 10, 15], "slow": [20, 40]}}],
}
SPEC_F = {
    **SPEC_A,
    "name": "broken",
    "data": {**DATA, "seed": 12},  # other bars: no worker has them cached
    "strategies": [{"name": "SMA_Crossover", "grid": {"fast": [5], "slow": [20]}}],
}


@dataclass
class Batches:
    local: LocalRuntime
    a: str
    b: str
    f: str

    def history(self, page_size: int = 100) -> History:
        return History(self.local.store(), page_size=page_size)


def run_failing(local: LocalRuntime, spec: BatchSpec, batch: str, missing: str) -> None:
    """Register the batch, delete one symbol's bars, then send its jobs: that symbol's job fails."""
    submitter = local.submitter()
    prepared = submitter.prepare(spec)
    jobs = plan_jobs(spec, batch, refs=prepared.refs, bars=prepared.bars)
    submitter.register(spec, batch, jobs, prepared)
    names = local.names
    assert names is not None
    submitter.clients.client("s3").delete_object(Bucket=names.bucket, Key=prepared.refs[missing].key)
    submitter.send_in_waves(jobs, depth=4, on_tick=lambda: True)
    store = local.store()
    assert wait_until(lambda: store.get_batch(batch).complete, timeout_s=120)


@pytest.fixture(scope="module")
def batches() -> Iterator[Batches]:
    saved = dict(os.environ)
    local = LocalRuntime(replace(load_stack(), prefix="results-cli"), workers=2, visibility_timeout_s=5)
    local.start()
    try:
        ids = []
        for raw in (SPEC_A, SPEC_B):
            spec = parse_spec(raw)
            ids.append(batch_id(spec, salt="results-cli"))
            execute_batch(local.submitter(), spec, ids[-1], depth=4, timeout_s=120)
        spec_f = parse_spec(SPEC_F)
        ids.append(batch_id(spec_f, salt="results-cli"))
        run_failing(local, spec_f, ids[-1], missing="KRW-XRP")
        yield Batches(local, *ids)
    finally:
        local.stop()
        os.environ.clear()
        os.environ.update(saved)


def run(capsys: pytest.CaptureFixture[str], history: History, *args: str) -> tuple[int, str, str]:
    try:
        code = cli.main([*args], history=history)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def as_json(capsys: pytest.CaptureFixture[str], history: History, *args: str) -> Any:
    code, out, err = run(capsys, history, *args, "--json")
    assert code == 0, err
    return json.loads(out)


# --- list ----------------------------------------------------------------------------------------------


def test_list_shows_batches_newest_first_with_counts_and_best(
    capsys: pytest.CaptureFixture[str], batches: Batches
) -> None:
    entries = as_json(capsys, batches.history(), "list")
    assert [e["batch_id"] for e in entries] == [batches.f, batches.b, batches.a]
    broken, beta, alpha = entries
    assert (broken["status"], broken["succeeded"], broken["failed"], broken["total_jobs"]) == (
        "COMPLETE",
        1,
        1,
        2,
    )
    assert (alpha["backtests"], beta["backtests"]) == (12, 12)
    assert alpha["best"]["metrics"]["sharpe"] == max(
        r["metrics"]["sharpe"] for r in as_json(capsys, batches.history(), "top", batches.a, "-n", "1")["top"]
    )
    assert all(e["duration_s"] is not None and e["duration_s"] >= 0 for e in entries)
    code, text, _ = run(capsys, batches.history(), "list")
    assert code == 0 and "| batch " in text and f"{batches.a} | alpha" in text and "sharpe " in text


def test_top_ranks_only_variants_with_enough_trades_when_asked(
    capsys: pytest.CaptureFixture[str], batches: Batches
) -> None:
    everything = as_json(capsys, batches.history(), "top", batches.a, "-n", "100")
    assert everything["min_trades"] == 0  # the batch's own ranking.min_trades
    least = sorted(r["metrics"]["trades"] for r in everything["top"])[len(everything["top"]) // 2]
    enough = as_json(
        capsys, batches.history(), "top", batches.a, "-n", "100", "--min-trades", str(int(least))
    )
    assert enough["min_trades"] == least and 0 < len(enough["top"]) < len(everything["top"])
    assert all(r["metrics"]["trades"] >= least for r in enough["top"])


def test_list_pages_through_the_index_past_one_page(
    capsys: pytest.CaptureFixture[str], batches: Batches
) -> None:
    history = batches.history(page_size=2)
    entries = as_json(capsys, history, "list")
    assert [e["batch_id"] for e in entries] == [batches.f, batches.b, batches.a]
    assert history.queries >= 2 + 3  # two index pages (2 + 1 batch) and one jobs query per batch
    limited = as_json(capsys, batches.history(page_size=2), "list", "--limit", "2")
    assert [e["batch_id"] for e in limited] == [batches.f, batches.b]


def test_list_filters_by_status_and_since(capsys: pytest.CaptureFixture[str], batches: Batches) -> None:
    assert as_json(capsys, batches.history(), "list", "--status", "running") == []
    assert len(as_json(capsys, batches.history(), "list", "--status", "complete")) == 3
    assert as_json(capsys, batches.history(), "list", "--since", "2999-01-01") == []
    assert len(as_json(capsys, batches.history(), "list", "--since", "2000-01-01")) == 3
    code, _, err = run(capsys, batches.history(), "list", "--since", "yesterday")
    assert code == 2 and "YYYY-MM-DD" in err


def test_an_empty_history_lists_nothing_and_says_how_to_start(
    capsys: pytest.CaptureFixture[str], batches: Batches
) -> None:
    stack = replace(load_stack(), prefix="results-empty")
    names = stack.names()
    clients = batches.local.store().clients
    ensure_stack(clients, stack, names)
    store = replace(batches.local.store(), table=names.table, bucket=names.bucket)
    assert as_json(capsys, History(store), "list") == []
    code, out, _ = run(capsys, History(store), "list")
    assert code == 0 and "No batches" in out and "run_batch.py" in out


# --- unknown ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["show"], ["top"], ["export", "--format", "csv", "--out", "x.csv"]])
def test_an_unknown_batch_id_exits_2_and_suggests_the_closest(
    capsys: pytest.CaptureFixture[str], batches: Batches, command: list[str]
) -> None:
    typo = batches.a[:-1] + ("0" if batches.a[-1] != "0" else "1")
    code, out, err = run(capsys, batches.history(), command[0], typo, *command[1:])
    assert code == 2 and out == ""
    assert f"batch {typo!r} not found" in err and f"Did you mean {batches.a}" in err


def test_a_prefix_or_a_name_suggests_the_batch(capsys: pytest.CaptureFixture[str], batches: Batches) -> None:
    assert f"Did you mean {batches.b}" in run(capsys, batches.history(), "show", batches.b[:8])[2]
    assert f"Did you mean {batches.b}" in run(capsys, batches.history(), "show", "beta")[2]
    code, _, err = run(capsys, batches.history(), "compare", batches.a, "b-nothing-like-it")
    assert code == 2 and "not found" in err


# --- show ----------------------------------------------------------------------------------------------


def test_show_prints_the_run_batch_report(
    capsys: pytest.CaptureFixture[str], batches: Batches, tmp_path: Path
) -> None:
    code, out, _ = run(capsys, batches.history(), "show", batches.a, "--reports", str(tmp_path))
    assert code == 0
    assert out.startswith(f"# Batch alpha ({batches.a})")
    assert "## Top 5 by sharpe" in out and "## By strategy" in out and "| target   | local" in out
    assert out == (tmp_path / "report.md").read_text()
    doc = as_json(capsys, batches.history(), "show", batches.a)
    assert doc["batch"]["spec"]["name"] == "alpha" and doc["summary"]["jobs"]["succeeded"] == 4


def test_show_failures_lists_failed_jobs_with_errors_and_attempts(
    capsys: pytest.CaptureFixture[str], batches: Batches
) -> None:
    failures = as_json(capsys, batches.history(), "show", batches.f, "--failures")["failures"]
    assert len(failures) == 1
    (failure,) = failures
    assert failure["symbols"] == "KRW-XRP" and failure["attempts"] == 1 and "KRW-XRP" in failure["error"]
    code, out, _ = run(capsys, batches.history(), "show", batches.f, "--failures")
    assert code == 0 and "1 of 2 jobs failed" in out and failure["job_id"] in out
    report = run(capsys, batches.history(), "show", batches.f)[1]
    assert "## Failed jobs" in report
    assert "None: 4 of 4 jobs succeeded" in run(capsys, batches.history(), "show", batches.a, "--failures")[1]


# --- top -----------------------------------------------------------------------------------------------


def test_top_ranks_stored_results_with_all_metrics(
    capsys: pytest.CaptureFixture[str], batches: Batches
) -> None:
    everything = as_json(capsys, batches.history(), "top", batches.a, "-n", "100")["top"]
    assert len(everything) == 12
    sharpe = [r["metrics"]["sharpe"] for r in everything]
    assert sharpe == sorted(sharpe, reverse=True)
    assert set(everything[0]["metrics"]) == set(METRIC_NAMES) and everything[0]["params"]
    summary_top = as_json(capsys, batches.history(), "show", batches.a)["summary"]["ranking"]["top"]
    assert [(r["strategy"], r["symbol"], r["params"]) for r in everything[:5]] == [
        (r["strategy"], r["symbol"], r["params"]) for r in summary_top
    ]
    code, out, _ = run(capsys, batches.history(), "top", batches.a, "-n", "3")
    assert code == 0 and "Top 3 of batch" in out and "| composite_score" in out.replace("  ", " ")


def test_top_filters_by_strategy_and_symbol_and_ranks_by_any_metric(
    capsys: pytest.CaptureFixture[str], batches: Batches
) -> None:
    history = batches.history()
    doc = as_json(capsys, history, "top", batches.a, "--strategy", "Donchian_Breakout", "--symbol", "KRW-ETH")
    assert {(r["strategy"], r["symbol"]) for r in doc["top"]} == {("Donchian_Breakout", "KRW-ETH")}
    assert len(doc["top"]) == 2
    lowest = as_json(capsys, history, "top", batches.a, "--metric", "volatility", "-n", "3")
    assert lowest["higher_is_better"] is False
    values = [r["metrics"]["volatility"] for r in lowest["top"]]
    assert values == sorted(values)
    code, _, err = run(capsys, history, "top", batches.a, "--strategy", "SMA_Crossovr")
    assert code == 2 and "Did you mean 'SMA_Crossover'" in err
    code, _, err = run(capsys, history, "top", batches.a, "--metric", "sharp")
    assert code == 2 and "Did you mean 'sharpe'" in err


def test_top_pages_through_a_batchs_jobs(capsys: pytest.CaptureFixture[str], batches: Batches) -> None:
    history = batches.history(page_size=1)
    assert len(as_json(capsys, history, "top", batches.a, "-n", "100")["top"]) == 12
    assert history.queries >= 4  # four jobs, one per page


# --- compare -------------------------------------------------------------------------------------------


def test_compare_finds_added_removed_and_changed_rows(
    capsys: pytest.CaptureFixture[str], batches: Batches
) -> None:
    doc = as_json(capsys, batches.history(), "compare", batches.a, batches.b, "-n", "20")
    assert doc["counts"] == {"changed": 8, "same": 0, "added": 4, "removed": 4}
    assert {r["params"] for r in doc["added"]} == {"fast=15, slow=20", "fast=15, slow=40"}
    assert {r["strategy"] for r in doc["removed"]} == {"Donchian_Breakout"}
    assert all(r["status"] == "changed" and r["delta"] is not None for r in doc["changed"])
    assert all(r["rank_a"] != r["rank_b"] for r in doc["moved"])
    changed = doc["changed"][0]
    assert changed["delta"] == pytest.approx(changed["value_b"] - changed["value_a"])

    code, out, _ = run(capsys, batches.history(), "compare", batches.a, batches.b, "-n", "5")
    assert code == 0
    assert out.startswith("## Batch comparison: alpha → beta")
    assert "**8 changed**, 0 unchanged, **4 added** (only in B), **4 removed** (only in A)" in out
    for section in ("side by side", "changed rank", "Largest changes", "Best added", "Best removed"):
        assert section in out
    assert "| new " in out and "| gone " in out


def test_a_batch_compared_with_itself_is_unchanged(
    capsys: pytest.CaptureFixture[str], batches: Batches
) -> None:
    doc = as_json(capsys, batches.history(), "compare", batches.a, batches.a)
    assert doc["counts"] == {"changed": 0, "same": 12, "added": 0, "removed": 0}
    assert doc["moved"] == [] and all(r["delta"] == 0 for r in doc["top"])


def test_comparison_of_hand_built_rows() -> None:
    def frame(rows: list[tuple[int, float, float]]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "job_id": "j",
                "strategy": "S",
                "symbol": "X",
                "param.p": [p for p, _, _ in rows],
                "sharpe": [s for _, s, _ in rows],
                "trades": [t for _, _, t in rows],
            }
        )

    a = frame([(1, 3.0, 10), (2, 2.0, 10), (3, 1.0, 10), (4, 0.5, 10)])
    b = frame([(1, 3.0, 10), (2, 0.1, 10), (3, 1.0, 11), (5, 2.5, 10)])
    result = compute_comparison(compute_keyed([a], "sharpe"), compute_keyed([b], "sharpe"), "sharpe", True)
    by_params = result.rows.set_index("params")
    assert by_params["status"].to_dict() == {
        "p=1": "same",
        "p=2": "changed",  # sharpe changed
        "p=3": "changed",  # another metric changed
        "p=4": "removed",
        "p=5": "added",
    }
    assert by_params.loc["p=2", ["rank_a", "rank_b"]].tolist() == [2.0, 4.0]
    assert list(result.changed(1)["params"]) == ["p=2"]
    assert list(result.moved(10)["params"]) == ["p=2"]  # p=3 kept rank 3


def test_the_export_schema_types_parameters_from_every_value_the_spec_sweeps() -> None:
    spec = {
        "strategies": [
            {"name": "A", "grid": [["fast", [5, 10]], ["stop", [1, 0.5]]], "params": {"mode": "x"}},
            {"name": "B", "grid": [["flag", [True, False]]], "params": {}},
        ]
    }
    bests = [{"params": {"fast": 5, "stop": 1, "mode": "x"}, "metrics": {"trades": 3.0, "sharpe": 1.0}}]
    schema = compute_export_schema(bests, spec)
    assert schema.params == {"fast": "int", "flag": "bool", "mode": "str", "stop": "float"}
    assert schema.metrics == ("sharpe", "trades") and not schema.extras
    assert schema.columns[:4] == ["job_id", "strategy", "symbol", "param.fast"]


# --- export --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_export_writes_every_result_of_a_batch(
    capsys: pytest.CaptureFixture[str], batches: Batches, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"alpha.{fmt}"
    history = batches.history(page_size=1)
    doc = as_json(capsys, history, "export", batches.a, "--format", fmt, "--out", str(out))
    assert (doc["rows"], doc["jobs"]) == (12, 4)
    assert history.queries >= 4
    if fmt == "csv":
        frame = pd.read_csv(out)
    elif fmt == "parquet":
        frame = pd.read_parquet(out)
    else:
        frame = pd.DataFrame(json.loads(out.read_text()))
    assert len(frame) == 12 and {"job_id", "strategy", "symbol", "param.fast", "sharpe", "trades"} <= set(
        frame
    )
    top = as_json(capsys, batches.history(), "top", batches.a, "-n", "1")["top"][0]
    assert frame["sharpe"].max() == pytest.approx(top["metrics"]["sharpe"], rel=1e-12)
    assert not list(tmp_path.glob(".*partial"))


def test_export_of_a_batch_with_a_failed_job_has_the_succeeded_rows(
    capsys: pytest.CaptureFixture[str], batches: Batches, tmp_path: Path
) -> None:
    out = tmp_path / "broken.csv"
    code, text, _ = run(capsys, batches.history(), "export", batches.f, "--format", "csv", "--out", str(out))
    assert code == 0 and "1 rows" in text
    assert set(pd.read_csv(out)["symbol"]) == {"KRW-ETH"}
