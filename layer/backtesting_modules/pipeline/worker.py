"""What the worker does with one job message; the Lambda handler only wires it up.

- a deterministic failure (malformed message, unknown strategy, bars missing in S3) is reported as a FAILED
  result once, and the message goes straight to the DLQ: retrying cannot help;
- any other failure raises, so the record is listed in `batchItemFailures` and SQS redelivers it; on the
  last allowed receive the worker also reports it FAILED (so the batch still completes) before the redrive
  policy moves it to the DLQ;
- a result that cannot be sent raises too: nothing is lost, the job runs again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError

from ..jobs.data_refs import DataRef
from ..jobs.messages import MessageError, decode_job, encode_failure, encode_result, failure_for
from ..jobs.planner import Job
from ..jobs.runner import is_retryable, run_job
from .bars_source import load_ref
from .clients import ClientFactory
from .env import HandlerEnv
from .errors import StoreError
from .store import Store
from .summary import store_digest

logger = logging.getLogger(__name__)
BARS_CACHE_SIZE = 64
BATCH_CACHE_SIZE = 64  # top N per batch id


def retryable(exc: BaseException) -> bool:
    """Whether trying the job again can succeed: storage and network faults yes, bad input no."""
    if isinstance(exc, StoreError):
        return exc.retryable
    if isinstance(exc, (ClientError, BotoCoreError, OSError)):
        return True
    return is_retryable(exc)


@dataclass
class Worker:
    clients: ClientFactory
    env: HandlerEnv
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    # A container keeps the bars it read for its whole life, by reference (content-addressed: never stale).
    _bars: OrderedDict[str, tuple[pd.DataFrame, dict[str, Any] | None]] = field(default_factory=OrderedDict)
    # A batch's top N never changes after it is created: one read per batch and container.
    _shapes: dict[str, tuple[int, int]] = field(default_factory=dict)

    @cached_property
    def store(self) -> Store:
        return Store(self.clients, self.env.table, self.env.bucket)

    @cached_property
    def _uploads(self) -> ThreadPoolExecutor:
        """One thread for the result body's upload, which overlaps the digest's (clients are thread-safe)."""
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload")

    def process(self, record: dict[str, Any]) -> None:
        """Handle one SQS record; raises when the record should be retried."""
        body = record["body"]
        attributes = record.get("attributes", {})
        receives = int(attributes.get("ApproximateReceiveCount", "1"))
        sent_ms = attributes.get("SentTimestamp")
        try:
            job = replace(decode_job(body), attempt=receives)
        except MessageError as exc:
            self._poison(body, exc)
            return
        try:
            self._run(job, sent_ms=int(sent_ms) if sent_ms else None)
        except Exception as exc:
            if not retryable(exc):
                logger.warning("job %s failed for good: %s", job.job_id, exc)
                self._send(encode_failure(job, exc), job.batch_id, job.job_id)
                self._to_dead_letters(body, exc)
                return
            if receives >= self.env.max_receive_count:
                logger.error("job %s failed on its last attempt (%d): %s", job.job_id, receives, exc)
                gave_up = RuntimeError(f"gave up after {receives} attempts: {type(exc).__name__}: {exc}")
                self._send(encode_failure(job, gave_up), job.batch_id, job.job_id)
            raise

    def _run(self, job: Job, sent_ms: int | None = None) -> None:
        self.store.mark_running(job.batch_id, job.job_id, self.worker_id, sent_ms=sent_ms)
        bars: dict[str, pd.DataFrame] = {}
        measured: dict[str, dict[str, Any]] = {}
        for symbol, ref in zip(job.symbols, job.data_keys, strict=True):
            bars[symbol], facts = self._load_bars(ref, symbol)
            if facts is not None:
                measured[symbol] = facts
        result = run_job(job, bars)
        message, body = encode_result(result, inline_limit=self.env.inline_result_limit)
        if measured:
            message["bars"] = measured
        if body is not None and message["result_key"] is not None:
            # A big result: store it, and its digest, here where the rows are already in memory, so the
            # collector never downloads and parses the body again. The two uploads go out together.
            stored = self._uploads.submit(self.store.put_result_body, message["result_key"], body)
            top_n, min_trades = self._digest_shape(job.batch_id)
            store_digest(self.store, job.job_id, result.columns, job.ranking_metric, top_n, min_trades)
            stored.result()  # re-raises a failed upload: the job is retried, nothing is sent
        self._send(json.dumps(message, allow_nan=False), job.batch_id, job.job_id)

    def _digest_shape(self, batch_id: str) -> tuple[int, int]:
        """The batch's (top_n, min_trades): what its digests keep (read once per batch and container)."""
        if batch_id not in self._shapes:
            if len(self._shapes) >= BATCH_CACHE_SIZE:
                self._shapes.clear()
            batch = self.store.get_batch(batch_id)
            self._shapes[batch_id] = (batch.top_n, batch.min_trades)
        return self._shapes[batch_id]

    def _load_bars(self, ref: str, symbol: str) -> tuple[pd.DataFrame, dict[str, Any] | None]:
        """Bars by reference, cached for the container's life: a reference names one content (a content
        hash, or an S3 object at one ETag), so a cached frame is never stale."""
        if ref in self._bars:
            self._bars.move_to_end(ref)
            return self._bars[ref]
        loaded = load_ref(self.store, DataRef.parse(ref), symbol)
        self._bars[ref] = loaded
        if len(self._bars) > BARS_CACHE_SIZE:
            self._bars.popitem(last=False)
        return loaded

    def _send(self, body: str, batch_id: str, job_id: str) -> None:
        """A result or failure to the result queue; its ids also travel as message attributes, so the
        collector can still count the job if the body arrives unreadable (`collector.result_ids`)."""
        attributes = {
            name: {"DataType": "String", "StringValue": value}
            for name, value in (("batch_id", batch_id), ("job_id", job_id))
        }
        try:
            self.clients.client("sqs").send_message(
                QueueUrl=self.env.result_queue_url, MessageBody=body, MessageAttributes=attributes
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"sending to the result queue failed: {exc}") from exc

    def _to_dead_letters(self, body: str, exc: BaseException) -> None:
        self.clients.client("sqs").send_message(
            QueueUrl=self.env.dead_letter_queue_url,
            MessageBody=body,
            MessageAttributes={
                "error": {"DataType": "String", "StringValue": f"{type(exc).__name__}: {exc}"[:1000]}
            },
        )

    def _poison(self, body: str, exc: MessageError) -> None:
        """A body that is not a valid job: report it against its batch when its ids can be read."""
        logger.warning("malformed job message: %s", exc)
        try:
            raw = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested too deep, as decode_job already said
            raw = None
        if (
            isinstance(raw, dict)
            and isinstance(raw.get("batch_id"), str)
            and isinstance(raw.get("job_id"), str)
        ):
            failure = failure_for(raw["batch_id"], raw["job_id"], 1, exc, retryable=False)
            self._send(json.dumps(failure), raw["batch_id"], raw["job_id"])
        self._to_dead_letters(body, exc)
