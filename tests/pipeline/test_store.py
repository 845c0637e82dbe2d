"""Store: bars round trip, batch creation once, exactly-once counting, completion flips once."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from backtesting_modules.data import synthetic_bars
from backtesting_modules.jobs.results import (
    ResultBodyError,
    compute_columns,
    decode_result_body,
    encode_result_body,
    result_frame,
)
from backtesting_modules.jobs.runner import JobStatus
from backtesting_modules.pipeline.errors import MissingObjectError
from backtesting_modules.pipeline.records import BatchRecord, JobOutcome, JobRecord
from backtesting_modules.pipeline.store import decode_bars, encode_bars
from opslib.local.provision import ensure_stack
from tests.pipeline.conftest import Stack


def test_bars_round_trip_keeps_values_index_and_attrs() -> None:
    bars = synthetic_bars("KRW-ETH", periods=500, seed=1)
    back = decode_bars(encode_bars(bars))
    pd.testing.assert_frame_equal(back, bars, check_freq=False, check_index_type=False)
    assert back.attrs["synthetic"] is True and back.attrs["symbol"] == "KRW-ETH"


def test_stack_creation_is_idempotent(stack: Stack) -> None:
    again = ensure_stack(stack.clients, stack.config, stack.names)
    assert again == stack.urls
    attrs = stack.clients.client("sqs").get_queue_attributes(
        QueueUrl=stack.urls[stack.names.job_queue], AttributeNames=["All"]
    )["Attributes"]
    assert '"maxReceiveCount": 3' in attrs["RedrivePolicy"]


def test_missing_object_is_not_retryable(stack: Stack) -> None:
    with pytest.raises(MissingObjectError, match="does not exist") as info:
        stack.store.load_bars("bars/nope/KRW-XXX.npz")
    assert info.value.retryable is False


def _batch(total: int) -> BatchRecord:
    return BatchRecord("b1", created_at="2026-11-24T00:00:00.000+00:00", name="t", total_jobs=total)


def _jobs(*ids: str) -> list[JobRecord]:
    return [JobRecord(j, strategy="S", symbols=("X",)) for j in ids]


def test_outcomes_count_once_and_completion_flips_once(stack: Stack) -> None:
    store = stack.store
    assert store.create_batch(_batch(2)) is True
    assert store.create_batch(_batch(2)) is False  # a second create is a resume, not an overwrite
    store.put_pending_jobs("b1", _jobs("j1", "j2"))
    store.mark_running("b1", "j1", "w0")
    ok = JobOutcome(JobStatus.SUCCEEDED, backtests=10, duration_s=1.5, best={"sharpe": 1.0})
    assert store.record_outcome("b1", "j1", ok) is True
    assert store.record_outcome("b1", "j1", ok) is False  # redelivered: counts nothing
    assert store.try_complete("b1", "summaries/x.json") is False  # one job outstanding
    failed = JobOutcome(JobStatus.FAILED, error="unknown strategy")
    assert store.record_outcome("b1", "j2", failed) is True
    batch = store.get_batch("b1")
    assert (batch.succeeded, batch.failed, batch.backtests, batch.counted) == (1, 1, 10, True)
    assert store.try_complete("b1", "summaries/x.json") is True
    assert store.try_complete("b1", "summaries/x.json") is False
    assert store.get_batch("b1").complete
    jobs = {j.job_id: j for j in store.list_jobs("b1")}
    assert (jobs["j1"].status, jobs["j1"].attempts, jobs["j1"].best) == (
        JobStatus.SUCCEEDED,
        1,
        {"sharpe": 1.0},
    )
    assert (jobs["j1"].symbols, jobs["j1"].duration_s, jobs["j1"].error) == (("X",), 1.5, None)
    assert jobs["j2"].error == "unknown strategy" and jobs["j2"].result_key is None
    store.mark_running("b1", "j1", "w1")  # a late redelivery never reopens a finished job
    assert {j.job_id: j for j in store.list_jobs("b1")}["j1"].status is JobStatus.SUCCEEDED


def test_job_records_expire_by_ttl(stack: Stack) -> None:
    ttl = stack.clients.client("dynamodb").describe_time_to_live(TableName=stack.names.table)
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    stack.store.create_batch(_batch(1))
    stack.store.put_pending_jobs("b1", _jobs("j1"))
    job = stack.store.list_jobs("b1")[0]
    assert job.expires_at is not None and job.expires_at > time.time() + 29 * 86400
    item = stack.clients.client("dynamodb").get_item(
        TableName=stack.names.table, Key={"PK": {"S": "BATCH#b1"}, "SK": {"S": "META"}}
    )["Item"]
    assert "ttl" not in item  # batch records do not expire


def test_result_body_round_trips_through_s3_as_stored_bytes(stack: Stack) -> None:
    rows = [
        {
            "strategy": "S",
            "symbol": "KRW-BTC",
            "params": {"fast": f},
            "metrics": {"sharpe": f / 10},
            "extras": {},
        }
        for f in range(300)
    ]
    body = encode_result_body("j1", compute_columns(rows))
    stack.store.put_result_body("results/b1/j1.json", body)
    assert stack.store.get_bytes("results/b1/j1.json") == body
    frame = result_frame(stack.store.get_bytes("results/b1/j1.json"))
    assert list(frame.columns) == ["job_id", "strategy", "symbol", "param.fast", "sharpe"]
    assert frame["param.fast"].tolist() == list(range(300)) and frame["job_id"].eq("j1").all()
    assert frame["sharpe"].tolist() == [f / 10 for f in range(300)]
    assert decode_result_body(body)["columns"] == compute_columns(rows)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"\x1f\x8b not json", "result body is not JSON"),
        (b'{"version": 1, "rows": []}', r"version 1 is not one of \(2, 3\)"),
        (b'{"version": 2, "metrics_encoding": "f8-base64"}', "has no columns"),
        (
            b'{"version": 2, "metrics_encoding": "f8-base64", "columns": {"strategy": ["S"], '
            b'"symbol": ["X"], "params": {}, "metrics": {"sharpe": "not base64!"}}}',
            "not base64 float64",
        ),
        (
            b'{"version": 2, "metrics_encoding": "f8-base64", "columns": {"strategy": ["S"], '
            b'"symbol": ["X"], "params": {}, "metrics": {"sharpe": "AAAAAAAA8D8AAAAAAADwPw=="}}}',
            "unequal lengths",
        ),
    ],
    ids=["not-json", "old-version", "no-columns", "bad-base64", "short-metric"],
)
def test_unreadable_result_bodies_say_what_is_wrong(body: bytes, expected: str) -> None:
    with pytest.raises(ResultBodyError, match=expected):
        decode_result_body(body)


def test_a_growing_batch_completes_only_once_closed(stack: Stack) -> None:
    """A search's batch (docs/search.md): counted jobs do not complete it while the driver may add waves;
    closing sets its totals to the jobs it holds (a resume may have grown it twice for one wave)."""
    store = stack.store
    grown = BatchRecord(
        "g1", created_at="2026-11-24T00:00:00.000+00:00", name="s", total_jobs=0, growing=True
    )
    assert store.create_batch(grown) is True
    ok = JobOutcome(JobStatus.SUCCEEDED, backtests=4, duration_s=0.1, best={"sharpe": 1.0})
    store.grow_batch("g1", 1, 4)
    store.put_pending_jobs("g1", _jobs("w1"))
    assert store.record_outcome("g1", "w1", ok) is True
    assert store.get_batch("g1").counted and store.get_batch("g1").growing
    assert store.try_complete("g1", "summaries/g.json") is False  # counted, but more waves may come
    store.grow_batch("g1", 1, 4)  # the same wave grown again by a resumed driver: counted twice
    store.close_batch("g1", 1, 4)
    closed = store.get_batch("g1")
    assert (closed.total_jobs, closed.planned_backtests, closed.growing, closed.counted) == (
        1,
        4,
        False,
        True,
    )
    assert store.try_complete("g1", "summaries/g.json") is True
