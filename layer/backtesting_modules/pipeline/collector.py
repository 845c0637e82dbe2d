"""What the result collector does with one result (or failure) message.

Store the result body in S3 (same key, same bytes: a redelivery rewrites nothing new) and the job's entry in
the reuse index (its stored result, found by job id by any later batch that plans the same job), record the
job's outcome and count it toward its batch in one conditional transaction (a duplicate counts nothing),
then, once every job is counted, complete the batch (`summary.complete_batch`: the summary is written before
the flip, so a collector that dies in between leaves a batch the next message, or a resume, completes).
Metrics are published by the invocation whose write counted, once per invocation (`flush_metrics`): one
PutMetricData call with a statistic set per metric instead of one call per result.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..jobs.messages import decode_failure, decode_result, message_kind
from ..jobs.results import ResultColumns, encode_result_body
from ..names import result_key
from .clients import ClientFactory
from .env import HandlerEnv
from .records import JobOutcome, JobStatus, StoredResult
from .store import Store, now_iso
from .summary import complete_batch, store_digest

logger = logging.getLogger(__name__)


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
        kind = message_kind(body)
        if kind == "result":
            batch_id, job_id, outcome, columns = self._result_outcome(body)
        elif kind == "failure":
            failure = decode_failure(body)
            batch_id, job_id, columns = failure["batch_id"], failure["job_id"], None
            error = failure["error"]
            outcome = JobOutcome(JobStatus.FAILED, error=f"{error['type']}: {error['message']}")
        else:
            raise ValueError(
                f"a {kind!r} message on the result queue: only results and failures belong there"
            )
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
        completed = complete_batch(self.store, batch_id)
        if completed is None:
            return False
        created = datetime.fromisoformat(completed.created_at)
        duration = (datetime.fromisoformat(now_iso()) - created).total_seconds()
        self._metrics += [("BatchDuration", duration, "Seconds"), ("BatchesCompleted", 1, "Count")]
        return True

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
