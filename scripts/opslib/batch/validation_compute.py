"""The validation document of a sweep (docs/validation.md), from the train scans and the out-of-sample runs
of the winners: per strategy and symbol, each fold's winner with its in-sample and out-of-sample metrics,
its deflated Sharpe ratio, the fold's probability of backtest overfitting; the out-of-sample equity
stitched across folds, the walk-forward efficiency and the stability of the winning parameters. Pure.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtesting_modules.jobs.planner import Winner
from backtesting_modules.jobs.spec import BatchSpec, timeframe_delta
from backtesting_modules.validation import BlockStats, Fold, ValidationError, compute_pbo, deflated_sharpe

from .validation_scan import Candidate, GroupKey, GroupScan

VALIDATION_VERSION = 2  # 2: the stitched out-of-sample equity
# The metrics a report shows in and out of sample (every one is kept in the stored results).
SHOWN = ("sharpe", "total_return", "cagr", "max_drawdown", "trades", "win_rate", "profit_factor")


@dataclass(frozen=True)
class ValidationSettings:
    """What a document records of how it was made: the validation section and the ranking (as a spec
    writes them) and the returns' period."""

    validation: dict[str, Any] | str
    ranking: dict[str, Any]
    returns_period: str

    @classmethod
    def of(cls, spec: BatchSpec) -> ValidationSettings:
        return cls(spec.validation.to_dict(), spec.ranking.to_dict(), spec.validation.returns_period)


@dataclass(frozen=True)
class OutOfSample:
    """A winner's run on its fold's test window."""

    metrics: dict[str, float]
    returns: np.ndarray
    starts: pd.DatetimeIndex


def periods_per_year(period: str) -> float:
    return pd.Timedelta(days=365) / timeframe_delta(period)


def compute_returns_summary(returns: np.ndarray, period: str) -> dict[str, Any]:
    """Total and annualised return, annualised Sharpe and maximum drawdown of per-period returns."""
    values = np.asarray(returns, dtype=np.float64)
    if values.size == 0:
        return {
            "periods": 0,
            "total_return": None,
            "annual_return": None,
            "sharpe": None,
            "max_drawdown": None,
        }
    equity = np.cumprod(1.0 + values)
    total = float(equity[-1] - 1.0)
    per_year = periods_per_year(period)
    annual = float(equity[-1] ** (per_year / values.size) - 1.0) if equity[-1] > 0 else -1.0
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    sharpe = float(values.mean() / std * math.sqrt(per_year)) if std > 0 else None
    peaks = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    drawdown = float((equity / peaks - 1.0).min())
    return {
        "periods": int(values.size),
        "total_return": total,
        "annual_return": annual,
        "sharpe": sharpe,
        "max_drawdown": drawdown,
    }


def _shown(metrics: Mapping[str, float]) -> dict[str, float | None]:
    return {m: (None if not math.isfinite(metrics.get(m, math.nan)) else metrics[m]) for m in SHOWN}


def _pbo(scan: GroupScan) -> dict[str, Any]:
    if not scan.stats:
        return {"pbo": None, "reason": "the train window holds fewer than 4 returns periods: no PBO"}
    try:
        return compute_pbo(BlockStats.concat(scan.stats)).to_dict()
    except ValidationError as exc:
        return {"pbo": None, "reason": str(exc)}


def _deflated(candidate: Candidate, scan: GroupScan, trials: int) -> dict[str, Any]:
    sharpes = scan.trial_sharpes()
    variance = float(np.var(sharpes, ddof=1)) if sharpes.size > 1 else 0.0
    try:
        return deflated_sharpe(candidate.returns, (variance, max(1, trials))).to_dict()
    except ValidationError as exc:
        return {"probability": None, "reason": str(exc)}


def _fold_entry(
    fold: Fold,
    scan: GroupScan | None,
    trials: int,
    oos: Mapping[int, OutOfSample],
) -> dict[str, Any]:
    if scan is None:
        return {
            "fold": fold.number,
            "combinations": 0,
            "winners": [],
            "pbo": {"pbo": None, "reason": "no result"},
        }
    winners = []
    for rank, candidate in enumerate(scan.winners(), start=1):
        run = oos.get(rank)
        entry: dict[str, Any] = {
            "rank": rank,
            "params": candidate.params,
            "in_sample": _shown(candidate.metrics),
            "out_of_sample": _shown(run.metrics) if run is not None else None,
        }
        if rank == 1:
            entry["deflated_sharpe"] = _deflated(candidate, scan, trials)
        winners.append(entry)
    return {
        "fold": fold.number,
        "combinations": scan.combinations,
        "few_trades": scan.few_trades,
        "winners": winners,
        "pbo": _pbo(scan),
    }


def compute_stability(params: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How much the winning parameters move between folds: the share of folds won by the most frequent
    parameter set, and per parameter its winning values in fold order."""
    if not params:
        return {"folds": 0, "same_winner_share": None, "params": {}}
    sets = Counter(tuple(sorted(p.items())) for p in params)
    names = sorted({n for p in params for n in p})
    return {
        "folds": len(params),
        "same_winner_share": sets.most_common(1)[0][1] / len(params),
        "params": {
            n: {"values": [p.get(n) for p in params], "distinct": len({p.get(n) for p in params})}
            for n in names
        },
    }


def _group(
    strategy: str,
    symbol: str,
    folds: Sequence[Fold],
    scans: Mapping[GroupKey, GroupScan],
    oos: Mapping[tuple[int, str, str, int], OutOfSample],
    period: str,
) -> dict[str, Any]:
    trials = sum(scans[k].combinations for k in scans if k[1:] == (strategy, symbol))
    entries, stitched, starts, fold_is, won = [], [], [], [], []
    for fold in folds:
        key = (fold.number, strategy, symbol)
        runs = {rank: run for (f, s, y, rank), run in oos.items() if (f, s, y) == key}
        entries.append(_fold_entry(fold, scans.get(key), trials, runs))
        scan = scans.get(key)
        if scan is not None and scan.best and 1 in runs:
            winner = scan.winners()[0]
            won.append(winner.params)
            fold_is.append(compute_returns_summary(winner.returns, period))
            stitched.append(runs[1].returns)
            starts.append(runs[1].starts)
    # Train windows may overlap (rolling folds): in sample is the mean over the folds' winners, out of
    # sample the test windows stitched (they never overlap).
    is_summary = _mean_summary(fold_is)
    oos_returns = np.concatenate(stitched) if stitched else np.zeros(0)
    oos_summary = compute_returns_summary(oos_returns, period)
    if stitched:  # the equity a trader re-optimising at every fold would have had, per period
        oos_summary["equity"] = {
            "starts": [s.isoformat() for part in starts for s in part],
            "values": [round(float(v), 6) for v in np.cumprod(1.0 + oos_returns)],
        }
    pbos = [e["pbo"]["pbo"] for e in entries if e["pbo"].get("pbo") is not None]
    deflated = [
        e["winners"][0]["deflated_sharpe"].get("probability")
        for e in entries
        if e["winners"] and e["winners"][0]["deflated_sharpe"].get("probability") is not None
    ]
    return {
        "strategy": strategy,
        "symbol": symbol,
        "trials": trials,
        "folds": entries,
        "pbo": float(np.mean(pbos)) if pbos else None,
        "deflated_sharpe": float(np.mean(deflated)) if deflated else None,
        "in_sample": is_summary,
        "out_of_sample": oos_summary,
        "walk_forward_efficiency": _efficiency(is_summary, oos_summary),
        "stability": compute_stability(won),
    }


def _mean_summary(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The mean of each number over the folds (None where no fold has one)."""
    keys = ("total_return", "annual_return", "sharpe", "max_drawdown")
    out: dict[str, Any] = {"folds": len(summaries)}
    for key in keys:
        values = [s[key] for s in summaries if s.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


def _efficiency(in_sample: Mapping[str, Any], out_of_sample: Mapping[str, Any]) -> float | None:
    """Annualised out-of-sample return over annualised in-sample return (None when IS is not positive)."""
    is_annual, oos_annual = in_sample.get("annual_return"), out_of_sample.get("annual_return")
    if is_annual is None or oos_annual is None or is_annual <= 0:
        return None
    return float(oos_annual / is_annual)


def compute_validation_document(
    spec: BatchSpec | ValidationSettings,
    folds: Sequence[Fold],
    scans: Mapping[GroupKey, GroupScan],
    oos: Mapping[tuple[int, str, str, int], OutOfSample],
    *,
    train_batch: str,
    test_batch: str | None,
    blocks: int,
) -> dict[str, Any]:
    """The document a report and `results.py` read (see the module docstring)."""
    settings = spec if isinstance(spec, ValidationSettings) else ValidationSettings.of(spec)
    pairs = sorted({(s, y) for _, s, y in scans})
    period = settings.returns_period
    groups = [_group(s, y, folds, scans, oos, period) for s, y in pairs]
    return {
        "version": VALIDATION_VERSION,
        "batch_id": train_batch,
        "test_batch_id": test_batch,
        "validation": settings.validation,
        "ranking": settings.ranking,
        "returns_period": period,
        "pbo_blocks": blocks,
        "folds": [f.to_dict() for f in folds],
        "groups": groups,
    }


def winners_of(scans: Mapping[GroupKey, GroupScan]) -> list[Winner]:
    """Every scan's top k as the out-of-sample jobs' winners, in a stable order."""
    out = []
    for (fold, strategy, symbol), scan in sorted(scans.items()):
        for rank, candidate in enumerate(scan.winners(), start=1):
            params = tuple(sorted(candidate.params.items()))
            out.append(Winner(fold=fold, strategy=strategy, symbol=symbol, rank=rank, params=params))
    return out
