"""Poison jobs (malformed body, unknown strategy, bars missing or corrupt in S3) and bodies that name no
job: each fails once and goes to the DLQ; the rest of the batch is untouched."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from backtesting_modules.jobs.messages import encode_job, job_message
from backtesting_modules.jobs.planner import Job
from backtesting_modules.jobs.spec import BatchSpec
from backtesting_modules.names import bars_key
from opslib.local.testbed import Testbed

from .audit import CleanRun
from .common import ChaosBatch, ScenarioResult, _elapsed, _timestamp

POISON_KINDS = ("malformed", "unknown-strategy", "missing-bars", "corrupt-bars")
# Bodies that name no job: they can only go to the DLQ (once, sent by the worker with the error).
UNREADABLE = ("{not json: a body that names no job", "[" * 100_000)


def poison_body(job: Job, kind: str, keys: Mapping[str, str]) -> tuple[str, str]:
    """A job message that cannot succeed, and a fragment of the error it must be reported with; `keys` are
    the bars keys of the missing and the corrupt object."""
    message: dict[str, Any] = dict(job_message(job))
    if kind == "malformed":
        message["start"] = "zero"
        return json.dumps(message), "start: expected integer, got str"
    if kind == "unknown-strategy":
        message["strategy"] = "No_Such_Strategy"
        return json.dumps(message), "No_Such_Strategy"
    message["data_keys"] = [keys[kind]]
    return json.dumps(message), keys[kind]


def run_poison(
    stack: Testbed, spec: BatchSpec, clean: CleanRun, workers: int = 2, share: float = 0.05
) -> ScenarioResult:
    batch = ChaosBatch.register(stack, spec, "poison")
    total = len(batch.jobs)
    step = max(1, round(1 / share))
    # Keys of the bars-key form (`bars/<sha256>.npz`) that no upload wrote: one absent, one corrupt.
    keys = {
        kind: bars_key(hashlib.sha256(kind.encode()).hexdigest()) for kind in ("missing-bars", "corrupt-bars")
    }
    stack.store.put_bytes(keys["corrupt-bars"], b"PK\x03\x04 not an npz: truncated on upload")
    bodies: list[str] = []
    poisoned: dict[str, str] = {}
    for i, job in enumerate(batch.jobs):
        if i % step == step // 2:
            body, error = poison_body(job, POISON_KINDS[len(poisoned) % len(POISON_KINDS)], keys)
            poisoned[job.job_id] = error
            bodies.append(body)
        else:
            bodies.append(encode_job(job))
    bodies += UNREADABLE
    stack.start_workers(workers)
    stack.start_collector()
    batch.send(bodies)
    batch.wait_complete()
    wall = _elapsed(batch)
    dead = stack.dead_letters(len(poisoned) + len(UNREADABLE))
    audit = batch.audit(clean, poisoned, [body for body, _ in dead])
    records = {j.job_id: j for j in stack.store.list_jobs(batch.batch_id)}
    reported = max(
        _timestamp(records[j].finished_at) - _timestamp(records[j].started_at)
        for j in poisoned
        if records[j].started_at  # a malformed body is never marked running
    )
    return ScenarioResult(
        "poison",
        f"{len(poisoned) / total:.0%} poison jobs ({', '.join(POISON_KINDS)})",
        total,
        f"{len(poisoned)} poisoned + {len(UNREADABLE)} unreadable",
        audit,
        reported,
        wall,
        {
            "batch_id": batch.batch_id,
            "poisoned": poisoned,
            "dead_letters": dead,
            "attempts": {j: records[j].attempts for j in poisoned},
        },
    )
