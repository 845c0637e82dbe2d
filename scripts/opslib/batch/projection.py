"""A model of a batch on AWS: wall time (event-source-mapping scale-up, cold starts, per-job engine time) and
cost (Lambda GB-seconds and requests, SQS requests, DynamoDB writes and reads, S3 requests, CloudWatch
PutMetricData calls) at list prices, in the standard scaling mode of the SQS event source mapping
(`scaling_modes.compare_modes` puts the same batch in both modes).

Pure arithmetic over a job count and a per-job engine time; the engine time comes from measured throughput
(bar·combinations per second per vCPU), so the projection moves with the engine benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import StackConfigError

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_PRICING = ROOT / "config" / "pricing.yaml"
# Requests per job: SQS send (batched by 10 → 0.1), receive, delete; result send, receive, delete.
SQS_REQUESTS_PER_JOB = 0.1 + 2 + 3
# DynamoDB write units per job: PENDING record, RUNNING update, transaction of two updates (2 units each).
WRITE_UNITS_PER_JOB = 1 + 1 + 4
READ_UNITS_PER_JOB = 2  # the worker's and the collector's batch reads
S3_PUTS_PER_JOB = 2  # result body (or stored inline copy) and its digest
S3_GETS_PER_JOB = 1  # the digest, read for the summary
# The collector publishes metrics once per invocation of up to 10 results (config/stack.yaml collector).
METRIC_CALLS_PER_JOB = 1 / 10


@dataclass(frozen=True)
class Projection:
    jobs: int
    backtests: int
    job_seconds: float
    concurrency: int
    wall_s: float
    lambda_gb_s: float
    cost_usd: dict[str, float]
    # A lower bound on the wall time whatever the scaling (a search's waves run one after another:
    # opslib.batch.search.estimate_search); the mode comparison applies it to both modes. Not in to_json.
    wall_floor_s: float = 0.0

    @property
    def total_usd(self) -> float:
        return sum(self.cost_usd.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "backtests": self.backtests,
            "job_seconds": round(self.job_seconds, 4),
            "concurrency": self.concurrency,
            "wall_s": round(self.wall_s, 2),
            "lambda_gb_s": round(self.lambda_gb_s, 2),
            "cost_usd": {k: round(v, 6) for k, v in self.cost_usd.items()},
            "total_usd": round(self.total_usd, 6),
        }


def load_pricing(path: Path = DEFAULT_PRICING) -> dict[str, Any]:
    try:
        data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StackConfigError(f"cannot read prices from {path}: {exc}") from exc
    return data


def project_wall_time(jobs: int, job_seconds: float, concurrency: int, scaling: dict[str, Any]) -> float:
    """Seconds until `jobs` jobs of `job_seconds` each are done while concurrency ramps from the initial
    level by `added_per_minute` up to `concurrency`; each new container pays one cold start."""
    if jobs <= 0:
        return 0.0
    initial = int(scaling["initial_concurrency"])
    per_minute = float(scaling["added_per_minute"])
    cold = float(scaling["cold_start_s"])
    done, t, step = 0.0, 0.0, 1.0
    warmed = 0
    while done < jobs:
        level = min(concurrency, initial + int(per_minute * t / 60.0))
        new = max(0, level - warmed)
        warmed = max(warmed, level)
        # A second of `level` workers finishes level/job_seconds jobs; new containers lose their cold start.
        capacity = level * step - new * min(cold, step)
        finished = max(0.0, capacity) / job_seconds
        if done + finished >= jobs:
            return t + step * (jobs - done) / finished if finished > 0 else t + step
        done += finished
        t += step
    return t


def project(
    jobs: int,
    backtests: int,
    bar_combinations: float,
    *,
    throughput_per_vcpu: float,
    memory_mb: int,
    concurrency: int,
    architecture: str = "x86_64",
    pricing: dict[str, Any] | None = None,
) -> Projection:
    """The projection of a batch of `jobs` jobs carrying `bar_combinations` of engine work in total, its
    event source mapping in standard mode (`pricing["scaling"]`)."""
    prices = pricing or load_pricing()
    vcpus = max(memory_mb / 1769.0, 1e-9)  # Lambda gives one vCPU at 1,769 MB; the engine uses one core
    job_seconds = bar_combinations / max(jobs, 1) / (throughput_per_vcpu * min(vcpus, 1.0))
    return project_jobs(
        jobs,
        backtests,
        job_seconds,
        memory_mb=memory_mb,
        concurrency=concurrency,
        architecture=architecture,
        prices=prices,
        scaling=prices["scaling"],
    )


def project_jobs(
    jobs: int,
    backtests: int,
    job_seconds: float,
    *,
    memory_mb: int,
    concurrency: int,
    architecture: str,
    prices: dict[str, Any],
    scaling: dict[str, Any],
) -> Projection:
    """`jobs` jobs of `job_seconds` each under one scaling (`project_wall_time`'s keys): the step both
    scaling modes share, so they differ only where AWS's modes do (scale-up, cap, the poller charge)."""
    wall = project_wall_time(jobs, job_seconds, concurrency, scaling)
    containers = min(concurrency, jobs)
    gb_s = (jobs * job_seconds + containers * float(scaling["cold_start_s"])) * memory_mb / 1024.0
    cost = price_jobs(jobs, gb_s, architecture, prices)
    return Projection(jobs, backtests, job_seconds, concurrency, wall, gb_s, cost)


def price_jobs(invocations: int, gb_s: float, architecture: str, prices: dict[str, Any]) -> dict[str, float]:
    """The list-price cost of `invocations` worker invocations (each a job's requests: SQS, DynamoDB, S3,
    CloudWatch, at the per-job counts above, and its collector invocation) and `gb_s` worker GB-seconds;
    the projection's and the metered cost's one price list."""
    lam = prices["lambda"]
    return {
        "lambda_compute": gb_s * float(lam[f"gb_second_{architecture}"]),
        "lambda_requests": 2 * invocations / 1e6 * float(lam["per_million_requests"]),  # worker + collector
        "sqs": invocations * SQS_REQUESTS_PER_JOB / 1e6 * float(prices["sqs"]["per_million_requests"]),
        "dynamodb": invocations
        * (
            WRITE_UNITS_PER_JOB * float(prices["dynamodb"]["per_million_write_units"])
            + READ_UNITS_PER_JOB * float(prices["dynamodb"]["per_million_read_units"])
        )
        / 1e6,
        "s3": invocations
        * (
            S3_PUTS_PER_JOB * float(prices["s3"]["per_thousand_put"])
            + S3_GETS_PER_JOB * float(prices["s3"]["per_thousand_get"])
        )
        / 1e3,
        "cloudwatch": invocations
        * METRIC_CALLS_PER_JOB
        / 1e3
        * float(prices["cloudwatch"]["per_thousand_requests"]),
    }


def render_projection(p: Projection) -> str:
    rows = [f"| {k} | ${v:,.4f} |" for k, v in p.cost_usd.items()]
    return "\n".join(
        [
            f"Projected on AWS: {p.jobs:,} jobs, {p.backtests:,} backtests, {p.job_seconds:.2f} s of engine "
            f"work per job, up to {p.concurrency:,} concurrent workers.",
            f"Wall time ≈ {p.wall_s:,.0f} s (scale-up of +300 per minute, cold starts included); "
            f"{p.lambda_gb_s:,.0f} GB-seconds; total ≈ ${p.total_usd:,.4f} at the list prices in "
            "config/pricing.yaml.",
            "",
            "| cost | USD |",
            "|---|---|",
            *rows,
        ]
    )
