"""What the result collector does with one result (or failure) message.

Store the result body in S3 (same key, same bytes: a redelivery rewrites nothing new) and the job's entry in
the reuse index (its stored result, found by job id by any later batch that plans the same job), record the
job's outcome and count it toward its batch in one conditional transaction (a duplicate counts nothing),
then, once every job is counted, complete the batch (`summary.complete_batch`: the summary is written before
the flip, so a collector that dies in between leaves a batch the next message, or a resume, completes).

A result (or failure) message that does not decode is a poison result (`Collector._unreadable`): its ids are
read from the message attributes the worker sends (`batch_id`, `job_id`) or, failing that, scanned from the
raw body (`result_ids`). With both, the job is recorded FAILED with the parse error through the same
exactly-once `record_outcome`; with the batch id only, the batch counts one more unreadable result, once per
SQS message id, and completes flagged (`unreadable_results`, a failure entry in its summary) when succeeded +
failed + unreadable reach its total. Either way the record then fails again, so SQS redelivers it (counting
nothing twice) and its redrive policy moves it to the DLQ for an operator: the collector's role sends to no
queue.
Metrics are published by the invocation whose write counted, once per invocation (`flush_metrics`): one
PutMetricData call with a statistic set per metric instead of one call per result.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .. import names
from ..jobs.messages import MessageError, decode_failure, decode_result, message_kind
from ..jobs.results import ResultColumns, encode_result_body
from ..names import result_key
from .clients import ClientFactory
from .env import HandlerEnv
from .errors import MissingObjectError, StoreError
from .items import batch_key, batch_record, number, plain, text
from .records import BatchRecord, JobOutcome, JobStatus, StoredResult
from .store import JOB_TTL_DAYS, Store, now_iso
from .summary import complete_batch, store_digest, summarize

logger = logging.getLogger(__name__)
UNREADABLE = "unreadable_results"  # batch attribute: poison results that named the batch but no job
UNREADABLE_SK_PREFIX = "UNREADABLE#"  # one marker item per counted poison result (by SQS message id)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:#-]{0,199}")  # what a recovered batch or job id may look like


def result_ids(record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(batch id, job id) of a result record whose body does not decode, each None when unknown: the
    message attributes the worker sends, else what `recover_ids` reads in the body."""
    found: dict[str, str | None] = {}
    attributes = record.get("messageAttributes") or {}
    for name in ("batch_id", "job_id"):
        attribute = attributes.get(name) or {}
        # Lambda's event spells it stringValue; an SQS ReceiveMessage response StringValue.
        value = attribute.get("stringValue", attribute.get("StringValue"))
        found[name] = value if isinstance(value, str) and _ID.fullmatch(value) else None
    if found["batch_id"] is None or found["job_id"] is None:
        batch_id, job_id = recover_ids(record.get("body", ""))
        if found["batch_id"] is None:
            found["batch_id"], found["job_id"] = batch_id, found["job_id"] or job_id
        elif found["job_id"] is None and batch_id == found["batch_id"]:
            found["job_id"] = job_id  # a body's job id only when it names the same batch
    return found["batch_id"], found["job_id"]


def recover_ids(body: str | bytes) -> tuple[str | None, str | None]:
    """(batch id, job id) read from a body too broken to decode, each None when it cannot be read: the
    fields of a body that parses as a JSON object, else a tolerant scan of the raw text for `"batch_id":
    "..."` / `"job_id": "..."` (a truncated or otherwise corrupt body still names them)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    try:
        raw = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        raw = None
    found: list[str | None] = []
    for name in ("batch_id", "job_id"):
        value = raw.get(name) if isinstance(raw, dict) else None
        if not isinstance(value, str) or not _ID.fullmatch(value):
            match = re.search(rf'"{name}"\s*:\s*"({_ID.pattern})"', body)
            value = match.group(1) if match else None
        found.append(value)
    return found[0], found[1]


@dataclass
class Collector:
    clients: ClientFactory
    env: HandlerEnv
    # (name, value, unit) counted by this invocation and not yet published; see flush_metrics.
    _metrics: list[tuple[str, float, str]] = field(default_factory=list, init=False, repr=False)

    @cached_property
    def store(self) -> Store:
        return Store(self.clients, self.env.table, self.env.bucket)

    def process(self, record: Mapping[str, Any]) -> None:
        body = record["body"]
        try:
            batch_id, job_id, outcome, columns = self._decode(body)
        except MessageError as exc:
            self._unreadable(record, exc)
            raise  # the record fails: SQS redelivers it (nothing counts twice), then dead-letters it
        if columns is not None:  # inline rows; a big result's digest was written by its worker
            batch = self.store.get_batch(batch_id)
            store_digest(self.store, job_id, columns, batch.ranking_metric, batch.top_n, batch.min_trades)
        if outcome.status is JobStatus.SUCCEEDED and outcome.result_key:
            self.store.put_stored_result(
                StoredResult(
                    job_id,
                    outcome.result_key,
                    outcome.backtests,
                    outcome.duration_s,
                    dict(outcome.best) if outcome.best else None,
                    dict(outcome.bars) if outcome.bars else None,
                    now_iso(),
                )
            )
        if self.store.record_outcome(batch_id, job_id, outcome):
            self._publish_job(outcome)
        else:
            logger.info("duplicate result for job %s (already counted)", job_id)
        self.complete(batch_id)

    def _decode(self, body: str) -> tuple[str, str, JobOutcome, ResultColumns | None]:
        """(batch id, job id, outcome, inline rows) of a result or failure; MessageError when unreadable."""
        kind = message_kind(body)
        if kind == "result":
            return self._result_outcome(body)
        if kind == "failure":
            failure = decode_failure(body)
            error = failure["error"]
            outcome = JobOutcome(JobStatus.FAILED, error=f"{error['type']}: {error['message']}")
            return failure["batch_id"], failure["job_id"], outcome, None
        raise ValueError(f"a {kind!r} message on the result queue: only results and failures belong there")

    def _unreadable(self, record: Mapping[str, Any], exc: MessageError) -> None:
        """A poison result: record its job FAILED with the parse error (once), or count it against its
        batch when only the batch can be named, and complete the batch if that was its last job."""
        batch_id, job_id = result_ids(record)
        if batch_id is None:
            logger.error("unreadable result message names no batch (it goes to the DLQ): %s", exc)
            return
        if job_id is not None:
            outcome = JobOutcome(JobStatus.FAILED, error=f"unreadable result message: {exc}")
            if self.store.record_outcome(batch_id, job_id, outcome):
                logger.error("job %s recorded FAILED: unreadable result message: %s", job_id, exc)
                self._publish_job(outcome)
            else:
                logger.info("unreadable result for job %s: its outcome is already recorded", job_id)
        elif self._count_unreadable(batch_id, str(record.get("messageId", "")), exc):
            logger.error("unreadable result message for batch %s, no job named: %s", batch_id, exc)
        self.complete(batch_id)

    def _count_unreadable(self, batch_id: str, message_id: str, exc: MessageError) -> bool:
        """Count one unreadable result against the batch, once per SQS message id (a marker item and the
        counter commit together; a redelivery fails the marker's condition); False for a duplicate."""
        batch_pk = text(names.batch_pk(batch_id))
        marker = {
            "Update": {
                "TableName": self.store.table,
                "Key": {
                    names.TABLE_HASH: batch_pk,
                    names.TABLE_RANGE: text(UNREADABLE_SK_PREFIX + message_id),
                },
                "UpdateExpression": "SET #e = :error, finished_at = :now, #ttl = :ttl",
                "ConditionExpression": f"attribute_not_exists({names.TABLE_RANGE})",
                "ExpressionAttributeNames": {"#e": "error", "#ttl": "ttl"},
                "ExpressionAttributeValues": {
                    ":error": text(str(exc)[:1000]),
                    ":now": text(now_iso()),
                    ":ttl": number(int(time.time()) + JOB_TTL_DAYS * 86400),
                },
            }
        }
        counter = {
            "Update": {
                "TableName": self.store.table,
                "Key": batch_key(batch_id),
                "UpdateExpression": f"ADD {UNREADABLE} :one",
                "ConditionExpression": f"attribute_exists({names.TABLE_RANGE})",  # never a phantom batch
                "ExpressionAttributeValues": {":one": number(1)},
            }
        }
        try:
            self.clients.client("dynamodb").transact_write_items(TransactItems=[marker, counter])
        except ClientError as exc_:
            reasons = exc_.response.get("CancellationReasons") or []
            if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                return False
            raise StoreError(f"counting an unreadable result of batch {batch_id} failed: {exc_}") from exc_
        return True

    def _result_outcome(self, body: str) -> tuple[str, str, JobOutcome, ResultColumns | None]:
        """(batch id, job id, outcome, the rows when they came inline)."""
        message = decode_result(body)
        batch_id, job_id, columns = message["batch_id"], message["job_id"], message["columns"]
        key = message["result_key"] or result_key(job_id)
        if columns is not None:  # inline: stored in the same form as a big result (same key, same bytes)
            self.store.put_result_body(key, encode_result_body(job_id, columns))
        outcome = JobOutcome(
            JobStatus.SUCCEEDED,
            backtests=message["backtests"],
            duration_s=message["engine_seconds"],
            result_key=key,
            best=message["best"],
            bars=message.get("bars"),
        )
        return batch_id, job_id, outcome, columns

    def complete(self, batch_id: str) -> bool:
        """Write the summary and flip the batch to COMPLETE once every job is counted (`summary`); True for
        the invocation that flipped it, which publishes the batch's metrics."""
        item = self._batch_item(batch_id)
        batch, unreadable = batch_record(item), int(plain(item).get(UNREADABLE, 0))
        if batch.complete or batch.growing:
            return False
        if batch.counted:
            completed = complete_batch(self.store, batch_id)
        elif unreadable and batch.done + unreadable >= batch.total_jobs:
            completed = self._complete_unreadable(batch, unreadable)
        else:
            return False
        if completed is None:
            return False
        created = datetime.fromisoformat(completed.created_at)
        duration = (datetime.fromisoformat(now_iso()) - created).total_seconds()
        self._metrics += [("BatchDuration", duration, "Seconds"), ("BatchesCompleted", 1, "Count")]
        return True

    def _batch_item(self, batch_id: str) -> Mapping[str, Any]:
        """The batch's item as stored (a BatchRecord has no field for `unreadable_results`)."""
        try:
            response = self.clients.client("dynamodb").get_item(
                TableName=self.store.table, Key=batch_key(batch_id), ConsistentRead=True
            )
        except ClientError as exc:
            raise StoreError(f"reading batch {batch_id} failed: {exc}") from exc
        if "Item" not in response:
            raise MissingObjectError(f"batch {batch_id} not found in table {self.store.table}")
        item: Mapping[str, Any] = response["Item"]
        return item

    def _complete_unreadable(self, batch: BatchRecord, unreadable: int) -> BatchRecord | None:
        """Complete a batch whose missing outcomes are `unreadable` poison results naming no job: the
        summary (written first, as `complete_batch` does) flags them as a failure, then the flip."""
        key = names.summary_key(batch.batch_id, datetime.fromisoformat(batch.created_at))
        summary = summarize(self.store, batch)
        summary["jobs"]["unreadable"] = unreadable
        summary["failures"].append(
            {
                "job_id": "",
                "strategy": "",
                "symbol": "",
                "attempts": 0,
                "error": f"{unreadable} unreadable result message(s) named this batch but no job: "
                f"{batch.total_jobs - batch.done} job(s) have no outcome; the messages are in the DLQ",
            }
        )
        self.store.put_json(key, summary)
        if not self.store.flip_complete(batch.batch_id, key):
            return None
        return self.store.get_batch(batch.batch_id)

    def _publish_job(self, outcome: JobOutcome) -> None:
        ok = outcome.status is JobStatus.SUCCEEDED
        self._metrics += [
            ("JobsSucceeded" if ok else "JobsFailed", 1.0, "Count"),
            ("BacktestsRun", float(outcome.backtests), "Count"),
        ]
        if ok:
            self._metrics.append(("JobDuration", float(outcome.duration_s), "Seconds"))

    def flush_metrics(self) -> None:
        """Publish what this invocation counted in one call: a statistic set (count, sum, min, max) per
        metric, so Sum, SampleCount and Average read the same as one datum per result would.

        Metrics are telemetry: the counts they describe are already stored, so a failed call is logged, not
        raised (raising would make SQS redeliver results that were counted)."""
        pending, self._metrics = self._metrics, []
        if not pending:
            return
        grouped: dict[tuple[str, str], list[float]] = {}
        for name, value, unit in pending:
            grouped.setdefault((name, unit), []).append(float(value))
        data = [
            {
                "MetricName": name,
                "Unit": unit,
                "StatisticValues": {
                    "SampleCount": float(len(values)),
                    "Sum": sum(values),
                    "Minimum": min(values),
                    "Maximum": max(values),
                },
            }
            for (name, unit), values in grouped.items()
        ]
        try:
            cloudwatch = self.clients.client("cloudwatch")
            cloudwatch.put_metric_data(Namespace=self.env.metric_namespace, MetricData=data)
        except (ClientError, BotoCoreError) as exc:
            logger.error("publishing %d metric(s) failed, they are dropped: %s", len(data), exc)
