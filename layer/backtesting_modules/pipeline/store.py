"""Reads and writes of the pipeline: bars and results in S3, batch and job records in DynamoDB.

Exactly-once counting rests on one transaction: a job's move to a terminal status (conditional on it not
being terminal yet) and the increment of its batch's counters commit together or not at all. A redelivered
result fails the condition and counts nothing. `ClientError` is translated here, once, into `StoreError`.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from botocore.exceptions import ClientError

from . import names
from .clients import ClientFactory
from .errors import MissingObjectError, StoreError

JOB_TTL_DAYS = 30
REGISTER_THREADS = 8  # concurrent conditional puts when registering a batch's jobs
TERMINAL = ("SUCCEEDED", "FAILED")


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": repr(float(value)) if isinstance(value, float) else str(value)}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _plain(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
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


@dataclass
class Store:
    clients: ClientFactory
    table: str
    bucket: str

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

    def create_batch(self, batch: Mapping[str, Any]) -> bool:
        """Write a new batch record; False when a batch with this id already exists (a resume)."""
        item = {
            "PK": _s(names.batch_pk(batch["batch_id"])),
            "SK": _s(names.BATCH_SK),
            "GSI1PK": _s(names.BATCH_INDEX_PK),
            "GSI1SK": _s(batch["created_at"]),
            "status": _s("RUNNING"),
            "succeeded": _n(0),
            "failed": _n(0),
            "backtests": _n(0),
            **{k: _s(v) if isinstance(v, str) else _n(v) for k, v in batch.items() if k not in {"status"}},
        }
        try:
            self.clients.client("dynamodb").put_item(
                TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(PK)"
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise StoreError(f"creating batch {batch['batch_id']} failed: {exc}") from exc
        return True

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        response = self._call(
            "dynamodb",
            "get_item",
            TableName=self.table,
            ConsistentRead=True,
            Key={"PK": _s(names.batch_pk(batch_id)), "SK": _s(names.BATCH_SK)},
        )
        if "Item" not in response:
            raise MissingObjectError(f"batch {batch_id} not found in table {self.table}")
        return _plain(response["Item"])

    def is_counted(self, batch_id: str) -> bool:
        """Every job of the batch has a terminal outcome (counters only grow, so True stays True)."""
        batch = self.get_batch(batch_id)
        return int(batch["succeeded"]) + int(batch["failed"]) >= int(batch["total_jobs"])

    def try_complete(self, batch_id: str, summary_key: str) -> bool:
        """Flip RUNNING → COMPLETE once every job is counted; True only for the one caller that flips it."""
        if not self.is_counted(batch_id):
            return False
        try:
            self.clients.client("dynamodb").update_item(
                TableName=self.table,
                Key={"PK": _s(names.batch_pk(batch_id)), "SK": _s(names.BATCH_SK)},
                UpdateExpression="SET #s = :complete, finished_at = :now, summary_key = :key",
                ConditionExpression="#s = :running",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":complete": _s("COMPLETE"),
                    ":running": _s("RUNNING"),
                    ":now": _s(now_iso()),
                    ":key": _s(summary_key),
                },
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise StoreError(f"completing batch {batch_id} failed: {exc}") from exc
        return True

    # --- DynamoDB: jobs ---------------------------------------------------------------------------------

    def put_pending_jobs(self, batch_id: str, jobs: list[Mapping[str, Any]]) -> None:
        """Job records in PENDING; an existing record (a resumed batch) is left as it is.

        One conditional put per job (a batch write cannot keep an existing record), sent from a few threads:
        a 1,000-job batch registers in well under a second instead of 1,000 round trips in a row."""
        expires = int(time.time()) + JOB_TTL_DAYS * 86400
        dynamodb = self.clients.client("dynamodb")  # boto3 clients are thread-safe

        def put(job: Mapping[str, Any]) -> None:
            item = {
                "PK": _s(names.batch_pk(batch_id)),
                "SK": _s(names.job_sk(job["job_id"])),
                "job_id": _s(job["job_id"]),
                "status": _s("PENDING"),
                "attempts": _n(0),
                "strategy": _s(job["strategy"]),
                "symbols": _s(",".join(job["symbols"])),
                "backtests": _n(int(job.get("backtests", 0))),
                "ttl": _n(expires),
            }
            try:
                dynamodb.put_item(
                    TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(SK)"
                )
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise StoreError(f"recording job {job['job_id']} failed: {exc}") from exc

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
            ":running": _s("RUNNING"),
            ":w": _s(worker),
            ":now": _s(now_iso()),
            ":one": _n(1),
            ":ok": _s("SUCCEEDED"),
            ":failed": _s("FAILED"),
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
                Key={"PK": _s(names.batch_pk(batch_id)), "SK": _s(names.job_sk(job_id))},
                UpdateExpression=f"{update} ADD attempts :one",
                ConditionExpression="attribute_exists(SK) AND NOT #s IN (:ok, :failed)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return
            raise StoreError(f"marking job {job_id} running failed: {exc}") from exc

    def record_outcome(self, batch_id: str, job_id: str, outcome: Mapping[str, Any]) -> bool:
        """Job → SUCCEEDED/FAILED and batch counters + 1, in one transaction; False for a duplicate."""
        status = outcome["status"]
        counter = "succeeded" if status == "SUCCEEDED" else "failed"
        values = {
            ":status": _s(status),
            ":ok": _s("SUCCEEDED"),
            ":failed": _s("FAILED"),
            ":duration": _n(float(outcome.get("duration_s", 0.0))),
            ":now": _s(now_iso()),
            ":error": _s(str(outcome.get("error") or "")),
            ":key": _s(str(outcome.get("result_key") or "")),
            ":best": _s(json.dumps(outcome.get("best"), allow_nan=False)),
        }
        job_update = {
            "TableName": self.table,
            "Key": {"PK": _s(names.batch_pk(batch_id)), "SK": _s(names.job_sk(job_id))},
            "UpdateExpression": "SET #s = :status, duration_s = :duration, finished_at = :now, #e = :error, "
            "result_key = :key, best = :best",
            "ConditionExpression": "attribute_exists(SK) AND NOT #s IN (:ok, :failed)",
            "ExpressionAttributeNames": {"#s": "status", "#e": "error"},
            "ExpressionAttributeValues": values,
        }
        batch_update = {
            "TableName": self.table,
            "Key": {"PK": _s(names.batch_pk(batch_id)), "SK": _s(names.BATCH_SK)},
            "UpdateExpression": f"ADD {counter} :one, backtests :n",
            "ExpressionAttributeValues": {":one": _n(1), ":n": _n(int(outcome.get("backtests", 0)))},
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

    def list_jobs(self, batch_id: str) -> list[dict[str, Any]]:
        return list(self._query_jobs(batch_id))

    def _query_jobs(self, batch_id: str) -> Iterator[dict[str, Any]]:
        paginator = self.clients.client("dynamodb").get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :job)",
            ExpressionAttributeValues={":pk": _s(names.batch_pk(batch_id)), ":job": _s("JOB#")},
            ConsistentRead=True,
        )
        try:
            for page in pages:
                for item in page.get("Items", []):
                    yield _plain(item)
        except ClientError as exc:
            raise StoreError(f"listing the jobs of batch {batch_id} failed: {exc}") from exc

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
