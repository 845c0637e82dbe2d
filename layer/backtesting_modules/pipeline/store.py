"""Reads and writes of the pipeline: bars and results in S3, batch and job records in DynamoDB.

Exactly-once counting rests on one transaction: a job's move to a terminal status (conditional on it not
being terminal yet) and the increment of its batch's counters commit together or not at all. A redelivered
result fails the condition and counts nothing. `ClientError` is translated here, once, into `StoreError`.

Only the store knows the item layout: it converts `BatchRecord` / `JobRecord` / `StoredResult` to and from
DynamoDB items (`items.py`, keys from `names`), and every query of the table is here:

- one batch: GetItem `PK = BATCH#<id>, SK = META`;
- batches newest first, since a date: Query on the index `batches-by-created`, `GSI1PK = "BATCHES" AND
  GSI1SK >= :since`, descending (a status is a filter on that query);
- a batch's jobs (or only those with a status): Query `PK = BATCH#<id> AND begins_with(SK, "JOB#")`;
- stored results of jobs, by job id (the reuse index): BatchGetItem `PK = JOB#<job_id>, SK = RESULT`.

Every query follows `LastEvaluatedKey` through a boto3 paginator; nothing scans the table.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from .. import names
from .clients import ClientFactory
from .errors import MissingObjectError, StoreError
from .items import (
    ABSENT_BATCH,
    ABSENT_JOB,
    STORED_RESULT_UPDATE,
    batch_item,
    batch_key,
    batch_record,
    job_key,
    job_record,
    now_iso,
    number,
    pending_job_item,
    projection,
    stored_result,
    stored_result_key,
    stored_result_values,
    text,
)
from .objects import decode_bars, encode_bars
from .records import BatchRecord, BatchStatus, JobOutcome, JobRecord, JobStatus, StoredResult

JOB_TTL_DAYS = 30
REGISTER_THREADS = 8  # concurrent conditional puts when registering a batch's jobs
PAGE_SIZE = 100  # items per DynamoDB query page
BATCH_GET_LIMIT = 100  # keys per BatchGetItem request
# Without s3:ListBucket (our roles have none) S3 answers a missing key with 403, not 404.
_ABSENT_OBJECT = {"NoSuchKey", "404", "NotFound", "403", "AccessDenied", "Forbidden"}

__all__ = ["PAGE_SIZE", "Store", "decode_bars", "encode_bars", "now_iso"]


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
            if _code(exc) in _ABSENT_OBJECT:
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

    def has_object(self, key: str) -> bool:
        """Whether the stack's bucket holds `key` (a content-addressed upload need not be sent twice)."""
        try:
            self.clients.client("s3").head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _ABSENT_OBJECT:
                return False
            raise StoreError(f"checking s3://{self.bucket}/{key} failed: {exc}") from exc
        return True

    def head_object(self, bucket: str, key: str) -> dict[str, Any]:
        """An object's metadata (ETag, ContentLength, ...) anywhere this role may read."""
        try:
            response: dict[str, Any] = self.clients.client("s3").head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _ABSENT_OBJECT:
                raise MissingObjectError(
                    f"s3://{bucket}/{key} does not exist (or this role may not read it)"
                ) from exc
            raise StoreError(f"reading the metadata of s3://{bucket}/{key} failed: {exc}") from exc
        return response

    def get_object_bytes(
        self, bucket: str, key: str, *, etag: str | None = None, byte_range: str | None = None
    ) -> bytes:
        """An object's bytes (or a `bytes=a-b` range), only if its ETag is still `etag` when given: an object
        rewritten since a batch was planned is a MissingObjectError, never other bars."""
        extra: dict[str, str] = {}
        if etag:
            extra["IfMatch"] = etag
        if byte_range:
            extra["Range"] = byte_range
        try:
            response = self.clients.client("s3").get_object(Bucket=bucket, Key=key, **extra)
        except ClientError as exc:
            code = _code(exc)
            if code in {"PreconditionFailed", "412"}:
                raise MissingObjectError(
                    f"s3://{bucket}/{key} changed since the batch was planned (ETag is no longer {etag}): "
                    "run the batch again to plan it on the new bars."
                ) from exc
            if code in _ABSENT_OBJECT:
                raise MissingObjectError(
                    f"s3://{bucket}/{key} does not exist (or this role may not read it)"
                ) from exc
            raise StoreError(f"reading s3://{bucket}/{key} failed: {exc}") from exc
        return bytes(response["Body"].read())

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
        item = batch_item(batch)
        try:
            self.clients.client("dynamodb").put_item(
                TableName=self.table, Item=item, ConditionExpression=ABSENT_BATCH
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
            Key=batch_key(batch_id),
        )
        if "Item" not in response:
            raise MissingObjectError(f"batch {batch_id} not found in table {self.table}")
        return batch_record(response["Item"])

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
        values = {":all": text(names.BATCH_INDEX_PK)}
        if since:
            condition += f" AND {names.BATCH_INDEX_RANGE} >= :since"
            values[":since"] = text(since)
        request: dict[str, Any] = {
            "IndexName": names.BATCH_INDEX,
            "KeyConditionExpression": condition,
            "ScanIndexForward": False,
        }
        self._status_filter(request, values, status)
        projection(attributes, request)
        for item in self._query(request, values, page_size, what="listing batches"):
            yield batch_record(item)

    def grow_batch(self, batch_id: str, jobs: int, backtests: int) -> None:
        """Count `jobs` more jobs (and their backtests) in a growing batch (a search's next wave)."""
        self._call(
            "dynamodb",
            "update_item",
            TableName=self.table,
            Key=batch_key(batch_id),
            UpdateExpression="ADD total_jobs :n, planned_backtests :b",
            ExpressionAttributeValues={":n": number(jobs), ":b": number(backtests)},
        )

    def close_batch(self, batch_id: str, jobs: int, backtests: int) -> None:
        """A growing batch gets no more jobs: its totals are set to what it holds (a resumed search may have
        grown it twice for the same wave) and it completes once they are all counted."""
        self._call(
            "dynamodb",
            "update_item",
            TableName=self.table,
            Key=batch_key(batch_id),
            UpdateExpression="SET growing = :no, total_jobs = :n, planned_backtests = :b",
            ExpressionAttributeValues={":no": number(0), ":n": number(jobs), ":b": number(backtests)},
        )

    def is_counted(self, batch_id: str) -> bool:
        """Every job of the batch has a terminal outcome (counters only grow, so True stays True)."""
        return self.get_batch(batch_id).counted

    def try_complete(self, batch_id: str, summary_key: str) -> bool:
        """Flip RUNNING → COMPLETE once every job is counted; True only for the one caller that flips it."""
        return self.is_counted(batch_id) and self.flip_complete(batch_id, summary_key)

    def flip_complete(self, batch_id: str, summary_key: str) -> bool:
        """RUNNING → COMPLETE with its summary's key, whatever the counters say (the caller has decided the
        batch is done: `try_complete`, or the collector for a batch whose missing outcomes are unreadable
        results); True only for the one caller that flips it, never for a growing batch."""
        try:
            self.clients.client("dynamodb").update_item(
                TableName=self.table,
                Key=batch_key(batch_id),
                UpdateExpression="SET #s = :complete, finished_at = :now, summary_key = :key",
                # A growing batch (a search between waves) is not complete however many jobs are counted.
                ConditionExpression="#s = :running AND (attribute_not_exists(growing) OR growing = :no)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":complete": text(BatchStatus.COMPLETE),
                    ":running": text(BatchStatus.RUNNING),
                    ":now": text(now_iso()),
                    ":key": text(summary_key),
                    ":no": number(0),
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
            item = pending_job_item(batch_id, job, expires)
            try:
                dynamodb.put_item(TableName=self.table, Item=item, ConditionExpression=ABSENT_JOB)
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
            ":running": text(JobStatus.RUNNING),
            ":w": text(worker),
            ":now": text(now_iso()),
            ":one": number(1),
            ":ok": text(JobStatus.SUCCEEDED),
            ":failed": text(JobStatus.FAILED),
        }
        update = "SET #s = :running, worker = :w, started_at = :now"
        if sent_ms is not None:
            values[":sent"] = text(
                datetime.fromtimestamp(sent_ms / 1000, UTC).isoformat(timespec="milliseconds")
            )
            update += ", sent_at = :sent"
        try:
            self.clients.client("dynamodb").update_item(
                TableName=self.table,
                Key=job_key(batch_id, job_id),
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
            ":status": text(outcome.status),
            ":ok": text(JobStatus.SUCCEEDED),
            ":failed": text(JobStatus.FAILED),
            ":duration": number(float(outcome.duration_s)),
            ":now": text(now_iso()),
            ":error": text(outcome.error or ""),
            ":key": text(outcome.result_key or ""),
            ":best": text(json.dumps(outcome.best, allow_nan=False)),
            ":reused": {"BOOL": outcome.reused},
            ":bars": text(json.dumps(outcome.bars, allow_nan=False)),
        }
        job_update = {
            "TableName": self.table,
            "Key": job_key(batch_id, job_id),
            "UpdateExpression": "SET #s = :status, duration_s = :duration, finished_at = :now, #e = :error, "
            "result_key = :key, best = :best, reused = :reused, bars = :bars",
            "ConditionExpression": f"attribute_exists({names.TABLE_RANGE}) AND NOT #s IN (:ok, :failed)",
            "ExpressionAttributeNames": {"#s": "status", "#e": "error"},
            "ExpressionAttributeValues": values,
        }
        batch_update = {
            "TableName": self.table,
            "Key": batch_key(batch_id),
            "UpdateExpression": f"ADD {counter} :one, backtests :n",
            "ExpressionAttributeValues": {":one": number(1), ":n": number(int(outcome.backtests))},
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
        values = {":pk": text(names.batch_pk(batch_id)), ":job": text(names.JOB_SK_PREFIX)}
        self._status_filter(request, values, status)
        projection(attributes, request)
        for item in self._query(request, values, page_size, what=f"listing the jobs of batch {batch_id}"):
            yield job_record(item)

    def list_jobs(self, batch_id: str) -> list[JobRecord]:
        return list(self.jobs(batch_id))

    # --- DynamoDB: stored results (the reuse index) --------------------------------------------------

    def put_stored_result(self, result: StoredResult) -> None:
        """Record that `result.job_id` has a stored result (idempotent: a redelivery writes the same)."""
        self._call(
            "dynamodb",
            "update_item",
            TableName=self.table,
            Key=stored_result_key(result.job_id),
            UpdateExpression=STORED_RESULT_UPDATE,
            ExpressionAttributeValues=stored_result_values(result),
        )

    def stored_results(self, job_ids: Iterable[str]) -> dict[str, StoredResult]:
        """The stored results of the jobs that have one, by job id (BatchGetItem, 100 keys a request)."""
        wanted = list(dict.fromkeys(job_ids))
        found: dict[str, StoredResult] = {}
        dynamodb = self.clients.client("dynamodb")
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            request = {
                self.table: {"Keys": [stored_result_key(j) for j in wanted[start : start + BATCH_GET_LIMIT]]}
            }
            for _ in range(10):  # unprocessed keys come back under load; botocore already backs off per call
                try:
                    response = dynamodb.batch_get_item(RequestItems=request)
                except ClientError as exc:
                    raise StoreError(f"reading stored job results failed: {exc}") from exc
                for item in response.get("Responses", {}).get(self.table, []):
                    result = stored_result(item)
                    found[result.job_id] = result
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise StoreError(
                    "reading stored job results: keys left unprocessed after 10 requests; retry."
                )
        return found

    # --- internals --------------------------------------------------------------------------------------

    @staticmethod
    def _status_filter(request: dict[str, Any], values: dict[str, Any], status: str | None) -> None:
        if status:
            request["FilterExpression"] = "#status = :status"
            request.setdefault("ExpressionAttributeNames", {})["#status"] = "status"
            values[":status"] = text(status)

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
