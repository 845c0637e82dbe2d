"""One pass over a validated sweep's train results, per (fold, strategy, symbol): the block statistics the
probability of backtest overfitting needs (accumulated job by job, so no more than one job's returns are
held at once), every trial's per-period Sharpe ratio (for the deflated Sharpe), and the top-k winners by
the ranking metric among the variants with at least `ranking.min_trades` trades (the others are counted
apart, never winners). Pure but for reading the stored bodies through the `Store`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtesting_modules.jobs.results import decode_period_returns, result_frame
from backtesting_modules.metrics import HIGHER_IS_BETTER
from backtesting_modules.pipeline.records import JobRecord
from backtesting_modules.pipeline.store import Store
from backtesting_modules.validation import BlockStats

GroupKey = tuple[int, str, str]  # (fold, strategy, symbol)


@dataclass(order=True)
class Candidate:
    """A variant of a train sweep that may win: ordered by its score (the metric, oriented so larger is
    better), then by its position (earlier first) for a stable choice between equal scores."""

    score: float
    order: float
    params: dict[str, Any] = field(compare=False)
    metrics: dict[str, float] = field(compare=False)
    returns: np.ndarray = field(compare=False, repr=False)


@dataclass
class GroupScan:
    """What one (fold, strategy, symbol) train sweep holds for the validation."""

    key: GroupKey
    blocks: int
    stats: list[BlockStats] = field(default_factory=list)
    sharpes: list[np.ndarray] = field(default_factory=list)
    best: list[Candidate] = field(default_factory=list)  # a min-heap of the top k
    combinations: int = 0
    few_trades: int = 0
    starts: pd.DatetimeIndex | None = None

    def trial_sharpes(self) -> np.ndarray:
        return np.concatenate(self.sharpes) if self.sharpes else np.zeros(0)

    def winners(self) -> list[Candidate]:
        """The top k, best first."""
        return sorted(self.best, reverse=True)


def per_period_sharpe(returns: np.ndarray) -> np.ndarray:
    """Mean over standard deviation (ddof 1) of each column; 0 for a column that never varies (no trade)."""
    values = returns.astype(np.float64)
    std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = values.mean(axis=0) / std
    return np.where(std > 0, sharpe, 0.0)


def scan_train_results(
    store: Store,
    jobs: Iterable[tuple[GroupKey, JobRecord]],
    *,
    metric: str,
    min_trades: int,
    top_k: Mapping[GroupKey, int],
    blocks: int,
) -> dict[GroupKey, GroupScan]:
    """Read each succeeded train job's stored body once and fold it into its group's scan."""
    scans: dict[GroupKey, GroupScan] = {}
    sign = 1.0 if HIGHER_IS_BETTER.get(metric, True) else -1.0
    for key, job in jobs:
        if job.result_key is None:
            continue  # a failed job: its combinations are missing from the validation (the report says so)
        body = store.get_bytes(job.result_key)
        scan = scans.setdefault(key, GroupScan(key, blocks))
        _fold_in(scan, body, metric=metric, sign=sign, min_trades=min_trades, k=top_k[key])
    return scans


def _fold_in(scan: GroupScan, body: bytes, *, metric: str, sign: float, min_trades: int, k: int) -> None:
    frame = result_frame(body)
    decoded = decode_period_returns(body)
    if decoded is None:
        raise ValueError(
            "a train job's result has no period returns: it was not planned as a validated sweep"
        )
    _, starts, values = decoded
    params = {c.removeprefix("param."): frame[c].to_numpy() for c in frame.columns if c.startswith("param.")}
    metrics = {c: frame[c].to_numpy(dtype=np.float64) for c in frame.columns if c in HIGHER_IS_BETTER}
    fold_in(scan, params, metrics, starts, values, metric=metric, sign=sign, min_trades=min_trades, k=k)


def fold_in(
    scan: GroupScan,
    params: Mapping[str, np.ndarray],
    metrics: Mapping[str, np.ndarray],
    starts: pd.DatetimeIndex,
    values: np.ndarray,
    *,
    metric: str,
    sign: float,
    min_trades: int,
    k: int,
) -> None:
    """Add part of a train sweep — its rows' parameters and metrics (name → one value per row) and their
    per-period returns `values` (periods × rows) — to its group's scan."""
    if scan.starts is None:
        scan.starts = starts
    elif not scan.starts.equals(starts):
        raise ValueError(f"the train jobs of fold {scan.key[0]} have different return periods")
    if scan.blocks:  # 0: the train window is too short for PBO
        scan.stats.append(BlockStats.from_returns(values, blocks=scan.blocks))
    scan.sharpes.append(per_period_sharpe(values))
    rows = values.shape[1]
    scan.combinations += rows
    eligible = metrics["trades"] >= min_trades
    scan.few_trades += int((~eligible).sum())
    scores = sign * metrics[metric]
    for i in np.flatnonzero(eligible & np.isfinite(scores)):
        candidate = Candidate(
            float(scores[i]),
            -float(scan.combinations - rows + i),
            {name: _plain(column[i]) for name, column in params.items()},
            {m: float(column[i]) for m, column in metrics.items()},
            values[:, i].copy(),
        )
        if len(scan.best) < k:
            heapq.heappush(scan.best, candidate)
        elif candidate > scan.best[0]:
            heapq.heapreplace(scan.best, candidate)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return int(value)
    return value
