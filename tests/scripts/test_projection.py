"""The AWS projection: wall time under scale-up by hand, costs by hand, and --estimate submits nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backtesting_modules.jobs.planner import batch_id, plan_jobs, throughput_for
from backtesting_modules.jobs.spec import estimate_bars, load_spec
from opslib.batch.projection import load_pricing, project, project_wall_time
from tests.script_loader import load_script, run_main

ROOT = Path(__file__).resolve().parents[2]

FLAT = {"initial_concurrency": 10, "added_per_minute": 0, "cold_start_s": 0.0}


def test_flat_concurrency_divides_the_work() -> None:
    # 100 jobs of 2 s on 10 workers: 20 s.
    assert project_wall_time(100, 2.0, 10, FLAT) == pytest.approx(20.0)


def test_linear_ramp_integrates_to_a_quadratic() -> None:
    # Concurrency 5 + 5 t (300 per minute); work done by T is 5T + 2.5T^2 (in job-seconds, 1-second steps).
    ramp = {"initial_concurrency": 5, "added_per_minute": 300, "cold_start_s": 0.0}
    wall = project_wall_time(1000, 2.19, 1000, ramp)
    work_at = lambda t: sum(5 + 5 * s for s in range(int(t)))  # noqa: E731 - the discrete sum the model uses
    assert work_at(wall - 1) < 1000 * 2.19 <= work_at(wall + 1)
    assert 27 <= wall <= 31


def test_more_jobs_never_take_less_time_and_cold_starts_cost() -> None:
    scaling = load_pricing()["scaling"]
    walls = [project_wall_time(n, 1.5, 1000, scaling) for n in (10, 100, 1000, 10_000)]
    assert walls == sorted(walls)
    warm = project_wall_time(50, 1.0, 50, {**scaling, "cold_start_s": 0.0})
    assert project_wall_time(50, 1.0, 50, scaling) > warm


def test_costs_by_hand() -> None:
    prices = load_pricing()
    p = project(
        1000,
        1_000_000,
        1_000_000 * 43_800,
        throughput_per_vcpu=2.0e7,
        memory_mb=1769,
        concurrency=1000,
        pricing=prices,
    )
    assert p.job_seconds == pytest.approx(43_800 * 1000 / 2.0e7)
    gb_s = (1000 * p.job_seconds + 1000 * 1.0) * 1769 / 1024
    assert p.lambda_gb_s == pytest.approx(gb_s)
    assert p.cost_usd["lambda_compute"] == pytest.approx(gb_s * 0.0000166667)
    assert p.cost_usd["lambda_requests"] == pytest.approx(2000 / 1e6 * 0.20)
    assert p.cost_usd["cloudwatch"] == pytest.approx(100 / 1e3 * 0.01)  # one PutMetricData per 10 results
    assert p.total_usd == pytest.approx(sum(p.cost_usd.values()))
    arm = project(
        1000,
        1_000_000,
        1_000_000 * 43_800,
        throughput_per_vcpu=2.0e7,
        memory_mb=1769,
        concurrency=1000,
        architecture="arm64",
        pricing=prices,
    )
    assert arm.cost_usd["lambda_compute"] < p.cost_usd["lambda_compute"]


def test_estimate_prints_the_projection_and_submits_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(
        load_script("run_batch"), capsys, "batches/benchmark.yaml", "--estimate", "--json"
    )
    assert code == 0
    doc = json.loads(out.strip().splitlines()[-1])
    # Planned with SMA_Crossover's calibrated throughput (benchmarks/calibrate.py), as a batch would be.
    spec = load_spec(ROOT / "batches" / "benchmark.yaml")
    planned = plan_jobs(spec, batch_id(spec), bars=estimate_bars(spec))
    assert doc["backtests"] == 100_200 and doc["jobs"] == len(planned)
    assert doc["wall_s"] > 0 and 0 < doc["total_usd"] < 1
    rate = throughput_for("SMA_Crossover")
    assert doc["job_seconds"] == pytest.approx(100_200 * 8760 / len(planned) / rate, rel=1e-3)


def test_estimate_with_a_given_throughput_sizes_jobs_by_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(
        load_script("run_batch"),
        capsys,
        "batches/benchmark.yaml",
        "--estimate",
        "--json",
        "--throughput",
        "2e7",
    )
    assert code == 0
    doc = json.loads(out.strip().splitlines()[-1])
    assert doc["jobs"] == 36  # 9 tiles of 12 × 300 combinations per symbol at 2e7 bar·combinations/s
