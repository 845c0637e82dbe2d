"""The run stopped mid-batch (the emulator saves its state); a new emulator restores it and the same batch
is resumed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from backtesting_modules.jobs.planner import batch_id, plan_jobs
from backtesting_modules.jobs.spec import BatchSpec, count_backtests
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.records import BatchRecord
from backtesting_modules.pipeline.store import Store
from opslib.batch.bars import resolve_local
from opslib.batch.execute import execute_batch
from opslib.local.emulator import Emulator
from opslib.local.runtime import LocalRuntime
from opslib.stack import StackConfig, load_stack

from .audit import CleanRun, audit_batch
from .common import VISIBILITY_TIMEOUT_S, ChaosError, ScenarioResult, _timestamp, batch_timeout


class Interrupted(Exception):
    """Raised from the progress callback to stop a run mid-batch, as Ctrl-C would."""


def run_emulator_restart(
    spec: BatchSpec,
    clean: CleanRun,
    state_dir: Path,
    *,
    workers: int = 2,
    at: float = 0.6,
    prefix: str | None = None,
    resume: Callable[[str], dict[str, Any]] | None = None,
) -> ScenarioResult:
    """A batch run like run_batch.py (LocalRuntime, an emulator keeping its state in `state_dir`,
    `execute_batch`), stopped once `at` of its jobs are counted; a new runtime restores the state and the
    same batch id is resumed — by `execute_batch` again, or by `resume(batch_id)` (e.g. run_batch.py
    --resume) when given. `spec` must plan the same jobs with `execute_batch`'s default target; `prefix`
    defaults to config/stack.yaml's, the one run_batch.py uses."""
    config = load_stack() if prefix is None else replace(load_stack(), prefix=prefix)
    batch = batch_id(spec, salt="restart")
    limit = batch_timeout(count_backtests(spec))
    started = time.monotonic()

    def interrupt(record: BatchRecord) -> None:
        if record.done >= at * record.total_jobs:
            raise Interrupted

    emulator = Emulator(state_dir=state_dir, fresh=True, region=config.region)
    with LocalRuntime(config, workers, VISIBILITY_TIMEOUT_S, emulator) as rt:
        try:
            execute_batch(rt.submitter(), spec, batch, depth=10_000, timeout_s=limit, on_progress=interrupt)
        except Interrupted:
            rt.group.stop()  # what leaving the block does first: the state saved next is what is read here
            kept = sorted(j.job_id for j in rt.store().list_jobs(batch) if j.terminal)
        else:
            raise ChaosError(f"batch {batch} completed before the restart: give it more jobs")
    restarted = time.time()
    details: dict[str, Any] = {"kept": kept}
    if resume is not None:
        details["resume"] = resume(batch)
        with restored_store(state_dir, config) as store:
            return _restart_result(store, batch, spec, clean, restarted, started, details)
    emulator = Emulator(state_dir=state_dir, region=config.region)
    with LocalRuntime(config, workers, VISIBILITY_TIMEOUT_S, emulator) as rt:
        execute_batch(rt.submitter(), spec, batch, depth=10_000, timeout_s=limit, alive=rt.alive)
        details["restored"] = dict(emulator.timings)
        return _restart_result(rt.store(), batch, spec, clean, restarted, started, details)


@contextmanager
def restored_store(state_dir: Path, config: StackConfig) -> Iterator[Store]:
    """The stack's store on an emulator restored from `state_dir` (read-only: it saves nothing back)."""
    emulator = Emulator(state_dir=state_dir, read_only=True, region=config.region).start()
    try:
        os.environ.update(emulator.environ())
        names = config.names()
        clients = ClientFactory(endpoint_url=emulator.endpoint_url, region=config.region)
        yield Store(clients, names.table, names.bucket)
    finally:
        emulator.stop()


def _restart_result(
    store: Store,
    batch: str,
    spec: BatchSpec,
    clean: CleanRun,
    restarted: float,
    started: float,
    details: dict[str, Any],
) -> ScenarioResult:
    record = store.get_batch(batch)
    prepared = resolve_local(spec)
    jobs = plan_jobs(spec, batch, refs=prepared.refs, bars=prepared.bars)
    audit = audit_batch(store, batch, clean.expected(jobs))
    finished = _timestamp(record.finished_at)
    records = store.list_jobs(batch)
    details["attempts"] = {j.job_id: j.attempts for j in records}
    return ScenarioResult(
        "emulator-restart",
        "emulator stopped mid-batch and restarted from its saved state",
        len(jobs),
        f"{len(jobs) - len(details['kept'])} without an outcome at the stop",
        audit,
        finished - restarted,
        time.monotonic() - started,
        details,
    )
