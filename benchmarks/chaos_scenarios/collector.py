"""The collector exits right after a counting transaction, before deleting its messages, twice."""

from __future__ import annotations

import time

from backtesting_modules.jobs.messages import encode_job
from backtesting_modules.jobs.spec import BatchSpec
from opslib.local.faults import CRASH_EXIT_STATUS
from opslib.local.testbed import Testbed

from .audit import CleanRun
from .common import ChaosBatch, ChaosError, ScenarioResult, _elapsed, batch_timeout


def run_collector_crashes(
    stack: Testbed, spec: BatchSpec, clean: CleanRun, workers: int = 2
) -> ScenarioResult:
    """The collector exits right after a successful TransactWriteItems (the result stored and counted, the
    message not deleted): first after a third of the jobs, then — restarted — right after the last count,
    before the summary. A third collector gets the redelivered messages, counts nothing, completes."""
    batch = ChaosBatch.register(stack, spec, "collector-crashes")
    total = len(batch.jobs)
    stack.start_workers(workers)
    crash = "dynamodb.TransactWriteItems=crash-after:{}"
    first = stack.start_collector(faults=crash.format(total // 3))
    batch.send([encode_job(j) for j in batch.jobs])
    results = stack.names.result_queue
    exits, counts, in_flight, recover = [], [], [], []
    first.join(batch_timeout(total))
    crashed = time.time()
    if first.exitcode != CRASH_EXIT_STATUS:
        raise ChaosError(f"the first collector did not crash (exit code {first.exitcode}): {batch.record()}")
    exits.append(first.exitcode)
    counts.append(batch.counted())
    in_flight.append(stack.messages(results) - stack.messages(results, in_flight=False))
    second = stack.start_collector(faults=crash.format(total - counts[0]))
    resumed = batch.wait(lambda: batch.counted() > counts[0], "counting after the first crash")
    recover.append(resumed - crashed)
    second.join(batch_timeout(total))
    crashed = time.time()
    if second.exitcode != CRASH_EXIT_STATUS:
        raise ChaosError(
            f"the second collector did not crash (exit code {second.exitcode}): {batch.record()}"
        )
    exits.append(second.exitcode)
    counts.append(batch.counted())
    in_flight.append(stack.messages(results) - stack.messages(results, in_flight=False))
    status_after_last_count = str(batch.record().status)
    stack.start_collector()
    recover.append(batch.wait_complete() - crashed)
    wall = _elapsed(batch)
    audit = batch.audit(clean)
    return ScenarioResult(
        "collector-crashes",
        "collector killed between counting and deleting, twice",
        total,
        f"{sum(in_flight)} results redelivered",
        audit,
        max(recover),
        wall,
        {
            "exit_codes": exits,
            "counted_at_crash": counts,
            "in_flight_at_crash": in_flight,
            "status_after_last_count": status_after_last_count,
        },
    )
