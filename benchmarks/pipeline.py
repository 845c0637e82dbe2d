"""Pipeline benchmark: a batch on the embedded default (N workers) against the same jobs run one after
another in one process, in the same run on the same machine.

    python benchmarks/pipeline.py batches/demo.yaml [--workers 2] [--json]

The distributed time is `run_batch.py`'s elapsed time (emulator start, bars upload, jobs, collection,
summary, report); the sequential time runs `run_job` over exactly the planned jobs, bars already in memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from tabulate import tabulate

from backtesting_modules.jobs.planner import batch_id, plan_jobs
from backtesting_modules.jobs.runner import run_job
from backtesting_modules.jobs.spec import load_spec
from opslib.batch import load_symbol_bars

ROOT = Path(__file__).resolve().parents[1]


def sequential(spec_path: str) -> tuple[float, int, int]:
    spec = load_spec(spec_path)
    bars = {s: load_symbol_bars(spec, s) for s in spec.symbols}
    jobs = plan_jobs(spec, batch_id(spec), bars=min(len(b) for b in bars.values()))
    started = time.perf_counter()
    backtests = sum(run_job(job, {s: bars[s] for s in job.symbols}).backtests for job in jobs)
    return time.perf_counter() - started, backtests, len(jobs)


def distributed(spec_path: str, workers: int) -> dict[str, float]:
    command = [
        sys.executable,
        str(ROOT / "scripts" / "run_batch.py"),
        spec_path,
        "--workers",
        str(workers),
        "--rerun",
        "--json",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"run_batch failed ({done.returncode}): {done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    seq_s, backtests, jobs = sequential(args.spec)
    dist = distributed(args.spec, args.workers)
    rows = [
        ["sequential (one process, job after job)", f"{seq_s:.2f} s", f"{backtests / seq_s:,.0f}", "1.00×"],
        [
            f"distributed ({args.workers} workers, emulator)",
            f"{dist['elapsed_s']:.2f} s",
            f"{dist['backtests'] / dist['elapsed_s']:,.0f}",
            f"{seq_s / dist['elapsed_s']:.2f}×",
        ],
    ]
    print(f"# Pipeline benchmark: {args.spec}\n\n{jobs} jobs, {backtests:,} backtests.\n")
    print(tabulate(rows, headers=["run", "wall time", "backtests/s", "speedup"], tablefmt="github"))
    if args.json:
        print(
            json.dumps(
                {
                    "sequential_s": seq_s,
                    "distributed_s": dist["elapsed_s"],
                    "workers": args.workers,
                    "backtests": backtests,
                    "jobs": jobs,
                    "speedup": seq_s / dist["elapsed_s"],
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
