"""Pure computations over batch records and result rows: durations, best rows, parameter labels, the top N
over a stream of job frames, row keys and the comparison of two batches, the export schema."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from backtesting_modules.metrics import HIGHER_IS_BETTER, METRIC_NAMES
from backtesting_modules.pipeline.records import BatchRecord

KEY_COLUMNS = ("job_id", "strategy", "symbol", "extras")


def compute_duration(record: BatchRecord) -> float | None:
    """Seconds from a batch's creation to its completion (None while it runs)."""
    if not record.finished_at or not record.created_at:
        return None
    finished = datetime.fromisoformat(record.finished_at)
    return (finished - datetime.fromisoformat(record.created_at)).total_seconds()


def compute_best(rows: Iterable[Mapping[str, Any]], metric: str) -> dict[str, Any] | None:
    """The row with the best `metric` (rows without a value for it are ignored)."""
    higher = HIGHER_IS_BETTER.get(metric, True)
    valid = [r for r in rows if _finite(r.get("metrics", {}).get(metric))]
    if not valid:
        return None
    return dict(max(valid, key=lambda r: r["metrics"][metric] if higher else -r["metrics"][metric]))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def param_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c.startswith("param."))


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Metric columns in `METRIC_NAMES` order, then any other numeric column a body carried."""
    known = [m for m in METRIC_NAMES if m in frame.columns]
    others = [
        c
        for c in frame.columns
        if c not in known and c not in KEY_COLUMNS and not c.startswith("param.") and c != "params"
    ]
    return known + sorted(others)


def format_param(value: Any) -> str | None:
    """A parameter value as text; None when missing. 5.0 reads 5 (a column with gaps is float)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def compute_params_text(frame: pd.DataFrame) -> pd.Series:
    """`fast=5, slow=20` per row, from the `param.<name>` columns (names sorted, missing ones left out)."""
    columns = param_columns(frame)
    if not columns:
        return pd.Series([""] * len(frame), index=frame.index, dtype=object)
    labels = [c.removeprefix("param.") for c in columns]
    texts = [frame[c].map(format_param).tolist() for c in columns]
    joined = [
        ", ".join(f"{label}={text}" for label, text in zip(labels, values, strict=True) if text is not None)
        for values in zip(*texts, strict=True)
    ]
    return pd.Series(joined, index=frame.index, dtype=object)


def compute_row_keys(frame: pd.DataFrame, params_text: pd.Series) -> pd.Series:
    """What identifies a row across batches: strategy, symbol, parameters and, for comparison batches,
    the variant (gated / ungated). Job ids are not part of it: they hash the batch id."""
    keys = frame["strategy"].astype(str) + "|" + frame["symbol"].astype(str) + "|" + params_text
    if "extras" in frame.columns:
        variant = frame["extras"].map(
            lambda e: json.loads(e).get("variant", "") if isinstance(e, str) else ""
        )
        keys = keys + "|" + variant.astype(str)
    return keys


def compute_top(
    frames: Iterable[pd.DataFrame], metric: str, higher: bool, n: int, *, min_trades: int = 0
) -> pd.DataFrame:
    """The best `n` rows by `metric` over every frame, keeping only `n` rows between frames; rows without
    a value, or with fewer than `min_trades` trades, are left out; equal values keep the order of the jobs
    and rows."""
    best: pd.DataFrame | None = None
    for frame in frames:
        if metric not in frame.columns:
            continue
        valid = frame[frame[metric].notna()]
        if min_trades and "trades" in valid.columns:
            valid = valid[valid["trades"] >= min_trades]
        if valid.empty:
            continue
        pool = valid if best is None else pd.concat([best, valid], ignore_index=True)
        best = pool.sort_values(metric, ascending=not higher, kind="stable").head(n).reset_index(drop=True)
    return best if best is not None else pd.DataFrame(columns=["job_id", "strategy", "symbol", metric])


# --- comparison -------------------------------------------------------------------------------------------

STATUSES = ("changed", "same", "added", "removed")


def compute_keyed(frames: Iterable[pd.DataFrame], metric: str) -> pd.DataFrame:
    """Per row of a batch, what a comparison needs: its key, labels, the compared metric, its rank in the
    batch and a fingerprint of all its metrics (so the rows' other metrics need not be kept)."""
    parts = []
    for frame in frames:
        params = compute_params_text(frame)
        metrics = metric_columns(frame)
        hashes = (
            pd.util.hash_pandas_object(frame[metrics], index=False).to_numpy()
            if metrics
            else np.zeros(len(frame), dtype=np.uint64)
        )
        fingerprint = pd.array(hashes, dtype="UInt64")  # nullable: survives the outer join exactly
        parts.append(
            pd.DataFrame(
                {
                    "key": compute_row_keys(frame, params).to_numpy(),
                    "strategy": frame["strategy"].to_numpy(),
                    "symbol": frame["symbol"].to_numpy(),
                    "params": params.to_numpy(),
                    "value": frame[metric].to_numpy(dtype=float) if metric in frame else np.nan,
                    "fingerprint": fingerprint,
                }
            )
        )
    columns = ["key", "strategy", "symbol", "params", "value", "fingerprint"]
    keyed = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    repeat = keyed.groupby("key").cumcount()
    keyed["key"] = keyed["key"].where(repeat == 0, keyed["key"] + "#" + repeat.astype(str))
    return keyed


@dataclass(frozen=True)
class Comparison:
    """Rows of batch A and batch B matched by key: `value_a`/`value_b` (the metric), `rank_a`/`rank_b` (1
    is the best in its batch), `status` changed / same (every metric equal) / added (only in B) / removed
    (only in A)."""

    metric: str
    higher: bool
    rows: pd.DataFrame

    def counts(self) -> dict[str, int]:
        counted = self.rows["status"].value_counts()
        return {status: int(counted.get(status, 0)) for status in STATUSES}

    def top(self, n: int) -> pd.DataFrame:
        """Rows in the top `n` of either batch, in B's order (then A's for rows B lacks)."""
        picked = self.rows[(self.rows["rank_a"] <= n) | (self.rows["rank_b"] <= n)]
        return picked.sort_values(["rank_b", "rank_a"], na_position="last", kind="stable")

    def moved(self, n: int) -> pd.DataFrame:
        """Rows of the top `n` of either batch whose rank changed."""
        top = self.top(n)
        return top[top["rank_a"].notna() & top["rank_b"].notna() & (top["rank_a"] != top["rank_b"])]

    def moved_count(self) -> int:
        """Matched rows (in both batches) whose rank changed."""
        rows = self.rows
        both = rows["rank_a"].notna() & rows["rank_b"].notna()
        return int((both & (rows["rank_a"] != rows["rank_b"])).sum())

    def changed(self, n: int) -> pd.DataFrame:
        """The `n` changed rows with the largest change of the metric."""
        changed = self.rows[self.rows["status"] == "changed"]
        order = changed["delta"].abs().sort_values(ascending=False, na_position="last", kind="stable")
        return changed.loc[order.index].head(n)

    def only(self, status: str, n: int) -> pd.DataFrame:
        """The best `n` rows that are `added` (by rank in B) or `removed` (by rank in A)."""
        rank = "rank_b" if status == "added" else "rank_a"
        rows = self.rows[self.rows["status"] == status]
        return rows.sort_values(rank, na_position="last", kind="stable").head(n)


def compute_comparison(a: pd.DataFrame, b: pd.DataFrame, metric: str, higher: bool) -> Comparison:
    """Match two `compute_keyed` frames; ranks are each batch's own ranking by `metric`."""
    a, b = (k.assign(rank=k["value"].rank(method="first", ascending=not higher)) for k in (a, b))
    merged = a.merge(b, on="key", how="outer", suffixes=("_a", "_b"), indicator=True, sort=False)
    rows = pd.DataFrame({"key": merged["key"]})
    for label in ("strategy", "symbol", "params"):
        rows[label] = merged[f"{label}_b"].where(merged[f"{label}_b"].notna(), merged[f"{label}_a"])
    for side in ("a", "b"):
        rows[f"value_{side}"] = merged[f"value_{side}"].astype(float)
        rows[f"rank_{side}"] = merged[f"rank_{side}"].astype(float)
    rows["delta"] = rows["value_b"] - rows["value_a"]
    same = (merged["fingerprint_a"] == merged["fingerprint_b"]).fillna(False).to_numpy(dtype=bool)
    status = np.where(same, "same", "changed")
    status = np.where(merged["_merge"] == "left_only", "removed", status)
    status = np.where(merged["_merge"] == "right_only", "added", status)
    rows["status"] = status
    return Comparison(metric, higher, rows.reset_index(drop=True))


# --- export -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportSchema:
    """The columns of a batch's export, known before its first body is read (from the jobs' best rows):
    `params` maps each parameter to int, float, bool or str."""

    params: dict[str, str]
    metrics: tuple[str, ...]
    extras: bool

    @property
    def columns(self) -> list[str]:
        columns = ["job_id", "strategy", "symbol", *(f"param.{p}" for p in self.params), *self.metrics]
        return [*columns, "extras"] if self.extras else columns


def compute_export_schema(
    bests: Iterable[Mapping[str, Any]], spec: Mapping[str, Any] | None = None
) -> ExportSchema:
    """Parameters typed from every value the batch's spec sweeps or fixes (a grid may mix 1 and 0.5) and
    the jobs' best rows; metrics and extras from the best rows."""
    params: dict[str, str] = {}
    for strategy in (spec or {}).get("strategies", []):
        for name, values in strategy.get("grid", []):
            for value in values:
                params[name] = _merge_type(params.get(name), value)
        for name, value in strategy.get("params", {}).items():
            params[name] = _merge_type(params.get(name), value)
    metrics: dict[str, None] = {}
    extras = False
    for row in bests:
        for name, value in row.get("params", {}).items():
            params[name] = _merge_type(params.get(name), value)
        metrics.update(dict.fromkeys(row.get("metrics", {})))
        extras = extras or bool(row.get("extras"))
    ordered = [m for m in METRIC_NAMES if m in metrics] + sorted(set(metrics) - set(METRIC_NAMES))
    return ExportSchema(dict(sorted(params.items())), tuple(ordered), extras)


def _merge_type(known: str | None, value: Any) -> str:
    kind = (
        "bool"
        if isinstance(value, bool)
        else "int"
        if isinstance(value, int)
        else "float"
        if isinstance(value, float)
        else "str"
    )
    if known is None or known == kind:
        return kind
    return "float" if {known, kind} == {"int", "float"} else "str"


# --- JSON documents of the queries -----------------------------------------------------------------------


def compute_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Ranked rows as documents: rank, job_id, strategy, symbol, params, metrics (NaN as None)."""
    params = param_columns(frame)
    metrics = metric_columns(frame)
    rows = []
    for rank, (_, row) in enumerate(frame.iterrows(), start=1):
        rows.append(
            {
                "rank": rank,
                "job_id": row.get("job_id"),
                "strategy": row["strategy"],
                "symbol": row["symbol"],
                "params": {
                    p.removeprefix("param."): _json_value(row[p])
                    for p in params
                    if format_param(row[p]) is not None
                },
                "metrics": {m: _json_value(row[m]) for m in metrics},
            }
        )
    return rows


def _json_value(value: Any) -> Any:
    """A JSON-ready scalar: numpy unwrapped, NaN as None, 5.0 as 5 (a column with gaps is float)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = ["strategy", "symbol", "params", "value_a", "value_b", "delta", "rank_a", "rank_b", "status"]
    return [
        {c: _json_value(v) for c, v in zip(columns, row, strict=True)}
        for row in frame[columns].itertuples(index=False)
    ]


def compute_comparison_json(a: BatchRecord, b: BatchRecord, comparison: Comparison, n: int) -> dict[str, Any]:
    def side(record: BatchRecord) -> dict[str, Any]:
        keys = ("batch_id", "name", "created_at", "status", "backtests", "failed", "ranking_metric")
        document = record.to_json()
        return {k: document[k] for k in keys}

    return {
        "a": side(a),
        "b": side(b),
        "metric": comparison.metric,
        "higher_is_better": comparison.higher,
        "counts": comparison.counts(),
        "top": _records(comparison.top(n)),
        "moved": _records(comparison.moved(n)),
        "moved_count": comparison.moved_count(),
        "changed": _records(comparison.changed(n)),
        "added": _records(comparison.only("added", n)),
        "removed": _records(comparison.only("removed", n)),
    }
