"""The table's item layout: records (`records.py`) to and from DynamoDB items, with the keys `names.py` owns.
Only the store (`store.py`) uses it: no other module reads or writes an item.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from .. import names
from .records import BatchRecord, BatchStatus, JobRecord, JobStatus, StoredResult

ABSENT_BATCH = f"attribute_not_exists({names.TABLE_HASH})"
ABSENT_JOB = f"attribute_not_exists({names.TABLE_RANGE})"
_BATCH_FIELDS = {f.name for f in fields(BatchRecord)}
_JOB_FIELDS = {f.name for f in fields(JobRecord)}


def text(value: str) -> dict[str, str]:
    return {"S": value}


def number(value: float) -> dict[str, str]:
    return {"N": repr(float(value)) if isinstance(value, float) else str(value)}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def plain(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A DynamoDB item with its type tags removed."""
    out: dict[str, Any] = {}
    for key, typed in item.items():
        ((kind, value),) = typed.items()
        if kind == "N":
            out[key] = float(value) if any(c in value for c in ".eE") else int(value)
        elif kind == "NULL":
            out[key] = None
        else:
            out[key] = value
    return out


# --- records ↔ items ---------------------------------------------------------------------------------------


def batch_key(batch_id: str) -> dict[str, dict[str, str]]:
    return {names.TABLE_HASH: text(names.batch_pk(batch_id)), names.TABLE_RANGE: text(names.BATCH_SK)}


def job_key(batch_id: str, job_id: str) -> dict[str, dict[str, str]]:
    return {names.TABLE_HASH: text(names.batch_pk(batch_id)), names.TABLE_RANGE: text(names.job_sk(job_id))}


def stored_result_key(job_id: str) -> dict[str, dict[str, str]]:
    return {names.TABLE_HASH: text(names.job_pk(job_id)), names.TABLE_RANGE: text(names.RESULT_SK)}


def batch_item(batch: BatchRecord) -> dict[str, dict[str, str]]:
    """A new batch's item: RUNNING, counters at zero, on the batches-by-created index."""
    return {
        **batch_key(batch.batch_id),
        names.BATCH_INDEX_HASH: text(names.BATCH_INDEX_PK),
        names.BATCH_INDEX_RANGE: text(batch.created_at),
        "batch_id": text(batch.batch_id),
        "name": text(batch.name),
        "created_at": text(batch.created_at),
        "status": text(BatchStatus.RUNNING),
        "total_jobs": number(batch.total_jobs),
        "succeeded": number(0),
        "failed": number(0),
        "backtests": number(0),
        "spec": text(batch.spec),
        "spec_hash": text(batch.spec_hash),
        "ranking_metric": text(batch.ranking_metric),
        "top_n": number(batch.top_n),
        "min_trades": number(batch.min_trades),
        "growing": number(1 if batch.growing else 0),
        "planned_backtests": number(batch.planned_backtests),
        "data": text(batch.data),
    }


def pending_job_item(batch_id: str, job: JobRecord, expires: int) -> dict[str, dict[str, str]]:
    return {
        **job_key(batch_id, job.job_id),
        "job_id": text(job.job_id),
        "status": text(JobStatus.PENDING),
        "attempts": number(0),
        "strategy": text(job.strategy),
        "symbols": text(",".join(job.symbols)),
        "backtests": number(job.backtests),
        "ttl": number(expires),
    }


def stored_result_values(result: StoredResult) -> dict[str, dict[str, str]]:
    """The attributes of a job's stored result (the reuse index item, keyed by `stored_result_key`)."""
    return {
        ":job": text(result.job_id),
        ":key": text(result.result_key),
        ":n": number(result.backtests),
        ":duration": number(float(result.duration_s)),
        ":best": text(json.dumps(result.best, allow_nan=False)),
        ":bars": text(json.dumps(result.bars, allow_nan=False)),
        ":at": text(result.stored_at),
    }


STORED_RESULT_UPDATE = (
    "SET job_id = :job, result_key = :key, backtests = :n, duration_s = :duration, best = :best, "
    "bars = :bars, stored_at = :at"
)


def stored_result(item: Mapping[str, Mapping[str, Any]]) -> StoredResult:
    values = plain(item)
    return StoredResult(
        job_id=str(values["job_id"]),
        result_key=str(values["result_key"]),
        backtests=int(values["backtests"]),
        duration_s=float(values["duration_s"]),
        best=json.loads(str(values.get("best", "null"))),
        bars=json.loads(str(values.get("bars", "null"))),
        stored_at=str(values.get("stored_at", "")),
    )


def batch_record(item: Mapping[str, Mapping[str, Any]]) -> BatchRecord:
    values = {k: v for k, v in plain(item).items() if k in _BATCH_FIELDS}
    if "status" in values:
        values["status"] = BatchStatus(values["status"])
    if "growing" in values:
        values["growing"] = bool(values["growing"])
    return BatchRecord(**values)


def job_record(item: Mapping[str, Mapping[str, Any]]) -> JobRecord:
    stored = plain(item)
    values: dict[str, Any] = {k: v for k, v in stored.items() if k in _JOB_FIELDS}
    if "status" in values:
        values["status"] = JobStatus(values["status"])
    if "symbols" in values:
        values["symbols"] = tuple(s for s in str(values["symbols"]).split(",") if s)
    for document in ("best", "bars"):
        if document in values:
            values[document] = json.loads(str(values[document]))
    for optional in ("error", "result_key"):
        if optional in values:
            values[optional] = values[optional] or None  # an outcome without one stores ""
    if "ttl" in stored:
        values["expires_at"] = int(stored["ttl"])
    if "duration_s" in values:
        values["duration_s"] = float(values["duration_s"])
    if "reused" in values:
        values["reused"] = bool(values["reused"])
    return JobRecord(**values)


def projection(attributes: Sequence[str] | None, request: dict[str, Any]) -> None:
    """Ask a query for `attributes` only (record field names; `expires_at` is stored as `ttl`)."""
    if not attributes:
        return
    stored = ["ttl" if a == "expires_at" else a for a in attributes]
    aliases = {f"#a{i}": name for i, name in enumerate(stored)}
    request["ProjectionExpression"] = ", ".join(aliases)
    request.setdefault("ExpressionAttributeNames", {}).update(aliases)
