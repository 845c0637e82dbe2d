"""Submitting a batch and following it: bars to S3, batch and job records, jobs to SQS in waves, progress,
and the report files. The same code serves the local emulator and AWS; only the client endpoint differs.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from backtesting_modules.data import load_bars, synthetic_bars
from backtesting_modules.jobs.messages import encode_job
from backtesting_modules.jobs.planner import Job, bars_key
from backtesting_modules.jobs.spec import BatchSpec, DataSource, Priority, data_hash, spec_hash
from backtesting_modules.metrics import HIGHER_IS_BETTER
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.names import ConfigurationError, StackNames
from backtesting_modules.pipeline.store import MissingObjectError, Store, StoreError, now_iso
from backtesting_modules.reports import render_batch

ROOT = Path(__file__).resolve().parents[2]


def load_symbol_bars(spec: BatchSpec, symbol: str) -> pd.DataFrame:
    """The bars a spec names for one symbol (files are read here, never synthesised as a fallback)."""
    data = spec.data
    if data.source is DataSource.SYNTHETIC:
        return synthetic_bars(
            symbol,
            start=data.start or "2023-01-01",
            periods=data.periods or 8760,
            freq=data.timeframe,
            seed=data.seed if data.seed is not None else 42,
        )
    if data.source is DataSource.FILES:
        paths = dict(data.paths)
        path = paths.get(symbol) or (data.pattern.format(symbol=symbol) if data.pattern else None)
        if path is None:
            raise ConfigurationError(f"data.paths has no file for {symbol}: add it or use data.pattern.")
        return load_bars(ROOT / path if not Path(path).is_absolute() else path, symbol=symbol)
    if data.source is DataSource.EXCHANGE:
        path = ROOT / "data" / str(data.exchange) / f"{symbol}_{data.timeframe}.csv"
        if not path.exists():
            raise ConfigurationError(
                f"{path} not found: fetch it first with scripts/fetch_ohlcv.py --exchange {data.exchange} "
                f"--symbols {symbol} --timeframe {data.timeframe} --since {data.since} --out data/"
            )
        return load_bars(path, symbol=symbol)
    raise ConfigurationError(
        f"data.source {data.source.value!r}: bars already in S3 are read by the workers directly; "
        "use --target aws, or a files/synthetic/exchange source locally."
    )


@dataclass
class Submission:
    batch_id: str
    jobs: list[Job]
    queue_url: str
    created: bool


class Submitter:
    """Writes the batch, then feeds its jobs to SQS in waves so the queue stays shallow."""

    def __init__(self, clients: ClientFactory, names: StackNames, urls: dict[str, str]) -> None:
        self.clients = clients
        self.names = names
        self.urls = urls
        self.store = Store(clients, names.table, names.bucket)

    def upload_bars(self, spec: BatchSpec) -> int:
        """Bars of every symbol to S3 under content-addressed keys; returns the bar count of the first."""
        source = data_hash(spec)
        # Every symbol is read and validated before the first upload: a bad file uploads nothing.
        frames = {symbol: load_symbol_bars(spec, symbol) for symbol in spec.symbols}
        for symbol, frame in frames.items():
            self.store.put_bars(bars_key(source, symbol), frame)
        return min(len(frame) for frame in frames.values())

    def register(self, spec: BatchSpec, batch_id: str, jobs: list[Job]) -> bool:
        created = self.store.create_batch(
            {
                "batch_id": batch_id,
                "name": spec.name,
                "created_at": now_iso(),
                "total_jobs": len(jobs),
                "spec": json.dumps(spec.to_dict()),
                "spec_hash": spec_hash(spec),
                "ranking_metric": spec.ranking.metric,
                "top_n": spec.ranking.top,
                "planned_backtests": sum(_job_size(j) for j in jobs),
            }
        )
        self.store.put_pending_jobs(
            batch_id, [{"job_id": j.job_id, "strategy": j.strategy, "symbols": list(j.symbols)} for j in jobs]
        )
        return created

    def pending(self, batch_id: str, jobs: list[Job]) -> list[Job]:
        """Jobs without a terminal outcome (what a resume submits again)."""
        done = {
            j["job_id"] for j in self.store.list_jobs(batch_id) if j.get("status") in ("SUCCEEDED", "FAILED")
        }
        return [j for j in jobs if j.job_id not in done]

    def queue_for(self, job: Job) -> str:
        high = job.priority is Priority.HIGH
        return self.urls[self.names.priority_queue if high else self.names.job_queue]

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
            while room > 0:  # in requests of up to 10 messages
                wave = jobs[sent : sent + min(10, room)]
                response = sqs.send_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "MessageBody": encode_job(job)} for i, job in enumerate(wave)],
                )
                if response.get("Failed"):
                    first = response["Failed"][0]
                    raise StoreError(
                        f"SQS refused {len(response['Failed'])} job message(s) ({first.get('Code')}: "
                        f"{first.get('Message')}); send them again with --resume {wave[0].batch_id}."
                    )
                sent += len(wave)
                room -= len(wave)
                visible += len(wave)
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


def progress_line(batch: dict[str, Any], started: float) -> str:
    total = int(batch["total_jobs"])
    done = int(batch["succeeded"]) + int(batch["failed"])
    width = 30
    filled = int(width * done / total) if total else width
    return (
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} jobs, {int(batch['failed'])} failed, "
        f"{int(batch['backtests']):,} backtests, {time.monotonic() - started:5.1f} s"
    )


def write_reports(summary: dict[str, Any], out_dir: Path, conditions: Iterable[tuple[str, str]]) -> Path:
    """reports/<batch_id>/report.md, results.csv (the top rows) and summary.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    rows = summary["ranking"]["top"]
    metric = summary["ranking"]["metric"]
    frame = pd.DataFrame(
        [
            {"strategy": r["strategy"], "symbol": r["symbol"], "params": r["params"], **r["metrics"]}
            for r in rows
        ]
    )
    with (out_dir / "results.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        metrics = sorted({m for r in rows for m in r["metrics"]})
        writer.writerow(["strategy", "symbol", "params", *metrics])
        for r in rows:
            writer.writerow(
                [r["strategy"], r["symbol"], json.dumps(r["params"]), *[r["metrics"].get(m) for m in metrics]]
            )
    frame = frame.astype({c: float for c in frame.columns if c not in ("strategy", "symbol", "params")})
    text = render_batch(
        frame if not frame.empty else pd.DataFrame(columns=["strategy", "symbol", "params", metric]),
        title=f"Batch {summary['name']} ({summary['batch_id']})",
        rank=metric,
        top=len(rows),
        higher_is_better=HIGHER_IS_BETTER.get(metric, True),
        conditions=list(conditions),
        failures=summary["failures"],
        backtests=int(summary["backtests"]),
        aggregates={"strategy": summary["by_strategy"], "symbol": summary["by_symbol"]},
    )
    path = out_dir / "report.md"
    path.write_text(text, encoding="utf-8")
    return path


def fetch_summary(store: Store, batch: dict[str, Any]) -> dict[str, Any]:
    key = batch.get("summary_key")
    if not key:
        raise MissingObjectError(
            f"batch {batch['batch_id']} has no summary yet (status {batch.get('status')})"
        )
    summary: dict[str, Any] = store.get_json(str(key))
    return summary


def eprint(text: str, end: str = "\n") -> None:
    print(text, end=end, file=sys.stderr, flush=True)
