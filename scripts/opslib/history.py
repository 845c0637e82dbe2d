"""Batch history: the batches that ran, their jobs and their stored results, read back for
`scripts/results.py`. Read-only; the same code reads the embedded default and AWS.

Each access pattern has a key condition (nothing scans the table), and every query follows
`LastEvaluatedKey` through a boto3 paginator:

- batches newest first, since a date: Query on the index `batches-by-created`,
  `GSI1PK = "BATCHES" AND GSI1SK >= :since`, descending (a status is a filter on that query);
- one batch: GetItem `PK = BATCH#<id>, SK = META`;
- a batch's jobs (or only its failed ones): Query `PK = BATCH#<id> AND begins_with(SK, "JOB#")`.

A batch's rows are read from S3 one job body at a time (`results/<batch>/<job>.json.gz`), so a query over a
large batch holds one job's rows plus what it keeps (a top N, or the compared metric per row).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from botocore.exceptions import ClientError

from backtesting_modules.errors import BacktestError
from backtesting_modules.jobs.results import result_frame
from backtesting_modules.metrics import HIGHER_IS_BETTER, METRIC_NAMES
from backtesting_modules.pipeline import names
from backtesting_modules.pipeline.names import ConfigurationError
from backtesting_modules.pipeline.store import MissingObjectError, Store, _plain

from .batch import fetch_summary

PAGE_SIZE = 100  # items per DynamoDB page; tests lower it to cross page boundaries
LIST_ATTRIBUTES = (
    "batch_id",
    "name",
    "created_at",
    "finished_at",
    "status",
    "total_jobs",
    "succeeded",
    "failed",
    "backtests",
    "ranking_metric",
    "summary_key",
)
KEY_COLUMNS = ("job_id", "strategy", "symbol", "extras")


class HistoryError(BacktestError):
    """A history query cannot be answered (missing table, expired job records, unreadable results)."""


class UnknownBatchError(HistoryError):
    """No batch has this id; `suggestions` are the closest ids (prefix matches, then difflib, then names)."""

    def __init__(self, batch_id: str, suggestions: Sequence[str], table: str) -> None:
        hint = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            f"batch {batch_id!r} not found in table {table}.{hint} `results.py list` shows the batches."
        )
        self.batch_id = batch_id
        self.suggestions = list(suggestions)


def parse_since(text: str) -> str:
    """A date or ISO time (naive = UTC) as the index's sort key format (ISO, UTC, milliseconds)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(
            f"--since {text!r}: not a date; use YYYY-MM-DD or an ISO time like 2025-01-31T12:00"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class BatchEntry:
    """One line of `list`: a batch record and its best row by the batch's ranking metric."""

    batch_id: str
    name: str
    created_at: str
    status: str
    succeeded: int
    failed: int
    total_jobs: int
    backtests: int
    duration_s: float | None
    ranking_metric: str
    best: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class History:
    """Read-only queries over one stack's table and bucket (see the module docstring for the keys)."""

    store: Store
    page_size: int = PAGE_SIZE
    queries: int = field(default=0, compare=False)  # DynamoDB pages read (tests check the pagination)

    # --- batches --------------------------------------------------------------------------------------

    def batches(
        self,
        *,
        since: str | None = None,
        status: str | None = None,
        attributes: Sequence[str] = LIST_ATTRIBUTES,
    ) -> Iterator[dict[str, Any]]:
        """Batch records newest first, from the `batches-by-created` index (status is a filter on it)."""
        condition = "GSI1PK = :all" + (" AND GSI1SK >= :since" if since else "")
        values = {":all": {"S": names.BATCH_INDEX_PK}}
        if since:
            values[":since"] = {"S": since}
        request: dict[str, Any] = {
            "IndexName": names.BATCH_INDEX,
            "KeyConditionExpression": condition,
            "ScanIndexForward": False,
        }
        if status:
            request["FilterExpression"] = "#status = :status"
            values[":status"] = {"S": status}
        yield from self._query(request, values, attributes, what="listing batches")

    def list_batches(
        self, *, since: str | None = None, status: str | None = None, limit: int = 20
    ) -> list[BatchEntry]:
        entries = []
        for record in self.batches(since=since, status=status):
            entries.append(self._entry(record))
            if len(entries) >= limit:
                break
        return entries

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        try:
            return self.store.get_batch(batch_id)
        except MissingObjectError:
            raise UnknownBatchError(batch_id, self.suggest(batch_id), self.store.table) from None

    def suggest(self, batch_id: str, n: int = 3) -> list[str]:
        """Ids that start with `batch_id`, then the closest ids, then ids of batches named `batch_id`."""
        known = [
            (str(r["batch_id"]), str(r.get("name", "")))
            for r in self.batches(attributes=("batch_id", "name"))
        ]
        ids = [i for i, _ in known]
        picks = [i for i in ids if i.startswith(batch_id) and batch_id]
        picks += difflib.get_close_matches(batch_id, ids, n=n, cutoff=0.6)
        picks += [i for i, name in known if name == batch_id]
        return list(dict.fromkeys(picks))[:n]

    def summary(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return fetch_summary(self.store, dict(record))

    # --- jobs and results -----------------------------------------------------------------------------

    def jobs(
        self, batch_id: str, *, status: str | None = None, attributes: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """The batch's job records (its partition), optionally only those with `status`."""
        request: dict[str, Any] = {
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :job)",
            "ConsistentRead": True,
        }
        values = {":pk": {"S": names.batch_pk(batch_id)}, ":job": {"S": "JOB#"}}
        if status:
            request["FilterExpression"] = "#status = :status"
            values[":status"] = {"S": status}
        yield from self._query(request, values, attributes, what=f"listing the jobs of batch {batch_id}")

    def job_bests(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """Each succeeded job's best row (kept in its record: no S3 read)."""
        for job in self.jobs(batch_id, status="SUCCEEDED", attributes=("job_id", "best")):
            best = json.loads(str(job.get("best") or "null"))
            if best:
                yield best

    def result_frames(
        self, record: Mapping[str, Any], *, strategy: str | None = None, symbol: str | None = None
    ) -> Iterator[pd.DataFrame]:
        """Every succeeded job's rows (`result_frame`), one stored body at a time, optionally only one
        strategy's or one symbol's (jobs of other strategies or symbols are not read)."""
        batch_id = str(record["batch_id"])
        seen = 0
        attributes = ("job_id", "strategy", "symbols", "result_key")
        for job in self.jobs(batch_id, status="SUCCEEDED", attributes=attributes):
            seen += 1
            symbols = str(job.get("symbols", "")).split(",")
            if (strategy and job.get("strategy") != strategy) or (
                symbol and len(symbols) == 1 and symbols[0] != symbol
            ):
                continue
            if not job.get("result_key"):
                continue
            try:
                frame = result_frame(self.store.get_bytes(str(job["result_key"])), job_id=str(job["job_id"]))
            except MissingObjectError as exc:
                raise HistoryError(
                    f"{exc}: the result of job {job['job_id']} cannot be read; if it was deleted, re-run the "
                    "batch; on AWS the role needs s3:GetObject on results/*."
                ) from exc
            if strategy:
                frame = frame[frame["strategy"] == strategy]
            if symbol:
                frame = frame[frame["symbol"] == symbol]
            yield frame.reset_index(drop=True)
        if seen == 0 and int(record.get("succeeded", 0)) > 0:
            raise HistoryError(
                f"batch {batch_id} has {record['succeeded']} succeeded jobs but no job records: they expire "
                "30 days after the run (DynamoDB TTL); the batch summary (`results.py show`) remains."
            )

    # --- internals ------------------------------------------------------------------------------------

    def _entry(self, record: Mapping[str, Any]) -> BatchEntry:
        metric = str(record.get("ranking_metric") or "sharpe")
        bests = list(self.job_bests(str(record["batch_id"])))
        return BatchEntry(
            batch_id=str(record["batch_id"]),
            name=str(record.get("name", "")),
            created_at=str(record.get("created_at", "")),
            status=str(record.get("status", "")),
            succeeded=int(record.get("succeeded", 0)),
            failed=int(record.get("failed", 0)),
            total_jobs=int(record.get("total_jobs", 0)),
            backtests=int(record.get("backtests", 0)),
            duration_s=compute_duration(record),
            ranking_metric=metric,
            best=compute_best(bests, metric),
        )

    def _query(
        self,
        request: dict[str, Any],
        values: dict[str, Any],
        attributes: Sequence[str] | None,
        *,
        what: str,
    ) -> Iterator[dict[str, Any]]:
        aliases = {"#status": "status"} if "#status" in str(request.get("FilterExpression", "")) else {}
        if attributes:
            aliases.update({f"#a{i}": name for i, name in enumerate(attributes)})
            request["ProjectionExpression"] = ", ".join(f"#a{i}" for i in range(len(attributes)))
        if aliases:
            request["ExpressionAttributeNames"] = aliases
        paginator = self.store.clients.client("dynamodb").get_paginator("query")
        pages = paginator.paginate(
            TableName=self.store.table,
            ExpressionAttributeValues=values,
            PaginationConfig={"PageSize": self.page_size},
            **request,
        )
        try:
            for page in pages:
                self.queries += 1
                for item in page.get("Items", []):
                    yield _plain(item)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise ConfigurationError(
                    f"table {self.store.table} not found: the stack is not deployed in this account/region "
                    "(scripts/deploy_all.py), or use --target local."
                ) from exc
            raise HistoryError(f"{what} failed: {exc}") from exc


# --- pure computations ------------------------------------------------------------------------------------


def compute_duration(record: Mapping[str, Any]) -> float | None:
    if not record.get("finished_at") or not record.get("created_at"):
        return None
    finished = datetime.fromisoformat(str(record["finished_at"]))
    return (finished - datetime.fromisoformat(str(record["created_at"]))).total_seconds()


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


def compute_top(frames: Iterable[pd.DataFrame], metric: str, higher: bool, n: int) -> pd.DataFrame:
    """The best `n` rows by `metric` over every frame, keeping only `n` rows between frames; rows without
    a value are left out; equal values keep the order of the jobs and rows."""
    best: pd.DataFrame | None = None
    for frame in frames:
        if metric not in frame.columns:
            continue
        valid = frame[frame[metric].notna()]
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
