"""Batch history: the batches that ran, their jobs and their stored results, read back for
`scripts/results.py`. Read-only; the same code reads the embedded default and AWS.

Every read goes through the store's queries (`pipeline.store`: batches from the batches-by-created index,
one batch by its key, a batch's jobs from its partition; paginated, no scans). A batch's rows are read
from S3 one job body at a time (`results/<batch>/<job>.json`), so a query over a large batch holds one
job's rows plus what it keeps (a top N, or the compared metric per row).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from backtesting_modules import names
from backtesting_modules.jobs.results import result_frame
from backtesting_modules.jobs.runner import JobStatus
from backtesting_modules.pipeline.errors import MissingObjectError, StoreError
from backtesting_modules.pipeline.records import BatchRecord, BatchStatus, JobRecord
from backtesting_modules.pipeline.store import PAGE_SIZE, Store

from ..errors import HistoryError, NotDeployedError, UnknownBatchError
from .compute import compute_best, compute_duration

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
        return asdict(self)


@dataclass
class History:
    """Read-only queries over one stack's table and bucket."""

    store: Store
    page_size: int = PAGE_SIZE

    @property
    def queries(self) -> int:
        """DynamoDB query pages read so far (tests check the pagination)."""
        return self.store.pages_read

    # --- batches --------------------------------------------------------------------------------------

    def batches(
        self,
        *,
        since: str | None = None,
        status: BatchStatus | None = None,
        attributes: Sequence[str] = LIST_ATTRIBUTES,
    ) -> Iterator[BatchRecord]:
        """Batch records newest first (the attributes a listing needs)."""
        with _reading("listing batches", self.store.table):
            yield from self.store.batches(
                since=since, status=status, attributes=attributes, page_size=self.page_size
            )

    def list_batches(
        self, *, since: str | None = None, status: BatchStatus | None = None, limit: int = 20
    ) -> list[BatchEntry]:
        entries = []
        for record in self.batches(since=since, status=status):
            entries.append(self._entry(record))
            if len(entries) >= limit:
                break
        return entries

    def get_batch(self, batch_id: str) -> BatchRecord:
        try:
            return self.store.get_batch(batch_id)
        except MissingObjectError:
            raise UnknownBatchError(batch_id, self.suggest(batch_id), self.store.table) from None

    def suggest(self, batch_id: str, n: int = 3) -> list[str]:
        """Ids that start with `batch_id`, then the closest ids, then ids of batches named `batch_id`."""
        known = [(r.batch_id, r.name) for r in self.batches(attributes=("batch_id", "name"))]
        ids = [i for i, _ in known]
        picks = [i for i in ids if i.startswith(batch_id) and batch_id]
        picks += difflib.get_close_matches(batch_id, ids, n=n, cutoff=0.6)
        picks += [i for i, name in known if name == batch_id]
        return list(dict.fromkeys(picks))[:n]

    def summary(self, record: BatchRecord) -> dict[str, Any]:
        return self.store.get_summary(record)

    def validation(self, record: BatchRecord) -> dict[str, Any] | None:
        """The validated sweep's document (docs/validation.md), None for a batch without one."""
        key = names.validation_key(record.batch_id)
        with _reading(f"reading the validation of batch {record.batch_id}", self.store.bucket):
            if not self.store.has_object(key):
                return None
            document: dict[str, Any] = self.store.get_json(key)
        return document

    def search(self, record: BatchRecord) -> dict[str, Any] | None:
        """An adaptive search's document (docs/search.md), None for a batch that is not a search."""
        key = names.search_key(record.batch_id)
        with _reading(f"reading the search of batch {record.batch_id}", self.store.bucket):
            if not self.store.has_object(key):
                return None
            document: dict[str, Any] = self.store.get_json(key)
        return document

    # --- jobs and results -----------------------------------------------------------------------------

    def jobs(
        self, batch_id: str, *, status: JobStatus | None = None, attributes: Sequence[str] | None = None
    ) -> Iterator[JobRecord]:
        """The batch's job records (its partition), optionally only those with `status`."""
        with _reading(f"listing the jobs of batch {batch_id}", self.store.table):
            yield from self.store.jobs(
                batch_id, status=status, attributes=attributes, page_size=self.page_size
            )

    def job_bests(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """Each succeeded job's best row (kept in its record: no S3 read)."""
        for job in self.jobs(batch_id, status=JobStatus.SUCCEEDED, attributes=("job_id", "best")):
            if job.best:
                yield job.best

    def result_frames(
        self, record: BatchRecord, *, strategy: str | None = None, symbol: str | None = None
    ) -> Iterator[pd.DataFrame]:
        """Every succeeded job's rows (`result_frame`), one stored body at a time, optionally only one
        strategy's or one symbol's (jobs of other strategies or symbols are not read)."""
        seen = 0
        attributes = ("job_id", "strategy", "symbols", "result_key")
        for job in self.jobs(record.batch_id, status=JobStatus.SUCCEEDED, attributes=attributes):
            seen += 1
            if (strategy and job.strategy != strategy) or (
                symbol and len(job.symbols) == 1 and job.symbols[0] != symbol
            ):
                continue
            if not job.result_key:
                continue
            try:
                frame = result_frame(self.store.get_bytes(job.result_key), job_id=job.job_id)
            except MissingObjectError as exc:
                raise HistoryError(
                    f"{exc}: the result of job {job.job_id} cannot be read; if it was deleted, re-run the "
                    "batch; on AWS the role needs s3:GetObject on results/*."
                ) from exc
            if strategy:
                frame = frame[frame["strategy"] == strategy]
            if symbol:
                frame = frame[frame["symbol"] == symbol]
            yield frame.reset_index(drop=True)
        if seen == 0 and record.succeeded > 0:
            raise HistoryError(
                f"batch {record.batch_id} has {record.succeeded} succeeded jobs but no job records: they "
                "expire 30 days after the run (DynamoDB TTL); the batch summary (`results.py show`) remains."
            )

    # --- internals ------------------------------------------------------------------------------------

    def _entry(self, record: BatchRecord) -> BatchEntry:
        metric = record.ranking_metric
        bests = list(self.job_bests(record.batch_id))
        return BatchEntry(
            batch_id=record.batch_id,
            name=record.name,
            created_at=record.created_at,
            status=str(record.status),
            succeeded=record.succeeded,
            failed=record.failed,
            total_jobs=record.total_jobs,
            backtests=record.backtests,
            duration_s=compute_duration(record),
            ranking_metric=metric,
            best=compute_best(bests, metric),
        )


@contextmanager
def _reading(what: str, table: str) -> Iterator[None]:
    """A missing table means the stack is not deployed here; any other storage failure ends the query."""
    try:
        yield
    except MissingObjectError as exc:
        raise NotDeployedError(
            f"table {table} not found: the stack is not deployed in this account/region "
            "(scripts/deploy_all.py), or use --target local."
        ) from exc
    except StoreError as exc:
        raise HistoryError(f"{what} failed: {exc}") from exc
