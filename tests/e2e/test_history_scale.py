"""The local history scales: a restore leaves the objects' bytes in their files until read, a save stores
each new object once (content-addressed, shared by every snapshot) and references the others, a snapshot
that cannot be read falls back to the previous one, a version-1 snapshot (objects inside it) is still read
and moved to the shared files by the next save, and `results.py` reads the saved state straight from its
files (`SavedStore`) with the same answers as the emulator restored from it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from backtesting_modules.jobs.runner import JobStatus
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.records import BatchRecord, BatchStatus, JobOutcome, JobRecord
from backtesting_modules.pipeline.store import Store, now_iso
from opslib.errors import LocalSetupError
from opslib.history.connect import open_history
from opslib.history.queries import History
from opslib.history.saved import SavedStore
from opslib.local.emulator import Emulator
from opslib.local.snapshot import OBJECTS, PREVIOUS, EmulatorState
from opslib.stack import load_stack
from tests.conftest import FAKE_CREDENTIALS
from tests.e2e.test_persistence import connect
from tests.script_loader import load_script

pytestmark = pytest.mark.usefixtures("restore_environ")  # tests/e2e/conftest.py
STACK = load_stack()


def add_batch(store: Store, batch: str, jobs: int = 3, *, fail: int | None = None) -> None:
    """A completed batch: `jobs` jobs with a best row and a stored body each (job `fail` failed)."""
    store.create_batch(BatchRecord(batch, name=f"n-{batch}", created_at=now_iso(), total_jobs=jobs))
    store.put_pending_jobs(
        batch,
        [JobRecord(f"{batch}-j{n}", strategy="SMA_Crossover", symbols=("KRW-BTC",)) for n in range(jobs)],
    )
    for n in range(jobs):
        if n == fail:
            store.record_outcome(batch, f"{batch}-j{n}", JobOutcome(JobStatus.FAILED, error="boom"))
            continue
        key = f"results/{batch}/j{n}.json"
        store.put_bytes(key, f"body {batch} {n}".encode())
        best = {
            "strategy": "SMA_Crossover",
            "symbol": "KRW-BTC",
            "params": {"fast": n},
            "metrics": {"sharpe": n},
        }
        outcome = JobOutcome(JobStatus.SUCCEEDED, backtests=10, result_key=key, best=best)
        store.record_outcome(batch, f"{batch}-j{n}", outcome)
    store.put_json(f"summaries/{batch}.json", {"batch_id": batch})
    store.try_complete(batch, f"summaries/{batch}.json")


def batch_ids(store: Store) -> list[str]:
    return [r.batch_id for r in History(store).batches()]


def blobs(state: Path) -> set[str]:
    return {p.name for p in (state / OBJECTS).glob("*/*")}


def test_objects_are_stored_once_and_read_only_when_asked_for(
    tmp_path: Path, start: Callable[..., Emulator]
) -> None:
    emulator = start()
    add_batch(connect(emulator), "b-one")
    emulator.stop()
    stored = blobs(tmp_path)
    assert len(stored) == 4  # three bodies and the summary, each once

    emulator = start()
    store = connect(emulator)
    assert emulator.timings["restored_objects"] == 4
    # The restored object is its file: read when a request asks for it, not at the restore.
    manifest = json.loads((EmulatorState(tmp_path).current_dir() / "manifest.json").read_text())  # type: ignore[operator]
    entry = next(o for b in manifest["buckets"] for o in b["objects"] if o["key"] == "results/b-one/j0.json")
    blob = tmp_path / OBJECTS / entry["blob"][:2] / entry["blob"]
    assert store.get_bytes("results/b-one/j0.json") == b"body b-one 0"
    head = store.clients.client("s3").head_object(Bucket=store.bucket, Key="results/b-one/j0.json")
    assert (head["ETag"], head["ContentLength"]) == (entry["etag"], len(b"body b-one 0"))
    store.put_bytes("results/b-one/j1.json", b"rewritten")  # an overwritten object is an ordinary one
    assert store.get_bytes("results/b-one/j1.json") == b"rewritten"
    add_batch(store, "b-two")
    emulator.stop()
    assert (emulator.timings["saved_objects"], emulator.timings["read_objects"]) == (8, 5)
    assert blob.name in blobs(tmp_path)
    assert (tmp_path / PREVIOUS / "manifest.json").exists()  # the snapshot replaced is kept as the fallback

    emulator = start(read_only=True)
    store = connect(emulator)
    assert store.get_bytes("results/b-one/j1.json") == b"rewritten"
    assert sorted(batch_ids(store)) == ["b-one", "b-two"]


def test_an_unreferenced_object_file_is_removed_after_two_saves(
    tmp_path: Path, start: Callable[..., Emulator]
) -> None:
    emulator = start()
    connect(emulator).put_bytes("results/x.json", b"old")
    emulator.stop()
    old = blobs(tmp_path)
    for body in (b"new", b"newer"):
        emulator = start()
        connect(emulator).put_bytes("results/x.json", body)
        emulator.stop()
    assert not old & blobs(tmp_path) and len(blobs(tmp_path)) == 2  # the current one and the previous one


@pytest.mark.parametrize("damage", ["manifest", "items", "object"])
def test_a_corrupt_snapshot_falls_back_to_the_previous_one(
    tmp_path: Path, start: Callable[..., Emulator], capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    for batch in ("b-one", "b-two"):
        emulator = start()
        add_batch(connect(emulator), batch)
        emulator.stop()
    current = EmulatorState(tmp_path).current_dir()
    assert current is not None
    if damage == "manifest":
        (current / "manifest.json").write_text("{not json")
    elif damage == "items":
        with next((current / "dynamodb").iterdir()).open("a") as items:
            items.write("{half an item\n")
    else:  # an object file of the last run is gone
        manifest = json.loads((current / "manifest.json").read_text())
        entry = next(o for b in manifest["buckets"] for o in b["objects"] if "b-two" in o["key"])
        (tmp_path / OBJECTS / entry["blob"][:2] / entry["blob"]).unlink()

    direct = SavedStore.open(tmp_path, STACK.names().table, STACK.names().bucket, STACK.region)
    assert batch_ids(direct) == ["b-one"]
    emulator = start()
    assert "cannot be read" in capsys.readouterr().err and emulator.restored == PREVIOUS
    store = connect(emulator)
    assert batch_ids(store) == ["b-one"]
    add_batch(store, "b-three")
    emulator.stop()  # the unreadable snapshot is replaced; the good one stays the fallback
    assert json.loads((tmp_path / PREVIOUS / "manifest.json").read_text())["version"] == 1
    reread = start(read_only=True)
    assert sorted(batch_ids(connect(reread))) == ["b-one", "b-three"]


def test_an_unreadable_state_without_a_previous_one_stops_the_start(
    tmp_path: Path, start: Callable[..., Emulator]
) -> None:
    emulator = start()
    add_batch(connect(emulator), "b-one")
    emulator.stop()
    (EmulatorState(tmp_path).current_dir() / "manifest.json").write_text("[]")  # type: ignore[operator]
    with pytest.raises(LocalSetupError, match="--fresh"):
        Emulator(state_dir=tmp_path).start()


def test_a_version_1_snapshot_is_read_and_moved_to_the_shared_files(
    tmp_path: Path, start: Callable[..., Emulator]
) -> None:
    emulator = start()
    add_batch(connect(emulator), "b-one")
    emulator.stop()
    _as_version_1(tmp_path)
    assert not blobs(tmp_path)

    direct = SavedStore.open(tmp_path, STACK.names().table, STACK.names().bucket, STACK.region)
    assert direct.get_bytes("results/b-one/j2.json") == b"body b-one 2"
    emulator = start()
    store = connect(emulator)
    assert store.get_bytes("results/b-one/j2.json") == b"body b-one 2"
    add_batch(store, "b-two")
    emulator.stop()
    assert emulator.timings["read_objects"] == 4  # b-two's; b-one's were moved from the old snapshot's files
    assert len(blobs(tmp_path)) == 8
    manifest = json.loads((EmulatorState(tmp_path).current_dir() / "manifest.json").read_text())  # type: ignore[operator]
    assert all("blob" in o and "file" not in o for b in manifest["buckets"] for o in b["objects"])


def _as_version_1(state: Path) -> None:
    """Rewrite the current snapshot as version 1 wrote it: each object a file inside the snapshot."""
    current = EmulatorState(state).current_dir()
    assert current is not None
    manifest = json.loads((current / "manifest.json").read_text())
    for bucket in manifest["buckets"]:
        (current / "s3" / bucket["name"]).mkdir(parents=True)
        for n, obj in enumerate(bucket["objects"]):
            blob = obj.pop("blob")
            obj.pop("size")
            obj["file"] = f"s3/{bucket['name']}/{n}"
            shutil.copyfile(state / OBJECTS / blob[:2] / blob, current / obj["file"])
    (current / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(state / OBJECTS)
    shutil.rmtree(state / PREVIOUS, ignore_errors=True)


def test_the_saved_state_answers_the_queries_as_the_emulator_does(
    tmp_path: Path, start: Callable[..., Emulator]
) -> None:
    emulator = start()
    store = connect(emulator)
    add_batch(store, "b-one", jobs=4, fail=1)
    add_batch(store, "b-two", jobs=2)
    store.create_batch(BatchRecord("b-running", name="r", created_at=now_iso(), total_jobs=1))
    emulator.stop()
    with open_history("local", state_dir=tmp_path, direct=False) as restored:
        expected = _answers(restored)
    with open_history("local", state_dir=tmp_path) as saved:
        assert isinstance(saved.store, SavedStore)
        assert _answers(saved) == expected
    with open_history("local", state_dir=tmp_path, fresh=True) as empty:
        assert empty.list_batches() == []


def _answers(history: History) -> dict[str, Any]:
    newest = history.list_batches(limit=2)
    return {
        "list": [e.to_json() for e in history.list_batches()],
        "since": [e.batch_id for e in history.list_batches(since=newest[-1].created_at)],
        "complete": [r.batch_id for r in history.batches(status=BatchStatus.COMPLETE)],
        "batch": history.get_batch("b-one"),
        "failed": list(history.jobs("b-one", status=JobStatus.FAILED)),
        "jobs": list(history.jobs("b-one")),
        "summary": history.summary(history.get_batch("b-two")),
        "suggest": history.suggest("b-on"),
        "has": (history.store.has_object("results/b-two/j1.json"), history.store.has_object("nope")),
        "body": history.store.get_bytes("results/b-two/j1.json"),
    }


def test_results_list_reads_the_saved_state_without_an_emulator(
    tmp_path: Path,
    start: Callable[..., Emulator],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator = start()
    add_batch(connect(emulator), "b-one")
    emulator.stop()

    def no_emulator(*_: Any, **__: Any) -> Any:
        raise AssertionError("results.py list started the emulator")

    monkeypatch.setattr(Emulator, "start", no_emulator)
    results = load_script("results")
    assert results.main(["list", "--json", "--state-dir", str(tmp_path)]) == 0
    assert [e["batch_id"] for e in json.loads(capsys.readouterr().out)] == ["b-one"]


def _queries(dynamodb: Any) -> list[Any]:
    """Queries on a table's own key (the emulator reads the one partition) and on an index (moto's own
    path), with pages, both directions, a filter and a missing partition; every page's items and keys."""
    for name, keys in (("ranged", [("PK", "HASH"), ("SK", "RANGE")]), ("plain", [("PK", "HASH")])):
        dynamodb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in ("PK", "SK", "G")],
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-g",
                    "KeySchema": [
                        {"AttributeName": "G", "KeyType": "HASH"},
                        {"AttributeName": "SK", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    for p in range(4):
        for r in range(7):
            item = {
                "PK": {"S": f"p{p}"},
                "SK": {"S": f"JOB#{(r * 5) % 7}"},
                "G": {"S": "all"},
                "n": {"N": str(r)},
            }
            dynamodb.put_item(TableName="ranged", Item=item)
        dynamodb.put_item(TableName="plain", Item={"PK": {"S": f"p{p}"}, "SK": {"S": "x"}, "G": {"S": "all"}})
    requests: list[dict[str, Any]] = [
        {
            "TableName": "ranged",
            "KeyConditionExpression": "PK = :p",
            "ExpressionAttributeValues": {":p": {"S": "p2"}},
        },
        {
            "TableName": "ranged",
            "KeyConditionExpression": "PK = :p AND begins_with(SK, :j)",
            "FilterExpression": "n > :n",
            "ExpressionAttributeValues": {":p": {"S": "p1"}, ":j": {"S": "JOB#"}, ":n": {"N": "2"}},
            "ScanIndexForward": False,
        },
        {
            "TableName": "ranged",
            "KeyConditionExpression": "PK = :p",
            "ExpressionAttributeValues": {":p": {"S": "none"}},
        },
        {
            "TableName": "plain",
            "KeyConditionExpression": "PK = :p",
            "ExpressionAttributeValues": {":p": {"S": "p3"}},
        },
        {
            "TableName": "ranged",
            "IndexName": "by-g",
            "KeyConditionExpression": "G = :g",
            "ExpressionAttributeValues": {":g": {"S": "all"}},
        },
    ]
    pages = []
    for request in requests:
        for page in dynamodb.get_paginator("query").paginate(**request, PaginationConfig={"PageSize": 3}):
            pages.append((page["Items"], page.get("LastEvaluatedKey"), page["Count"], page["ScannedCount"]))
    return pages


def test_queries_on_a_tables_key_answer_as_moto_does(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    server = Emulator().start()
    try:
        ours = _queries(
            ClientFactory(endpoint_url=server.endpoint_url, region=STACK.region).client("dynamodb")
        )
    finally:
        server.stop()
    with mock_aws():
        theirs = _queries(ClientFactory(region=STACK.region).client("dynamodb"))
    assert ours == theirs
    assert len(ours) > 10 and any(items == [] for items, *_ in ours)
