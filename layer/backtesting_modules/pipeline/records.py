"""The pipeline's records, as typed values: a batch (`BatchRecord`) and each of its jobs (`JobRecord`).

Only `store.py` turns them into DynamoDB items and back (`names.py` owns the key layout); everything else
reads attributes. A query that projects a few attributes gives records whose other fields keep their
defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from ..jobs.runner import JobStatus
from ..jobs.spec import DEFAULT_RANKING_METRIC, DEFAULT_TOP_N


class BatchStatus(StrEnum):
    RUNNING = "RUNNING"  # jobs registered, not all counted (or the summary not written yet)
    COMPLETE = "COMPLETE"  # every job counted, the summary written


TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED)


@dataclass(frozen=True)
class BatchRecord:
    """A batch: what it is (name, spec, ranking) and how far it got (counters, status, summary)."""

    batch_id: str
    name: str = ""
    created_at: str = ""  # ISO time, UTC, milliseconds (also the sort key of the batches-by-created index)
    status: BatchStatus = BatchStatus.RUNNING
    total_jobs: int = 0
    succeeded: int = 0
    failed: int = 0
    backtests: int = 0
    spec: str = "{}"  # the validated spec, as JSON
    spec_hash: str = ""
    ranking_metric: str = DEFAULT_RANKING_METRIC
    top_n: int = DEFAULT_TOP_N
    min_trades: int = 0  # variants with fewer trades are listed apart (`ranking.min_trades`)
    # A search adds its jobs a wave at a time: while `growing`, a fully counted batch is not completed
    # (the driver closes it after the last wave, then completes it).
    growing: bool = False
    planned_backtests: int = 0
    finished_at: str | None = None
    summary_key: str | None = None
    data: str = "{}"  # the bars it runs on, as JSON: source, window, gap policy, facts per symbol

    @property
    def done(self) -> int:
        """Jobs with a terminal outcome, as counted."""
        return self.succeeded + self.failed

    @property
    def counted(self) -> bool:
        """Every job has a terminal outcome (counters only grow, so True stays True)."""
        return self.done >= self.total_jobs

    @property
    def complete(self) -> bool:
        return self.status is BatchStatus.COMPLETE

    def spec_document(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.spec or "{}")
        return document

    def data_document(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.data or "{}")
        return document

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON document (spec and data as documents, not strings)."""
        document = {**asdict(self), "status": str(self.status), "spec": self.spec_document()}
        return {**document, "data": self.data_document()}


@dataclass(frozen=True)
class JobRecord:
    """A job of a batch: what it runs, where it ran, and its outcome."""

    job_id: str
    status: JobStatus = JobStatus.PENDING
    attempts: int = 0  # receives that marked it running
    strategy: str = ""
    symbols: tuple[str, ...] = ()
    backtests: int = 0  # planned (until its outcome is recorded)
    worker: str | None = None  # "<host>:<pid>" of the last worker that ran it
    sent_at: str | None = None  # SQS SentTimestamp of the message that ran it
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None  # engine seconds
    error: str | None = None
    result_key: str | None = None
    best: dict[str, Any] | None = None  # its best row by the batch's ranking metric
    expires_at: int | None = None  # epoch seconds (DynamoDB TTL)
    reused: bool = False  # its result came from an earlier batch that ran the same job
    bars: dict[str, Any] | None = None  # per symbol, what the worker measured reading an S3 object

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    def to_json(self, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The record as a JSON document (symbols comma-separated, as stored), only `fields` if given."""
        document = {**asdict(self), "status": str(self.status), "symbols": ",".join(self.symbols)}
        return {k: document[k] for k in fields} if fields else document


@dataclass(frozen=True)
class JobOutcome:
    """What the collector records when a job's result (or failure) arrives."""

    status: JobStatus  # SUCCEEDED or FAILED
    backtests: int = 0
    duration_s: float = 0.0  # engine seconds
    error: str | None = None
    result_key: str | None = None
    best: Mapping[str, Any] | None = None
    reused: bool = False  # recorded by the driver from an earlier batch's stored result
    bars: Mapping[str, Any] | None = None  # per symbol, what the worker measured reading an S3 object


@dataclass(frozen=True)
class StoredResult:
    """A job's stored result, found by its id by any batch that plans the same job (the reuse index)."""

    job_id: str
    result_key: str
    backtests: int
    duration_s: float
    best: dict[str, Any] | None = None
    bars: dict[str, Any] | None = None
    stored_at: str = ""

    def outcome(self) -> JobOutcome:
        """The outcome a batch records when it reuses this result."""
        return JobOutcome(
            JobStatus.SUCCEEDED,
            backtests=self.backtests,
            duration_s=self.duration_s,
            result_key=self.result_key,
            best=self.best,
            reused=True,
            bars=self.bars,
        )
