"""Result digests: a job's top rows and per-strategy / per-symbol aggregates in a mergeable form, so a
batch summary reads a few kilobytes per job instead of every row. Written by whoever holds the rows (the
worker for a big result, the collector for an inline one); merged by the collector.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ..jobs.results import ResultColumns, metric_array, ranked_indices, row_at


def ranked(rows: list[dict[str, Any]], metric: str, higher: bool) -> list[dict[str, Any]]:
    valid = [r for r in rows if r["metrics"].get(metric) is not None]
    return sorted(valid, key=lambda r: r["metrics"][metric], reverse=higher)


def compute_digest(
    columns: ResultColumns, metric: str, higher: bool, top: int, min_trades: int = 0
) -> dict[str, Any]:
    """The top `top` rows by `metric` among the variants with at least `min_trades` trades, the top of the
    others (listed apart, never ranked as winners) and how many there are, and, per strategy and per
    symbol, count, best, sum and valid count (all mergeable across jobs: a batch's mean is the sum of sums
    over the sum of valid counts)."""
    values = metric_array(columns, metric)
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for key in ("strategy", "symbol"):
        labels = np.asarray(columns[key], dtype=object)
        groups[key] = {}
        for name in dict.fromkeys(columns[key]):
            picked = values[labels == name]
            valid = picked[~np.isnan(picked)]
            best = (valid.max() if higher else valid.min()) if valid.size else None
            groups[key][str(name)] = {
                "count": int(picked.size),
                "valid": int(valid.size),
                "sum": float(valid.sum()),
                "best": float(best) if best is not None else None,
            }
    order = ranked_indices(columns, metric, higher)
    trades = metric_array(columns, "trades") if "trades" in columns["metrics"] else None
    few = np.zeros(len(values), dtype=bool) if trades is None else ~(trades >= min_trades)
    ranked_in = [int(i) for i in order if not few[i]][:top]
    ranked_apart = [int(i) for i in order if few[i]][:top]
    return {
        "top": [row_at(columns, i) for i in ranked_in],
        "few_trades": [row_at(columns, i) for i in ranked_apart],
        "few_trades_count": int(few.sum()),
        "groups": groups,
    }


def merge_groups(digests: list[dict[str, Any]], key: str, metric: str, higher: bool) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"count": 0, "valid": 0, "sum": 0.0, "best": None}
    )
    for digest in digests:
        for name, group in digest["groups"][key].items():
            into = merged[name]
            into["count"] += group["count"]
            into["valid"] += group["valid"]
            into["sum"] += group["sum"]
            best, other = into["best"], group["best"]
            if other is not None and (best is None or (other > best if higher else other < best)):
                into["best"] = other
    return [
        {
            key: name,
            "backtests": g["count"],
            f"best_{metric}": g["best"],
            f"mean_{metric}": g["sum"] / g["valid"] if g["valid"] else None,
        }
        for name, g in sorted(merged.items())
    ]
