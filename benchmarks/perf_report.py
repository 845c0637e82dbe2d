"""Summaries and markdown of `performance.py` runs: medians with min and max over repeats, the limiting
part of a distributed run (from measured CPU seconds per process role), mermaid charts, the
github-action-benchmark files and the comparison with a base run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from perf_runs import ROLES, Sample, median, percentile
from tabulate import tabulate

EFFICIENCY_FLOOR = 0.80


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": median(values), "min": min(values), "max": max(values)} if values else {}


def summarize(
    samples: Sequence[Sample], sequential_s: float, engine_ref_s: float | None = None
) -> dict[str, Any]:
    """Medians (with min and max) of repeated runs of one mode, against the median sequential time.

    `engine_ref_s` is the engine time of the same jobs in the sequential run (default: the sequential wall
    time): the pipeline overhead is the distributed wall time minus that engine time spread over the
    workers. The engine time measured inside the workers (`engine_s`) is shown too, but it is wall time
    inside `run_job` and grows when other processes take the CPU, so it is not the reference."""
    walls = [s.wall_s for s in samples]
    wall = median(walls)
    workers = samples[0].workers
    engine = median([s.engine_s for s in samples])
    speedup = sequential_s / wall if wall else math.nan
    out: dict[str, Any] = {
        "mode": samples[0].mode,
        "workers": workers,
        "jobs": samples[0].jobs,
        "backtests": samples[0].backtests,
        "wall_s": spread(walls),
        "backtests_per_s": samples[0].backtests / wall if wall else math.nan,
        "speedup": speedup,
        "efficiency": speedup / workers,
        "engine_s": engine,
    }
    if samples[0].mode == "distributed":
        latency = [v for s in samples for v in s.latency_s]
        wait = [v for s in samples for v in s.queue_wait_s]
        reference = engine_ref_s if engine_ref_s is not None else sequential_s
        ideal = reference / workers
        out["engine_ref_s"] = reference
        out["overhead_s"] = wall - ideal
        out["overhead_pct"] = 100.0 * (wall - ideal) / ideal if ideal else math.nan
        out["latency_s"] = {f"p{q}": percentile(latency, q) for q in (50, 95, 99)}
        out["queue_wait_s"] = {f"p{q}": percentile(wait, q) for q in (50, 95, 99)}
        out["cpu_s"] = {r: median([s.cpu_s.get(r, 0.0) for s in samples]) for r in ROLES}
        out["limit"] = explain(out, os.cpu_count() or 1)
    return out


def explain(run: dict[str, Any], n_cores: int) -> dict[str, Any]:
    """Where the machine's core-seconds went during a distributed run, measured: the engine, the workers'
    own overhead (encoding, storage calls), the CPU of the emulator, collector and driver, and idle time
    (no job to run, waiting on a reply, the tail). The largest non-engine part is named the limit."""
    wall = run["wall_s"]["median"]
    workers = run["workers"]
    cpu = run["cpu_s"]
    engine = run["engine_ref_s"]
    capacity = min(workers, n_cores) * wall  # core-seconds the workers could have used
    parts = {
        "worker overhead (encoding, storage calls, slower engine)": max(0.0, cpu["worker"] - engine),
        "emulator (moto server CPU)": cpu["emulator"],
        "collector": cpu["collector"],
        "driver (upload, submission, progress)": cpu["driver"],
    }
    ours = cpu["worker"] + cpu["emulator"] + cpu["collector"] + cpu["driver"]
    if cpu.get("machine_busy") or cpu.get("machine_idle"):
        parts["other processes on this machine"] = max(0.0, cpu["machine_busy"] - ours)
        parts["idle (no job to run, waiting on replies, tail)"] = cpu["machine_idle"]
    else:  # no /proc/stat: everything not ours counts as idle
        parts["idle (no job to run, waiting on replies, tail)"] = max(0.0, n_cores * wall - ours)
    limit = max(parts, key=lambda k: parts[k])
    return {
        "cores": n_cores,
        "capacity_core_s": capacity,
        "engine_core_s": engine,
        "parts_core_s": parts,
        "limit": limit,
    }


def render_runs(runs: Sequence[dict[str, Any]]) -> str:
    rows = []
    for r in runs:
        w = r["wall_s"]
        rows.append(
            [
                r["mode"] + (f" ({r['workers']} workers)" if r["mode"] == "distributed" else ""),
                f"{w['median']:.2f} s ({w['min']:.2f}–{w['max']:.2f})",
                f"{r['backtests_per_s']:,.0f}",
                f"{60 * r['backtests_per_s']:,.0f}",
                f"{r['speedup']:.2f}×",
                f"{100 * r['efficiency']:.0f} %",
            ]
        )
    headers = ["run", "wall (median, min–max)", "backtests/s", "backtests/min", "speedup", "efficiency"]
    return tabulate(rows, headers=headers, tablefmt="github")


def render_distributed(run: dict[str, Any]) -> str:
    lat, wait = run["latency_s"], run["queue_wait_s"]
    rows = [
        ["engine time of the jobs, sequential run (the reference)", f"{run['engine_ref_s']:.2f} s"],
        ["engine time inside the workers (wall in run_job, summed)", f"{run['engine_s']:.2f} s"],
        ["ideal wall (reference engine time / workers)", f"{run['engine_ref_s'] / run['workers']:.2f} s"],
        [
            "pipeline overhead (wall − ideal)",
            f"{run['overhead_s']:.2f} s ({run['overhead_pct']:.1f} % of ideal)",
        ],
        ["job latency p50 / p95 / p99 (sent → counted)", _triple(lat)],
        ["queue wait p50 / p95 / p99 (sent → started)", _triple(wait)],
    ]
    limit = run["limit"]
    parts = [
        [k, f"{v:.2f}", f"{100 * v / max(limit['cores'] * run['wall_s']['median'], 1e-9):.0f} %"]
        for k, v in sorted(limit["parts_core_s"].items(), key=lambda kv: -kv[1])
    ]
    return "\n".join(
        [
            tabulate(rows, headers=["measure", "value"], tablefmt="github"),
            "",
            f"Where the machine's {limit['cores']} cores × {run['wall_s']['median']:.2f} s went besides the "
            f"engine ({limit['engine_core_s']:.2f} core-s), measured from /proc:",
            "",
            tabulate(parts, headers=["part", "core-seconds", "share of cores × wall"], tablefmt="github"),
            "",
            f"Largest non-engine part: **{limit['limit']}**.",
        ]
    )


def _triple(values: dict[str, float]) -> str:
    return " / ".join(f"{values[k]:.2f}" for k in ("p50", "p95", "p99")) + " s"


def render_scalability(cells: Sequence[dict[str, Any]]) -> str:
    rows = []
    for c in cells:
        note = "" if c["efficiency"] >= EFFICIENCY_FLOOR else f"limit: {c['limit']['limit']}"
        rows.append(
            [
                f"{c['backtests']:,}",
                c["jobs"],
                c["workers"],
                f"{c['sequential_s']:.2f}",
                f"{c['wall_s']['median']:.2f}",
                f"{c['backtests_per_s']:,.0f}",
                f"{c['speedup']:.2f}×",
                f"{100 * c['efficiency']:.0f} %",
                note,
            ]
        )
    headers = [
        "backtests",
        "jobs",
        "workers",
        "sequential s",
        "distributed s",
        "backtests/s",
        "speedup",
        "efficiency",
        "below 80 %: measured limit",
    ]
    return tabulate(rows, headers=headers, tablefmt="github")


def render_charts(cells: Sequence[dict[str, Any]]) -> str:
    """Mermaid xy charts: throughput and efficiency by batch size, one line per worker count."""
    workers = sorted({c["workers"] for c in cells})
    sizes = sorted({(c["backtests"], c["jobs"]) for c in cells})
    labels = ", ".join(f'"{b:,}/{j}"' for b, j in sizes)
    out = []
    for title, key, scale, unit in (
        ("Throughput (backtests/s)", "backtests_per_s", 1.0, "backtests/s"),
        ("Parallel efficiency (%)", "efficiency", 100.0, "%"),
    ):
        lines = [
            "```mermaid",
            "xychart-beta",
            f'    title "{title}: one line per worker count"',
            f"    x-axis [{labels}]",
            f'    y-axis "{unit}"',
        ]
        for w in workers:
            by_size = {(c["backtests"], c["jobs"]): c[key] * scale for c in cells if c["workers"] == w}
            values = ", ".join(f"{by_size.get(s, 0):.0f}" for s in sizes)
            lines.append(f"    line [{values}]")
        lines.append("```")
        out.append("\n".join(lines))
    legend = ", ".join(f"line {i + 1}: {w} worker(s)" for i, w in enumerate(workers))
    return "\n\n".join(out) + f"\n\nx axis: backtests/jobs; {legend}."


# ------------------------------------------------------------------------------ github-action-benchmark


def action_benchmark(result: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(customBiggerIsBetter, customSmallerIsBetter) entries of github-action-benchmark."""
    bigger, smaller = [], []
    for run in result["runs"]:
        name = run["mode"] + (f" {run['workers']}w" if run["mode"] == "distributed" else "")
        w = run["wall_s"]
        band = f"{w['min']:.3f}–{w['max']:.3f} s"
        bigger.append(
            {
                "name": f"{name} throughput",
                "unit": "backtests/s",
                "value": round(run["backtests_per_s"], 1),
                "extra": f"wall {band}",
            }
        )
        smaller.append({"name": f"{name} wall", "unit": "s", "value": round(w["median"], 3), "range": band})
        if run["mode"] == "distributed":
            bigger.append({"name": f"{name} speedup", "unit": "x", "value": round(run["speedup"], 3)})
            smaller.append({"name": f"{name} overhead", "unit": "%", "value": round(run["overhead_pct"], 2)})
            smaller.append(
                {"name": f"{name} job latency p95", "unit": "s", "value": round(run["latency_s"]["p95"], 3)}
            )
    return bigger, smaller


# ---------------------------------------------------------------------------------------------- compare


def compare(head: dict[str, Any], base: dict[str, Any], threshold: float) -> tuple[str, list[str]]:
    """Head against base, mode by mode: wall-time ratio, the noise band (the larger relative min–max spread
    of the two sides) and a regression mark when head is slower by more than threshold + noise."""
    base_runs = {(r["mode"], r["workers"]): r for r in base.get("runs", [])}
    rows, regressions = [], []
    for run in head["runs"]:
        key = (run["mode"], run["workers"])
        old = base_runs.get(key)
        if old is None:
            continue
        new_w, old_w = run["wall_s"], old["wall_s"]
        ratio = new_w["median"] / old_w["median"]
        noise = max(_relative_spread(new_w), _relative_spread(old_w))
        slower = ratio > 1.0 + threshold + noise
        faster = ratio < 1.0 - threshold - noise
        mark = "regression" if slower else ("faster" if faster else "within noise")
        label = f"{key[0]} ({key[1]} workers)"
        if slower:
            regressions.append(
                f"{label}: {ratio:.2f}× the base wall time (threshold {threshold:.0%} + noise {noise:.0%})"
            )
        rows.append(
            [
                label,
                f"{old_w['median']:.2f} s",
                f"{new_w['median']:.2f} s",
                f"{ratio:.2f}×",
                f"±{noise:.0%}",
                mark,
            ]
        )
    headers = ["run", "base wall", "head wall", "head / base", "noise band", "verdict"]
    return tabulate(rows, headers=headers, tablefmt="github"), regressions


def _relative_spread(w: dict[str, float]) -> float:
    return (w["max"] - w["min"]) / w["median"] if w.get("median") else 0.0
