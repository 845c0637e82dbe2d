"""Local history at scale: what the embedded default's start-up and `results.py list` cost as `.local-aws/`
grows (docs/results.md, "The embedded default keeps its state").

`grow` adds synthetic batches the way a local run leaves them, one emulator session (restore, write, save)
per batch: a batch record, `--jobs` job records recorded SUCCEEDED with a best row, one result body of
`--object-kb` random (incompressible) bytes per job and a summary. A 1,001,000-backtest batch of the
benchmark grid is about 500 jobs of ~1 MB each. `measure` times, on that state, the emulator's start
(server start and restore, read only), the same start restoring the way version 1 of the snapshot did (one
PutObject per object, BatchWriteItem per 25 items: `--legacy`), and `results.py list` end to end.

    python benchmarks/history_scale.py grow --state DIR [--batches 10] [--jobs 500] [--object-kb 1000]
    python benchmarks/history_scale.py measure --state DIR [--repeat 3] [--legacy] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from backtesting_modules.jobs.runner import JobStatus
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.records import BatchRecord, JobOutcome, JobRecord
from backtesting_modules.pipeline.store import Store, now_iso
from opslib.local.emulator import Emulator
from opslib.local.provision import ensure_stack
from opslib.local.snapshot import EmulatorState
from opslib.stack import load_stack

ROOT = Path(__file__).resolve().parents[1]
STACK = load_stack()


def _store(emulator: Emulator) -> Store:
    os.environ.update(emulator.environ())
    clients = ClientFactory(endpoint_url=emulator.endpoint_url, region=STACK.region)
    names = STACK.names()
    ensure_stack(clients, STACK, names)
    return Store(clients, names.table, names.bucket)


def _add_batch(store: Store, batch: str, jobs: int, object_bytes: int) -> None:
    store.create_batch(
        BatchRecord(batch, name="scale", created_at=now_iso(), total_jobs=jobs, ranking_metric="sharpe")
    )
    records = [
        JobRecord(f"{batch}-j{n}", strategy="SMA_Crossover", symbols=("KRW-BTC",)) for n in range(jobs)
    ]
    store.put_pending_jobs(batch, records)

    def finish(n: int) -> None:
        key = f"results/{batch}/{batch}-j{n}.json.gz"
        store.put_bytes(key, os.urandom(object_bytes))
        best = {"strategy": "SMA_Crossover", "symbol": "KRW-BTC", "params": {"fast": n, "slow": 2 * n + 3}}
        best["metrics"] = {"sharpe": (n % 97) / 10, "total_return": n / 1000, "trades": 40}
        outcome = JobOutcome(JobStatus.SUCCEEDED, backtests=2000, result_key=key, best=best)
        store.record_outcome(batch, f"{batch}-j{n}", outcome)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(finish, range(jobs)))
    store.put_json(f"summaries/{batch}.json", {"batch_id": batch, "jobs": {"total": jobs}})
    store.try_complete(batch, f"summaries/{batch}.json")


def grow(args: argparse.Namespace) -> None:
    for _ in range(args.batches):
        emulator = Emulator(state_dir=Path(args.state), region=STACK.region).start()
        try:
            batch = f"b-scale-{time.time_ns():x}"
            _add_batch(_store(emulator), batch, args.jobs, args.object_kb * 1000)
        finally:
            emulator.stop()
        timings = {k: round(v, 2) for k, v in emulator.timings.items()}
        print(f"{batch}: {timings}", file=sys.stderr)


def _legacy_restore(emulator: Emulator, state: Path) -> None:
    """Version 1's restore: every item and object sent through the emulator's API."""
    source = EmulatorState(state).current_dir()
    if source is None:
        return
    manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    clients = ClientFactory(endpoint_url=emulator.endpoint_url, region=STACK.region)
    dynamodb, s3 = clients.client("dynamodb"), clients.client("s3")
    for table in manifest["tables"]:
        dynamodb.create_table(**table["definition"])
        lines = (source / table["items"]).read_text(encoding="utf-8").splitlines()
        for start in range(0, len(lines), 25):
            chunk = [{"PutRequest": {"Item": json.loads(line)}} for line in lines[start : start + 25]]
            dynamodb.batch_write_item(RequestItems={table["name"]: chunk})
    for bucket in manifest["buckets"]:
        s3.create_bucket(
            Bucket=bucket["name"], CreateBucketConfiguration={"LocationConstraint": STACK.region}
        )

        def put(obj: dict[str, Any], name: str = bucket["name"]) -> None:
            path = (
                state / "objects" / obj["blob"][:2] / obj["blob"] if "blob" in obj else source / obj["file"]
            )
            s3.put_object(Bucket=name, Key=obj["key"], Body=path.read_bytes())

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(put, bucket["objects"]))


def _start_seconds(state: Path, legacy: bool) -> float:
    started = time.monotonic()
    if legacy:
        emulator = Emulator().start()
        _legacy_restore(emulator, state)
    else:
        emulator = Emulator(state_dir=state, read_only=True, region=STACK.region).start()
    elapsed = time.monotonic() - started
    emulator.stop()
    return elapsed


def _list_seconds(state: Path) -> float:
    command = [sys.executable, str(ROOT / "scripts" / "results.py"), "list", "--state-dir", str(state)]
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def _size(state: Path) -> dict[str, Any]:
    total = sum(p.stat().st_size for p in state.rglob("*") if p.is_file())
    source = EmulatorState(state).current_dir()
    manifest = json.loads((source / "manifest.json").read_text()) if source else {"tables": [], "buckets": []}
    return {
        "history_mb": round(total / 1e6, 1),
        "objects": sum(len(b["objects"]) for b in manifest["buckets"]),
        "items": sum(t["count"] for t in manifest["tables"]),
    }


def measure(args: argparse.Namespace) -> None:
    state = Path(args.state)
    result: dict[str, Any] = _size(state)
    result["start_s"] = statistics.median(_start_seconds(state, False) for _ in range(args.repeat))
    result["list_s"] = statistics.median(_list_seconds(state) for _ in range(args.repeat))
    if args.legacy:
        result["legacy_start_s"] = statistics.median(_start_seconds(state, True) for _ in range(args.repeat))
    rounded = {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
    if args.json:
        print(json.dumps(rounded))
    else:
        print(" | ".join(f"{k} {v}" for k, v in rounded.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    growing = commands.add_parser("grow")
    growing.add_argument("--state", required=True)
    growing.add_argument("--batches", type=int, default=10)
    growing.add_argument("--jobs", type=int, default=500)
    growing.add_argument("--object-kb", type=int, default=1000)
    measuring = commands.add_parser("measure")
    measuring.add_argument("--state", required=True)
    measuring.add_argument("--repeat", type=int, default=3)
    measuring.add_argument("--legacy", action="store_true")
    measuring.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    grow(args) if args.command == "grow" else measure(args)


if __name__ == "__main__":
    main()
