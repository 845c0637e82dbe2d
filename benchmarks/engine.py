"""Engine benchmark: sweep throughput, single-backtest latency and cold start, each against a baseline
measured in the same run on the same machine.

- Sweep: SMA_Crossover, fast 5..50 step 5 × slow 10..200 step 5 (345 valid combinations) on 43,800 hourly
  bars, end to end with metrics (`run_sweep`). Baseline: the naive per-bar loop (`reference_backtest`) on a
  sample of the same combinations, its throughput extrapolated per combination.
- Latency: one `run_backtest` with the default parameters; baseline: the naive loop for the same backtest.
- Cold start: a fresh interpreter that imports the engine and runs its first backtest; baseline: a fresh
  interpreter that only imports numpy and pandas (the floor any pandas-based engine pays).
- Bars identity: `bars_sha256` (what a batch hashes every symbol's bars with) per million bars; baseline:
  `validate_bars` on the same bars, which every load already pays.
- Parameter sets: `run_sets` of explicit parameter sets (what an adaptive search sends); baseline:
  `run_sweep` of a grid of as many combinations. The target (≥ 0.8×) is for the same combinations: the
  grid's own combinations as a shuffled list (SMA_Crossover 345, Hybrid_VCP_Momentum 300). Shown beside
  it, without a target: random distinct sets, which need more distinct indicator windows than a grid of
  the same size (SMA_Crossover in the grid's box; Hybrid_VCP_Momentum with all 30 parameters drawn in
  their whole ranges, where no two sets share an indicator).

    python benchmarks/engine.py [--quick] [--json] [--out FILE]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from bench_output import emit
from tabulate import tabulate

from backtesting_modules import (
    StrategyConfig,
    get_strategy,
    run_backtest,
    run_sets,
    run_sweep,
    synthetic_bars,
    valid_sets,
)
from backtesting_modules.bars import BarArrays
from backtesting_modules.data import bars_sha256, validate_bars
from backtesting_modules.reference import reference_backtest
from backtesting_modules.simulation import SimSettings

GRID = {"fast": list(range(5, 51, 5)), "slow": list(range(10, 201, 5))}
HYBRID_GRID = {
    "contraction_window": list(range(10, 20)),
    "high_period": list(range(15, 30, 3)),
    "buy_threshold": [45, 50, 55, 60, 65, 70],
}
# Costs and a stop on, filters off: every rule the engine has is exercised, and every combination trades.
CONFIG = StrategyConfig(filters=None, min_volume=0.0, position_size_method="percent", position_size_value=1.0)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def bench_sweep(bars: Any, repeats: int, baseline_sample: int) -> dict[str, Any]:
    n = len(bars)
    times, frame = timed(lambda: run_sweep(bars, "SMA_Crossover", GRID, CONFIG), repeats)
    combos = int(frame.attrs["combinations"])
    engine_s = statistics.median(times)
    arrays = BarArrays.from_frame(bars)
    strategy = get_strategy("SMA_Crossover")
    settings = SimSettings.from_config(CONFIG)
    rng = np.random.default_rng(0)
    picks = rng.choice(combos, size=min(baseline_sample, combos), replace=False)

    def naive() -> None:
        for i in picks:
            params = {
                "fast": np.asarray([frame["fast"].iloc[i]]),
                "slow": np.asarray([frame["slow"].iloc[i]]),
            }
            entries, exits = strategy.signals(arrays, params)
            reference_backtest(arrays, entries[:, 0], exits[:, 0], settings)

    naive_s, _ = timed(naive, 1)
    naive_per_combo = naive_s[0] / len(picks)
    return {
        "bars": n,
        "combinations": combos,
        "engine_s": engine_s,
        "engine_min_s": min(times),
        "engine_max_s": max(times),
        "engine_bar_combos_per_s": n * combos / engine_s,
        "engine_backtests_per_s": combos / engine_s,
        "naive_s_per_backtest": naive_per_combo,
        "naive_bar_combos_per_s": n / naive_per_combo,
        "naive_sample": len(picks),
        "speedup": naive_per_combo * combos / engine_s,
    }


def bench_latency(bars: Any, repeats: int) -> dict[str, Any]:
    times, _ = timed(lambda: run_backtest(bars, "SMA_Crossover", None, CONFIG), repeats)
    arrays = BarArrays.from_frame(bars)
    strategy = get_strategy("SMA_Crossover")
    settings = SimSettings.from_config(CONFIG)
    defaults = {k: np.asarray([v]) for k, v in strategy.defaults().items()}

    def naive() -> None:
        entries, exits = strategy.signals(arrays, defaults)
        reference_backtest(arrays, entries[:, 0], exits[:, 0], settings)

    naive_times, _ = timed(naive, max(1, repeats // 5))
    return {
        "engine_ms": 1000 * statistics.median(times),
        "naive_ms": 1000 * statistics.median(naive_times),
        "speedup": statistics.median(naive_times) / statistics.median(times),
    }


def bench_hashing(n_bars: int, repeats: int) -> dict[str, Any]:
    bars = synthetic_bars("KRW-BTC", periods=n_bars, freq="1min", seed=7)
    hash_times, _ = timed(lambda: bars_sha256(bars), repeats)
    validate_times, _ = timed(lambda: validate_bars(bars), repeats)
    per_million = 1e6 / n_bars
    return {
        "bars": n_bars,
        "hash_s_per_million": statistics.median(hash_times) * per_million,
        "validate_s_per_million": statistics.median(validate_times) * per_million,
        "hash_over_validate": statistics.median(hash_times) / statistics.median(validate_times),
    }


def random_sets(
    strategy: str, count: int, box: dict[str, tuple[float, float]] | None, seed: int
) -> list[dict[str, float]]:
    """`count` distinct sets that satisfy the strategy's constraints: the parameters `box` names drawn
    uniformly in its ranges (the others at their defaults), or, with `box=None`, every parameter drawn in
    its Param's whole range."""
    spec, rng = get_strategy(strategy), np.random.default_rng(seed)
    ranges = box if box is not None else {p.name: (p.low, p.high) for p in spec.params}
    kinds = {p.name: p.kind for p in spec.params}
    found: dict[tuple[float, ...], dict[str, float]] = {}
    while len(found) < count:
        sets = [
            {
                n: int(rng.integers(int(lo), int(hi) + 1)) if kinds[n] is int else float(rng.uniform(lo, hi))
                for n, (lo, hi) in ranges.items()
            }
            for _ in range(2 * count)
        ]
        for values, ok in zip(sets, valid_sets(spec, sets), strict=True):
            if ok and len(found) < count:
                found.setdefault(tuple(values.values()), values)
    return list(found.values())


def _interleaved(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each run, the runs alternating so that drifts in the machine hit them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            times[name].extend(timed(fn, 1)[0])
    return {name: statistics.median(t) for name, t in times.items()}


def bench_sets(bars: Any, repeats: int) -> list[dict[str, Any]]:
    """`run_sets` of random distinct sets against `run_sweep` of a grid of as many combinations."""
    grid_rows = run_sweep(bars, "SMA_Crossover", GRID, CONFIG)[["fast", "slow"]].to_dict("records")
    shuffled = [grid_rows[i] for i in np.random.default_rng(1).permutation(len(grid_rows))]
    box = {"fast": (5.0, 50.0), "slow": (10.0, 200.0)}
    hybrid_size = math.prod(len(axis) for axis in HYBRID_GRID.values())  # no constraint among these axes
    hybrid_rows = run_sweep(bars, "Hybrid_VCP_Momentum", HYBRID_GRID, CONFIG)[list(HYBRID_GRID)]
    hybrid_shuffled = hybrid_rows.sample(frac=1.0, random_state=1).to_dict("records")
    cases = [
        ("SMA_Crossover", "the grid's own combinations, shuffled", GRID, shuffled, True),
        ("Hybrid_VCP_Momentum", "the grid's own combinations, shuffled", HYBRID_GRID, hybrid_shuffled, True),
        ("SMA_Crossover", "random distinct sets in the grid's box", GRID,
         random_sets("SMA_Crossover", len(grid_rows), box, seed=7), False),
        ("Hybrid_VCP_Momentum", "random sets, all 30 parameters in their whole ranges", HYBRID_GRID,
         random_sets("Hybrid_VCP_Momentum", hybrid_size, None, seed=7), False),
    ]  # fmt: skip
    out = []
    for strategy, what, grid, sets, target in cases:
        seconds = _interleaved(
            {
                "grid": partial(run_sweep, bars, strategy, grid, CONFIG),
                "sets": partial(run_sets, bars, strategy, sets, CONFIG),
            },
            repeats,
        )
        cells = len(bars) * len(sets)
        out.append(
            {
                "strategy": strategy,
                "sets": what,
                "combinations": len(sets),
                "grid_s": seconds["grid"],
                "sets_s": seconds["sets"],
                "grid_bar_combos_per_s": cells / seconds["grid"],
                "sets_bar_combos_per_s": cells / seconds["sets"],
                "ratio": seconds["grid"] / seconds["sets"],
                "target": target,
            }
        )
    return out


COLD_ENGINE = (
    "import backtesting_modules as bm;"
    "b = bm.synthetic_bars('KRW-BTC', periods=8760, seed=1);"
    "bm.run_backtest(b, 'SMA_Crossover', None, bm.StrategyConfig(filters=None))"
)
COLD_FLOOR = "import numpy, pandas"


def cold(code: str, repeats: int) -> list[float]:
    times = []
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        times.append(time.perf_counter() - start)
    return times


def bench_cold_start(repeats: int) -> dict[str, Any]:
    engine = cold(COLD_ENGINE, repeats)
    floor = cold(COLD_FLOOR, repeats)
    return {
        "engine_s": statistics.median(engine),
        "floor_s": statistics.median(floor),
        "engine_over_floor_s": statistics.median(engine) - statistics.median(floor),
    }


def _rows(result: dict[str, Any]) -> list[list[str]]:
    s, lat, cs, h = result["sweep"], result["latency"], result["cold_start"], result["hashing"]
    return [
        [
            "sweep: bar·combinations/s",
            f"{s['engine_bar_combos_per_s'] / 1e6:,.1f} M",
            f"{s['naive_bar_combos_per_s'] / 1e6:,.3f} M",
            f"{s['speedup']:,.1f}×",
        ],
        [
            "sweep: backtests/s",
            f"{s['engine_backtests_per_s']:,.0f}",
            f"{1 / s['naive_s_per_backtest']:,.1f}",
            "",
        ],
        [
            "sweep: wall time (345 combos)",
            f"{s['engine_s']:.3f} s (min {s['engine_min_s']:.3f}, max {s['engine_max_s']:.3f})",
            f"{s['naive_s_per_backtest'] * s['combinations']:,.1f} s (extrap.)",
            "",
        ],
        [
            "single backtest latency",
            f"{lat['engine_ms']:.1f} ms",
            f"{lat['naive_ms']:.1f} ms",
            f"{lat['speedup']:,.1f}×",
        ],
        [
            "cold start (new process: import + first backtest)",
            f"{cs['engine_s']:.2f} s",
            f"{cs['floor_s']:.2f} s (import numpy, pandas)",
            f"+{cs['engine_over_floor_s']:.2f} s",
        ],
        [
            f"bars identity: sha256 per million bars ({h['bars']:,} measured)",
            f"{h['hash_s_per_million'] * 1000:.1f} ms",
            f"{h['validate_s_per_million'] * 1000:.1f} ms (validate_bars)",
            f"{h['hash_over_validate']:.2f}×",
        ],
        *(
            [
                f"parameter sets: {c['strategy']}, {c['combinations']} {c['sets']} (bar·combinations/s)",
                f"{c['sets_bar_combos_per_s'] / 1e6:,.1f} M (run_sets, {c['sets_s']:.2f} s)",
                f"{c['grid_bar_combos_per_s'] / 1e6:,.1f} M (run_sweep of a grid, {c['grid_s']:.2f} s)",
                f"{c['ratio']:.2f}×",
            ]
            for c in result["sets"]
        ),
    ]


def render(result: dict[str, Any]) -> str:
    s, cs = result["sweep"], result["cold_start"]
    rows = _rows(result)
    targets = [
        f"- sweep target ≥ 20 M bar·combinations/s per core: **{s['engine_bar_combos_per_s'] / 1e6:.1f} M** "
        f"({'met' if s['engine_bar_combos_per_s'] >= 20e6 else 'missed'})",
        f"- cold start target ≤ 1.5 s: **{cs['engine_s']:.2f} s** "
        f"({'met' if cs['engine_s'] <= 1.5 else 'missed'})",
        *(
            f"- parameter sets target ≥ 0.8 × the grid's throughput, {c['strategy']} ({c['sets']}): "
            f"**{c['ratio']:.2f}** ({'met' if c['ratio'] >= 0.8 else 'missed'})"
            for c in result["sets"]
            if c["target"]
        ),
    ]
    return "\n".join(
        [
            "# Engine benchmark",
            "",
            f"{s['bars']:,} hourly synthetic bars (seeded), SMA_Crossover grid fast 5..50/5 × slow 10..200/5 "
            f"({s['combinations']} combinations), commission 0.05 % + slippage 0.1 %, stop loss 8 %, "
            "next-open "
            f"fills, metrics included; one process, one core. Baseline: naive per-bar loop "
            f"({s['naive_sample']} sampled combinations). Python {sys.version.split()[0]}, "
            f"numpy {np.__version__}.",
            "",
            tabulate(rows, headers=["measure", "engine", "baseline", "ratio"], tablefmt="github"),
            "",
            *targets,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer bars and repeats (CI)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--out", help="write the markdown report to this file")
    args = parser.parse_args(argv)
    periods = 8760 if args.quick else 43_800
    repeats = 2 if args.quick else 5
    bars = synthetic_bars("KRW-BTC", periods=periods, freq="1h", seed=2024)
    run_sweep(bars, "SMA_Crossover", {"fast": [5], "slow": [10]}, CONFIG)  # warm caches and imports
    result = {
        "sweep": bench_sweep(bars, repeats, baseline_sample=3 if args.quick else 8),
        "latency": bench_latency(bars, repeats * 4),
        "cold_start": bench_cold_start(2 if args.quick else 5),
        "hashing": bench_hashing(200_000 if args.quick else 1_000_000, repeats + 1),
        "sets": bench_sets(bars, repeats),
    }
    report = render(result)
    emit(report, result, out=args.out, as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
