"""A worker SIGKILLed mid-batch, twice: while it reads bars, then while it sends a result."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from backtesting_modules.jobs.messages import encode_job
from backtesting_modules.jobs.spec import BatchSpec
from opslib.local.testbed import Testbed

from .audit import CleanRun
from .common import ChaosBatch, ChaosError, ScenarioResult, _elapsed


@dataclass(frozen=True)
class Kill:
    job_id: str  # the job the victim held
    killed_at: float  # time.time()
    counted: int  # jobs counted when it was killed
    exitcode: int | None


# A no-op delay on the victim's receives: the fault log says when it polls, so the held-back jobs are sent
# only then (sent earlier, the other worker could take them all while the victim starts up).
POLLING = "sqs.ReceiveMessage=delay:0.001"


def _kill_when_stuck(batch: ChaosBatch, fault: str, held_back: list[str]) -> Kill:
    """Start a worker whose `fault` (a delay) makes it hang inside its first job, send `held_back` once it
    polls; SIGKILL it when it hangs."""
    stack = batch.stack
    (victim,) = stack.start_workers(1, faults=f"{fault},{POLLING}")
    pid = victim.pid or 0  # a started process has its pid
    batch.wait(lambda: stack.injected(pid)["sqs.ReceiveMessage delay"] > 0, "the victim polling", 60)
    batch.send(held_back)
    stuck = f"{fault.split('=', maxsplit=1)[0]} delay"
    batch.wait(lambda: stack.injected(pid)[stuck] > 0, "the victim stuck in its job", 60)
    job_id = batch.held_by(pid)
    if job_id is None:
        raise ChaosError(f"worker {pid} is stuck ({stuck}) but holds no RUNNING job")
    os.kill(pid, signal.SIGKILL)
    killed = time.time()
    victim.join(10)
    return Kill(job_id, killed, batch.counted(), victim.exitcode)


def run_worker_kills(stack: Testbed, spec: BatchSpec, clean: CleanRun, workers: int = 1) -> ScenarioResult:
    batch = ChaosBatch.register(stack, spec, "worker-kills")
    stack.start_workers(workers)
    stack.start_collector()
    bodies = [encode_job(j) for j in batch.jobs]
    total = len(batch.jobs)
    cuts = [int(total * 0.4), int(total * 0.7)]
    batch.send(bodies[: cuts[0]])
    kills: list[Kill] = []
    # The first victim hangs reading its bars (before the job ran), the second sending its result (after).
    steps = (
        (0.25, "s3.GetObject=delay:60", bodies[cuts[0] : cuts[1]]),
        (0.5, "sqs.SendMessage=delay:60", bodies[cuts[1] :]),
    )
    for fraction, fault, held_back in steps:
        batch.wait_counted(int(total * fraction))
        kills.append(_kill_when_stuck(batch, fault, held_back))
    batch.wait_complete()
    wall = _elapsed(batch)
    audit = batch.audit(clean)
    records = {j.job_id: j for j in stack.store.list_jobs(batch.batch_id)}
    recover = max(batch.finished_at(k.job_id) - k.killed_at for k in kills)
    return ScenarioResult(
        "worker-kills",
        "worker SIGKILLed mid-batch, twice",
        total,
        f"{len(kills)} held by the victims",
        audit,
        recover,
        wall,
        {"kills": kills, "held_attempts": [records[k.job_id].attempts for k in kills]},
    )
