"""What a batch that ran would have cost on AWS, metered from its own job records (docs/pipeline.md,
"Projection on AWS"), printed beside the projection of the same batch: `actual (metered)` vs `projected`.

Metered: each job that ran in this batch (reused jobs ran in an earlier one and cost nothing now) bills
its worker invocation's wall time — from marked running to its outcome recorded, so reading the bars and
writing the result count, not only the engine — at the worker's configured memory, plus the requests it
made (SQS, DynamoDB, S3, CloudWatch, at the per-job counts the projection uses) for every attempt, all at
the list prices in config/pricing.yaml. Projected: `projection.project` of the same number of jobs and
backtests from the engine throughput alone. On `--target aws` a third figure may ride along: the worker's
own Lambda metrics in CloudWatch over the batch's window (`billed.py`), function-wide and labelled so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backtesting_modules.pipeline.records import JobRecord

from .billed import CloudWatchFigure
from .projection import Projection, load_pricing, price_jobs


@dataclass(frozen=True)
class Metered:
    jobs: int  # that ran in this batch
    attempts: int
    worker_seconds: float  # billed wall time of the worker invocations that counted
    engine_seconds: float
    gb_s: float
    cost_usd: dict[str, float]
    cloudwatch: CloudWatchFigure | None = None  # AWS target only: the worker's metrics over the window

    @property
    def total_usd(self) -> float:
        return sum(self.cost_usd.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "attempts": self.attempts,
            "worker_seconds": round(self.worker_seconds, 3),
            "engine_seconds": round(self.engine_seconds, 3),
            "lambda_gb_s": round(self.gb_s, 3),
            "cost_usd": {k: round(v, 6) for k, v in self.cost_usd.items()},
            "total_usd": round(self.total_usd, 6),
        }


def _seconds(record: JobRecord) -> float:
    if not record.started_at or not record.finished_at:
        return float(record.duration_s or 0.0)
    span = datetime.fromisoformat(record.finished_at) - datetime.fromisoformat(record.started_at)
    return max(span.total_seconds(), float(record.duration_s or 0.0))


def meter_jobs(
    records: Sequence[JobRecord],
    *,
    memory_mb: int,
    architecture: str = "x86_64",
    pricing: dict[str, Any] | None = None,
) -> Metered:
    """The metered cost of the jobs that ran (see the module docstring)."""
    prices = pricing or load_pricing()
    ran = [r for r in records if r.terminal and not r.reused]
    attempts = sum(max(1, r.attempts) for r in ran)
    seconds = sum(_seconds(r) for r in ran)
    gb_s = seconds * memory_mb / 1024.0
    cost = price_jobs(attempts, gb_s, architecture, prices)
    engine = sum(float(r.duration_s or 0.0) for r in ran)
    return Metered(len(ran), attempts, seconds, engine, gb_s, cost)


def cost_json(metered: Metered, projected: Projection) -> dict[str, Any]:
    cost = {"metered": metered.to_json(), "projected": projected.to_json()}
    if metered.cloudwatch is not None:
        cost["cloudwatch"] = metered.cloudwatch.to_json()
    return cost


def render_cost_line(metered: Metered, projected: Projection) -> str:
    """One line for the report's conditions and the CLI (with the CloudWatch figure when there is one)."""
    if not metered.jobs:
        return f"nothing ran here (every job reused): projected ${projected.total_usd:,.4f} if run again"
    line = (
        f"actual (metered) ${metered.total_usd:,.4f} — {metered.jobs:,} jobs, {metered.worker_seconds:,.1f} "
        f"worker-s ({metered.engine_seconds:,.1f} s engine), {metered.gb_s:,.1f} GB-s — vs projected "
        f"${projected.total_usd:,.4f} ({projected.lambda_gb_s:,.1f} GB-s), at AWS list prices"
    )
    return line if metered.cloudwatch is None else f"{line}; {metered.cloudwatch.render()}"
