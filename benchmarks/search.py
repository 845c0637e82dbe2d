"""Search benchmark: TPE against random search, and the workers' idle time during a search (vs baselines).

- Samplers, in one process: Hybrid_VCP_Momentum, all 30 parameters searched, on seeded synthetic hourly bars;
  objective: the Sharpe ratio on the last 30 % of the bars (indicators warming up before), under 5 trades
  "few_trades" (`SearchDriver._score`'s rule). TPE against random search (the baseline), the same budget,
  wave size and seeds, each driven through `SearchStudy` as the driver does (one `run_sets` per wave, one
  wave outstanding): the best objective at 25/50/100 % of the budget, the trial the final best was found
  at, and the sampler's time (ask + tell) per trial against the engine's.
- Pipeline: a TPE search with `execute_search` on a fresh embedded default (2 local workers): idle = 1 −
  Σ busy / (workers × span), busy = the union of each worker's [started_at, finished_at] job intervals,
  span = first start to last finish. Baseline: the same budget as one wave of random trials. Target ≤ 10 %.

    python benchmarks/search.py [--quick] [--json] [--out FILE] [--only samplers|pipeline]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from bench_output import emit
from tabulate import tabulate

from backtesting_modules import StrategyConfig, get_strategy, run_sets, synthetic_bars
from backtesting_modules.jobs.spec import BatchSpec, SearchMethod, SearchRange, SearchSpec, parse_spec
from backtesting_modules.pipeline.records import JobRecord
from backtesting_modules.windows import TradeWindow
from opslib.batch.search import execute_search
from opslib.batch.search_sampler import SearchStudy, TrialRecord
from opslib.batch.submitter import Submitter
from opslib.local.emulator import Emulator
from opslib.local.testbed import Testbed

STRATEGY = "Hybrid_VCP_Momentum"
METHODS = (SearchMethod.TPE, SearchMethod.RANDOM)
MIN_TRADES = 5
TEST_FRACTION = 0.3
CHECKPOINTS = (0.25, 0.5, 1.0)
TARGET_IDLE = 0.10
CONFIG = StrategyConfig(filters=None, min_volume=0.0)


@dataclass(frozen=True)
class SamplerSetup:
    bars: int
    budget: int
    wave: int
    seeds: tuple[int, ...]
    data_seed: int = 7


@dataclass(frozen=True)
class PipelineSetup:
    periods: int
    trials: int  # per symbol
    symbols: tuple[str, ...] = ("KRW-BTC", "KRW-ETH")
    workers: int = 2
    timeout_s: float = 600.0


# The pipeline part runs on four years of hourly bars: on one year a trial's backtest (~3 ms) is so short
# that fixed latencies and the sampler's own time decide everything.
FULL = (SamplerSetup(8760, 400, 16, (1, 2, 3, 4, 5)), PipelineSetup(35_040, 300))
QUICK = (SamplerSetup(3000, 96, 8, (1, 2)), PipelineSetup(3000, 40))


# --- part A: the samplers, in process ---------------------------------------------------------------------


def full_space(strategy: str) -> tuple[tuple[str, SearchRange], ...]:
    """Every parameter of the strategy searched over its whole range (integers in steps of 1)."""
    return tuple(
        (p.name, SearchRange(float(p.low), float(p.high), step=1.0 if p.kind is int else None))
        for p in get_strategy(strategy).params
    )


def score_wave(wave: list[TrialRecord], frame: pd.DataFrame) -> None:
    """The driver's scoring of one window (`SearchDriver._score`): the Sharpe ratio, or "few_trades"
    under MIN_TRADES trades or without a finite Sharpe ratio."""
    for trial, sharpe, trades in zip(wave, frame["sharpe"], frame["trades"], strict=True):
        trial.folds = [float(sharpe) if np.isfinite(sharpe) else None]
        trial.trades = float(trades) if np.isfinite(trades) else 0.0
        if trial.trades < MIN_TRADES or not np.isfinite(sharpe):
            trial.state = "few_trades"
        else:
            trial.state, trial.objective = "complete", float(sharpe)


def run_study(method: SearchMethod, seed: int, bars: pd.DataFrame, setup: SamplerSetup) -> dict[str, Any]:
    """One search to its budget, one wave outstanding as in the pipeline: wave k+1 is asked while wave k
    is "running" (untold), then wave k is backtested and told."""
    search = SearchSpec(method, setup.budget, full_space(STRATEGY), seed=seed)
    study = SearchStudy(STRATEGY, "SYNTH-KRW", search, fixed={}, maximize=True)
    window = TradeWindow(bars.index[int(len(bars) * (1 - TEST_FRACTION))], None)
    clock = {"sampler_s": 0.0, "engine_s": 0.0}

    def timed(key: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        out = call(*args, **kwargs)
        clock[key] += time.perf_counter() - started
        return out

    flight = [timed("sampler_s", study.ask_wave, setup.wave)]
    while flight:
        following = timed("sampler_s", study.ask_wave, setup.wave)
        flight += [following] if following else []
        wave = flight.pop(0)
        sets = [t.params for t in wave]
        score_wave(wave, timed("engine_s", run_sets, bars, STRATEGY, sets, CONFIG, window=window))
        timed("sampler_s", study.tell_wave, wave)
    few = sum(1 for t in study.trials if t.state == "few_trades")
    curve, pruned = list(study.best_by_trial), study.pruned
    return {
        "seed": seed,
        "trials": len(study.trials),
        "curve": curve,
        "pruned": pruned,
        "few_trades": few,
        **clock,
    }


def found_at(curve: list[float | None]) -> int | None:
    """The (1-based) trial at which the final best objective was first reached."""
    final = curve[-1] if curve else None
    return None if final is None else next(i + 1 for i, value in enumerate(curve) if value == final)


def spread(values: list[float | None]) -> dict[str, Any]:
    """Median, min and max of the values that exist (None where no seed has one), and how many do."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known:
        return {"median": None, "min": None, "max": None, "seeds": 0}
    return {"median": float(np.median(known)), "min": min(known), "max": max(known), "seeds": len(known)}


def summarise_method(runs: list[dict[str, Any]], budget: int) -> dict[str, Any]:
    checkpoints: dict[str, Any] = {}
    for fraction in CHECKPOINTS:
        trial = max(1, math.ceil(fraction * budget))
        values = [r["curve"][min(trial, len(r["curve"])) - 1] if r["curve"] else None for r in runs]
        checkpoints[f"{fraction:.0%}"] = {"trial": trial, **spread(values)}
    trials = sum(r["trials"] for r in runs)
    found = [f for r in runs if (f := found_at(r["curve"])) is not None]
    return {
        "checkpoints": checkpoints,
        "found_at_median": float(np.median(found)) if found else None,
        "pruned_median": float(np.median([r["pruned"] for r in runs])),
        "few_trades_share": sum(r["few_trades"] for r in runs) / max(1, trials),
        "sampler_s_per_trial": sum(r["sampler_s"] for r in runs) / max(1, trials),
        "engine_s_per_trial": sum(r["engine_s"] for r in runs) / max(1, trials),
        "runs": runs,
    }


def winners(methods: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per checkpoint: the method with the higher median best objective, and whether the seeds' min–max
    ranges overlap (then a handful of seeds does not separate them)."""
    out: dict[str, dict[str, Any]] = {}
    for label in (f"{f:.0%}" for f in CHECKPOINTS):
        cells = {name: m["checkpoints"][label] for name, m in methods.items()}
        ranked = sorted((c["median"], name) for name, c in cells.items() if c["median"] is not None)
        if len(ranked) < 2:
            out[label] = {"winner": ranked[-1][1] if ranked else None, "overlap": True}
            continue
        (low, loser), (high, leader) = ranked[0], ranked[-1]
        overlap = cells[leader]["min"] <= cells[loser]["max"]
        out[label] = {"winner": "tie" if high == low else leader, "overlap": overlap}
    return out


def compare_samplers(setup: SamplerSetup) -> dict[str, Any]:
    bars = synthetic_bars("SYNTH-KRW", periods=setup.bars, seed=setup.data_seed)
    methods: dict[str, dict[str, Any]] = {}
    for method in METHODS:
        runs = [run_study(method, seed, bars, setup) for seed in setup.seeds]
        methods[method.value] = summarise_method(runs, setup.budget)
    return {
        **asdict(setup),
        "test_bars": len(bars) - int(len(bars) * (1 - TEST_FRACTION)),
        "params": len(get_strategy(STRATEGY).params),
        "methods": methods,
        "winners": winners(methods),
    }


# --- part B: the pipeline's idle time during a search ------------------------------------------------------


def pipeline_spec(setup: PipelineSetup, method: str, trials: int, wave: int | None, seed: int) -> BatchSpec:
    search = {"method": method, "trials": trials, "seed": seed} | ({} if wave is None else {"wave": wave})
    return parse_spec(
        {
            "name": "search-benchmark",
            "job_type": "PARAMETER_OPTIMIZATION",
            "symbols": list(setup.symbols),
            "data": {"source": "synthetic", "seed": 11, "periods": setup.periods},
            "config": {"filters": None, "min_volume": 0.0},
            "strategies": [{"name": STRATEGY, "search": search}],
            "ranking": {"metric": "sharpe", "top": 5, "min_trades": MIN_TRADES},
            "validation": {"holdout": {"fraction": TEST_FRACTION}},
        }
    )


def merged_seconds(intervals: list[tuple[float, float]]) -> float:
    """The length of the union of the intervals."""
    total, end = 0.0, -math.inf
    for start, stop in sorted(intervals):
        total += max(0.0, stop - max(start, end))
        end = max(end, stop)
    return total


def idle_share(jobs: list[JobRecord], workers: int) -> dict[str, float]:
    """Worker idle time as a share of the run, from the job records (see the module docstring); `engine
    share` is Σ duration_s over the same workers × span (the engine's own time, without the per-job
    overhead the records' intervals include)."""
    ran = [j for j in jobs if j.started_at and j.finished_at and j.worker]
    spans: dict[str, list[tuple[float, float]]] = {}
    for job in ran:
        start = datetime.fromisoformat(str(job.started_at)).timestamp()
        stop = datetime.fromisoformat(str(job.finished_at)).timestamp()
        spans.setdefault(str(job.worker), []).append((start, stop))
    if not spans:
        return {"span_s": 0.0, "busy_s": 0.0, "idle_share": 1.0, "engine_share": 0.0, "engine_s": 0.0}
    first = min(s for runs in spans.values() for s, _ in runs)
    last = max(e for runs in spans.values() for _, e in runs)
    span = max(last - first, 1e-9)
    busy = sum(merged_seconds(runs) for runs in spans.values())
    engine = sum(float(j.duration_s or 0.0) for j in ran)
    capacity = workers * span
    shares = {
        "idle_share": min(1.0, max(0.0, 1.0 - busy / capacity)),
        "engine_share": min(1.0, engine / capacity),
    }
    return {"span_s": span, "busy_s": busy, "engine_s": engine, **shares}


def run_search(bed: Testbed, spec: BatchSpec, setup: PipelineSetup, salt: str) -> dict[str, Any]:
    """One search through the pipeline (nothing reused: a salt of its own, reuse off), measured."""
    submitter = Submitter(bed.clients, bed.names, bed.urls)
    started = time.perf_counter()
    outcome = execute_search(
        submitter, spec, consumers=setup.workers, timeout_s=setup.timeout_s, salt=salt, reuse=False
    )
    wall = time.perf_counter() - started
    jobs = bed.store.list_jobs(outcome.train.batch_id)
    studies = outcome.document["studies"]
    item = spec.strategies[0].search
    assert item is not None
    sizes = Counter((i, t["wave"]) for i, s in enumerate(studies) for t in s["trials"])  # trials per wave
    return {
        "method": item.method.value,
        "trials": sum(s["trials_run"] for s in studies),
        "waves": outcome.document["waves"],
        "wave_size": max(sizes.values()),
        "jobs": len(jobs),
        "failed_jobs": sum(1 for j in jobs if j.error),
        "wall_s": wall,
        "sampler_s": sum(s["sampler_seconds"] for s in studies),  # the driver's asks and tells
        **idle_share(jobs, setup.workers),
    }


@contextmanager
def testbed(workers: int) -> Iterator[Testbed]:
    """A fresh in-memory emulator (no state folder: nothing from earlier runs), a stack, `workers` worker
    processes and the collector; everything stopped and the environment restored on exit."""
    saved = dict(os.environ)
    server = Emulator().start()
    try:
        with tempfile.TemporaryDirectory(prefix="search-bench-") as work:
            bed = Testbed.create(server, "searchbench", Path(work))
            try:
                bed.start_workers(workers)
                bed.start_collector()
                yield bed
            finally:
                bed.stop()
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)


def measure_pipeline(setup: PipelineSetup) -> dict[str, Any]:
    """Warm-up (bars uploaded, workers' first jobs), then the adaptive search, then the one-wave baseline."""
    started = time.perf_counter()
    with testbed(setup.workers) as bed:
        startup = time.perf_counter() - started
        run_search(bed, pipeline_spec(setup, "random", 4, 4, seed=99), setup, salt="warm-up")
        search = run_search(bed, pipeline_spec(setup, "tpe", setup.trials, None, seed=1), setup, "search")
        waves = run_search(bed, pipeline_spec(setup, "random", setup.trials, None, seed=3), setup, "waves")
        baseline = run_search(
            bed, pipeline_spec(setup, "random", setup.trials, setup.trials, seed=2), setup, "one-wave"
        )
    extra, met = search["idle_share"] - baseline["idle_share"], search["idle_share"] <= TARGET_IDLE
    parts = {"search": search, "waves": waves, "baseline": baseline}
    return {**asdict(setup), "startup_s": startup, **parts} | {
        "extra_idle": extra,
        "target_idle": TARGET_IDLE,
        "met": met,
    }


# --- the report ---------------------------------------------------------------------------------------------


def _cell(cell: dict[str, Any]) -> str:
    if cell["median"] is None:
        return "— (no scored trial)"
    return f"{cell['median']:.3f} ({cell['min']:.3f}–{cell['max']:.3f}, {cell['seeds']} seeds)"


def render_samplers(part: dict[str, Any]) -> list[str]:
    labels = [f"{f:.0%}" for f in CHECKPOINTS]
    first = next(iter(part["methods"].values()))["checkpoints"]
    headers = ["method", *[f"best at {label} (trial {first[label]['trial']})" for label in labels]]
    headers += ["final best found at trial", "rejected proposals", "few-trade trials"]
    headers += ["sampler s/trial", "engine s/trial", "sampler ÷ engine"]
    rows = [
        [
            name + (" (baseline)" if name == SearchMethod.RANDOM.value else ""),
            *[_cell(m["checkpoints"][label]) for label in labels],
            "—" if m["found_at_median"] is None else f"{m['found_at_median']:.0f}",
            f"{m['pruned_median']:.0f}",
            f"{m['few_trades_share']:.0%}",
            f"{m['sampler_s_per_trial'] * 1000:.1f} ms",
            f"{m['engine_s_per_trial'] * 1000:.1f} ms",
            f"{m['sampler_s_per_trial'] / max(m['engine_s_per_trial'], 1e-12):.2f}×",
        ]
        for name, m in part["methods"].items()
    ]
    lines = [
        "## Samplers: TPE against random search (in process)",
        "",
        f"{STRATEGY}, all {part['params']} parameters searched over their whole ranges; {part['bars']:,} "
        f"seeded synthetic hourly bars; objective: the Sharpe ratio on the last {part['test_bars']:,} bars "
        f"({TEST_FRACTION:.0%}, indicators warming up on the bars before), a trial under {MIN_TRADES} trades "
        f"counted without an objective. Budget {part['budget']} trials per search in waves of "
        f"{part['wave']}, one wave outstanding (as the driver); sampler seeds {list(part['seeds'])}, the "
        "same for both methods. Cells: median (min–max) over the seeds. Rejected proposals: asked, refused "
        "by the strategy's constraints, not counted (median per search). Times: wall seconds per counted "
        "trial, ask + tell against `run_sets`.",
        "",
        tabulate(rows, headers=headers, tablefmt="github"),
        "",
    ]
    return [*lines, *(_verdict_line(label, v, part) for label, v in part["winners"].items()), ""]


def _verdict_line(label: str, verdict: dict[str, Any], part: dict[str, Any]) -> str:
    medians = ", ".join(
        f"{name} {m['checkpoints'][label]['median']:.3f}"
        for name, m in part["methods"].items()
        if m["checkpoints"][label]["median"] is not None
    )
    winner = verdict["winner"]
    if winner is None:
        return f"- at {label} of the budget: no method has a scored trial yet"
    said = "a tie" if winner == "tie" else f"**{winner}** leads"
    caveat = (
        f"; the seeds' ranges overlap, so {len(part['seeds'])} seeds do not separate the methods"
        if verdict["overlap"]
        else "; the ranges do not overlap"
    )
    return f"- at {label} of the budget: {said} (medians: {medians}){caveat}"


def _per_trial(run: dict[str, Any]) -> str:
    return f"{run['engine_s'] / max(1, run['trials']) * 1000:.1f} ms"


def render_pipeline(part: dict[str, Any]) -> list[str]:
    headers = ["run", "sampler", "trials", "waves", "wave size", "jobs", "failed", "wall s", "span s"]
    headers += ["Σ engine s", "driver sampler s", "worker idle", "engine share"]
    runs = {
        "adaptive search (tpe, default waves)": part["search"],
        "the same waves, random sampler": part["waves"],
        "baseline: one wave": part["baseline"],
    }
    rows = [
        [name, r["method"], *(r[k] for k in ("trials", "waves", "wave_size")), r["jobs"], r["failed_jobs"]]
        + [f"{r[k]:.2f}" for k in ("wall_s", "span_s", "engine_s", "sampler_s")]
        + [f"**{r['idle_share']:.1%}**", f"{r['engine_share']:.1%}"]
        for name, r in runs.items()
    ]
    search = part["search"]
    verdict = "met" if part["met"] else "missed"
    return [
        "## Worker idle time during a search (pipeline)",
        "",
        f"{STRATEGY} (all parameters), {len(part['symbols'])} symbols × {part['periods']:,} synthetic hourly "
        f"bars, holdout {TEST_FRACTION:.0%}, budget {part['trials']} trials per symbol; the embedded "
        f"default with a fresh in-memory emulator, {part['workers']} local worker processes and the "
        f"collector (started in {part['startup_s']:.1f} s, then a one-wave warm-up batch). Idle = 1 − Σ "
        "busy / (workers × span), busy = each worker's [started_at, finished_at] (marked running → the "
        "collector's record of its outcome, so a job's upload and the collector's delay count as busy); "
        "engine share = Σ engine seconds / (workers × span). Waves: rounds told, each asking every study.",
        "",
        tabulate(rows, headers=headers, tablefmt="github"),
        "",
        f"- target: ≤ {TARGET_IDLE:.0%} worker idle during a search with {part['workers']} local workers: "
        f"**{search['idle_share']:.1%}** ({verdict}); the one-wave baseline "
        f"{part['baseline']['idle_share']:.1%}, so the search's waves add "
        f"**{part['extra_idle'] * 100:+.1f} points** of idle",
        f"- the waves themselves, with a sampler that costs little (random, the same wave sizes): "
        f"**{part['waves']['idle_share']:.1%}** idle: what the wave barrier and the driver's turnaround "
        "cost; the rest of TPE's idle is its sampler",
        f"- the driver's sampler (ask + tell) took {search['sampler_s']:.2f} s of the search's "
        f"{search['wall_s']:.2f} s wall time ({search['sampler_s'] / max(search['wall_s'], 1e-9):.0%}), "
        f"on the same {os.cpu_count()} cores as the workers",
        f"- engine time per trial in the workers (Σ engine ÷ trials): search {_per_trial(search)}, baseline "
        f"{_per_trial(part['baseline'])}",
        "",
    ]


def render(result: dict[str, Any]) -> str:
    mode = "quick" if result["quick"] else "full"
    lines = [
        "# Search benchmark",
        "",
        f"Mode {mode}; {os.cpu_count()} cores; Python {sys.version.split()[0]}, optuna {optuna.__version__}, "
        f"numpy {np.__version__}; {result['elapsed_s']:.0f} s in all.",
        "",
    ]
    if "samplers" in result:
        lines += render_samplers(result["samplers"])
    if "pipeline" in result:
        lines += render_pipeline(result["pipeline"])
    return "\n".join(lines)


def run(quick: bool, *, samplers: bool = True, pipeline: bool = True) -> dict[str, Any]:
    sampler_setup, pipeline_setup = QUICK if quick else FULL
    started = time.perf_counter()
    result: dict[str, Any] = {"quick": quick}
    if samplers:
        result["samplers"] = compare_samplers(sampler_setup)
    if pipeline:
        result["pipeline"] = measure_pipeline(pipeline_setup)
    result["elapsed_s"] = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer bars, trials and seeds (under a minute)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--out", help="write the markdown report to this file")
    parser.add_argument("--only", choices=("samplers", "pipeline"), help="run one part only")
    args = parser.parse_args(argv)
    result = run(args.quick, samplers=args.only != "pipeline", pipeline=args.only != "samplers")
    report = render(result)
    emit(report, result, out=args.out, as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
