"""A batch's summary and its completion, shared by the collector (when the last result is counted) and the
driver (when every job of a batch was reused from earlier batches and no result will ever arrive).

The summary is written before the conditional flip RUNNING → COMPLETE, so whoever dies in between leaves a
batch that the next message, or a resume, completes.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from .. import names
from ..jobs.results import ResultColumns
from ..metrics import HIGHER_IS_BETTER
from .digest import compute_digest, merge_groups, ranked
from .records import BatchRecord, JobRecord, JobStatus
from .store import Store, now_iso

SUMMARY_READERS = 16  # concurrent digest reads when a batch completes
SUMMARY_VERSION = 2  # v2: job reuse and the bars each batch ran on


def store_digest(
    store: Store, job_id: str, columns: ResultColumns, metric: str, top_n: int, min_trades: int
) -> None:
    """Top rows and mergeable aggregates of one job for batches keeping `top_n` rows of variants with at
    least `min_trades` trades, so a summary reads a few kilobytes per job instead of every row."""
    digest = compute_digest(columns, metric, HIGHER_IS_BETTER.get(metric, True), top_n, min_trades)
    store.put_json(names.digest_key(job_id, top_n, min_trades), digest)


def complete_batch(store: Store, batch_id: str) -> BatchRecord | None:
    """Write the summary and flip the batch to COMPLETE once every job is counted; the completed record for
    the one caller that flipped it, else None (not counted yet, or completed already)."""
    batch = store.get_batch(batch_id)
    if batch.complete or not batch.counted or batch.growing:
        return None
    key = names.summary_key(batch_id, datetime.fromisoformat(batch.created_at))
    store.put_json(key, summarize(store, batch))
    if not store.try_complete(batch_id, key):
        return None
    return store.get_batch(batch_id)


def summarize(store: Store, batch: BatchRecord) -> dict[str, Any]:
    """Counts, the top N by the ranking metric, per-strategy and per-symbol aggregates, failures, reuse and
    the bars each symbol ran on."""
    metric = batch.ranking_metric
    jobs = store.list_jobs(batch.batch_id)
    keys = [
        names.digest_key(j.job_id, batch.top_n, batch.min_trades)
        for j in jobs
        if j.status is JobStatus.SUCCEEDED
    ]
    # Read from a few threads: a 1,000-job batch is 1,000 small GETs, ~20 ms each on S3 one after another.
    with ThreadPoolExecutor(max_workers=max(1, min(SUMMARY_READERS, len(keys)))) as pool:
        digests = list(pool.map(store.get_json, keys))
    higher = HIGHER_IS_BETTER.get(metric, True)
    top = ranked([row for d in digests for row in d["top"]], metric, higher)
    return {
        "version": SUMMARY_VERSION,
        "batch_id": batch.batch_id,
        "name": batch.name,
        "spec": batch.spec_document(),
        "created_at": batch.created_at,
        "summarized_at": now_iso(),
        "jobs": {
            "total": batch.total_jobs,
            "succeeded": batch.succeeded,
            "failed": batch.failed,
            "reused": sum(1 for j in jobs if j.reused),
        },
        "backtests": batch.backtests,
        "ranking": {
            "metric": metric,
            "higher_is_better": higher,
            "min_trades": batch.min_trades,
            "top": top[: batch.top_n],
        },
        "few_trades": {
            "count": sum(int(d.get("few_trades_count", 0)) for d in digests),
            "top": ranked([r for d in digests for r in d.get("few_trades", [])], metric, higher)[:5],
        },
        "by_strategy": merge_groups(digests, "strategy", metric, higher),
        "by_symbol": merge_groups(digests, "symbol", metric, higher),
        "failures": [_failure(j) for j in jobs if j.status is JobStatus.FAILED],
        "data": merge_bars_facts(batch.data_document(), jobs),
    }


def _failure(job: JobRecord) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "strategy": job.strategy,
        "symbol": ",".join(job.symbols),
        "attempts": job.attempts,
        "error": job.error,
    }


def merge_bars_facts(planned: dict[str, Any], jobs: list[JobRecord]) -> dict[str, Any]:
    """The bars each symbol ran on: what the driver recorded when it planned the batch (uploaded bars: all
    of it; S3 objects read in place: the object and its range), completed with what workers measured when
    they read an object (its sha256, bars, gaps)."""
    merged = {symbol: dict(facts) for symbol, facts in planned.get("symbols", {}).items()}
    for job in jobs:
        for symbol, facts in (job.bars or {}).items():
            merged.setdefault(symbol, {}).update({k: v for k, v in facts.items() if v is not None})
    return {**{k: v for k, v in planned.items() if k != "symbols"}, "symbols": merged}


def bars_facts_json(facts: dict[str, Any]) -> str:
    return json.dumps(facts, sort_keys=True, allow_nan=False)
