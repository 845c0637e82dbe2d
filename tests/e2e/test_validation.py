"""A validated sweep end to end on the embedded default: each fold's train sweep as jobs, the winners on
their test windows as a second batch, the validation document (PBO, deflated Sharpe, stitched
out-of-sample results) stored and read back on the next run, and folds that cannot fit refused before
anything is sent. The bars carry a planted 10-day cycle the grid can capture, so the numbers are known.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtesting_modules import names
from backtesting_modules.jobs.spec import BatchSpec, parse_spec
from opslib.batch.reports import render_report
from opslib.batch.submitter import Submitter
from opslib.batch.validation import execute_validated, out_of_sample_batch_id
from opslib.errors import BatchInputError
from opslib.history.queries import History
from opslib.local.testbed import Testbed
from tests.script_loader import load_script

results_cli = load_script("results")

HOURS = 24 * 300


BED_PREFIX = "valid0"  # the module's stack in the shared `bed` (tests/e2e/conftest.py)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bars")
    out = {}
    for i, symbol in enumerate(["KRW-BTC", "KRW-ETH"]):
        steps = np.random.default_rng(40 + i).normal(0.0, 0.002, HOURS)
        hours = np.arange(HOURS)
        close = 50_000 * np.exp(0.06 * np.sin(2 * np.pi * hours / 240) + np.cumsum(steps - steps.mean()))
        open_ = np.r_[close[0], close[:-1]]
        frame = pd.DataFrame(
            {
                "timestamp": pd.date_range("2024-01-01", periods=HOURS, freq="1h").strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "open": open_,
                "high": np.maximum(open_, close) * 1.001,
                "low": np.minimum(open_, close) * 0.999,
                "close": close,
                "volume": 1_000.0,
            }
        )
        out[symbol] = folder / f"{symbol}_1h.csv"
        frame.to_csv(out[symbol], index=False)
    return out


def spec(files: dict[str, Path], validation: Any) -> BatchSpec:
    return parse_spec(
        {
            "name": "validated",
            "job_type": "PARAMETER_OPTIMIZATION",
            "symbols": sorted(files),
            "data": {"source": "files", "paths": {s: str(p) for s, p in files.items()}, "timeframe": "1h"},
            "config": {"filters": None, "min_volume": 0.0, "commission_rate": 0.0, "slippage_rate": 0.0},
            "strategies": [
                {"name": "SMA_Crossover", "grid": {"fast": [6, 12, 18, 24], "slow": [48, 96, 144]}}
            ],
            "ranking": {"metric": "sharpe", "top": 10, "min_trades": 5},
            "validation": validation,
        }
    )


def run(bed: Testbed, the_spec: BatchSpec) -> Any:
    submitter = Submitter(bed.clients, bed.names, bed.urls)
    return execute_validated(submitter, the_spec, depth=20, timeout_s=180, target_seconds=0.05)


WALK_FORWARD = {"walk_forward": {"folds": 3, "train": "120d", "test": "40d", "gap": 24}, "top_k": 2}


def test_a_walk_forward_runs_folds_then_winners_and_stores_its_validation(
    bed: Testbed, files: dict[str, Path]
) -> None:
    outcome = run(bed, spec(files, WALK_FORWARD))
    document = outcome.document
    assert outcome.train.record.complete and outcome.train.record.failed == 0
    assert outcome.test is not None and outcome.test.batch_id == out_of_sample_batch_id(
        outcome.train.batch_id
    )
    assert len(outcome.test.jobs) == 3 * 2 * 2  # folds × symbols × top_k
    assert outcome.test.record.succeeded == len(outcome.test.jobs)
    assert [f["number"] for f in document["folds"]] == [1, 2, 3]
    windows = {(j.window, j.symbols) for j in outcome.train.jobs}
    assert {w for w, _ in windows} == {(f["train_start"], f["train_stop"]) for f in document["folds"]}
    for group in document["groups"]:
        assert group["trials"] == 3 * 12
        assert [f["fold"] for f in group["folds"]] == [1, 2, 3]
        for fold in group["folds"]:
            assert [w["rank"] for w in fold["winners"]] == [1, 2]
            assert fold["winners"][0]["out_of_sample"]["trades"] >= 1
            assert fold["pbo"]["n_splits"] == 12_870
        # The planted cycle is real: the ranking persists out of sample, and the winners are significant.
        assert group["pbo"] <= 0.1
        assert group["deflated_sharpe"] >= 0.95
        assert group["out_of_sample"]["periods"] == 3 * 40 and group["out_of_sample"]["sharpe"] > 0
        assert group["stability"]["folds"] == 3
    stored = bed.store.get_json(names.validation_key(outcome.train.batch_id))
    assert stored == document
    text = render_report(outcome.train.summary, [("spec", "test")], document)
    assert text.index("## Out of sample") < text.index("## Top") and "in sample: the train windows" in text
    assert "xychart-beta" in text and "### Winners of each fold" in text

    again = run(bed, spec(files, WALK_FORWARD))  # the same spec on the same bars: nothing runs again
    assert again.train.batch_id == outcome.train.batch_id and again.test is None
    assert again.document == document


def test_folds_that_do_not_fit_the_bars_are_refused_before_anything_is_sent(
    bed: Testbed, files: dict[str, Path]
) -> None:
    too_many = {"walk_forward": {"folds": 20, "train": "120d", "test": "40d"}}
    before = {b.batch_id for b in bed.store.batches()}
    with pytest.raises(BatchInputError, match=r"validation\.walk_forward"):
        run(bed, spec(files, too_many))
    too_few_periods = {"holdout": {"fraction": 0.25}, "returns_period": "30d", "pbo_blocks": 16}
    with pytest.raises(BatchInputError, match=r"validation\.pbo_blocks: 16 blocks need at least 16 periods"):
        run(bed, spec(files, too_few_periods))
    short_train = {"walk_forward": {"folds": 2, "train": 100, "test": "20d"}}
    with pytest.raises(BatchInputError, match="warm-up"):
        run(bed, spec(files, short_train))
    assert {b.batch_id for b in bed.store.batches()} == before
    assert bed.messages(bed.names.job_queue) == 0


def _results(capsys: pytest.CaptureFixture[str], bed: Testbed, *args: str) -> Any:
    try:
        code = results_cli.main([*args, "--json"], history=History(bed.store))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_results_ranks_shows_and_compares_validated_winners(
    capsys: pytest.CaptureFixture[str], bed: Testbed, files: dict[str, Path]
) -> None:
    walk = run(bed, spec(files, WALK_FORWARD))
    hold = run(bed, spec(files, {"holdout": {"fraction": 0.3}, "top_k": 1}))
    batch = walk.train.batch_id
    ranked = _results(capsys, bed, "top", batch, "--metric", "oos_sharpe", "-n", "5")
    sharpes = [r["metrics"]["oos_sharpe"] for r in ranked["top"]]
    assert ranked["validated"] and len(sharpes) == 5 and sharpes == sorted(sharpes, reverse=True)
    assert {"fold", "rank", "params"} <= set(ranked["top"][0]) and "is_sharpe" in ranked["top"][0]["metrics"]
    pbo_ranked = _results(capsys, bed, "top", batch, "--metric", "pbo", "-n", "3")["top"]
    assert [r["metrics"]["pbo"] for r in pbo_ranked] == sorted(r["metrics"]["pbo"] for r in pbo_ranked)
    rows = _results(capsys, bed, "top", batch, "-n", "50")["top"]  # stored rows, with their pair's PBO
    assert all(r["metrics"]["pbo"] is not None for r in rows)
    assert any("oos_sharpe" in r["metrics"] for r in rows)  # the winners among them carry their OOS run
    shown = _results(capsys, bed, "show", batch)
    assert shown["validation"] == walk.document
    compared = _results(capsys, bed, "compare", batch, hold.train.batch_id)
    assert {(r["strategy"], r["symbol"]) for r in compared["validation"]} == {
        ("SMA_Crossover", "KRW-BTC"),
        ("SMA_Crossover", "KRW-ETH"),
    }
    assert all(r["a_pbo"] is not None and r["b_pbo"] is not None for r in compared["validation"])
