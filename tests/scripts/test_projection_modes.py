"""Both scaling modes of the worker's SQS event source mapping in the projection (docs/pipeline.md,
"Projection on AWS"): standard unchanged, provisioned's faster ramp and its cap worked out by hand, the
poller charge unpriced (the shipped price list) or priced (made-up test prices), and `--estimate` printing
the comparison for a stack in either mode."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from backtesting_modules.jobs.spec import load_spec
from opslib.batch.projection import load_pricing, project, project_wall_time
from opslib.batch.scaling_modes import PRICE_KEYS, compare_modes, scaling_modes
from opslib.batch.search import estimate_search
from opslib.errors import StackConfigError
from opslib.stack import FunctionSettings, ProvisionedPollers, StackConfig, load_stack
from tests.script_loader import ROOT, load_script, run_main

# Made-up prices, test inputs only: AWS's EPU-hour price and pollers per EPU are not in this repository.
TEST_PER_EPU_HOUR = 0.50
TEST_POLLERS_PER_EPU = 4


def prices(*, cold_start_s: float | None = None, priced: bool = False) -> dict[str, Any]:
    out = copy.deepcopy(load_pricing())
    if cold_start_s is not None:
        out["scaling"]["cold_start_s"] = cold_start_s
    if priced:
        out["provisioned_mode"]["per_epu_hour"] = TEST_PER_EPU_HOUR
        out["provisioned_mode"]["pollers_per_epu"] = TEST_POLLERS_PER_EPU
    return out


def walls(
    jobs: int, job_seconds: float, worker: FunctionSettings, concurrency: int = 1000
) -> tuple[float, float]:
    """(standard, provisioned) wall seconds without cold starts, for hand arithmetic."""
    standard, provisioned = scaling_modes(worker, concurrency, prices())
    return (
        project_wall_time(jobs, job_seconds, min(standard.cap, jobs), standard.scaling(0.0)),
        project_wall_time(jobs, job_seconds, min(provisioned.cap, jobs), provisioned.scaling(0.0)),
    )


WORKER = FunctionSettings(memory_mb=1769, timeout_s=300, maximum_concurrency=1000)


def provisioned_stack(tmp_path: Path, minimum: int = 2, maximum: int = 200) -> StackConfig:
    """config/stack.yaml with the worker switched to provisioned mode, as docs/deploy.md says to."""
    raw = yaml.safe_load((ROOT / "config" / "stack.yaml").read_text(encoding="utf-8"))
    for key in ("maximum_concurrency", "normal_maximum_concurrency"):
        raw["worker"].pop(key, None)
    raw["worker"]["provisioned_pollers"] = {"minimum": minimum, "maximum": maximum}
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_stack(path)


def test_standard_projection_is_unchanged() -> None:
    # Values of project() before the modes were added (same inputs, the shipped price list).
    before = [
        ((1000, 1_000_000, 1_000_000 * 43_800, 2e7, 1769, 1000), (30.1, 5510.849609375, 0.1136876771845703)),
        ((20, 100_200, 100_200 * 8760.0, 2e7, 1769, 1000), (4.69438, 110.368324609375, 0.00227627575576707)),
        ((5000, 10**6, 5e12, 2e7, 1024, 300), (1470.1158854166806, 432184.76562500006, 7.3122938332421885)),
    ]
    for (jobs, backtests, work, rate, memory, concurrency), (wall, gb_s, usd) in before:
        p = project(
            jobs, backtests, work, throughput_per_vcpu=rate, memory_mb=memory, concurrency=concurrency
        )
        assert (p.wall_s, p.lambda_gb_s, p.total_usd) == pytest.approx((wall, gb_s, usd), rel=1e-9)
        assert p.wall_floor_s == 0.0 and "wall_floor_s" not in p.to_json()


def test_the_comparison_standard_row_is_the_projection() -> None:
    stack = load_stack()
    p = project(1000, 10**6, 4.38e10, throughput_per_vcpu=2e7, memory_mb=1769, concurrency=1000)
    c = compare_modes(p, stack)
    assert c.current == "standard" and c.standard.mode.assumed is None
    assert c.standard.wall_s == pytest.approx(p.wall_s)
    assert c.standard.total_usd == pytest.approx(p.total_usd)
    assert c.standard.poller_usd == 0.0 and c.standard.standing_usd_month == 0.0
    # The same engine time and requests: the jobs cost the same in both modes at the same cap.
    assert c.provisioned.jobs_usd == pytest.approx(p.total_usd)
    assert c.provisioned.mode.assumed is not None and "minimum 2, maximum 200" in c.provisioned.mode.assumed


def test_provisioned_is_faster_for_many_short_jobs() -> None:
    # 1,000 jobs of 2 s at concurrency 1,000: 2,000 job-seconds, done before either ramp reaches its cap.
    standard, provisioned = walls(1000, 2.0, WORKER)
    # Standard: 5 + 5 s workers in second s, so by T: 5T + 2.5 T (T - 1) = 2,000  →  T² + T - 800 = 0.
    by_hand_standard = (-1 + math.sqrt(1 + 4 * 800)) / 2  # 27.8 s
    # Provisioned: 2 pollers × 10 = 20 at once, + 1,000/60 per second (floored: half a worker lost a second
    # on average): 20T + (1000/60) T (T - 1) / 2 - T / 2 = 2,000.
    a, b = 1000 / 120, 20 - 1000 / 120 - 0.5
    by_hand_provisioned = (-b + math.sqrt(b * b + 4 * a * 2000)) / (2 * a)  # 14.8 s
    assert standard == pytest.approx(by_hand_standard, abs=1.0)
    assert provisioned == pytest.approx(by_hand_provisioned, abs=1.0)


def test_a_long_batch_gains_about_half_the_shorter_ramp() -> None:
    # 100,000 jobs of 2 s at 1,000: standard reaches 1,000 after 199 s (5 + 5 s), provisioned after 59 s
    # (20 + 1000 s / 60); then 1,000 run at once. A linear ramp loses about half its length against the cap.
    standard, provisioned = walls(100_000, 2.0, WORKER)
    ramp_work_standard = sum(5 + 5 * s for s in range(199))  # 99,500 job-seconds
    ramp_work_provisioned = sum(20 + int(1000 * s / 60) for s in range(59))
    assert standard == pytest.approx(199 + (200_000 - ramp_work_standard) / 1000, abs=1.0)  # 299.5 s
    assert provisioned == pytest.approx(59 + (200_000 - ramp_work_provisioned) / 1000, abs=1.0)  # 229 s
    assert standard - provisioned == pytest.approx((199 - 59) / 2, abs=2.0)


def test_a_batch_below_the_starting_concurrency_takes_as_long_in_both() -> None:
    # 4 jobs of 2 s: fewer than standard's 5 and provisioned's 20 at the start, so each job runs at once in
    # its own new container in either mode: one cold start (1 s) and one job.
    p = project(4, 4, 4 * 2.0 * 2e7, throughput_per_vcpu=2e7, memory_mb=1769, concurrency=1000)
    c = compare_modes(p, load_stack())
    assert c.standard.wall_s == c.provisioned.wall_s == pytest.approx(1.0 + 2.0)
    assert "both modes take about 3.0 s" in c.verdict


def test_provisioned_concurrency_stops_at_maximum_pollers_times_ten() -> None:
    worker = FunctionSettings(memory_mb=1769, timeout_s=300, provisioned_pollers=ProvisionedPollers(2, 20))
    standard, provisioned = scaling_modes(worker, 1000, prices())
    assert (provisioned.initial, provisioned.cap) == (20, 200)
    assert standard.cap == 1000 and standard.assumed is not None and provisioned.assumed is None
    # Reserved concurrency caps both modes; the smaller of the two limits wins.
    reserved = replace(worker, reserved_concurrency=150)
    assert [m.cap for m in scaling_modes(reserved, 1000, prices())] == [150, 150]
    # 20,000 jobs of 2 s: once at the cap, 200 run at once, so the tail takes 40,000 / 200 s.
    _, wall = walls(20_000, 2.0, worker)
    ramp_work = sum(20 + int(1000 * s / 60) for s in range(11))  # 200 reached after 11 s
    assert wall == pytest.approx(11 + (40_000 - ramp_work) / 200, abs=1.0)


def test_unpriced_pollers_are_named_not_guessed() -> None:
    shipped = load_pricing()["provisioned_mode"]
    assert shipped["per_epu_hour"] is None and shipped["pollers_per_epu"] is None
    p = project(1000, 10**6, 4.0e10, throughput_per_vcpu=2e7, memory_mb=1769, concurrency=1000)
    c = compare_modes(p, load_stack())
    assert c.provisioned.poller_usd is None and c.provisioned.standing_usd_month is None
    assert c.unpriced == list(PRICE_KEYS)
    assert "provisioned is" in c.verdict and "faster" in c.verdict
    assert "not priced" in c.verdict and all(key in c.verdict for key in PRICE_KEYS)
    assert "config/pricing.yaml" in c.verdict


def test_priced_pollers_per_batch_and_standing() -> None:
    table = prices(priced=True)
    jobs, job_seconds = 100_000, 2.0
    p = project(
        jobs, jobs, jobs * job_seconds * 2e7, throughput_per_vcpu=2e7, memory_mb=1769, concurrency=1000
    )
    c = compare_modes(p, load_stack(), table)
    prov = c.provisioned
    poller_hour = TEST_PER_EPU_HOUR / TEST_POLLERS_PER_EPU  # 0.125 USD per poller-hour
    # The peak of 1,000 concurrent needs 100 pollers; the 2 of the minimum are billed as standing.
    assert prov.peak_pollers == 100
    assert prov.poller_usd == pytest.approx((100 - 2) * prov.wall_s / 3600 * poller_hour)
    # Standing: 2 minimum pollers on each of the worker's 2 mappings (job queue, priority queue), 730 h.
    assert prov.standing_usd_month == pytest.approx(2 * 2 * 730 * poller_hour)  # $365.00
    assert prov.total_usd == pytest.approx(prov.jobs_usd + prov.poller_usd)
    assert c.unpriced == []
    extra = prov.total_usd - c.standard.total_usd
    assert f"costs ${extra:,.4f} more per batch plus $365.00/month standing" in c.verdict
    assert c.verdict.endswith("standard is cheaper per batch, provisioned faster.")
    assert c.to_json()["provisioned"]["standing_usd_month"] == 365.0


def test_estimate_prints_and_returns_the_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    run_batch = load_script("run_batch")
    code, out, _ = run_main(run_batch, capsys, "batches/benchmark.yaml", "--estimate")
    assert code == 0
    assert "Projected on AWS" in out and "Scaling modes" in out and "the stack is in standard mode" in out
    assert "| provisioned (assumed) |" in out and "Verdict:" in out and "per_epu_hour" in out
    code, out, _ = run_main(run_batch, capsys, "batches/benchmark.yaml", "--estimate", "--json")
    assert code == 0
    doc = json.loads(out.strip().splitlines()[-1])
    assert {"jobs", "backtests", "wall_s", "total_usd", "cost_usd"} <= set(doc)  # the projection's keys stay
    modes = doc["modes"]
    assert modes["current"] == "standard" and modes["standard"]["wall_s"] == doc["wall_s"]
    assert modes["provisioned"]["wall_s"] <= modes["standard"]["wall_s"]
    assert modes["provisioned"]["poller_usd"] is None and modes["unpriced"] == list(PRICE_KEYS)
    assert modes["verdict"]


def test_estimate_for_a_stack_in_provisioned_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_batch = load_script("run_batch")
    stack = provisioned_stack(tmp_path, minimum=5, maximum=50)
    monkeypatch.setattr(run_batch, "load_stack", lambda **_: stack)
    code, out, _ = run_main(run_batch, capsys, "batches/benchmark.yaml", "--estimate", "--json")
    assert code == 0
    modes = json.loads(out.strip().splitlines()[-1])["modes"]
    assert modes["current"] == "provisioned"
    assert modes["provisioned"]["pollers"] == {"minimum": 5, "maximum": 50}
    assert modes["provisioned"]["assumed"] is None and modes["provisioned"]["concurrency"] == 500
    assert modes["provisioned"]["initial_concurrency"] == 50
    assert "standard mode without a maximum concurrency" in modes["standard"]["assumed"]
    code, out, _ = run_main(run_batch, capsys, "batches/benchmark.yaml", "--estimate")
    assert "the stack is in provisioned mode" in out and "| provisioned (the stack) |" in out


def test_a_search_keeps_its_wave_floor_in_both_modes() -> None:
    spec = load_spec(str(ROOT / "batches" / "search.yaml"))
    stack = load_stack()
    p = estimate_search(spec, stack)
    assert p.wall_floor_s > 0 and p.wall_s >= p.wall_floor_s
    c = compare_modes(p, stack)
    assert c.standard.wall_s == pytest.approx(p.wall_s)
    assert c.provisioned.wall_s >= p.wall_floor_s


def test_a_price_list_without_provisioned_mode_is_refused_naming_the_key() -> None:
    # The figures live in config/pricing.yaml only: a list missing one is an error, not a silent default.
    prices = copy.deepcopy(load_pricing())
    del prices["provisioned_mode"]["concurrency_per_poller"]
    p = project(
        1000, 1000, 1000 * 8760 * 2e7 / 8760, throughput_per_vcpu=2e7, memory_mb=1769, concurrency=1000
    )
    with pytest.raises(StackConfigError, match=r"provisioned_mode\.concurrency_per_poller is missing"):
        compare_modes(p, load_stack(), prices)
