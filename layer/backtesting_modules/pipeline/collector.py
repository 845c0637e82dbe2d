"""What the result collector does with one result (or failure) message.

Store the result body in S3 (same key, same bytes: a redelivery rewrites nothing new), record the job's
outcome and count it toward its batch in one conditional transaction (a duplicate counts nothing), then, once
every job is counted, write the batch summary and flip the batch to COMPLETE — the summary is written before
the flip, so a collector that dies in between leaves a batch the next message (or a resume) completes.
Metrics are published by the invocation whose write counted, once per invocation (`flush_metrics`): one
PutMetricData call with a statistic set per metric instead of one call per result.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .. import names
from ..jobs.messages import decode_failure, decode_result, message_kind
from ..jobs.planner import result_key
from ..jobs.results import ResultColumns, encode_result_body
from ..metrics import HIGHER_IS_BETTER
from .clients import ClientFactory
from .digest import compute_digest, merge_groups, ranked
from .env import HandlerEnv
from .records import BatchRecord, JobOutcome, JobStatus
from .store import Store, now_iso

logger = logging.getLogger(__name__)
SUMMARY_READERS = 16  # concurrent digest reads when a batch completes


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
            if columns is not None:  # inline rows; a big result's digest was written by its worker
                self._store_digest(batch_id, job_id, columns)
        elif kind == "failure":
            failure = decode_failure(body)
            batch_id, job_id = failure["batch_id"], failure["job_id"]
            error = failure["error"]
            outcome = JobOutcome(JobStatus.FAILED, error=f"{error['type']}: {error['message']}")
        else:
            raise ValueError(
                f"a {kind!r} message on the result queue: only results and failures belong there"
            )
        if self.store.record_outcome(batch_id, job_id, outcome):
            self._publish_job(outcome)
        else:
            logger.info("duplicate result for job %s (already counted)", job_id)
        if self.store.is_counted(batch_id):
            self.complete(batch_id)

    def _result_outcome(self, body: str) -> tuple[str, str, JobOutcome, ResultColumns | None]:
        """(batch id, job id, outcome, the rows when they came inline)."""
        message = decode_result(body)
        batch_id, job_id, columns = message["batch_id"], message["job_id"], message["columns"]
        key = message["result_key"] or result_key(batch_id, job_id)
        if columns is not None:  # inline: stored in the same form as a big result (same key, same bytes)
            self.store.put_result_body(key, encode_result_body(batch_id, job_id, columns))
        outcome = JobOutcome(
            JobStatus.SUCCEEDED,
            backtests=message["backtests"],
            duration_s=message["engine_seconds"],
            result_key=key,
            best=message["best"],
        )
        return batch_id, job_id, outcome, columns

    def _store_digest(self, batch_id: str, job_id: str, columns: ResultColumns) -> None:
        """Top rows and mergeable aggregates of one job, written while the batch is still running, so the
        summary at the end reads a few kilobytes per job instead of every row."""
        batch = self.store.get_batch(batch_id)
        metric = batch.ranking_metric
        higher = HIGHER_IS_BETTER.get(metric, True)
        self.store.put_json(
            names.digest_key(batch_id, job_id), compute_digest(columns, metric, higher, batch.top_n)
        )

    def complete(self, batch_id: str) -> bool:
        """Write the summary and flip the batch to COMPLETE; True for the invocation that flipped it."""
        batch = self.store.get_batch(batch_id)
        if batch.complete:
            return False
        created = datetime.fromisoformat(batch.created_at)
        key = names.summary_key(batch_id, created)
        self.store.put_json(key, self.summarize(batch))
        if not self.store.try_complete(batch_id, key):
            return False
        duration = (datetime.fromisoformat(now_iso()) - created).total_seconds()
        self._metrics += [("BatchDuration", duration, "Seconds"), ("BatchesCompleted", 1, "Count")]
        return True

    def summarize(self, batch: BatchRecord) -> dict[str, Any]:
        """Counts, the top N by the ranking metric, per-strategy and per-symbol aggregates, failures."""
        batch_id = batch.batch_id
        metric = batch.ranking_metric
        jobs = self.store.list_jobs(batch_id)
        keys = [names.digest_key(batch_id, j.job_id) for j in jobs if j.status is JobStatus.SUCCEEDED]
        # Read from a few threads: a 1,000-job batch is 1,000 small GETs, ~20 ms each on S3 one after another.
        with ThreadPoolExecutor(max_workers=max(1, min(SUMMARY_READERS, len(keys)))) as pool:
            digests = list(pool.map(self.store.get_json, keys))
        failures = [
            {
                "job_id": j.job_id,
                "strategy": j.strategy,
                "symbol": ",".join(j.symbols),
                "attempts": j.attempts,
                "error": j.error,
            }
            for j in jobs
            if j.status is JobStatus.FAILED
        ]
        higher = HIGHER_IS_BETTER.get(metric, True)
        top = ranked([row for d in digests for row in d["top"]], metric, higher)
        return {
            "version": 1,
            "batch_id": batch_id,
            "name": batch.name,
            "spec": batch.spec_document(),
            "created_at": batch.created_at,
            "summarized_at": now_iso(),
            "jobs": {"total": batch.total_jobs, "succeeded": batch.succeeded, "failed": batch.failed},
            "backtests": batch.backtests,
            "ranking": {"metric": metric, "higher_is_better": higher, "top": top[: batch.top_n]},
            "by_strategy": merge_groups(digests, "strategy", metric, higher),
            "by_symbol": merge_groups(digests, "symbol", metric, higher),
            "failures": failures,
        }

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
