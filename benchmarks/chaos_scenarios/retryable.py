"""S3 read errors (the job is redelivered) and throttling of DynamoDB, SQS and S3 (botocore retries)."""

from __future__ import annotations

from backtesting_modules.jobs.messages import encode_job
from backtesting_modules.jobs.spec import BatchSpec
from opslib.local.testbed import Testbed

from .audit import CleanRun
from .common import ChaosBatch, ScenarioResult, _elapsed

RETRYABLE_WORKER_FAULTS = "s3.GetObject=1,dynamodb.UpdateItem=throttle:50,sqs.SendMessage=throttle:50"
RETRYABLE_COLLECTOR_FAULTS = (
    "s3.GetObject=1,dynamodb.TransactWriteItems=throttle:50,s3.PutObject=throttle:100"
)


def run_retryable(
    stack: Testbed, spec: BatchSpec, clean: CleanRun, workers: int = 2, clean_wall_s: float | None = None
) -> ScenarioResult:
    batch = ChaosBatch.register(stack, spec, "retryable")
    workers_started = stack.start_workers(workers, faults=RETRYABLE_WORKER_FAULTS)
    collector = stack.start_collector(faults=RETRYABLE_COLLECTOR_FAULTS)
    batch.send([encode_job(j) for j in batch.jobs])
    complete = batch.wait_complete()
    wall = _elapsed(batch)
    audit = batch.audit(clean)
    redelivered = [j.job_id for j in stack.store.list_jobs(batch.batch_id) if j.attempts > 1]
    injected = stack.injected()
    throttled = sum(n for k, n in injected.items() if k.endswith("throttle"))
    # Recovery: from each worker's failed read to the last redelivered job counted, and from the
    # collector's failed summary read to the batch COMPLETE.
    errors = {pid: t for pid, fault, t in stack.faults() if fault == "s3.GetObject error"}
    first_worker_error = min((errors[p.pid] for p in workers_started if p.pid in errors), default=None)
    recover = [complete - errors[collector.pid]] if collector.pid in errors else []
    if redelivered and first_worker_error is not None:
        recover.append(max(batch.finished_at(j) for j in redelivered) - first_worker_error)
    return ScenarioResult(
        "retryable",
        "S3 read errors and throttling (DynamoDB, SQS, S3)",
        len(batch.jobs),
        f"{len(redelivered)} redelivered, {throttled} requests throttled",
        audit,
        max(recover, default=None),
        wall,
        {"redelivered": redelivered, "injected": dict(injected), "clean_wall_s": clean_wall_s},
    )
