"""Chaos on the local runtime: batches of hundreds of tiny jobs run through the real handlers (moto server,
worker and collector processes) while faults are injected, and every outcome is audited against a clean run.

Scenarios (each on its own stack, a fresh prefix on one emulator; `emulator-restart` on its own emulator):

- `duplicates`: every job message delivered twice, the copies shuffled;
- `worker-kills`: a worker SIGKILLed mid-batch, twice: while it reads bars, then while it sends a result;
- `collector-crashes`: the collector exits right after a counting transaction, before deleting its
  messages: once mid-batch, once right after the last count (before the summary);
- `poison`: 5 % of the jobs poisoned (malformed body, unknown strategy, bars missing in S3), plus a body
  that names no job;
- `retryable`: S3 read errors (the job is redelivered) and throttling of DynamoDB, SQS and S3 (botocore
  retries);
- `emulator-restart`: the run stopped mid-batch (the emulator saves its state), a new emulator restores it
  and the same batch is resumed.

The audit (`audit_batch`) compares every job with `run_job` run in-process: a job is *lost* when it has no
terminal outcome or when its stored result body, its best row or its summary rows differ from the clean
run's (for a poisoned job: when it is not FAILED with its error); a *duplicate* is an outcome counted more
than once (batch counters above the job records, a backtest count above the clean run's, a row or failure
repeated in the summary, a job twice in the DLQ).

    python benchmarks/chaos.py [--jobs 500] [--repeat 1] [--workers 2] [--scenario NAME ...] [--json]

tests/chaos runs the same scenarios at 200 jobs with exact assertions; this prints the markdown table
docs/reliability.md quotes: fault, jobs affected, results lost, duplicates, time to recover, wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from chaos_scenarios.audit import CleanRun
from chaos_scenarios.collector import run_collector_crashes
from chaos_scenarios.common import RECOVERY, VISIBILITY_TIMEOUT_S, ScenarioResult, chaos_spec
from chaos_scenarios.duplicates import run_clean, run_duplicates
from chaos_scenarios.kills import run_worker_kills
from chaos_scenarios.poison import run_poison
from chaos_scenarios.restart import run_emulator_restart
from chaos_scenarios.retryable import run_retryable

from opslib.local.emulator import Emulator
from opslib.local.testbed import Testbed

SCENARIOS = ("duplicates", "worker-kills", "collector-crashes", "poison", "retryable", "emulator-restart")


def render_table(results: Sequence[ScenarioResult]) -> str:
    lines = [
        "| fault | jobs | jobs affected | results lost | duplicates | time to recover | wall time |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        recover = f"{r.recover_s:.1f} s" if r.recover_s is not None else "-"
        lines.append(
            f"| {r.fault} | {r.jobs:,} | {r.affected} | {len(r.audit.lost)} | {r.audit.duplicates} | "
            f"{recover} | {r.wall_s:.1f} s |"
        )
    notes = [f"- {r.name}: {RECOVERY[r.name]}" for r in results if r.name != "clean"]
    return "\n".join([*lines, "", "Time to recover:", *notes])


@contextmanager
def running_emulator() -> Iterator[Emulator]:
    emulator = Emulator().start()
    saved = dict(os.environ)
    try:
        yield emulator
    finally:
        emulator.stop()
        os.environ.clear()
        os.environ.update(saved)


def run_scenarios(
    names: Sequence[str], jobs: int, workers: int, work: Path, repeat: int = 1
) -> list[ScenarioResult]:
    """A clean batch, then each scenario, `repeat` times; every scenario on an emulator of its own: moto
    keeps every table copy a TransactWriteItems makes (about 2.5 MB per transaction on a 500-job table), so
    a shared emulator would grow by gigabytes."""
    spec = chaos_spec(jobs)
    clean = CleanRun(spec)
    results: list[ScenarioResult] = []
    for n in range(repeat):
        baseline = run_on_stack(f"chaos{n}-clean", work, lambda s: run_clean(s, spec, clean, workers))
        results.append(baseline)

        def retryable(s: Testbed, wall: float = baseline.wall_s) -> ScenarioResult:
            return run_retryable(s, spec, clean, workers, wall)

        scenarios: dict[str, Callable[[Testbed], ScenarioResult]] = {
            "duplicates": lambda s: run_duplicates(s, spec, clean, workers),
            "worker-kills": lambda s: run_worker_kills(s, spec, clean, max(1, workers - 1)),
            "collector-crashes": lambda s: run_collector_crashes(s, spec, clean, workers),
            "poison": lambda s: run_poison(s, spec, clean, workers),
            "retryable": retryable,
        }
        for name in names:
            if name in scenarios:
                results.append(run_on_stack(f"chaos{n}-{name}", work, scenarios[name]))
    if "emulator-restart" in names:
        # One job per parameter set whatever the planner's target: the resumed run plans the same jobs.
        restart_spec = chaos_spec(jobs, job_type="TIMEZONE_ANALYSIS")
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(dir=work) as state:
                results.append(
                    run_emulator_restart(restart_spec, CleanRun(restart_spec), Path(state), workers=workers)
                )
    return results


def run_on_stack(prefix: str, work: Path, scenario: Callable[[Testbed], ScenarioResult]) -> ScenarioResult:
    """`scenario` on a stack of its own, on an emulator of its own."""
    with running_emulator() as emulator:
        stack = Testbed.create(emulator, prefix, work, visibility_timeout_s=VISIBILITY_TIMEOUT_S)
        try:
            return scenario(stack)
        finally:
            stack.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=500, help="jobs per batch (default 500)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each scenario (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: all")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    if args.jobs < 20 or args.workers < 1 or args.repeat < 1:
        parser.exit(2, f"{parser.prog}: error: --jobs >= 20, --workers >= 1 and --repeat >= 1\n")
    with tempfile.TemporaryDirectory(prefix="chaos-") as work:
        results = run_scenarios(args.scenario or SCENARIOS, args.jobs, args.workers, Path(work), args.repeat)
    if args.json:
        rows = [
            {
                "scenario": r.name,
                "fault": r.fault,
                "jobs": r.jobs,
                "affected": r.affected,
                "lost": len(r.audit.lost),
                "duplicates": r.audit.duplicates,
                "counters": r.audit.counters,
                "expected_counters": r.audit.expected_counters,
                "recover_s": r.recover_s,
                "wall_s": r.wall_s,
            }
            for r in results
        ]
        print(json.dumps(rows))
    else:
        print(render_table(results))
    return 0 if all(r.audit.clean for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
