"""Metered cost (opslib/batch/metering.py): worker wall time × memory at list prices plus the requests of
every attempt, reused jobs free, and the line the report prints beside the projection."""

from __future__ import annotations

import pytest

from backtesting_modules.jobs.runner import JobStatus
from backtesting_modules.pipeline.records import JobRecord
from opslib.batch.metering import meter_jobs, render_cost_line
from opslib.batch.projection import load_pricing, project


def job(job_id: str, start: str, stop: str, *, attempts: int = 1, reused: bool = False) -> JobRecord:
    return JobRecord(
        job_id,
        status=JobStatus.SUCCEEDED,
        attempts=attempts,
        started_at=f"2026-12-06T10:00:{start}+00:00",
        finished_at=f"2026-12-06T10:00:{stop}+00:00",
        duration_s=1.0,
        reused=reused,
    )


def test_worker_seconds_memory_and_requests_at_list_prices() -> None:
    prices = load_pricing()
    records = [
        job("a", "00.000", "02.000"),
        job("b", "00.000", "03.000", attempts=2),  # redelivered once: its requests twice
        job("c", "00.000", "09.000", reused=True),  # ran in an earlier batch: free now
        JobRecord("d", status=JobStatus.PENDING),
    ]
    metered = meter_jobs(records, memory_mb=2048, pricing=prices)
    assert (metered.jobs, metered.attempts, metered.worker_seconds, metered.engine_seconds) == (
        2,
        3,
        5.0,
        2.0,
    )
    assert metered.gb_s == pytest.approx(5.0 * 2.0)
    assert metered.cost_usd["lambda_compute"] == pytest.approx(10.0 * prices["lambda"]["gb_second_x86_64"])
    assert metered.cost_usd["lambda_requests"] == pytest.approx(
        2 * 3 / 1e6 * prices["lambda"]["per_million_requests"]
    )
    projected = project(2, 100, 100 * 8760.0, throughput_per_vcpu=2e7, memory_mb=2048, concurrency=10)
    line = render_cost_line(metered, projected)
    assert line.startswith("actual (metered) $") and "vs projected $" in line and "2 jobs" in line
    nothing = meter_jobs([records[2]], memory_mb=2048, pricing=prices)
    assert (
        nothing.jobs == 0
        and nothing.total_usd == 0
        and "every job reused" in render_cost_line(nothing, projected)
    )
