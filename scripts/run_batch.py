"""Run a backtest batch: on the embedded default (an AWS emulator on 127.0.0.1 with local worker processes)
or on the deployed AWS stack.

    python scripts/run_batch.py batches/demo.yaml                 # local, 2 workers
    python scripts/run_batch.py batches/demo.yaml --workers 4 --json
    python scripts/run_batch.py batches/demo.yaml --target aws    # the deployed stack (credentials needed)

Exit status (the table: README.md, "Distributed batches"): 0 when every job succeeded; 1 when the batch
completed with failed jobs (listed in the report) or stopped (every local worker exited: `--resume
BATCH_ID` finishes it); 2 for spec, input or usage errors (nothing is submitted); 3 when it did not complete
within --timeout (kept for `--resume`); 130 on Ctrl-C and 143 on SIGTERM (the processes it started are
stopped, the batch is kept for `--resume`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from backtesting_modules.jobs.planner import batch_id as compute_batch_id
from backtesting_modules.jobs.planner import batch_throughput, plan_jobs
from backtesting_modules.jobs.spec import (
    BatchSpec,
    SpecError,
    count_backtests,
    estimate_bars,
    load_spec,
)
from backtesting_modules.metrics import HIGHER_IS_BETTER
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.records import BatchRecord
from opslib.batch.aws import deployed_submitter
from opslib.batch.billed import cloudwatch_figure
from opslib.batch.charts import Visuals, compute_visuals
from opslib.batch.metering import Metered, cost_json, meter_jobs, render_cost_line
from opslib.batch.projection import Projection, project, render_projection
from opslib.batch.reports import progress_line, write_reports
from opslib.batch.scaling_modes import compare_modes, render_comparison
from opslib.batch.search import SearchOutcome, SearchProgress, estimate_search, execute_search
from opslib.batch.search_report import render_search_line, search_headline
from opslib.batch.submitter import Submitter
from opslib.batch.validation import ValidatedOutcome, execute_validated
from opslib.batch.validation_report import render_validation_line, validation_headline
from opslib.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    REPORTED_ERRORS,
    Terminated,
    eprint,
    error_text,
    exit_status,
    on_sigterm,
)
from opslib.errors import OpsError
from opslib.local.emulator import Emulator, local_state_dir
from opslib.local.runtime import LocalRuntime
from opslib.stack import StackConfig, load_stack

ROOT = Path(__file__).resolve().parents[1]
# None: local_state_dir() ($MAKENAIDE_LOCAL_STATE, else .local-aws/); tests may point it elsewhere.
LOCAL_STATE: Path | None = None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Run a backtest batch (see batches/ for specs).")
    parser.add_argument("spec", help="batch spec (YAML)")
    parser.add_argument("--target", choices=["local", "aws"], default="local", help="default: local")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument(
        "--resume", metavar="BATCH_ID", help="submit only the jobs of BATCH_ID without a result"
    )
    parser.add_argument(
        "--rerun",
        action="store_true",
        help="a new batch, every job run again (by default a spec that ran on the same bars is reused)",
    )
    parser.add_argument("--environment", help="stack environment from config/stack.yaml (e.g. dev)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=60,
        help="local queues: seconds before an unfinished message returns (default 60)",
    )
    parser.add_argument("--reports", default=str(ROOT / "reports"), help="report folder (default reports/)")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="local: start empty instead of restoring .local-aws/ (this run's state then replaces it)",
    )
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="print the projected AWS wall time and cost of the batch; submit nothing",
    )
    parser.add_argument(
        "--throughput",
        type=float,
        default=None,
        help="engine bar·combinations per second per vCPU for --estimate (default: each strategy's, "
        "calibrated by benchmarks/calibrate.py)",
    )
    return parser


@dataclass
class Ran:
    """What a run leaves for its report: the outcome, the charts, the cost, the local pool's health."""

    outcome: ValidatedOutcome | SearchOutcome
    visuals: Visuals
    cost: tuple[Metered, Projection]
    pool: dict[str, int] | None = None  # local: processes replaced, handler crashes, records redelivered


def run_on_target(
    args: argparse.Namespace, spec: BatchSpec, stack: StackConfig, known: list[str], started: float
) -> Ran:
    """Execute the batch on the embedded default or AWS; the report's inputs are read while the store is
    up (the local emulator stops with its `with` block)."""
    if args.target != "local":
        submitter = deployed_submitter(ClientFactory.from_environ(), stack)
        outcome = execute(args, spec, stack, known, started, submitter)
        cost = metered_cost(submitter, spec, outcome, stack, cloudwatch=True)
        return Ran(outcome, report_visuals(submitter, outcome), cost)
    # The worker processes start with the emulator, so their imports overlap the bars upload.
    # The embedded default keeps its tables and buckets in .local-aws/ between runs (docs/results.md).
    state = LOCAL_STATE or local_state_dir()
    emulator = Emulator(state_dir=state, fresh=args.fresh, region=stack.region)
    with LocalRuntime(
        stack, workers=args.workers, visibility_timeout_s=args.visibility_timeout, emulator=emulator
    ) as local:
        submitter = local.submitter()
        outcome = execute(args, spec, stack, known, started, submitter, local.alive)
        ran = Ran(outcome, report_visuals(submitter, outcome), metered_cost(submitter, spec, outcome, stack))
        ran.pool = {
            "restarts": local.restarts,
            "crashes": local.crashes,
            "failed_records": local.failed_records,
        }
    return ran


def run(args: argparse.Namespace, spec: BatchSpec, stack: StackConfig, known: list[str]) -> dict[str, Any]:
    """Run the batch; its id is appended to `known` as soon as the bars are resolved (for Ctrl-C)."""
    started = time.monotonic()
    ran = run_on_target(args, spec, stack, known, started)
    outcome, pool = ran.outcome, ran.pool
    summary = outcome.train.summary
    batch = outcome.train.batch_id
    conditions = [
        ("spec", args.spec),
        ("target", args.target),
        ("workers", str(args.workers if args.target == "local" else "Lambda")),
    ]
    if outcome.test is not None:
        conditions.append(("out-of-sample batch", outcome.test.batch_id))
    conditions.append(("cost on AWS", render_cost_line(*ran.cost)))
    if pool is not None and any(pool.values()):
        health = f"{pool['restarts']} replaced, {pool['crashes']} handler crashes (stderr has them)"
        conditions.append(("local workers", health))
    out = Path(args.reports) / batch
    if isinstance(outcome, SearchOutcome):
        report = write_reports(summary, out, conditions, None, outcome.document, visuals=ran.visuals)
        extra = search_json(outcome.document)
    else:
        report = write_reports(summary, out, conditions, outcome.document, visuals=ran.visuals)
        extra = {"validation": validation_headline(outcome.document)} if outcome.document else {}
    return {
        "batch_id": batch,
        "jobs_total": summary["jobs"]["total"],
        "jobs_succeeded": summary["jobs"]["succeeded"],
        "jobs_failed": summary["jobs"]["failed"],
        "jobs_reused": summary["jobs"].get("reused", 0),
        "backtests": summary["backtests"],
        "elapsed_s": round(time.monotonic() - started, 3),
        "report": str(report),
        "cost": cost_json(*ran.cost),
        **({"local": pool} if pool is not None else {}),
        **extra,
    }


def report_visuals(submitter: Submitter, outcome: ValidatedOutcome | SearchOutcome) -> Visuals:
    """The report's charts and row aggregates, read while the store is still up (docs/reports.md)."""
    record = outcome.train.record
    higher = HIGHER_IS_BETTER.get(record.ranking_metric, True)
    validation = None if isinstance(outcome, SearchOutcome) else outcome.document
    return compute_visuals(
        submitter.store, record, outcome.train.summary, higher=higher, validation=validation
    )


def metered_cost(
    submitter: Submitter,
    spec: BatchSpec,
    outcome: ValidatedOutcome | SearchOutcome,
    stack: StackConfig,
    *,
    cloudwatch: bool = False,
) -> tuple[Metered, Projection]:
    """The batch's cost at AWS list prices, metered from its job records (its out-of-sample batch's too),
    beside the projection of the same jobs (docs/pipeline.md); with `cloudwatch` (the AWS target: the
    local emulator has no AWS/Lambda metrics) also the worker's own Lambda metrics over the batch's window."""
    runs = [outcome.train] + ([outcome.test] if outcome.test is not None else [])
    records = [r for run in runs for r in submitter.store.list_jobs(run.batch_id)]
    worker = stack.worker
    metered = meter_jobs(records, memory_mb=worker.memory_mb, architecture=stack.layer.architecture)
    if cloudwatch:
        figure = cloudwatch_figure(
            submitter.clients.client("cloudwatch"),
            submitter.names.worker_function,
            records,
            memory_mb=worker.memory_mb,
            architecture=stack.layer.architecture,
        )
        metered = replace(metered, cloudwatch=figure)
    backtests = sum(int(run.summary["backtests"]) for run in runs)
    projected = project(
        metered.jobs or sum(len(run.jobs) for run in runs),
        backtests,
        float(backtests) * outcome.train.bars,
        throughput_per_vcpu=batch_throughput(spec),
        memory_mb=worker.memory_mb,
        concurrency=worker.concurrency,
        architecture=stack.layer.architecture,
    )
    return metered, projected


def execute(
    args: argparse.Namespace,
    spec: BatchSpec,
    stack: StackConfig,
    known: list[str],
    started: float,
    submitter: Submitter,
    alive: Callable[[], bool] = lambda: True,
) -> ValidatedOutcome | SearchOutcome:
    """A search (waves sized to keep every consumer busy: docs/search.md) or a validated sweep."""
    interactive = sys.stderr.isatty() and not args.json
    # Local worker processes, or the worker's concurrency on AWS.
    consumers = args.workers if args.target == "local" else stack.worker.concurrency
    salt = str(time.time_ns()) if args.rerun else ""
    if spec.searches:

        def searched(record: SearchProgress) -> None:
            if interactive:
                line = search_progress_line(record, started, spec.ranking.metric)
                eprint(line, end="\n" if record.stopped else "")

        return execute_search(
            submitter, spec, args.resume, consumers=consumers, timeout_s=args.timeout, salt=salt,
            reuse=not args.rerun, alive=alive, on_batch=known.append, on_progress=searched,
        )  # fmt: skip

    def progress(record: BatchRecord) -> None:
        if interactive:
            eprint(progress_line(record, started), end="\n" if record.complete else "")

    return execute_validated(
        submitter, spec, args.resume, depth=max(2, 2 * consumers), timeout_s=args.timeout, salt=salt,
        reuse=not args.rerun, alive=alive, on_batch=known.append, on_progress=progress,
    )  # fmt: skip


def search_progress_line(progress: SearchProgress, started: float, metric: str) -> str:
    width = 30
    filled = int(width * progress.trials / progress.budget) if progress.budget else width
    best = f"{progress.best:.3f}" if progress.best is not None else "–"
    return (
        f"\r[{'#' * filled}{'.' * (width - filled)}] wave {progress.waves}, "
        f"{progress.trials}/{progress.budget} trials, best {metric} {best}, "
        f"{time.monotonic() - started:5.1f} s"
    )


def search_json(document: dict[str, Any]) -> dict[str, Any]:
    """What --json carries of a search: trials run, waves, the best objective and each study's headline."""
    studies = search_headline(document)
    values = [s["best"]["value"] for s in studies if s["best"] is not None and s["best"]["value"] is not None]
    best = (max(values) if document["maximize"] else min(values)) if values else None
    return {
        "trials": sum(s["trials"] for s in studies),
        "waves": document["waves"],
        "best": best,
        "search": studies,
    }


def estimate(args: argparse.Namespace, spec: BatchSpec, stack: StackConfig) -> int:
    """Plan the jobs (no emulator, no upload) and print the projection of the batch on AWS, then the same
    batch in both scaling modes of the worker's event source mapping (docs/pipeline.md)."""
    if spec.searches:  # priced from the budget: every trial run on every scoring window
        projection = estimate_search(spec, stack, throughput=args.throughput)
    else:
        bars = estimate_bars(spec)
        # described refs: counting jobs needs no bars
        jobs = plan_jobs(spec, compute_batch_id(spec), bars=bars, throughput=args.throughput)
        backtests = count_backtests(spec)
        projection = project(
            len(jobs),
            backtests,
            float(backtests) * bars,
            throughput_per_vcpu=args.throughput or batch_throughput(spec),
            memory_mb=stack.worker.memory_mb,
            concurrency=stack.worker.concurrency,
            architecture=stack.layer.architecture,
        )
    modes = compare_modes(projection, stack)
    if args.json:
        print(json.dumps({**projection.to_json(), "modes": modes.to_json()}))
    else:
        print(f"{render_projection(projection)}\n\n{render_comparison(modes)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: --workers {args.workers}: at least 1.\n")
    try:
        spec = load_spec(args.spec)
        stack = load_stack(environment=args.environment)
    except (SpecError, OpsError) as exc:
        parser.exit(exit_status(exc), f"{parser.prog}: error: {exc}\n")
    if args.estimate:
        return estimate(args, spec, stack)
    if not args.json:
        eprint(f"batch {spec.name}: {count_backtests(spec):,} backtests on {args.target}")
    known: list[str] = []
    try:
        outcome = run(args, spec, stack, known)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (`Terminated`)
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        if not known:
            parser.exit(exit_status(exc), f"\n{parser.prog}: {what} before the batch was registered.\n")
        parser.exit(
            exit_status(exc),
            f"\n{parser.prog}: {what}; batch {known[0]} is kept: finish it with "
            f"{parser.prog} {args.spec} --resume {known[0]}\n",
        )
    except REPORTED_ERRORS as exc:
        parser.exit(exit_status(exc), f"{parser.prog}: error: {error_text(exc)}\n")
    if args.json:
        print(json.dumps(outcome))
    else:
        print(f"report: {outcome['report']}")
        print(
            f"{outcome['jobs_succeeded']}/{outcome['jobs_total']} jobs succeeded, {outcome['backtests']:,} "
            f"backtests in {outcome['elapsed_s']:.1f} s"
        )
        if "validation" in outcome:
            print(render_validation_line(outcome["validation"]))
        if "search" in outcome:
            print(render_search_line(outcome["search"]))
    return EXIT_OK if outcome["jobs_failed"] == 0 else EXIT_FAILED


if __name__ == "__main__":
    on_sigterm()  # SIGTERM unwinds like Ctrl-C: the emulator and workers are stopped, the batch kept
    raise SystemExit(main())
