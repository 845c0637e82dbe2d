"""A clean batch (the baseline) and every job message delivered twice."""

from __future__ import annotations

import random

from backtesting_modules.jobs.messages import encode_job
from backtesting_modules.jobs.spec import BatchSpec
from opslib.local.testbed import Testbed

from .audit import CleanRun
from .common import ChaosBatch, ScenarioResult, _elapsed


def run_clean(stack: Testbed, spec: BatchSpec, clean: CleanRun, workers: int = 2) -> ScenarioResult:
    batch = ChaosBatch.register(stack, spec, "clean")
    stack.start_workers(workers)
    stack.start_collector()
    batch.send([encode_job(j) for j in batch.jobs])
    batch.wait_complete()
    audit = batch.audit(clean)
    return ScenarioResult("clean", "none", len(batch.jobs), "0", audit, None, _elapsed(batch))


def run_duplicates(stack: Testbed, spec: BatchSpec, clean: CleanRun, workers: int = 2) -> ScenarioResult:
    batch = ChaosBatch.register(stack, spec, "duplicates")
    stack.start_workers(workers)
    stack.start_collector()
    copies = [encode_job(j) for j in batch.jobs] * 2
    random.Random(7).shuffle(copies)  # some copies side by side (two workers race), some far apart
    batch.send(copies)
    complete = batch.wait_complete()
    wall = _elapsed(batch)
    drained = batch.wait(stack.drained, "every copy consumed")
    audit = batch.audit(clean)
    return ScenarioResult(
        "duplicates",
        "every message delivered twice",
        len(batch.jobs),
        f"{len(batch.jobs)} (each twice)",
        audit,
        drained - complete,
        wall,
        {"messages_sent": len(copies), "batch_id": batch.batch_id, "jobs": batch.jobs},
    )
