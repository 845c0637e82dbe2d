"""Calibrate the planner's engine throughput per strategy (docs/batches.md, "Throughput per strategy").

The planner sizes a job so that bars × combinations / throughput ≈ its target engine seconds. One default
(2e7 bar·combinations/s) for every strategy put SMA_Crossover's jobs at about half their target and
Dynamic_RSI_MACD's at about four times it. This measures each registered strategy as its jobs run: on one
core (one BLAS thread), a year of seeded synthetic hourly bars, costs, a stop and every metric:

- grids: the jobs the planner makes (2 s target) of a wide grid over the strategy's integer parameters
  first (window lengths, where the engine's work is), a few of them spread over the grid, each run with
  `run_job` as a worker runs it; throughput = their bar·combinations / their engine seconds;
- sets: `run_sets` on random distinct parameter sets over every parameter's whole range, about a search
  job's worth (sets share fewer indicator windows than a grid);

and writes the table the planner reads (`backtesting_modules/jobs/throughput_table.py`).

    python benchmarks/calibrate.py [--quick] [--json] [--write]
    python benchmarks/calibrate.py --check [--quick] [--json]

Without --write it prints the figures beside the table's. A strategy missing from the table (one a user
registered) is planned at DEFAULT_THROUGHPUT. --check is held out from the calibration: it plans a grid of
another shape (every parameter in declared order, a few values each around its default: a grid like one a
user writes), runs a few of its jobs the same way and prints planned against measured engine seconds,
with the table and with the single default it replaced.
"""

from __future__ import annotations

import os

# One core, as a job runs (a Lambda worker at 1,769 MB has one vCPU; local pollers spawn with one BLAS
# thread): set before numpy is imported.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from engine import random_sets  # noqa: E402
from tabulate import tabulate  # noqa: E402

from backtesting_modules import StrategyConfig, get_strategy, run_sets, synthetic_bars  # noqa: E402
from backtesting_modules.jobs import BatchSpec, parse_spec, plan_jobs, run_job  # noqa: E402
from backtesting_modules.jobs.planner import DEFAULT_TARGET_SECONDS, DEFAULT_THROUGHPUT, throughput_for  # noqa: E402
from backtesting_modules.strategies import list_strategies  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "layer" / "backtesting_modules" / "jobs" / "throughput_table.py"
CONFIG: dict[str, Any] = {"filters": None, "min_volume": 0.0, "stop_loss_pct": 0.08}
SYMBOL = "KRW-BTC"


@dataclass(frozen=True)
class Setup:
    periods: int = 8760  # a year of hourly bars
    target_s: float = DEFAULT_TARGET_SECONDS
    grid_values: int = 160  # per axis of the calibration grid: several 2 s jobs of every strategy
    jobs_each: int = 3  # jobs run per strategy, spread over its grid
    sets: int = 1024  # random parameter sets: about a search job's worth
    check_combinations: int = 40_000  # the held-out grid's size before constraints: several 2 s jobs
    check_axes: int = 4


QUICK = Setup(
    periods=2000, target_s=0.02, grid_values=16, jobs_each=2, sets=32, check_combinations=64, check_axes=3
)


def built_in_strategies() -> list[str]:
    """The engine's own strategies (their signals live in `backtesting_modules.strategies`), not ones a
    test or a user registered in this process."""
    return [
        name
        for name in list_strategies()
        if get_strategy(name).signals.__module__.startswith("backtesting_modules.strategies")
    ]


def _axis(param: Any, values: int) -> list[float]:
    """`values` evenly spaced values around the default: [default/4, default×4] for integers, [default/2,
    default×2] for floats, clipped to the parameter's range."""
    wide = 4 if param.kind is int else 2
    low = max(float(param.low), float(param.default) / wide)
    high = min(float(param.high), max(low, float(param.default)) * wide)
    return sorted({round(v) if param.kind is int else float(v) for v in np.linspace(low, high, values)})


def calibration_grid(strategy: str, values: int) -> dict[str, list[float]]:
    """Integer parameters first (window lengths, where the engine's work is), `values` each: the first
    two, and more while the grid holds fewer than `values`² / 2 combinations."""
    spec = get_strategy(strategy)
    grid: dict[str, list[float]] = {}
    ordered = [p for p in spec.params if p.kind is int] + [p for p in spec.params if p.kind is not int]
    for param in ordered:
        size = int(np.prod([len(v) for v in grid.values()])) if grid else 1
        if len(grid) >= 2 and size >= values * values // 2:
            break
        grid[param.name] = _axis(param, values)
    return grid


def held_out_grid(strategy: str, combinations: int, axes: int) -> dict[str, list[float]]:
    """The first `axes` parameters in declared order (integers and floats as they come), as many values
    each as make about `combinations` (fewer where an integer range runs out of values)."""
    params = get_strategy(strategy).params[:axes]
    values = max(2, round(combinations ** (1 / len(params))))
    return {p.name: _axis(p, values) for p in params}


def grid_spec(strategy: str, grid: dict[str, list[float]], periods: int) -> BatchSpec:
    return parse_spec(
        {
            "name": "calibration",
            "job_type": "PARAMETER_OPTIMIZATION",
            "symbols": [SYMBOL],
            "data": {"source": "synthetic", "periods": periods, "seed": 1},
            "config": CONFIG,
            "strategies": [{"name": strategy, "grid": grid}],
        }
    )


def run_planned(
    strategy: str, grid: dict[str, list[float]], bars: pd.DataFrame, setup: Setup
) -> tuple[int, list[tuple[int, float]]]:
    """(jobs planned, [(backtests, engine seconds)] of `setup.jobs_each` of them spread over the grid)."""
    jobs = plan_jobs(
        grid_spec(strategy, grid, len(bars)), "calibration", bars=len(bars), target_seconds=setup.target_s
    )
    picked = jobs[:: max(1, len(jobs) // setup.jobs_each)][: setup.jobs_each]
    runs = []
    for job in picked:
        result = run_job(job, {SYMBOL: bars})
        runs.append((result.backtests, result.engine_seconds))
    return len(jobs), runs


def measure(strategy: str, bars: pd.DataFrame, setup: Setup) -> dict[str, Any]:
    planned, runs = run_planned(strategy, calibration_grid(strategy, setup.grid_values), bars, setup)
    backtests, seconds = sum(b for b, _ in runs), sum(s for _, s in runs)
    sets = random_sets(strategy, setup.sets, None, seed=7)
    started = time.perf_counter()
    run_sets(bars, strategy, sets, StrategyConfig(**CONFIG))
    sets_seconds = time.perf_counter() - started
    return {
        "strategy": strategy,
        "jobs": len(runs),
        "of_jobs": planned,
        "backtests": backtests,
        "seconds": seconds,
        "throughput": len(bars) * backtests / seconds,
        "sets": len(sets),
        "sets_seconds": sets_seconds,
        "sets_throughput": len(bars) * len(sets) / sets_seconds,
    }


def check(strategy: str, bars: pd.DataFrame, setup: Setup) -> dict[str, Any]:
    """Planned (with the table, and with the default it replaced) vs measured seconds of held-out jobs."""
    grid = held_out_grid(strategy, setup.check_combinations, setup.check_axes)
    planned_jobs, runs = run_planned(strategy, grid, bars, setup)
    rate = throughput_for(strategy)
    planned = [b * len(bars) / rate for b, _ in runs]
    measured = [s for _, s in runs]
    ratios = [m / p for m, p in zip(measured, planned, strict=True)]
    before = [m / (b * len(bars) / DEFAULT_THROUGHPUT) for (b, m) in runs]
    return {
        "strategy": strategy,
        "grid": {k: len(v) for k, v in grid.items()},
        "throughput": rate,
        "jobs_planned": planned_jobs,
        "jobs_run": len(runs),
        "target_s": setup.target_s,
        "planned_s": statistics.median(planned),
        "measured_s": statistics.median(measured),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "default_ratio_median": statistics.median(before),
    }


def render_check(checked: list[dict[str, Any]]) -> str:
    rows = [
        [
            c["strategy"],
            " × ".join(str(n) for n in c["grid"].values()),
            f"{c['throughput'] / 1e6:.1f} M",
            f"{c['jobs_run']} of {c['jobs_planned']}",
            f"{c['planned_s']:.2f} s",
            f"{c['measured_s']:.2f} s",
            f"{c['ratio_median']:.2f} ({c['ratio_min']:.2f}–{c['ratio_max']:.2f})",
            f"{c['default_ratio_median']:.2f}",
        ]
        for c in checked
    ]
    headers = ["strategy", "held-out grid", "table", "jobs", "planned", "measured", "measured / planned"]
    return tabulate(rows, headers=[*headers, "with 2e7 for all"], tablefmt="github")


def render_measured(measured: list[dict[str, Any]]) -> str:
    rows = [
        [
            m["strategy"],
            f"{m['jobs']} of {m['of_jobs']}",
            f"{m['backtests']:,} in {m['seconds']:.2f} s",
            f"{m['throughput'] / 1e6:.1f} M",
            f"{throughput_for(m['strategy']) / 1e6:.1f} M",
            f"{m['sets']:,} in {m['sets_seconds']:.2f} s",
            f"{m['sets_throughput'] / 1e6:.1f} M",
            f"{throughput_for(m['strategy'], sets=True) / 1e6:.1f} M",
        ]
        for m in measured
    ]
    headers = ["strategy", "jobs", "grid backtests", "bar·combos/s", "table now"]
    headers += ["random sets", "sets bar·combos/s", "table now"]
    return tabulate(rows, headers=headers, tablefmt="github")


def _literal(rate: float) -> str:
    """4 significant digits as ruff formats a float literal (3.379e07, not 3.379e+07)."""
    return f"{rate:.3e}".replace("e+", "e")


def render_table(measured: list[dict[str, Any]]) -> str:
    lines = [
        '"""The planner\'s engine throughput per strategy: bar·combinations per second on one core,',
        "measured by benchmarks/calibrate.py (do not edit by hand: run it with --write). The planner sizes",
        "a strategy's jobs with its figure here, and a strategy not listed with DEFAULT_THROUGHPUT.",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {platform.machine()}, Python {platform.python_version()}:",
        "a year of synthetic hourly bars, costs, a stop, every metric; MEASURED from job-sized grid tiles",
        "run as a worker runs them (`run_job`), MEASURED_SETS from random parameter sets over every",
        "parameter's whole range (`run_sets`, what a search's jobs run).",
        '"""',
        "",
        "MEASURED: dict[str, float] = {",
        *(f'    "{m["strategy"]}": {_literal(m["throughput"])},' for m in measured),
        "}",
        "",
        "MEASURED_SETS: dict[str, float] = {",
        *(f'    "{m["strategy"]}": {_literal(m["sets_throughput"])},' for m in measured),
        "}",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer bars, values and jobs (tests)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--write", action="store_true", help=f"write {TABLE.relative_to(ROOT)}")
    parser.add_argument("--table", type=Path, default=TABLE, help="where --write writes (tests)")
    parser.add_argument("--check", action="store_true", help="planned vs measured job seconds, held out")
    args = parser.parse_args(argv)
    setup = QUICK if args.quick else Setup()
    bars = synthetic_bars(SYMBOL, periods=setup.periods, seed=1)
    if args.check:
        checked = [check(name, bars, setup) for name in built_in_strategies()]
        print(render_check(checked))
        if args.json:
            print(json.dumps({c["strategy"]: c for c in checked}))
        return 0
    measured = [measure(name, bars, setup) for name in built_in_strategies()]
    print(render_measured(measured))
    if args.write:
        args.table.write_text(render_table(measured), encoding="utf-8")
        print(f"wrote {args.table}", file=sys.stderr)
    if args.json:
        print(json.dumps({m["strategy"]: m for m in measured}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
