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

    python benchmarks/engine.py [--quick] [--json] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from backtesting_modules import StrategyConfig, get_strategy, run_backtest, run_sweep, synthetic_bars
from backtesting_modules.bars import BarArrays
from backtesting_modules.data import bars_sha256, validate_bars
from backtesting_modules.reference import reference_backtest
from backtesting_modules.simulation import SimSettings

GRID = {"fast": list(range(5, 51, 5)), "slow": list(range(10, 201, 5))}
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
    ]


def render(result: dict[str, Any]) -> str:
    s, cs = result["sweep"], result["cold_start"]
    rows = _rows(result)
    targets = [
        f"- sweep target ≥ 20 M bar·combinations/s per core: **{s['engine_bar_combos_per_s'] / 1e6:.1f} M** "
        f"({'met' if s['engine_bar_combos_per_s'] >= 20e6 else 'missed'})",
        f"- cold start target ≤ 1.5 s: **{cs['engine_s']:.2f} s** "
        f"({'met' if cs['engine_s'] <= 1.5 else 'missed'})",
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
    }
    report = render(result)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report, encoding="utf-8")
    print(report)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
