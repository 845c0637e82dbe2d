"""benchmarks/search.py with tiny parameters: both samplers compared through `SearchStudy`, the pipeline's
idle share measured on a fresh embedded default, and the report rendered from both parts."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

from backtesting_modules.pipeline.records import JobRecord

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import search as bench  # noqa: E402


def _assert_curve(curve: list[float | None], budget: int) -> None:
    assert len(curve) == budget
    first = next((i for i, v in enumerate(curve) if v is not None), len(curve))
    scored = curve[first:]
    assert None not in scored  # once a trial is scored, the best so far exists
    assert scored == sorted(scored)  # and never gets worse


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    samplers = bench.compare_samplers(bench.SamplerSetup(bars=1500, budget=12, wave=4, seeds=(1, 2)))
    pipeline = bench.measure_pipeline(bench.PipelineSetup(periods=1500, trials=8, timeout_s=120))
    return {"quick": True, "samplers": samplers, "pipeline": pipeline, "elapsed_s": 1.0}


def test_both_samplers_are_compared_at_each_checkpoint(result: dict[str, Any]) -> None:
    part = result["samplers"]
    assert set(part["methods"]) == {"tpe", "random"}
    for method in part["methods"].values():
        assert [r["seed"] for r in method["runs"]] == [1, 2]
        for run in method["runs"]:
            assert run["trials"] == 12
            _assert_curve(run["curve"], 12)
        assert [c["trial"] for c in method["checkpoints"].values()] == [3, 6, 12]
        for cell in method["checkpoints"].values():
            if cell["median"] is not None:
                assert cell["min"] <= cell["median"] <= cell["max"]
        assert method["sampler_s_per_trial"] > 0 and method["engine_s_per_trial"] > 0
        assert 0.0 <= method["few_trades_share"] <= 1.0
    assert set(part["winners"]) == {"25%", "50%", "100%"}
    assert all(w["winner"] in {"tpe", "random", "tie", None} for w in part["winners"].values())


def test_the_pipeline_part_measures_a_search_and_its_one_wave_baseline(result: dict[str, Any]) -> None:
    part = result["pipeline"]
    search, baseline = part["search"], part["baseline"]
    assert search["method"] == "tpe" and baseline["method"] == "random"
    assert search["trials"] == baseline["trials"] == 16  # 8 per symbol, 2 symbols
    assert search["waves"] > 1 and baseline["waves"] == 1 and baseline["wave_size"] == 8
    for run in (search, baseline):
        assert run["failed_jobs"] == 0 and run["jobs"] > 0
        assert 0.0 <= run["idle_share"] <= 1.0 and 0.0 <= run["engine_share"] <= 1.0
        assert 0.0 < run["busy_s"] <= 2 * run["span_s"] + 1e-6
        assert run["sampler_s"] > 0
    assert math.isclose(part["extra_idle"], search["idle_share"] - baseline["idle_share"])
    assert part["met"] == (search["idle_share"] <= 0.10)


def test_the_report_names_both_parts_and_the_target(result: dict[str, Any]) -> None:
    text = bench.render(result)
    assert "## Samplers: TPE against random search" in text and "| random (baseline)" in text
    assert "## Worker idle time during a search" in text and "baseline: one wave" in text
    assert "target: ≤ 10% worker idle" in text and ("(met)" in text or "(missed)" in text)
    assert "- at 100% of the budget:" in text


def test_idle_share_is_the_union_of_each_workers_intervals() -> None:
    def job(worker: str, start: str, stop: str) -> JobRecord:
        day = "2026-12-06T00:00:"
        return JobRecord("j", worker=worker, started_at=day + start, finished_at=day + stop, duration_s=0.5)

    # worker a: [0, 2] ∪ [1, 3] = 3 s busy; worker b: [0, 1] and [2, 4] = 3 s; span 4 s; 6 / 8 busy.
    jobs = [job("a", "00", "02"), job("a", "01", "03"), job("b", "00", "01"), job("b", "02", "04")]
    found = bench.idle_share(jobs, workers=2)
    assert found["span_s"] == pytest.approx(4.0) and found["busy_s"] == pytest.approx(6.0)
    assert found["idle_share"] == pytest.approx(0.25) and found["engine_share"] == pytest.approx(0.25)
    assert bench.idle_share([], workers=2)["idle_share"] == 1.0
    assert bench.found_at([None, 1.0, 2.0, 2.0]) == 3 and bench.found_at([None]) is None
