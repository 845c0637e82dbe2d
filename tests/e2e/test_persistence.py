"""The embedded default keeps its tables and buckets between runs: `Emulator(state_dir=...)` saves them
when it stops and restores them when it starts; `fresh` starts empty; a failed save keeps the previous
state; two runs saving one after the other keep both runs' batches; results.py reads the saved state.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backtesting_modules.jobs.planner import batch_id
from backtesting_modules.jobs.spec import parse_spec
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.errors import MissingObjectError
from backtesting_modules.pipeline.records import BatchRecord, JobRecord
from backtesting_modules.pipeline.store import Store, now_iso
from opslib.batch.execute import execute_batch
from opslib.errors import LocalSetupError
from opslib.history.queries import History
from opslib.local import snapshot as local_module
from opslib.local.emulator import Emulator
from opslib.local.provision import ensure_stack
from opslib.local.runtime import LocalRuntime
from opslib.local.snapshot import EmulatorState
from opslib.stack import StackConfig, load_stack
from tests.script_loader import load_script

pytestmark = pytest.mark.usefixtures("restore_environ")  # tests/e2e/conftest.py
STACK = load_stack()  # every test has its own emulator: config/stack.yaml's names, as results.py reads them


def connect(emulator: Emulator, stack: StackConfig = STACK) -> Store:
    os.environ.update(emulator.environ())
    clients = ClientFactory(endpoint_url=emulator.endpoint_url, region=stack.region)
    names = stack.names()
    ensure_stack(clients, stack, names)
    return Store(clients, names.table, names.bucket)


def add_batch(store: Store, batch: str) -> None:
    store.create_batch(BatchRecord(batch, name=batch, created_at=now_iso(), total_jobs=1))
    store.put_pending_jobs(batch, [JobRecord(f"j-{batch}", strategy="SMA_Crossover", symbols=("X",))])
    store.clients.client("s3").put_object(
        Bucket=store.bucket,
        Key=f"results/{batch}/j-{batch}.json.gz",
        Body=gzip.compress(b'{"rows": 0}'),
        ContentType="application/json",
        ContentEncoding="gzip",
        Metadata={"batch": batch},
    )


def batch_ids(store: Store) -> list[str]:
    return [r.batch_id for r in History(store).batches()]


def test_tables_and_objects_survive_a_restart_and_fresh_starts_empty(
    tmp_path: Path, start: Callable[..., Emulator]
) -> None:
    first = start()
    store = connect(first)
    add_batch(store, "b-one")
    store.put_bytes("bars/abc/KRW-ETH.npz", b"bars")  # re-uploaded by every run: not kept
    first.stop()
    assert first.timings["saved_objects"] == 1 and first.timings["saved_items"] == 2

    second = start()
    store = connect(second)
    assert second.timings["restored_objects"] == 1 and second.timings["restored_items"] == 2
    assert batch_ids(store) == ["b-one"]  # the index is rebuilt from the restored items
    assert [j.job_id for j in store.list_jobs("b-one")] == ["j-b-one"]
    response = store.clients.client("s3").get_object(Bucket=store.bucket, Key="results/b-one/j-b-one.json.gz")
    assert (response["ContentEncoding"], response["ContentType"]) == ("gzip", "application/json")
    assert response["Metadata"] == {"batch": "b-one"}
    assert gzip.decompress(response["Body"].read()) == b'{"rows": 0}'
    ttl = store.clients.client("dynamodb").describe_time_to_live(TableName=store.table)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"
    with pytest.raises(MissingObjectError):
        store.get_bytes("bars/abc/KRW-ETH.npz")
    second.stop()

    fresh = start(fresh=True, read_only=True)
    assert batch_ids(connect(fresh)) == []
    fresh.stop()
    reread = start(read_only=True)  # read_only + fresh saved nothing
    assert batch_ids(connect(reread)) == ["b-one"]
    reread.stop()


def test_an_unchanged_object_is_linked_not_read_again(tmp_path: Path, start: Callable[..., Emulator]) -> None:
    emulator = start()
    add_batch(connect(emulator), "b-one")
    emulator.stop()
    emulator = start()
    add_batch(connect(emulator), "b-two")
    emulator.stop()
    assert (emulator.timings["saved_objects"], emulator.timings["read_objects"]) == (2, 1)
    snapshots = [p.name for p in tmp_path.iterdir() if "snapshot-" in p.name]
    assert snapshots == [EmulatorState(tmp_path).current_dir().name]  # type: ignore[union-attr]


def test_a_failed_save_keeps_the_previous_state(
    tmp_path: Path,
    start: Callable[..., Emulator],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emulator = start()
    add_batch(connect(emulator), "b-one")
    emulator.stop()
    before = EmulatorState(tmp_path).current_dir()

    emulator = start()
    add_batch(connect(emulator), "b-two")

    def crash(*_: Any) -> Any:  # the process dies half way through writing the objects
        raise OSError("disk full")

    monkeypatch.setattr(local_module, "_dump_buckets", crash)
    emulator.stop()
    assert "state was not saved (OSError: disk full)" in capsys.readouterr().err
    assert EmulatorState(tmp_path).current_dir() == before
    assert not list(tmp_path.glob(".tmp-*"))
    monkeypatch.undo()
    reread = start(read_only=True)
    assert batch_ids(connect(reread)) == ["b-one"]
    reread.stop()


def test_two_runs_from_the_same_state_keep_both_batches(
    tmp_path: Path, start: Callable[..., Emulator]
) -> None:
    emulator = start()
    add_batch(connect(emulator), "b-zero")
    emulator.stop()
    first, second = start(), start()
    add_batch(connect(first), "b-first")
    add_batch(connect(second), "b-second")
    first.stop()
    second.stop()  # saved after `first`: merges what `first` saved
    reread = start(read_only=True)
    assert sorted(batch_ids(connect(reread))) == ["b-first", "b-second", "b-zero"]
    reread.stop()


def test_a_corrupt_state_says_how_to_start_fresh(tmp_path: Path, start: Callable[..., Emulator]) -> None:
    emulator = start()
    add_batch(connect(emulator), "b-one")
    emulator.stop()
    current = EmulatorState(tmp_path).current_dir()
    assert current is not None
    (current / "manifest.json").write_text("{not json")
    broken = Emulator(state_dir=tmp_path)
    with pytest.raises(LocalSetupError, match=r"cannot restore the local AWS state .*--fresh"):
        broken.start()
    assert broken.process is None  # the server was stopped, and nothing was saved over the state
    assert (current / "manifest.json").read_text() == "{not json"
    fresh = start(fresh=True)
    add_batch(connect(fresh), "b-new")
    fresh.stop()
    reread = start(read_only=True)
    assert batch_ids(connect(reread)) == ["b-new"]
    reread.stop()


def test_results_cli_lists_batches_of_earlier_local_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two local runs saved to a state folder, then results.py restores it: the same path as run_batch.py
    followed by results.py, with the save and restore times measured."""
    spec = parse_spec(
        {
            "name": "kept",
            "job_type": "PARAMETER_OPTIMIZATION",
            "symbols": ["KRW-ETH"],
            "data": {"source": "synthetic", "seed": 5, "periods": 1000, "freq": "1h"},
            "config": {"filters": None},
            "strategies": [{"name": "SMA_Crossover", "grid": {"fast": [5, 10], "slow": [20]}}],
        }
    )
    ids = []
    timings = []
    for run in ("one", "two"):
        emulator = Emulator(state_dir=tmp_path, region=STACK.region)
        with LocalRuntime(STACK, workers=1, visibility_timeout_s=5, emulator=emulator) as local:
            ids.append(batch_id(spec, salt=run))
            execute_batch(local.submitter(), spec, ids[-1], depth=2, timeout_s=120)
        timings.append(emulator.timings)
    # Run one: a batch, its job and the job's stored result; run two (the same job on the same bars, in a
    # new batch) reuses that result: one more batch and job record, no new stored result.
    assert timings[1]["restored_items"] == 3 and timings[1]["saved_items"] == 5
    assert all(t["save_s"] < 10 for t in timings) and timings[1]["restore_s"] < 10

    results = load_script("results")
    entries = _cli_list(results, capsys, tmp_path)
    assert [e["batch_id"] for e in entries] == ids[::-1]
    assert all(e["backtests"] == 2 for e in entries)
    assert _cli_list(results, capsys, tmp_path, "--fresh") == []


def _cli_list(results: Any, capsys: pytest.CaptureFixture[str], state: Path, *extra: str) -> Any:
    try:
        code = results.main(["list", "--json", "--state-dir", str(state), *extra])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)
