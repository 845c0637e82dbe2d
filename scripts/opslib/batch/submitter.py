"""Submitting a batch: its bars resolved (and uploaded, content-addressed), the batch and job records, the
jobs that ran before reused from their stored results, the rest sent to SQS in waves that keep the queue
shallow. The same code serves the emulator and AWS; only the client endpoint differs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence

from backtesting_modules import names as keys
from backtesting_modules.jobs.messages import encode_job
from backtesting_modules.jobs.planner import Job
from backtesting_modules.jobs.results import decode_result_body
from backtesting_modules.jobs.spec import BatchSpec, Priority, spec_hash
from backtesting_modules.names import StackNames
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.errors import MissingObjectError
from backtesting_modules.pipeline.records import BatchRecord, JobRecord, StoredResult
from backtesting_modules.pipeline.store import Store, now_iso
from backtesting_modules.pipeline.summary import bars_facts_json, store_digest

from ..errors import BatchIncompleteError, BatchInputError
from .bars import PreparedData, resolve


class Submitter:
    """Writes the batch, then feeds its jobs to SQS in waves so the queue stays shallow."""

    def __init__(
        self,
        clients: ClientFactory,
        names: StackNames,
        urls: dict[str, str],
        *,
        read_locations: Sequence[str] = (),
    ) -> None:
        self.clients = clients
        self.names = names
        self.urls = urls
        self.read_locations = tuple(read_locations)  # where an S3 source may be (config data.read_locations)
        self.store = Store(clients, names.table, names.bucket)

    def prepare(self, spec: BatchSpec) -> PreparedData:
        """Resolve the spec's bars (`bars.resolve`: every symbol checked before anything is sent) and upload
        those read locally under their content hash (an upload the bucket already holds is skipped)."""
        prepared = resolve(spec, self.store, self.read_locations)
        for key, frame in prepared.frames.items():
            if not self.store.has_object(key):
                self.store.put_bars(key, frame)
        return prepared

    def register(
        self,
        spec: BatchSpec,
        batch_id: str,
        jobs: list[Job],
        prepared: PreparedData,
        *,
        name: str | None = None,
        growing: bool = False,
    ) -> bool:
        """Write the batch record (named `name`, the spec's name by default) and its jobs' PENDING records
        (`growing`: a search's batch, its jobs added wave by wave: `Store.grow_batch`, `Store.close_batch`);
        False when the batch existed (a resume: nothing of it is overwritten, and it must have been planned
        on the same bars)."""
        created = self.store.create_batch(
            BatchRecord(
                batch_id=batch_id,
                name=name or spec.name,
                created_at=now_iso(),
                total_jobs=len(jobs),
                spec=json.dumps(spec.to_dict()),
                spec_hash=spec_hash(spec),
                ranking_metric=spec.ranking.metric,
                top_n=spec.ranking.top,
                min_trades=spec.ranking.min_trades,
                planned_backtests=sum(_job_size(j) for j in jobs),
                data=bars_facts_json(prepared.facts),
                growing=growing,
            )
        )
        if not created:
            _check_same_bars(self.store.get_batch(batch_id), prepared)
        records = [JobRecord(j.job_id, strategy=j.strategy, symbols=tuple(j.symbols)) for j in jobs]
        self.store.put_pending_jobs(batch_id, records)
        return created

    def reuse(self, batch: BatchRecord, jobs: list[Job]) -> set[str]:
        """Record, for every job of `batch` without an outcome that an earlier batch already ran, that
        stored result as its outcome (no message is sent); returns the ids of the jobs reused."""
        done = {
            j.job_id for j in self.store.jobs(batch.batch_id, attributes=("job_id", "status")) if j.terminal
        }
        stored = self.store.stored_results(j.job_id for j in jobs if j.job_id not in done)
        reused = set()
        for result in stored.values():
            try:
                self._ensure_digest(result, batch)
            except MissingObjectError:
                continue  # its stored body is gone (deleted by hand): the job runs again
            self.store.record_outcome(batch.batch_id, result.job_id, result.outcome())
            reused.add(result.job_id)
        return reused

    def _ensure_digest(self, result: StoredResult, batch: BatchRecord) -> None:
        """A reused job's digest for this batch's top N (a batch keeping another N computes it once)."""
        if self.store.has_object(keys.digest_key(result.job_id, batch.top_n, batch.min_trades)):
            return
        document = decode_result_body(self.store.get_bytes(result.result_key))
        store_digest(
            self.store,
            result.job_id,
            document["columns"],
            batch.ranking_metric,
            batch.top_n,
            batch.min_trades,
        )

    def pending(self, batch_id: str, jobs: list[Job]) -> list[Job]:
        """Jobs without a terminal outcome (what a resume submits again)."""
        done = {j.job_id for j in self.store.jobs(batch_id, attributes=("job_id", "status")) if j.terminal}
        return [j for j in jobs if j.job_id not in done]

    def queue_for(self, job: Job) -> str:
        high = job.priority is Priority.HIGH
        return self.urls[self.names.priority_queue if high else self.names.job_queue]

    def send_now(self, jobs: Sequence[Job], url: str | None = None) -> None:
        """Send `jobs` to their queue (`url`, else the queue of the first one's priority) in requests of up
        to 10 messages; a BatchIncompleteError naming --resume when SQS refuses any."""
        if not jobs:
            return
        sqs = self.clients.client("sqs")
        url = url or self.queue_for(jobs[0])
        for start in range(0, len(jobs), 10):
            chunk = jobs[start : start + 10]
            response = sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "MessageBody": encode_job(job)} for i, job in enumerate(chunk)],
            )
            if response.get("Failed"):
                first = response["Failed"][0]
                raise BatchIncompleteError(
                    f"SQS refused {len(response['Failed'])} job message(s) ({first.get('Code')}: "
                    f"{first.get('Message')}); send them again with --resume {chunk[0].batch_id}.",
                    chunk[0].batch_id,
                )

    def send_in_waves(
        self, jobs: list[Job], depth: int, on_tick: Callable[[], bool], poll_s: float = 0.2
    ) -> None:
        """Send jobs while keeping their queue shallow; `on_tick` returns False to stop.

        Each poll fills the queue up to `depth` visible messages, or — when the workers take them faster —
        up to what they took in two poll periods at the rate seen since the last fill, so short jobs never
        wait for the next poll. A batch has one priority, so all its jobs go to one queue.
        """
        if not jobs:
            return
        sqs = self.clients.client("sqs")
        url = self.queue_for(jobs[0])
        sent = 0
        rate = 0.0  # messages per second the workers took since the last fill
        filled: tuple[float, int] | None = None  # (when, visible right after)
        while True:
            attributes = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )
            visible = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
            now = time.monotonic()
            if filled is not None and now > filled[0]:
                rate = max(0, filled[1] - visible) / (now - filled[0])
            target = max(depth, math.ceil(2 * rate * poll_s))
            room = min(target - visible, len(jobs) - sent)
            if room > 0:
                self.send_now(jobs[sent : sent + room], url)
                sent += room
                visible += room
            filled = (time.monotonic(), visible)
            if sent >= len(jobs) or not on_tick():
                return
            time.sleep(poll_s)  # the emulator has no waiter for "queue drained below N"


def _job_size(job: Job) -> int:
    return max(0, job.stop - job.start) * max(1, len(job.symbols))


def largest_first(jobs: list[Job]) -> list[Job]:
    """The jobs in sending order: most backtests first (stable), so the short jobs — each symbol's remainder
    — run last and fill the workers' final gaps instead of leaving one worker a long job at the end."""
    return sorted(jobs, key=_job_size, reverse=True)


def _check_same_bars(batch: BatchRecord, prepared: PreparedData) -> None:
    """A resumed batch must run on the bars it was planned on."""
    planned = {s: f.get("ref") for s, f in batch.data_document().get("symbols", {}).items()}
    now = {s: str(r) for s, r in prepared.refs.items()}
    if planned and planned != now:
        changed = sorted(s for s in set(planned) | set(now) if planned.get(s) != now.get(s))
        raise BatchInputError(
            f"batch {batch.batch_id} was planned on other bars for {', '.join(changed)} than the spec names "
            "now: run it without --resume (a new batch, which reuses every job whose bars did not change)."
        )
