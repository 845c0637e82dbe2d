"""Validation benchmark: what the overfitting guard costs, as a share of the sweep's engine time, on the
benchmark batch (batches/benchmark.yaml: 100,200 backtests, 4 symbols), in one process on one core.

- baseline: the train sweep's jobs run with `run_job` without per-period returns (the engine time the
  sweep costs anyway);
- validation: the same jobs keeping their daily returns (the extra time is the returns' cost), the scan
  of every result (block statistics, trial Sharpe ratios, top-k winners), PBO per (strategy, symbol),
  the deflated Sharpe of each winner, and the winners' runs on the test window.

Queues, storage and serialisation are left out on both sides: they are the pipeline's, measured by
`performance.py`. Target: validation ≤ 15 % of the sweep's engine time.

    python benchmarks/validation.py [--quick] [--json] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from bench_output import emit
from tabulate import tabulate

from backtesting_modules.jobs.planner import Job, plan_jobs, plan_test_jobs
from backtesting_modules.jobs.runner import run_job
from backtesting_modules.jobs.spec import BatchSpec, load_spec, parse_spec
from backtesting_modules.metrics import HIGHER_IS_BETTER
from backtesting_modules.validation import BlockStats, compute_pbo, deflated_sharpe, plan_folds
from opslib.batch.bars import bar_interval, load_symbol_bars
from opslib.batch.validation_compute import winners_of
from opslib.batch.validation_scan import Candidate, GroupScan, per_period_sharpe

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.15


def benchmark_spec(quick: bool) -> BatchSpec:
    path = ROOT / "batches" / "benchmark.yaml"
    if not quick:
        return load_spec(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["strategies"][0]["grid"] = {"fast": "2:41:1", "slow": "3:102:1"}
    raw["symbols"] = raw["symbols"][:2]
    return parse_spec(raw)


def timed_jobs(jobs: list[Job], bars: dict[str, pd.DataFrame]) -> tuple[float, list[Any]]:
    started = time.process_time()
    results = [run_job(job, {s: bars[s] for s in job.symbols}) for job in jobs]
    return time.process_time() - started, results


def scan(spec: BatchSpec, jobs: list[Job], results: list[Any]) -> dict[tuple[int, str, str], GroupScan]:
    """The driver's scan (validation_scan) over in-memory results instead of stored bodies."""
    metric, k = spec.ranking.metric, spec.validation.winners(10**9, spec.ranking.top)
    sign = 1.0 if HIGHER_IS_BETTER.get(metric, True) else -1.0
    scans: dict[tuple[int, str, str], GroupScan] = {}
    for job, result in zip(jobs, results, strict=True):
        key = (1, job.strategy, job.symbols[0])
        group = scans.setdefault(key, GroupScan(key, 16))
        values = result.period_returns[2]
        group.stats.append(BlockStats.from_returns(values, blocks=16))
        group.sharpes.append(per_period_sharpe(values))
        group.combinations += values.shape[1]
        scores = sign * np.array([np.nan if v is None else v for v in result.columns["metrics"][metric]])
        trades = np.array([np.nan if v is None else v for v in result.columns["metrics"]["trades"]])
        for i in np.flatnonzero((trades >= spec.ranking.min_trades) & np.isfinite(scores)):
            params = {name: values_[i] for name, values_ in result.columns["params"].items()}
            group.best.append(Candidate(float(scores[i]), -float(i), params, {}, values[:, i].copy()))
        group.best = sorted(group.best, reverse=True)[:k]
    return scans


def run(quick: bool) -> dict[str, Any]:
    spec = benchmark_spec(quick)
    bars = {s: load_symbol_bars(spec, s) for s in spec.symbols}
    interval = bar_interval(spec)
    index = next(iter(bars.values())).index
    folds = plan_folds(index, spec.validation.scheme(), min_train_bars=400, interval=interval)  # type: ignore[arg-type]
    validated = plan_jobs(spec, "b-bench", bars=folds[0].train_bars, folds=folds)
    plain = [replace(j, period_returns=None) for j in validated]
    sweep_s, _ = timed_jobs(plain, bars)
    with_returns_s, results = timed_jobs(validated, bars)
    started = time.process_time()
    scans = scan(spec, validated, results)
    scan_s = time.process_time() - started
    started = time.process_time()
    computed = {key: compute_pbo(BlockStats.concat(group.stats)) for key, group in scans.items()}
    for group in scans.values():
        deflated_sharpe(
            group.best[0].returns, (float(np.var(group.trial_sharpes(), ddof=1)), group.combinations)
        )
    stats_s = time.process_time() - started
    refs = {s: f"bars/{s}.npz" for s in spec.symbols}
    winners = plan_test_jobs(spec, "b-bench-oos", refs, folds, winners_of(scans))
    oos_s, _ = timed_jobs(winners, bars)
    extra = with_returns_s - sweep_s
    validation_s = max(0.0, extra) + scan_s + stats_s + oos_s
    return {
        "backtests": sum(len(r.rows) for r in results),
        "groups": len(scans),
        "variants_per_group": int(np.mean([g.combinations for g in scans.values()])),
        "periods": int(results[0].period_returns[2].shape[0]),
        "sweep_s": sweep_s,
        "returns_extra_s": extra,
        "scan_s": scan_s,
        "pbo_and_deflated_s": stats_s,
        "out_of_sample_s": oos_s,
        "winner_jobs": len(winners),
        "validation_s": validation_s,
        "share": validation_s / sweep_s,
        "pbo": {f"{s} {y}": round(v.pbo, 3) for (_, s, y), v in computed.items()},
        "pbo_splits": next(iter(computed.values())).n_splits,
        "pbo_splits_total": next(iter(computed.values())).splits_total,
    }


def render(result: dict[str, Any]) -> str:
    sweep = result["sweep_s"]
    splits = f"{result['pbo_splits']:,} of {result['pbo_splits_total']:,} splits"
    steps = [
        ("  + keeping daily returns", result["returns_extra_s"]),
        ("scan of every result (block stats, Sharpe ratios, top-k)", result["scan_s"]),
        (f"PBO ({splits}) and deflated Sharpe", result["pbo_and_deflated_s"]),
        (f"winners out of sample ({result['winner_jobs']} runs)", result["out_of_sample_s"]),
    ]
    rows = [["train sweep without returns (baseline)", f"{sweep:.2f} s", ""]]
    rows += [[name, f"{seconds:.2f} s", f"{seconds / sweep:.1%}"] for name, seconds in steps]
    rows.append(["validation, all of it", f"{result['validation_s']:.2f} s", f"**{result['share']:.1%}**"])
    verdict = "met" if result["share"] <= TARGET else "missed"
    return "\n".join(
        [
            "# Validation benchmark",
            "",
            f"{result['backtests']:,} backtests in {result['groups']} (strategy, symbol) grids of "
            f"{result['variants_per_group']:,} variants, {result['periods']} daily periods each; one "
            f"process, CPU time. Python {sys.version.split()[0]}, numpy {np.__version__}.",
            "",
            tabulate(rows, headers=["step", "CPU time", "of the sweep"], tablefmt="github"),
            "",
            f"- target: validation ≤ {TARGET:.0%} of the sweep's engine time: **{result['share']:.1%}** "
            f"({verdict})",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller grid on two symbols")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--out", help="write the markdown report to this file")
    args = parser.parse_args(argv)
    result = run(args.quick)
    report = render(result)
    emit(report, result, out=args.out, as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
