"""Reads and writes of the pipeline: bars and results in S3, batch and job records in DynamoDB.

Exactly-once counting rests on one transaction: a job's move to a terminal status (conditional on it not
being terminal yet) and the increment of its batch's counters commit together or not at all. A redelivered
result fails the condition and counts nothing. `ClientError` is translated here, once, into `StoreError`.

This module is the only one that knows the item layout: it converts `BatchRecord` / `JobRecord` to and
from DynamoDB items (keys from `names`), and every query of the table is here:

- one batch: GetItem `PK = BATCH#<id>, SK = META`;
- batches newest first, since a date: Query on the index `batches-by-created`, `GSI1PK = "BATCHES" AND
  GSI1SK >= :since`, descending (a status is a filter on that query);
- a batch's jobs (or only those with a status): Query `PK = BATCH#<id> AND begins_with(SK, "JOB#")`.

Every query follows `LastEvaluatedKey` through a boto3 paginator; nothing scans the table.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from botocore.exceptions import ClientError

from .. import names
from .clients import ClientFactory
from .errors import MissingObjectError, StoreError
from .records import BatchRecord, BatchStatus, JobOutcome, JobRecord, JobStatus

JOB_TTL_DAYS = 30
REGISTER_THREADS = 8  # concurrent conditional puts when registering a batch's jobs
PAGE_SIZE = 100  # items per DynamoDB query page
_ABSENT_BATCH = f"attribute_not_exists({names.TABLE_HASH})"
_ABSENT_JOB = f"attribute_not_exists({names.TABLE_RANGE})"
_BATCH_FIELDS = {f.name for f in fields(BatchRecord)}
_JOB_FIELDS = {f.name for f in fields(JobRecord)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": repr(float(value)) if isinstance(value, float) else str(value)}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _plain(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
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


def encode_bars(bars: pd.DataFrame) -> bytes:
    """Bars as a compressed npz: index in ns plus OHLCV columns, attrs as JSON (no pyarrow in the layer)."""
    buffer = io.BytesIO()
    index = pd.DatetimeIndex(bars.index).as_unit("ns")
    attrs = {k: v for k, v in bars.attrs.items() if isinstance(v, (str, int, float, bool))}
    arrays: dict[str, Any] = {
        c: bars[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")
    }
    arrays["timestamp"] = index.asi8
    arrays["attrs"] = np.frombuffer(json.dumps(attrs).encode(), dtype=np.uint8)
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def decode_bars(body: bytes) -> pd.DataFrame:
    with np.load(io.BytesIO(body)) as data:
        index = pd.DatetimeIndex(pd.to_datetime(data["timestamp"], unit="ns", utc=True), name="timestamp")
        frame = pd.DataFrame({c: data[c] for c in ("open", "high", "low", "close", "volume")}, index=index)
        frame.attrs.update(json.loads(bytes(data["attrs"]).decode()))
    return frame


# --- records ↔ items ---------------------------------------------------------------------------------------


def _batch_key(batch_id: str) -> dict[str, dict[str, str]]:
    return {names.TABLE_HASH: _s(names.batch_pk(batch_id)), names.TABLE_RANGE: _s(names.BATCH_SK)}


def _job_key(batch_id: str, job_id: str) -> dict[str, dict[str, str]]:
    return {names.TABLE_HASH: _s(names.batch_pk(batch_id)), names.TABLE_RANGE: _s(names.job_sk(job_id))}


def _batch_record(item: Mapping[str, Mapping[str, Any]]) -> BatchRecord:
    plain = _plain(item)
    values = {k: v for k, v in plain.items() if k in _BATCH_FIELDS}
    if "status" in values:
        values["status"] = BatchStatus(values["status"])
    return BatchRecord(**values)


def _job_record(item: Mapping[str, Mapping[str, Any]]) -> JobRecord:
    plain = _plain(item)
    values: dict[str, Any] = {k: v for k, v in plain.items() if k in _JOB_FIELDS}
    if "status" in values:
        values["status"] = JobStatus(values["status"])
    if "symbols" in values:
        values["symbols"] = tuple(s for s in str(values["symbols"]).split(",") if s)
    if "best" in values:
        values["best"] = json.loads(str(values["best"]))
    for optional in ("error", "result_key"):
        if optional in values:
            values[optional] = values[optional] or None  # an outcome without one stores ""
    if "ttl" in plain:
        values["expires_at"] = int(plain["ttl"])
    if "duration_s" in values:
        values["duration_s"] = float(values["duration_s"])
    return JobRecord(**values)


def _projection(attributes: Sequence[str] | None, request: dict[str, Any]) -> None:
    """Ask a query for `attributes` only (record field names; `expires_at` is stored as `ttl`)."""
    if not attributes:
        return
    stored = ["ttl" if a == "expires_at" else a for a in attributes]
    aliases = {f"#a{i}": name for i, name in enumerate(stored)}
    request["ProjectionExpression"] = ", ".join(aliases)
    request.setdefault("ExpressionAttributeNames", {}).update(aliases)


@dataclass
class Store:
    clients: ClientFactory
    table: str
    bucket: str
    pages_read: int = field(default=0, compare=False)  # DynamoDB query pages read (pagination tests)

    # --- S3 ---------------------------------------------------------------------------------------------

    def put_bytes(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        self._call("s3", "put_object", Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def get_bytes(self, key: str) -> bytes:
        try:
            response = self.clients.client("s3").get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            # Without s3:ListBucket (our roles have none) S3 answers a missing key with 403, not 404.
            if code in {"NoSuchKey", "404", "NotFound", "403", "AccessDenied", "Forbidden"}:
                raise MissingObjectError(
                    f"s3://{self.bucket}/{key} does not exist (or this role may not read it)"
                ) from exc
            raise StoreError(f"reading s3://{self.bucket}/{key} failed: {exc}") from exc
        return bytes(response["Body"].read())

    def put_result_body(self, key: str, body: bytes) -> None:
        """A stored result body (`jobs.results`: columnar JSON)."""
        self.put_bytes(key, body, "application/json")

    def put_json(self, key: str, value: Any) -> None:
        self.put_bytes(key, json.dumps(value, allow_nan=False).encode(), "application/json")

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def put_bars(self, key: str, bars: pd.DataFrame) -> None:
        self.put_bytes(key, encode_bars(bars))

    def load_bars(self, key: str) -> pd.DataFrame:
        body = self.get_bytes(key)
        try:
            return decode_bars(body)
        except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            # The whole object was read and is not bars: reading it again gives the same bytes.
            raise StoreError(
                f"s3://{self.bucket}/{key} is not a bars object (an npz of OHLCV arrays): {exc}; "
                "upload the bars again.",
                retryable=False,
            ) from exc

    # --- DynamoDB: batches ------------------------------------------------------------------------------

    def create_batch(self, batch: BatchRecord) -> bool:
        """Write a new batch record (RUNNING, counters at zero); False when a batch with this id already
        exists (a resume)."""
        item = {
            **_batch_key(batch.batch_id),
            names.BATCH_INDEX_HASH: _s(names.BATCH_INDEX_PK),
            names.BATCH_INDEX_RANGE: _s(batch.created_at),
            "batch_id": _s(batch.batch_id),
            "name": _s(batch.name),
            "created_at": _s(batch.created_at),
            "status": _s(BatchStatus.RUNNING),
            "total_jobs": _n(batch.total_jobs),
            "succeeded": _n(0),
            "failed": _n(0),
            "backtests": _n(0),
            "spec": _s(batch.spec),
            "spec_hash": _s(batch.spec_hash),
            "ranking_metric": _s(batch.ranking_metric),
            "top_n": _n(batch.top_n),
            "planned_backtests": _n(batch.planned_backtests),
        }
        try:
            self.clients.client("dynamodb").put_item(
                TableName=self.table, Item=item, ConditionExpression=_ABSENT_BATCH
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise StoreError(f"creating batch {batch.batch_id} failed: {exc}") from exc
        return True

    def get_batch(self, batch_id: str) -> BatchRecord:
        response = self._call(
            "dynamodb",
            "get_item",
            TableName=self.table,
            ConsistentRead=True,
            Key=_batch_key(batch_id),
        )
        if "Item" not in response:
            raise MissingObjectError(f"batch {batch_id} not found in table {self.table}")
        return _batch_record(response["Item"])

    def batches(
        self,
        *,
        since: str | None = None,
        status: BatchStatus | None = None,
        attributes: Sequence[str] | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[BatchRecord]:
        """Batch records newest first (created at or after `since`, an ISO time), from the
        batches-by-created index; a status is a filter on that query."""
        condition = f"{names.BATCH_INDEX_HASH} = :all"
        values = {":all": _s(names.BATCH_INDEX_PK)}
        if since:
            condition += f" AND {names.BATCH_INDEX_RANGE} >= :since"
            values[":since"] = _s(since)
        request: dict[str, Any] = {
            "IndexName": names.BATCH_INDEX,
            "KeyConditionExpression": condition,
            "ScanIndexForward": False,
        }
        self._status_filter(request, values, status)
        _projection(attributes, request)
        for item in self._query(request, values, page_size, what="listing batches"):
            yield _batch_record(item)

    def is_counted(self, batch_id: str) -> bool:
        """Every job of the batch has a terminal outcome (counters only grow, so True stays True)."""
        return self.get_batch(batch_id).counted

    def try_complete(self, batch_id: str, summary_key: str) -> bool:
        """Flip RUNNING → COMPLETE once every job is counted; True only for the one caller that flips it."""
        if not self.is_counted(batch_id):
            return False
        try:
            self.clients.client("dynamodb").update_item(
                TableName=self.table,
                Key=_batch_key(batch_id),
                UpdateExpression="SET #s = :complete, finished_at = :now, summary_key = :key",
                ConditionExpression="#s = :running",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":complete": _s(BatchStatus.COMPLETE),
                    ":running": _s(BatchStatus.RUNNING),
                    ":now": _s(now_iso()),
                    ":key": _s(summary_key),
                },
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise StoreError(f"completing batch {batch_id} failed: {exc}") from exc
        return True

    def get_summary(self, batch: BatchRecord) -> dict[str, Any]:
        """The summary a completed batch points at (S3, `summary_key`)."""
        if not batch.summary_key:
            raise MissingObjectError(f"batch {batch.batch_id} has no summary yet (status {batch.status})")
        summary: dict[str, Any] = self.get_json(batch.summary_key)
        return summary

    # --- DynamoDB: jobs ---------------------------------------------------------------------------------

    def put_pending_jobs(self, batch_id: str, jobs: Sequence[JobRecord]) -> None:
        """Job records in PENDING; an existing record (a resumed batch) is left as it is.

        One conditional put per job (a batch write cannot keep an existing record), sent from a few threads:
        a 1,000-job batch registers in well under a second instead of 1,000 round trips in a row."""
        expires = int(time.time()) + JOB_TTL_DAYS * 86400
        dynamodb = self.clients.client("dynamodb")  # boto3 clients are thread-safe

        def put(job: JobRecord) -> None:
            item = {
                **_job_key(batch_id, job.job_id),
                "job_id": _s(job.job_id),
                "status": _s(JobStatus.PENDING),
                "attempts": _n(0),
                "strategy": _s(job.strategy),
                "symbols": _s(",".join(job.symbols)),
                "backtests": _n(job.backtests),
                "ttl": _n(expires),
            }
            try:
                dynamodb.put_item(TableName=self.table, Item=item, ConditionExpression=_ABSENT_JOB)
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise StoreError(f"recording job {job.job_id} failed: {exc}") from exc

        if len(jobs) <= 1:
            for job in jobs:
                put(job)
            return
        with ThreadPoolExecutor(max_workers=min(REGISTER_THREADS, len(jobs))) as pool:
            for _ in pool.map(put, jobs):  # re-raises the first failure
                pass

    def mark_running(self, batch_id: str, job_id: str, worker: str, sent_ms: int | None = None) -> None:
        """PENDING/RUNNING → RUNNING with attempts + 1; a job already terminal is left alone.

        `sent_ms` (the SQS message's SentTimestamp) is kept as `sent_at`, so queue wait (`started_at -
        sent_at`) and job latency (`finished_at - sent_at`) can be read back per job."""
        values = {
            ":running": _s(JobStatus.RUNNING),
            ":w": _s(worker),
            ":now": _s(now_iso()),
            ":one": _n(1),
            ":ok": _s(JobStatus.SUCCEEDED),
            ":failed": _s(JobStatus.FAILED),
        }
        update = "SET #s = :running, worker = :w, started_at = :now"
        if sent_ms is not None:
            values[":sent"] = _s(
                datetime.fromtimestamp(sent_ms / 1000, UTC).isoformat(timespec="milliseconds")
            )
            update += ", sent_at = :sent"
        try:
            self.clients.client("dynamodb").update_item(
                TableName=self.table,
                Key=_job_key(batch_id, job_id),
                UpdateExpression=f"{update} ADD attempts :one",
                ConditionExpression=f"attribute_exists({names.TABLE_RANGE}) AND NOT #s IN (:ok, :failed)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return
            raise StoreError(f"marking job {job_id} running failed: {exc}") from exc

    def record_outcome(self, batch_id: str, job_id: str, outcome: JobOutcome) -> bool:
        """Job → SUCCEEDED/FAILED and batch counters + 1, in one transaction; False for a duplicate."""
        counter = "succeeded" if outcome.status is JobStatus.SUCCEEDED else "failed"
        values = {
            ":status": _s(outcome.status),
            ":ok": _s(JobStatus.SUCCEEDED),
            ":failed": _s(JobStatus.FAILED),
            ":duration": _n(float(outcome.duration_s)),
            ":now": _s(now_iso()),
            ":error": _s(outcome.error or ""),
            ":key": _s(outcome.result_key or ""),
            ":best": _s(json.dumps(outcome.best, allow_nan=False)),
        }
        job_update = {
            "TableName": self.table,
            "Key": _job_key(batch_id, job_id),
            "UpdateExpression": "SET #s = :status, duration_s = :duration, finished_at = :now, #e = :error, "
            "result_key = :key, best = :best",
            "ConditionExpression": f"attribute_exists({names.TABLE_RANGE}) AND NOT #s IN (:ok, :failed)",
            "ExpressionAttributeNames": {"#s": "status", "#e": "error"},
            "ExpressionAttributeValues": values,
        }
        batch_update = {
            "TableName": self.table,
            "Key": _batch_key(batch_id),
            "UpdateExpression": f"ADD {counter} :one, backtests :n",
            "ExpressionAttributeValues": {":one": _n(1), ":n": _n(int(outcome.backtests))},
        }
        try:
            self.clients.client("dynamodb").transact_write_items(
                TransactItems=[{"Update": job_update}, {"Update": batch_update}]
            )
        except ClientError as exc:
            if _code(exc) == "TransactionCanceledException" and _condition_failed(exc):
                return False
            raise StoreError(f"recording the result of job {job_id} failed: {exc}") from exc
        return True

    def jobs(
        self,
        batch_id: str,
        *,
        status: JobStatus | None = None,
        attributes: Sequence[str] | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[JobRecord]:
        """The batch's job records (its partition), optionally only those with `status` and only some
        attributes; consistent reads."""
        request: dict[str, Any] = {
            "KeyConditionExpression": f"{names.TABLE_HASH} = :pk AND begins_with({names.TABLE_RANGE}, :job)",
            "ConsistentRead": True,
        }
        values = {":pk": _s(names.batch_pk(batch_id)), ":job": _s(names.JOB_SK_PREFIX)}
        self._status_filter(request, values, status)
        _projection(attributes, request)
        for item in self._query(request, values, page_size, what=f"listing the jobs of batch {batch_id}"):
            yield _job_record(item)

    def list_jobs(self, batch_id: str) -> list[JobRecord]:
        return list(self.jobs(batch_id))

    # --- internals --------------------------------------------------------------------------------------

    @staticmethod
    def _status_filter(request: dict[str, Any], values: dict[str, Any], status: str | None) -> None:
        if status:
            request["FilterExpression"] = "#status = :status"
            request.setdefault("ExpressionAttributeNames", {})["#status"] = "status"
            values[":status"] = _s(status)

    def _query(
        self, request: dict[str, Any], values: dict[str, Any], page_size: int, *, what: str
    ) -> Iterator[Mapping[str, Mapping[str, Any]]]:
        paginator = self.clients.client("dynamodb").get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table,
            ExpressionAttributeValues=values,
            PaginationConfig={"PageSize": page_size},
            **request,
        )
        try:
            for page in pages:
                self.pages_read += 1
                yield from page.get("Items", [])
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                raise MissingObjectError(f"{what} failed: table {self.table} not found") from exc
            raise StoreError(f"{what} failed: {exc}") from exc

    def _call(self, service: str, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.clients.client(service), operation)(**kwargs)
        except ClientError as exc:
            raise StoreError(f"{service}.{operation} failed: {exc}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _condition_failed(exc: ClientError) -> bool:
    reasons = exc.response.get("CancellationReasons") or []
    if reasons:
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)
    return "ConditionalCheckFailed" in str(exc)
