"""Performance benchmark: the same batch run sequentially, on the local distributed pipeline with N workers,
and as vectorised sweeps, in one run on one machine; scalability over workers and batch sizes; the AWS
projection from the measured engine speed; github-action-benchmark output and a comparison with a base.

    python benchmarks/performance.py [SPEC] [--workers 2] [--repeats 3]      # full: batches/benchmark.yaml
    python benchmarks/performance.py --quick --json --out bench/            # CI: well under two minutes
    python benchmarks/performance.py --scalability [--max-workers 2]        # workers 1..N × 10..100,000
    python benchmarks/performance.py --quick --compare base/results.json     # regressions beyond noise

Sequential and distributed runs alternate (seq, dist, seq, dist, ...) so drift on a shared machine hits
both. The distributed time is `execute_batch` on a runtime that is already up (emulator and worker
processes started: warm containers); the start-up is reported on its own. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound
from perf_report import (
    action_benchmark,
    compare,
    render_charts,
    render_distributed,
    render_runs,
    render_scalability,
    summarize,
)
from perf_runs import (
    load_bars,
    run_distributed,
    run_sequential,
    run_vectorised,
    scaled_spec,
    target_seconds_for,
)
from tabulate import tabulate

from backtesting_modules.errors import BacktestError
from backtesting_modules.jobs.planner import DEFAULT_THROUGHPUT
from backtesting_modules.jobs.planner import batch_id as compute_batch_id
from backtesting_modules.jobs.runner import JobStatus
from backtesting_modules.jobs.spec import BatchSpec, load_spec
from backtesting_modules.pipeline.clients import ClientFactory
from opslib.batch.aws import deployed_submitter
from opslib.batch.execute import execute_batch
from opslib.batch.projection import project, render_projection
from opslib.local.runtime import LocalRuntime
from opslib.stack import load_stack

ROOT = Path(__file__).resolve().parents[1]
FULL_SIZES = [
    (10, None),
    (100, None),
    (1_000, None),
    (10_000, None),
    (100_000, None),
    (100_000, 100),
    (100_000, 1_000),
]
QUICK_SIZES = [(10, None), (1_000, None), (10_000, None), (10_000, 100)]
TARGETS = {
    "speedup_2w": 1.8,
    "overhead_pct": 10.0,
    "backtests_per_min": 100_000.0,
    "aws_wall_s": 60.0,
    "aws_usd": 0.10,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "spec", nargs="?", help="batch spec (default batches/benchmark.yaml; --quick: a 20,000 sweep)"
    )
    parser.add_argument("--workers", type=int, default=2, help="distributed workers (default 2)")
    parser.add_argument("--repeats", type=int, help="repeats of each run (default 3; --quick 2)")
    parser.add_argument("--quick", action="store_true", help="small batch, few repeats: for CI")
    parser.add_argument("--scalability", action="store_true", help="also sweep workers 1..N and batch sizes")
    parser.add_argument("--max-workers", type=int, default=os.cpu_count() or 2, help="scalability: N")
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        help="scalability batch sizes as BACKTESTS[/JOBS],... (default 10 to 100,000; --quick: to 10,000)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--out", help="folder for report.md, results.json and github-action-benchmark files")
    parser.add_argument("--compare", metavar="BASE.json", help="a results.json of a base run to compare with")
    parser.add_argument("--threshold", type=float, default=0.10, help="regression threshold (default 0.10)")
    parser.add_argument("--fail-on-regression", action="store_true", help="exit 1 when --compare finds one")
    parser.add_argument(
        "--target",
        choices=["local", "aws"],
        default="local",
        help="aws: run SPEC on the deployed stack, measured beside projected (needs credentials)",
    )
    parser.add_argument("--environment", help="--target aws: stack environment from config/stack.yaml")
    parser.add_argument(
        "--throughput",
        type=float,
        default=DEFAULT_THROUGHPUT,
        help="--target aws: engine bar·combinations/s per vCPU the projection assumes (default 2e7)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers < 1 or args.max_workers < 1 or (args.repeats is not None and args.repeats < 1):
        parser.exit(2, f"{parser.prog}: error: --workers, --max-workers and --repeats must be at least 1.\n")
    if args.target == "aws":
        if not args.spec:
            parser.exit(2, f"{parser.prog}: error: --target aws needs a SPEC (e.g. batches/demo.yaml).\n")
        try:
            print(render_aws(measure_aws(load_spec(args.spec), args)))
        except (NoCredentialsError, ProfileNotFound) as exc:
            parser.exit(2, f"{parser.prog}: error: {exc}: configure AWS credentials (or OIDC in Actions).\n")
        except (BacktestError, ClientError, BotoCoreError) as exc:
            parser.exit(2, f"{parser.prog}: error: {exc}\n")
        return 0
    base = _load_base(parser, args.compare)
    repeats = args.repeats or (2 if args.quick else 3)
    spec = (
        load_spec(args.spec)
        if args.spec
        else (
            scaled_spec(20_000, name="quick")
            if args.quick
            else load_spec(ROOT / "batches" / "benchmark.yaml")
        )
    )
    started = time.perf_counter()
    result = measure(spec, args.workers, repeats)
    if args.scalability:
        sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
        result["scalability"] = scalability(sizes, args.max_workers)
    result["projection"] = projection(result)
    result["total_s"] = time.perf_counter() - started
    report = render(result, args)
    regressions: list[str] = []
    if base is not None:
        table, regressions = compare(result, base, args.threshold)
        report += (
            f"\n## Against the base run\n\n{table}\n\n"
            + ("\n".join(f"- **regression**: {r}" for r in regressions) if regressions else "No regression.")
            + "\n"
        )
    print(report)
    if args.out:
        _write(Path(args.out), result, report)
    if args.json:
        print(json.dumps(_headline(result), allow_nan=False))
    return 1 if regressions and args.fail_on_regression else 0


def parse_sizes(text: str) -> list[tuple[int, int | None]]:
    """'10,1000/10' → [(10, None), (1000, 10)]: backtests, and optionally the number of jobs."""
    sizes: list[tuple[int, int | None]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        backtests, _, jobs = part.partition("/")
        try:
            size = (int(backtests.replace("_", "")), int(jobs) if jobs else None)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected BACKTESTS or BACKTESTS/JOBS, e.g. 1000/10"
            ) from exc
        if size[0] < 1 or (size[1] is not None and size[1] < 1):
            raise argparse.ArgumentTypeError(f"{part!r}: backtests and jobs must be at least 1")
        sizes.append(size)
    return sizes


def measure(spec: BatchSpec, workers: int, repeats: int) -> dict[str, Any]:
    bars = load_bars(spec)
    seq, vec, dist = [], [], []
    startup = time.perf_counter()
    with LocalRuntime(load_stack(), workers=workers) as runtime:
        startup_s = time.perf_counter() - startup
        for _ in range(repeats):
            seq.append(run_sequential(spec, bars))
            dist.append(run_distributed(runtime, spec))
            vectorised = run_vectorised(spec, bars)
            if vectorised is not None:
                vec.append(vectorised)
    sequential_s = sorted(s.wall_s for s in seq)[len(seq) // 2]
    engine_s = sorted(s.engine_s for s in seq)[len(seq) // 2]
    runs = [summarize(seq, sequential_s), summarize(dist, sequential_s, engine_s)]
    if vec:
        runs.append(summarize(vec, sequential_s))
    return {
        "spec": spec.name,
        "backtests": seq[0].backtests,
        "jobs": seq[0].jobs,
        "bars": min(len(b) for b in bars.values()),
        "workers": workers,
        "repeats": repeats,
        "cores": os.cpu_count(),
        "startup_s": startup_s,
        "runs": runs,
    }


def scalability(sizes: list[tuple[int, int | None]], max_workers: int) -> list[dict[str, Any]]:
    """Every size (backtests, jobs) with 1..max_workers workers on one emulator; sequential once per size."""
    cells: list[dict[str, Any]] = []
    with LocalRuntime(load_stack(), workers=1) as runtime:
        for backtests, jobs in sizes:
            spec = scaled_spec(backtests)
            bars = load_bars(spec)
            target = target_seconds_for(spec, min(len(b) for b in bars.values()), jobs)
            seq = run_sequential(spec, bars, target)
            for workers in range(1, max_workers + 1):
                if runtime.workers != workers:
                    runtime.start_pollers(workers)
                    # Unmeasured warm-up: new worker processes import the engine before their first job.
                    run_distributed(runtime, scaled_spec(10, name="warm-up"))
                cell = summarize([run_distributed(runtime, spec, target)], seq.wall_s, seq.engine_s)
                cell["sequential_s"] = seq.wall_s
                cells.append(cell)
                print(
                    f"  scalability: {backtests:,} backtests, {cell['jobs']} jobs, {workers} worker(s): "
                    f"{cell['wall_s']['median']:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
    return cells


def projection(result: dict[str, Any]) -> dict[str, Any]:
    """1,000,000 backtests on AWS at 1,000 concurrency, from the measured sequential engine speed."""
    seq = next(r for r in result["runs"] if r["mode"] == "sequential")
    throughput = result["backtests"] * result["bars"] / seq["engine_s"]  # bar·combinations per second
    stack = load_stack()
    backtests = 1_000_000
    jobs = 1_000
    out: dict[str, Any] = {}
    for arch in ("x86_64", "arm64"):
        p = project(
            jobs,
            backtests,
            float(backtests) * 43_800,
            throughput_per_vcpu=throughput,
            memory_mb=stack.worker.memory_mb,
            concurrency=1_000,
            architecture=arch,
        )
        out[arch] = {**p.to_json(), "text": render_projection(p)}
    out["throughput_per_vcpu"] = throughput
    out["bars"] = 43_800
    return out


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    runs = result["runs"]
    dist = next(r for r in runs if r["mode"] == "distributed")
    lines = [
        f"# Performance: {result['spec']}",
        "",
        f"{result['backtests']:,} backtests in {result['jobs']} jobs on {result['bars']:,} bars per symbol; "
        f"{result['repeats']} repeat(s), sequential and distributed alternating; {result['cores']} cores. "
        f"Local runtime start-up (emulator, stack, {result['workers']} worker processes and the collector): "
        f"{result['startup_s']:.2f} s, not in the distributed times.",
        "",
        render_runs(runs),
        "",
        "## Distributed run",
        "",
        render_distributed(dist),
        "",
    ]
    if "scalability" in result:
        lines += [
            "## Scalability",
            "",
            render_scalability(result["scalability"]),
            "",
            render_charts(result["scalability"]),
            "",
        ]
    p = result["projection"]
    lines += [
        "## AWS projection: 1,000,000 backtests, 43,800 bars each, 1,000 jobs at 1,000 concurrency",
        "",
        f"Engine speed measured here: {p['throughput_per_vcpu'] / 1e6:.1f} M bar·combinations/s per core.",
        "",
        p["x86_64"]["text"],
        "",
        f"arm64: ≈ {p['arm64']['wall_s']:.0f} s, ${p['arm64']['total_usd']:.4f}.",
        "",
        render_targets(result),
    ]
    return "\n".join(lines)


def render_targets(result: dict[str, Any]) -> str:
    dist = next(r for r in result["runs"] if r["mode"] == "distributed")
    p = result["projection"]
    rows = [
        (
            "speedup over sequential",
            f"≥ {TARGETS['speedup_2w']}× (2 workers, ≥ 100,000 backtests)",
            f"{dist['speedup']:.2f}× ({dist['workers']} workers, {result['backtests']:,})",
            dist["speedup"] >= TARGETS["speedup_2w"]
            and result["backtests"] >= 100_000
            and dist["workers"] == 2,
        ),
        (
            "pipeline overhead",
            f"≤ {TARGETS['overhead_pct']:.0f} % of engine time",
            f"{dist['overhead_pct']:.1f} %",
            dist["overhead_pct"] <= TARGETS["overhead_pct"],
        ),
        (
            "end-to-end throughput",
            "≥ 100,000 backtests/min",
            f"{60 * dist['backtests_per_s']:,.0f}/min",
            60 * dist["backtests_per_s"] >= TARGETS["backtests_per_min"],
        ),
        (
            "AWS wall, 1 M backtests",
            "≤ 60 s",
            f"{p['x86_64']['wall_s']:.0f} s",
            p["x86_64"]["wall_s"] <= TARGETS["aws_wall_s"],
        ),
        (
            "AWS cost, 1 M backtests",
            "≤ $0.10",
            f"${p['x86_64']['total_usd']:.3f} x86_64, ${p['arm64']['total_usd']:.3f} arm64",
            p["x86_64"]["total_usd"] <= TARGETS["aws_usd"],
        ),
    ]
    table = [[a, b, c, "met" if ok else "missed"] for a, b, c, ok in rows]
    return "## Targets\n\n" + tabulate(table, headers=["target", "goal", "measured", ""], tablefmt="github")


def measure_aws(spec: BatchSpec, args: argparse.Namespace) -> dict[str, Any]:
    """The batch once on the deployed stack, with its projection from the same plan beside it."""
    stack = load_stack(environment=args.environment)
    submitter = deployed_submitter(ClientFactory.from_environ(), stack)
    concurrency = stack.worker.concurrency
    batch = compute_batch_id(spec, salt=str(time.time_ns()))
    outcome = execute_batch(submitter, spec, batch, depth=2 * concurrency, timeout_s=3600.0)
    records = submitter.store.list_jobs(batch)
    bars = outcome.bars
    backtests = outcome.record.backtests
    projected = project(
        len(outcome.jobs),
        backtests,
        float(backtests) * bars,
        throughput_per_vcpu=args.throughput,
        memory_mb=stack.worker.memory_mb,
        concurrency=concurrency,
        architecture=stack.layer.architecture,
    )
    durations = [r.duration_s or 0.0 for r in records if r.status is JobStatus.SUCCEEDED]
    return {
        "batch_id": batch,
        "jobs": len(outcome.jobs),
        "backtests": backtests,
        "measured": {
            "wall_s": outcome.elapsed_s,
            "job_seconds_mean": sum(durations) / max(1, len(durations)),
        },
        "projected": projected.to_json(),
        "projection_text": render_projection(projected),
    }


def render_aws(result: dict[str, Any]) -> str:
    measured, projected = result["measured"], result["projected"]
    rows = [
        ["wall time (submission → summary)", f"{measured['wall_s']:.1f} s", f"{projected['wall_s']:.1f} s"],
        [
            "engine seconds per job (mean)",
            f"{measured['job_seconds_mean']:.2f} s",
            f"{projected['job_seconds']:.2f} s",
        ],
    ]
    return "\n".join(
        [
            f"# Measured on AWS beside the projection: batch {result['batch_id']}",
            "",
            f"{result['jobs']} jobs, {result['backtests']:,} backtests.",
            "",
            tabulate(rows, headers=["", "measured", "projected"], tablefmt="github"),
            "",
            "Cost is projected only (billing data lags by hours; compare with Cost Explorer the next day):",
            "",
            result["projection_text"],
        ]
    )


def _headline(result: dict[str, Any]) -> dict[str, Any]:
    seq = next(r for r in result["runs"] if r["mode"] == "sequential")
    dist = next(r for r in result["runs"] if r["mode"] == "distributed")
    vec = next((r for r in result["runs"] if r["mode"] == "vectorised"), None)
    return {
        "sequential_s": round(seq["wall_s"]["median"], 4),
        "distributed_s": round(dist["wall_s"]["median"], 4),
        "vectorised_s": round(vec["wall_s"]["median"], 4) if vec else None,
        "speedup": round(dist["speedup"], 4),
        "efficiency": round(dist["efficiency"], 4),
        "overhead_pct": round(dist["overhead_pct"], 2),
        "workers": dist["workers"],
        "backtests": result["backtests"],
        "jobs": result["jobs"],
        "backtests_per_min": round(60 * dist["backtests_per_s"]),
        "latency_p95_s": round(dist["latency_s"]["p95"], 3),
        "startup_s": round(result["startup_s"], 3),
        "aws_wall_s": result["projection"]["x86_64"]["wall_s"],
        "aws_usd": result["projection"]["x86_64"]["total_usd"],
    }


def _write(out: Path, result: dict[str, Any], report: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(report + "\n", encoding="utf-8")
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    bigger, smaller = action_benchmark(result)
    (out / "benchmark-bigger.json").write_text(json.dumps(bigger, indent=2) + "\n", encoding="utf-8")
    (out / "benchmark-smaller.json").write_text(json.dumps(smaller, indent=2) + "\n", encoding="utf-8")


def _load_base(parser: argparse.ArgumentParser, path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        base: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        parser.exit(
            2, f"{parser.prog}: error: --compare {path}: {exc}; pass a results.json written by --out.\n"
        )
    if not isinstance(base.get("runs"), list):
        parser.exit(
            2,
            f"{parser.prog}: error: --compare {path}: no 'runs' list; pass a results.json from --out.\n",
        )
    return base


if __name__ == "__main__":
    raise SystemExit(main())
