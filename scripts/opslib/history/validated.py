"""A validated sweep's document (docs/validation.md) as rows `results.py` ranks and shows: each fold
winner with its in-sample metrics (`is_<metric>`), out-of-sample metrics (`oos_<metric>`), deflated Sharpe
ratio and the fold's PBO; and the same columns attached to the stored rows they belong to. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from backtesting_modules.metrics import HIGHER_IS_BETTER

SHOWN = ("sharpe", "total_return", "cagr", "max_drawdown", "trades", "win_rate", "profit_factor")
VALIDATION_METRICS = (
    *(f"oos_{m}" for m in SHOWN),
    *(f"is_{m}" for m in SHOWN),
    "deflated_sharpe",
    "pbo",
)
# pbo: lower is better (less of the winner is luck); the others as their metric.
VALIDATION_HIGHER: dict[str, bool] = {
    **{f"{side}_{m}": HIGHER_IS_BETTER.get(m, True) for side in ("oos", "is") for m in SHOWN},
    "deflated_sharpe": True,
    "pbo": False,
}


def _key(strategy: str, symbol: str, params: Mapping[str, Any]) -> str:
    return json.dumps([strategy, symbol, {k: float(v) for k, v in params.items()}], sort_keys=True)


def compute_validated_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every fold winner as a row: strategy, symbol, fold, rank, params and the validation metrics."""
    rows = []
    for group in document["groups"]:
        for fold in group["folds"]:
            for winner in fold["winners"]:
                metrics: dict[str, Any] = {f"is_{m}": v for m, v in (winner["in_sample"] or {}).items()}
                metrics |= {f"oos_{m}": v for m, v in (winner.get("out_of_sample") or {}).items()}
                metrics["deflated_sharpe"] = (winner.get("deflated_sharpe") or {}).get("probability")
                metrics["pbo"] = fold["pbo"].get("pbo")
                rows.append(
                    {
                        "strategy": group["strategy"],
                        "symbol": group["symbol"],
                        "fold": fold["fold"],
                        "rank": winner["rank"],
                        "params": winner["params"],
                        "metrics": metrics,
                    }
                )
    return rows


def rank_validated(rows: Sequence[Mapping[str, Any]], metric: str, n: int) -> list[dict[str, Any]]:
    """The best `n` winner rows by a validation metric (rows without a value last)."""
    higher = VALIDATION_HIGHER[metric]
    valued = [r for r in rows if r["metrics"].get(metric) is not None]
    ranked = sorted(valued, key=lambda r: r["metrics"][metric], reverse=higher)[:n]
    return [{**r, "position": i} for i, r in enumerate(ranked, start=1)]


def annotate_rows(rows: Sequence[Mapping[str, Any]], document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`rows` (stored results) with the validation metrics of the winners they are (the last fold's when a
    parameter set won several) and their pair's mean PBO."""
    by_key: dict[str, dict[str, Any]] = {}
    for winner in sorted(compute_validated_rows(document), key=lambda r: r["fold"]):
        by_key[_key(winner["strategy"], winner["symbol"], winner["params"])] = winner["metrics"]
    pbo = {(g["strategy"], g["symbol"]): g["pbo"] for g in document["groups"]}
    out = []
    for row in rows:
        extra = dict(by_key.get(_key(row["strategy"], row["symbol"], row["params"]), {}))
        extra["pbo"] = pbo.get((row["strategy"], row["symbol"]))
        out.append({**row, "metrics": {**row["metrics"], **extra}})
    return out


def compute_validation_comparison(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per strategy and symbol of either document: out-of-sample Sharpe, walk-forward efficiency, PBO and
    deflated Sharpe of batch A beside batch B's."""

    def pairs(document: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
        return {(g["strategy"], g["symbol"]): g for g in document["groups"]}

    left, right = pairs(a), pairs(b)
    rows = []
    for key in sorted(set(left) | set(right)):
        row: dict[str, Any] = {"strategy": key[0], "symbol": key[1]}
        for side, groups in (("a", left), ("b", right)):
            group = groups.get(key) or {}
            row[f"{side}_oos_sharpe"] = (group.get("out_of_sample") or {}).get("sharpe")
            row[f"{side}_walk_forward_efficiency"] = group.get("walk_forward_efficiency")
            row[f"{side}_pbo"] = group.get("pbo")
            row[f"{side}_deflated_sharpe"] = group.get("deflated_sharpe")
        rows.append(row)
    return rows
