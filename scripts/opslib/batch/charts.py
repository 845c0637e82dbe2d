"""The batch report's PNG charts (docs/reports.md), drawn with matplotlib on the driver (never in the Lambda
layer) from `report_rows`' figures: a heatmap of the ranking metric per pair of grid axes (a line for a
single axis) with the winner marked, the winners' equity and drawdown against buy and hold, and the
metric's distribution per strategy. `render_charts` writes them beside report.md and returns the markdown
that shows them; where a chart cannot be drawn the report says why in words.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from backtesting_modules.pipeline.records import BatchRecord
from backtesting_modules.pipeline.store import Store

from .report_rows import (
    Curve,
    Grid,
    GridNote,
    compute_aggregates,
    compute_curves,
    compute_distributions,
    compute_grids,
    load_rows,
)
from .report_sessions import compute_gating, compute_sessions, render_gating, render_sessions

DPI = 110
WINNER_COLOUR = "#d62728"


@dataclass
class Visuals:
    """Everything the charts and the HTML report show, computed once per report."""

    metric: str
    higher: bool
    grids: list[Grid] = field(default_factory=list)
    notes: list[GridNote] = field(default_factory=list)
    distributions: dict[str, np.ndarray] = field(default_factory=dict)
    curves: list[Curve] = field(default_factory=list)
    aggregates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rows: int = 0
    seconds: float = 0.0  # what computing them took (rows read, winners run again)
    test_windows: list[tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=list)  # shaded on curves
    sessions: dict[str, pd.DataFrame] = field(default_factory=dict)  # timezone runs, merged (report_sessions)
    zone: str = ""
    session_runs: int = 0
    gating: list[dict[str, Any]] = field(default_factory=list)  # PERFORMANCE_COMPARISON: ungated vs gated


def compute_visuals(
    store: Store,
    batch: BatchRecord,
    summary: dict[str, Any],
    *,
    higher: bool,
    validation: dict[str, Any] | None = None,
) -> Visuals:
    """Read every stored row of the batch and compute the charts' figures (the winners are the summary's
    top rows, run again on the batch's bars; a validated sweep's test windows are shaded on their curves:
    the winners were chosen on the bars before them)."""
    started = time.perf_counter()
    metric = summary["ranking"]["metric"]
    rows = load_rows(store, batch.batch_id)
    grids, notes = compute_grids(rows, metric, higher)
    visuals = Visuals(metric, higher, grids, notes, compute_distributions(rows, metric), rows=len(rows))
    visuals.curves = compute_curves(store, batch, summary["ranking"]["top"])
    visuals.aggregates = {
        "strategy": compute_aggregates(rows, "strategy", metric, higher),
        "symbol": compute_aggregates(rows, "symbol", metric, higher),
    }
    visuals.sessions, visuals.zone = compute_sessions(rows)
    visuals.session_runs = int(rows["extras"].notna().sum()) if visuals.sessions and "extras" in rows else 0
    visuals.gating = compute_gating(rows, metric)
    for fold in (validation or {}).get("folds", []):
        visuals.test_windows.append((pd.Timestamp(fold["test_start"]), pd.Timestamp(fold["test_stop"])))
    visuals.seconds = time.perf_counter() - started
    return visuals


def render_charts(visuals: Visuals, out_dir: Path) -> str:
    """Write the PNGs into `out_dir` and return the report's Charts section (markdown): one figure per
    (strategy, symbol) with a panel per pair of axes, the winners' curves, the distributions."""
    started = time.perf_counter()
    lines = ["## Charts", ""]
    for (strategy, symbol), grids in group_grids(visuals.grids).items():
        name = _file_name("grid", strategy, symbol)
        _save(draw_grids(grids, visuals.metric, visuals.higher), out_dir / name)
        lines += [f"![{strategy} {symbol}: {visuals.metric} over its grid]({name})", ""]
    for note in visuals.notes:
        lines += [f"- {note.strategy} on {note.symbol}: {note.why}.", ""]
    if visuals.curves:
        name = "winners.png"
        _save(draw_curves(visuals.curves, visuals.test_windows), out_dir / name)
        lines += [f"![equity and drawdown of the top {len(visuals.curves)} against buy and hold]({name})", ""]
    if any(v.size for v in visuals.distributions.values()):
        name = "distribution.png"
        _save(draw_distributions(visuals.distributions, visuals.metric), out_dir / name)
        lines += [f"![distribution of {visuals.metric} per strategy]({name})", ""]
    took = visuals.seconds + time.perf_counter() - started
    lines.append(
        f"Charts from {visuals.rows:,} stored rows, the winners run again on the batch's bars: {took:.2f} s."
    )
    for section in (
        render_sessions(visuals.sessions, visuals.zone, visuals.session_runs),
        render_gating(visuals.gating, visuals.metric),
    ):
        if section:
            lines += ["", section]
    return "\n".join(lines) + "\n"


def group_grids(grids: list[Grid]) -> dict[tuple[str, str], list[Grid]]:
    out: dict[tuple[str, str], list[Grid]] = {}
    for grid in grids:
        out.setdefault((grid.strategy, grid.symbol), []).append(grid)
    return out


def _file_name(*parts: str) -> str:
    text = "-".join(p.removeprefix("param.") for p in parts if p)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) + ".png"


def _save(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(figure)


def _axes_title(grid: Grid) -> str:
    if grid.y is None:
        return f"{grid.x.removeprefix('param.')} (one axis: a line)"
    others = f", best over {grid.others} other axes" if grid.others else ""
    return f"{grid.x.removeprefix('param.')} × {grid.y.removeprefix('param.')}{others}"


def _ticks(values: list[float], most: int = 16) -> tuple[list[int], list[str]]:
    step = max(1, math.ceil(len(values) / most))
    picked = list(range(0, len(values), step))
    return picked, [f"{values[i]:g}" for i in picked]


def draw_grids(grids: list[Grid], metric: str, higher: bool) -> Figure:
    """One (strategy, symbol): a heatmap per pair of axes (a line for a single axis), winners marked red."""
    columns = min(3, len(grids))
    rows = math.ceil(len(grids) / columns)
    figure, panels = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.0 * rows), squeeze=False)
    for axes, grid in zip(panels.flat, grids, strict=False):
        if grid.y is None:
            _line_panel(axes, grid, metric)
        else:
            _heat_panel(figure, axes, grid, metric, higher)
        axes.set_title(_axes_title(grid), fontsize="medium")
    for axes in list(panels.flat)[len(grids) :]:
        axes.set_visible(False)
    figure.suptitle(f"{grids[0].strategy} on {grids[0].symbol}: {metric} (red star: the winner)")
    figure.tight_layout()
    return figure


def _heat_panel(figure: Figure, axes: Any, grid: Grid, metric: str, higher: bool) -> None:
    assert grid.y is not None
    masked = np.ma.masked_invalid(grid.values)
    image = axes.imshow(masked, origin="lower", aspect="auto", cmap="viridis" if higher else "viridis_r")
    figure.colorbar(image, ax=axes, label=metric)
    xs, x_labels = _ticks(grid.x_values)
    ys, y_labels = _ticks(grid.y_values)
    axes.set_xticks(xs, x_labels, rotation=90 if len(xs) > 8 else 0, fontsize="small")
    axes.set_yticks(ys, y_labels, fontsize="small")
    axes.set_xlabel(grid.x.removeprefix("param."))
    axes.set_ylabel(grid.y.removeprefix("param."))
    if grid.best is not None:
        row, column = grid.best
        axes.scatter([column], [row], marker="*", s=220, c=WINNER_COLOUR, edgecolors="white")


def _line_panel(axes: Any, grid: Grid, metric: str) -> None:
    axes.plot(grid.x_values, grid.values, marker="o", lw=1.5)
    if grid.best is not None:
        best = grid.best[1]
        axes.scatter([grid.x_values[best]], [grid.values[best]], marker="*", s=220, c=WINNER_COLOUR, zorder=3)
    axes.set_xlabel(grid.x.removeprefix("param."))
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)


def draw_curves(
    curves: list[Curve], test_windows: Sequence[tuple[pd.Timestamp, pd.Timestamp]] = ()
) -> Figure:
    """Equity (growth of 1) of each winner and of buy and hold of its symbol, and the winners' drawdowns;
    test windows shaded (the winners were chosen without them)."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, height_ratios=(3, 1.3))
    for i, (start, stop) in enumerate(test_windows):
        for axes in (top, bottom):
            label = "out of sample (test window)" if i == 0 and axes is top else None
            axes.axvspan(start, stop, color="#ffd54f", alpha=0.25, lw=0, label=label)
    held: set[str] = set()
    for curve in curves:
        top.plot(curve.index, curve.equity, lw=1.3, label=f"{curve.label}")
        bottom.plot(curve.index, curve.drawdown * 100, lw=1.0)
        if curve.symbol not in held:
            held.add(curve.symbol)
            top.plot(
                curve.index,
                curve.buy_and_hold,
                lw=1.0,
                ls="--",
                c="grey",
                label=f"buy and hold {curve.symbol}",
            )
    top.set_ylabel("growth of 1")
    top.legend(fontsize="small", loc="upper left")
    top.grid(alpha=0.3)
    top.set_title("Top winners against buy and hold (same bars and fees)")
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    figure.autofmt_xdate()
    return figure


def draw_distributions(distributions: dict[str, np.ndarray], metric: str) -> Figure:
    """One histogram of the metric per strategy (small multiples, shared x axis)."""
    shown = {name: values for name, values in distributions.items() if values.size}
    count = len(shown)
    columns = min(3, count)
    rows = math.ceil(count / columns)
    figure, grid = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 2.8 * rows), squeeze=False, sharex=True
    )
    for axes, (name, values) in zip(grid.flat, shown.items(), strict=False):
        axes.hist(values, bins=min(40, max(5, int(math.sqrt(values.size)))), color="#1f77b4", alpha=0.85)
        axes.axvline(float(np.median(values)), c=WINNER_COLOUR, lw=1.2, label="median")
        axes.set_title(f"{name} ({values.size:,})", fontsize="medium")
        axes.set_xlabel(metric)
    for axes in list(grid.flat)[count:]:
        axes.set_visible(False)
    figure.suptitle(f"Distribution of {metric} per strategy (every stored row)")
    figure.tight_layout()
    return figure
