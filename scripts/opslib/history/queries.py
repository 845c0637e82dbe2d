"""Batch history: the batches that ran, their jobs and their stored results, read back for
`scripts/results.py`. Read-only; the same code reads the embedded default and AWS.

Each access pattern has a key condition (nothing scans the table), and every query follows
`LastEvaluatedKey` through a boto3 paginator:

- batches newest first, since a date: Query on the index `batches-by-created`,
  `GSI1PK = "BATCHES" AND GSI1SK >= :since`, descending (a status is a filter on that query);
- one batch: GetItem `PK = BATCH#<id>, SK = META`;
- a batch's jobs (or only its failed ones): Query `PK = BATCH#<id> AND begins_with(SK, "JOB#")`.

A batch's rows are read from S3 one job body at a time (`results/<batch>/<job>.json`), so a query over a
large batch holds one job's rows plus what it keeps (a top N, or the compared metric per row).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from backtesting_modules.jobs.results import result_frame
from backtesting_modules.pipeline import names
from backtesting_modules.pipeline.errors import MissingObjectError
from backtesting_modules.pipeline.store import Store, _plain

from ..batch.execute import fetch_summary
from ..errors import HistoryError, NotDeployedError, UnknownBatchError
from .compute import compute_best, compute_duration

PAGE_SIZE = 100  # items per DynamoDB page; tests lower it to cross page boundaries
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
        return dict(self.__dict__)


@dataclass
class History:
    """Read-only queries over one stack's table and bucket (see the module docstring for the keys)."""

    store: Store
    page_size: int = PAGE_SIZE
    queries: int = field(default=0, compare=False)  # DynamoDB pages read (tests check the pagination)

    # --- batches --------------------------------------------------------------------------------------

    def batches(
        self,
        *,
        since: str | None = None,
        status: str | None = None,
        attributes: Sequence[str] = LIST_ATTRIBUTES,
    ) -> Iterator[dict[str, Any]]:
        """Batch records newest first, from the `batches-by-created` index (status is a filter on it)."""
        condition = "GSI1PK = :all" + (" AND GSI1SK >= :since" if since else "")
        values = {":all": {"S": names.BATCH_INDEX_PK}}
        if since:
            values[":since"] = {"S": since}
        request: dict[str, Any] = {
            "IndexName": names.BATCH_INDEX,
            "KeyConditionExpression": condition,
            "ScanIndexForward": False,
        }
        if status:
            request["FilterExpression"] = "#status = :status"
            values[":status"] = {"S": status}
        yield from self._query(request, values, attributes, what="listing batches")

    def list_batches(
        self, *, since: str | None = None, status: str | None = None, limit: int = 20
    ) -> list[BatchEntry]:
        entries = []
        for record in self.batches(since=since, status=status):
            entries.append(self._entry(record))
            if len(entries) >= limit:
                break
        return entries

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        try:
            return self.store.get_batch(batch_id)
        except MissingObjectError:
            raise UnknownBatchError(batch_id, self.suggest(batch_id), self.store.table) from None

    def suggest(self, batch_id: str, n: int = 3) -> list[str]:
        """Ids that start with `batch_id`, then the closest ids, then ids of batches named `batch_id`."""
        known = [
            (str(r["batch_id"]), str(r.get("name", "")))
            for r in self.batches(attributes=("batch_id", "name"))
        ]
        ids = [i for i, _ in known]
        picks = [i for i in ids if i.startswith(batch_id) and batch_id]
        picks += difflib.get_close_matches(batch_id, ids, n=n, cutoff=0.6)
        picks += [i for i, name in known if name == batch_id]
        return list(dict.fromkeys(picks))[:n]

    def summary(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return fetch_summary(self.store, dict(record))

    # --- jobs and results -----------------------------------------------------------------------------

    def jobs(
        self, batch_id: str, *, status: str | None = None, attributes: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """The batch's job records (its partition), optionally only those with `status`."""
        request: dict[str, Any] = {
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :job)",
            "ConsistentRead": True,
        }
        values = {":pk": {"S": names.batch_pk(batch_id)}, ":job": {"S": "JOB#"}}
        if status:
            request["FilterExpression"] = "#status = :status"
            values[":status"] = {"S": status}
        yield from self._query(request, values, attributes, what=f"listing the jobs of batch {batch_id}")

    def job_bests(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """Each succeeded job's best row (kept in its record: no S3 read)."""
        for job in self.jobs(batch_id, status="SUCCEEDED", attributes=("job_id", "best")):
            best = json.loads(str(job.get("best") or "null"))
            if best:
                yield best

    def result_frames(
        self, record: Mapping[str, Any], *, strategy: str | None = None, symbol: str | None = None
    ) -> Iterator[pd.DataFrame]:
        """Every succeeded job's rows (`result_frame`), one stored body at a time, optionally only one
        strategy's or one symbol's (jobs of other strategies or symbols are not read)."""
        batch_id = str(record["batch_id"])
        seen = 0
        attributes = ("job_id", "strategy", "symbols", "result_key")
        for job in self.jobs(batch_id, status="SUCCEEDED", attributes=attributes):
            seen += 1
            symbols = str(job.get("symbols", "")).split(",")
            if (strategy and job.get("strategy") != strategy) or (
                symbol and len(symbols) == 1 and symbols[0] != symbol
            ):
                continue
            if not job.get("result_key"):
                continue
            try:
                frame = result_frame(self.store.get_bytes(str(job["result_key"])), job_id=str(job["job_id"]))
            except MissingObjectError as exc:
                raise HistoryError(
                    f"{exc}: the result of job {job['job_id']} cannot be read; if it was deleted, re-run the "
                    "batch; on AWS the role needs s3:GetObject on results/*."
                ) from exc
            if strategy:
                frame = frame[frame["strategy"] == strategy]
            if symbol:
                frame = frame[frame["symbol"] == symbol]
            yield frame.reset_index(drop=True)
        if seen == 0 and int(record.get("succeeded", 0)) > 0:
            raise HistoryError(
                f"batch {batch_id} has {record['succeeded']} succeeded jobs but no job records: they expire "
                "30 days after the run (DynamoDB TTL); the batch summary (`results.py show`) remains."
            )

    # --- internals ------------------------------------------------------------------------------------

    def _entry(self, record: Mapping[str, Any]) -> BatchEntry:
        metric = str(record.get("ranking_metric") or "sharpe")
        bests = list(self.job_bests(str(record["batch_id"])))
        return BatchEntry(
            batch_id=str(record["batch_id"]),
            name=str(record.get("name", "")),
            created_at=str(record.get("created_at", "")),
            status=str(record.get("status", "")),
            succeeded=int(record.get("succeeded", 0)),
            failed=int(record.get("failed", 0)),
            total_jobs=int(record.get("total_jobs", 0)),
            backtests=int(record.get("backtests", 0)),
            duration_s=compute_duration(record),
            ranking_metric=metric,
            best=compute_best(bests, metric),
        )

    def _query(
        self,
        request: dict[str, Any],
        values: dict[str, Any],
        attributes: Sequence[str] | None,
        *,
        what: str,
    ) -> Iterator[dict[str, Any]]:
        aliases = {"#status": "status"} if "#status" in str(request.get("FilterExpression", "")) else {}
        if attributes:
            aliases.update({f"#a{i}": name for i, name in enumerate(attributes)})
            request["ProjectionExpression"] = ", ".join(f"#a{i}" for i in range(len(attributes)))
        if aliases:
            request["ExpressionAttributeNames"] = aliases
        paginator = self.store.clients.client("dynamodb").get_paginator("query")
        pages = paginator.paginate(
            TableName=self.store.table,
            ExpressionAttributeValues=values,
            PaginationConfig={"PageSize": self.page_size},
            **request,
        )
        try:
            for page in pages:
                self.queries += 1
                for item in page.get("Items", []):
                    yield _plain(item)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise NotDeployedError(
                    f"table {self.store.table} not found: the stack is not deployed in this account/region "
                    "(scripts/deploy_all.py), or use --target local."
                ) from exc
            raise HistoryError(f"{what} failed: {exc}") from exc
