"""What a batch report's charts are drawn from (docs/reports.md): every stored row of the batch, read back
from its result bodies, and the figures computed from them — per (strategy, symbol) the ranking metric over
the grid's axes (`compute_grids`), the metric's distribution per strategy, and the aggregates whose
medians the collector's mergeable digests cannot give (`compute_aggregates`). The winners' equity and
drawdown curves are computed by running them again on the batch's bars (`compute_curves`): a few
milliseconds each, instead of shipping curves through the queues.

Pure data: the PNG charts (`charts`) and the HTML report draw these same numbers.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from backtesting_modules import run_backtest
from backtesting_modules.config import StrategyConfig
from backtesting_modules.jobs.data_refs import DataRef
from backtesting_modules.jobs.results import result_frame
from backtesting_modules.jobs.runner import JobStatus
from backtesting_modules.metrics_benchmark import buy_and_hold
from backtesting_modules.pipeline.bars_source import load_ref
from backtesting_modules.pipeline.errors import MissingObjectError
from backtesting_modules.pipeline.records import BatchRecord, JobRecord
from backtesting_modules.pipeline.store import Store
from backtesting_modules.pipeline.summary import SUMMARY_READERS

MAX_AXIS_VALUES = 60  # an axis with more distinct values (a search's continuous parameter) gets no heatmap
MAX_PAIRS = 6  # heatmaps per (strategy, symbol): the first pairs of axes in the grid's order
CURVES = 3  # winners whose equity and drawdown are drawn
# Batches whose rows are exactly `run_backtest` of their parameters on one symbol's bars: their winners'
# curves are drawn by running them again.
RERUN_JOB_TYPES = ("PARAMETER_OPTIMIZATION", "SINGLE_STRATEGY")


def load_rows(store: Store, batch_id: str) -> pd.DataFrame:
    """Every succeeded job's rows (`result_frame`: job_id, strategy, symbol, `param.<name>`, metrics), in
    job order, the bodies read from several threads as the summary reads its digests; an empty frame when
    no job stored rows."""
    attributes = ("job_id", "result_key")
    jobs = [
        j for j in store.jobs(batch_id, status=JobStatus.SUCCEEDED, attributes=attributes) if j.result_key
    ]

    def read(job: JobRecord) -> pd.DataFrame | None:
        try:
            return result_frame(store.get_bytes(str(job.result_key)), job_id=job.job_id)
        except MissingObjectError:
            return None  # a body deleted by hand: its rows are missing from the charts, as from an export

    with ThreadPoolExecutor(max_workers=max(1, min(SUMMARY_READERS, len(jobs)))) as pool:
        frames = [f for f in pool.map(read, jobs) if f is not None]
    if not frames:
        return pd.DataFrame(columns=["job_id", "strategy", "symbol"])
    return pd.concat(frames, ignore_index=True)


def param_columns(rows: pd.DataFrame) -> list[str]:
    return [c for c in rows.columns if c.startswith("param.")]


@dataclass(frozen=True)
class Grid:
    """The ranking metric over two axes (or one: `y` None) of one (strategy, symbol): the best value of the
    metric over the other axes at each cell; NaN where no row has a value. `best` is the winner's cell."""

    strategy: str
    symbol: str
    x: str
    x_values: list[float]
    y: str | None
    y_values: list[float]
    values: np.ndarray  # shape (len(y_values), len(x_values)), or (len(x_values),) for one axis
    best: tuple[int, int] | None  # (row, column) of the best cell; (0, i) for one axis
    others: int = 0  # other axes that vary: each cell holds the best value over them


@dataclass(frozen=True)
class GridNote:
    """A (strategy, symbol) that gets no chart, and why (said in words in the report)."""

    strategy: str
    symbol: str
    why: str


def compute_grids(rows: pd.DataFrame, metric: str, higher: bool) -> tuple[list[Grid], list[GridNote]]:
    """Per (strategy, symbol): a grid per pair of the axes that vary (at most MAX_PAIRS), a line for a
    single axis, or a note (no axis varies, too many values, no row with a value)."""
    grids: list[Grid] = []
    notes: list[GridNote] = []
    if rows.empty or metric not in rows:
        return grids, notes
    for (strategy, symbol), raw in rows.groupby(["strategy", "symbol"], sort=True):
        group = raw.dropna(axis=1, how="all")
        axes = [c for c in param_columns(group) if group[c].nunique() > 1]
        note = _why_no_chart(group, axes, metric)
        if note:
            notes.append(GridNote(str(strategy), str(symbol), note))
            continue
        if len(axes) == 1:
            grids.append(_line(group, str(strategy), str(symbol), axes[0], metric, higher))
            continue
        for x, y in itertools.islice(itertools.combinations(axes, 2), MAX_PAIRS):
            pair = _pair(group, str(strategy), str(symbol), (x, y), metric, higher)
            grids.append(replace(pair, others=len(axes) - 2))
    return grids, notes


def _why_no_chart(group: pd.DataFrame, axes: list[str], metric: str) -> str:
    if metric not in group or not np.isfinite(group[metric].to_numpy(dtype=float)).any():
        return f"no variant has a {metric} (no trades): nothing to chart"
    if not axes:
        return "one parameter set: no axis to chart"
    wide = [a for a in axes if group[a].nunique() > MAX_AXIS_VALUES]
    if wide:
        names = ", ".join(a.removeprefix("param.") for a in wide[:3])
        return (
            f"{len(wide)} parameter(s) take more than {MAX_AXIS_VALUES} values ({names}…): a search's space, "
            "not a grid; see the Search section"
        )
    return ""


def _reduce(values: Any, higher: bool) -> pd.Series:
    return values.max() if higher else values.min()


def _line(group: pd.DataFrame, strategy: str, symbol: str, x: str, metric: str, higher: bool) -> Grid:
    series = _reduce(group.groupby(x)[metric], higher).sort_index()
    values = series.to_numpy(dtype=float)
    best = int(np.nanargmax(values) if higher else np.nanargmin(values))
    return Grid(strategy, symbol, x, [float(v) for v in series.index], None, [], values, (0, best))


def _pair(
    group: pd.DataFrame, strategy: str, symbol: str, axes: tuple[str, str], metric: str, higher: bool
) -> Grid:
    x, y = axes
    table = _reduce(group.groupby([y, x])[metric], higher).unstack(x).sort_index().sort_index(axis=1)
    values = table.to_numpy(dtype=float)
    flat = np.nanargmax(values) if higher else np.nanargmin(values)
    row, column = np.unravel_index(int(flat), values.shape)
    xs = [float(v) for v in table.columns]
    ys = [float(v) for v in table.index]
    return Grid(strategy, symbol, x, xs, y, ys, values, (int(row), int(column)))


def compute_distributions(rows: pd.DataFrame, metric: str) -> dict[str, np.ndarray]:
    """The metric's finite values per strategy (the histogram's data)."""
    if rows.empty or metric not in rows:
        return {}
    out = {}
    for strategy, group in rows.groupby("strategy", sort=True):
        values = group[metric].to_numpy(dtype=float)
        out[str(strategy)] = values[np.isfinite(values)]
    return out


def compute_aggregates(rows: pd.DataFrame, key: str, metric: str, higher: bool) -> list[dict[str, Any]]:
    """Per strategy or symbol (`key`): backtests, best and median of the metric and the mean total return,
    from the stored rows — the medians the summary's mergeable digests cannot carry."""
    out: list[dict[str, Any]] = []
    if rows.empty or metric not in rows:
        return out
    for name, group in rows.groupby(key, sort=True):
        values = group[metric].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        entry: dict[str, Any] = {key: str(name), "backtests": len(group)}
        entry[f"best_{metric}"] = float(finite.max() if higher else finite.min()) if finite.size else None
        entry[f"median_{metric}"] = float(np.median(finite)) if finite.size else None
        if "total_return" in group:
            returns = group["total_return"].to_numpy(dtype=float)
            entry["mean_total_return"] = float(np.nanmean(returns)) if np.isfinite(returns).any() else None
        out.append(entry)
    return out


@dataclass(frozen=True)
class Curve:
    """A winner's equity and drawdown over the batch's bars, beside buy and hold of the same bars and fees."""

    label: str
    strategy: str
    symbol: str
    params: dict[str, Any]
    index: pd.DatetimeIndex
    equity: np.ndarray  # growth of 1
    drawdown: np.ndarray  # ≤ 0
    buy_and_hold: np.ndarray  # growth of 1
    metrics: dict[str, float] = field(default_factory=dict)


def compute_curves(
    store: Store, batch: BatchRecord, winners: Iterable[Mapping[str, Any]], count: int = CURVES
) -> list[Curve]:
    """The first `count` winners (the summary's top rows: strategy, symbol, params) run again on the
    batch's bars with the batch's config: their equity and drawdown, and buy and hold."""
    spec = batch.spec_document()
    if spec.get("job_type") not in RERUN_JOB_TYPES:
        return []  # a timezone run's curve is the session gate's, not `run_backtest`'s: not redrawn here
    config = StrategyConfig(**(spec.get("config") or {}))
    refs = {s: f.get("ref") for s, f in batch.data_document().get("symbols", {}).items()}
    bars_of: dict[str, pd.DataFrame] = {}
    curves = []
    for rank, row in enumerate(itertools.islice(winners, count), start=1):
        symbol, ref = row["symbol"], refs.get(row["symbol"])
        if ref is None:
            continue  # a portfolio row, or bars the batch did not record
        if symbol not in bars_of:
            bars_of[symbol] = load_ref(store, DataRef.parse(ref), symbol)[0]
        curves.append(_curve(rank, row, bars_of[symbol], config))
    return curves


def _curve(rank: int, row: Mapping[str, Any], bars: pd.DataFrame, config: StrategyConfig) -> Curve:
    result = run_backtest(bars, row["strategy"], dict(row["params"]), config)
    equity = result.equity.to_numpy(dtype=float) / config.initial_cash
    peak = np.maximum.accumulate(equity)
    # The engine's own benchmark: bought at the first close, sold at the last, fees on both fills.
    closes = bars["close"].to_numpy(dtype=float)[-len(equity) :]
    hold = (
        buy_and_hold(closes, initial_cash=config.initial_cash, cost_rate=config.cost_rate)
        / config.initial_cash
    )
    params = json.loads(json.dumps(dict(row["params"])))
    label = f"#{rank} {row['strategy']} {row['symbol']}"
    return Curve(
        label, row["strategy"], row["symbol"], params, pd.DatetimeIndex(result.equity.index),
        equity, equity / peak - 1.0, hold, dict(result.metrics),
    )  # fmt: skip
