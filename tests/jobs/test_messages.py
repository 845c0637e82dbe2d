"""Messages: round trips, size threshold, and malformed bodies rejected with the field named."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtesting_modules.jobs import (
    JOB_SCHEMA,
    RESULT_SCHEMA,
    JobFailed,
    JobResult,
    JobStatus,
    MessageError,
    decode_failure,
    decode_job,
    decode_result,
    encode_failure,
    encode_job,
    encode_result,
    message_kind,
    parse_spec,
    plan_jobs,
    result_key,
)
from backtesting_modules.jobs.results import compute_columns, compute_rows, decode_result_body


def a_job(**change: Any) -> Any:
    spec = parse_spec(
        {
            "name": "m",
            "job_type": "PARAMETER_OPTIMIZATION",
            "symbols": ["KRW-BTC"],
            "data": {"source": "synthetic", "periods": 500},
            "config": {"filters": {"min_price": 1.0, "exclude_symbols": ["USDT-KRW"]}, "stop_loss_pct": 0.05},
            "strategies": [
                {
                    "name": "RSI_MeanReversion",
                    "grid": {"lower": [20.5, 30], "upper": "60:80:10"},
                    "params": {"period": 9},
                }
            ],
        }
    )
    job = plan_jobs(spec, "b-m")[0]
    return job if not change else type(job)(**{**job.__dict__, **change})


def a_result(rows: int = 2) -> JobResult:
    row = {
        "strategy": "S",
        "symbol": "KRW-BTC",
        "params": {"fast": 5},
        "metrics": {"sharpe": 1.5, "cagr": None},
        "extras": {},
    }
    columns = compute_columns([row] * rows)
    return JobResult("j-1", "b-1", JobStatus.SUCCEEDED, columns, rows, 0.25, "sharpe", row)


def test_job_round_trip() -> None:
    job = a_job()
    assert decode_job(encode_job(job)) == job
    assert decode_job(encode_job(job).encode()) == job
    body = json.loads(encode_job(job))
    assert body["version"] == 1 and body["kind"] == "job"
    # The required fields, and the optional ones a planned job sets (its batch's ranking.min_trades).
    assert set(JOB_SCHEMA["required"]) <= set(body) <= {*JOB_SCHEMA["required"], "min_trades"}
    assert "bars" not in body  # bars travel by key only
    assert message_kind(encode_job(job)) == "job"


@settings(max_examples=50, deadline=None)
@given(
    start=st.integers(0, 1000),
    width=st.integers(1, 1000),
    attempt=st.integers(0, 20),
    symbol=st.text(min_size=1, max_size=12),
)
def test_job_round_trip_property(start: int, width: int, attempt: int, symbol: str) -> None:
    job = a_job(
        start=start, stop=start + width, attempt=attempt, symbols=(symbol,), data_keys=(f"bars/x/{symbol}",)
    )
    assert decode_job(encode_job(job)) == job


def _mutated(**change: Any) -> str:
    body = json.loads(encode_job(a_job()))
    for key, value in change.items():
        if value is DELETE:
            del body[key]
        else:
            body[key] = value
    return json.dumps(body)


DELETE = object()

MALFORMED = [
    (_mutated(strategy=DELETE), "strategy: missing"),
    (_mutated(start="0"), "start: expected integer, got str"),
    (_mutated(attempt=True), "attempt: expected integer, got bool"),
    (_mutated(symbols="KRW-BTC"), "symbols: expected array"),
    (_mutated(grid=[{"name": "lower"}]), "grid[0].values: missing"),
    (_mutated(grid=[{"name": "lower", "values": ["x"]}]), "grid[0].values[0]: expected number"),
    (_mutated(job_type="NOPE"), "job_type: 'NOPE' is not one of"),
    (_mutated(priority="urgent"), "priority: 'urgent' is not one of"),
    (_mutated(extra=1), "extra: unknown field"),
    (_mutated(start=5, stop=5), "stop=5 is not above start=5"),
    (_mutated(start=-1), "start: -1 is below the minimum 0"),
    (_mutated(version=DELETE), "version: missing"),
    (
        _mutated(version=7),
        "message version 7 is not supported by this worker (supports 1): deploy the matching layer",
    ),
    ("{not json", "body is not valid JSON"),
    ("[1, 2]", "body is a JSON list"),
    (b"\xff\xfe", "body is not valid JSON"),
]


@pytest.mark.parametrize(("body", "expected"), MALFORMED, ids=[m[1][:30] for m in MALFORMED])
def test_malformed_job_bodies_name_the_field(body: str, expected: str) -> None:
    with pytest.raises(MessageError) as info:
        decode_job(body)
    assert expected in str(info.value)


def test_small_result_travels_inline() -> None:
    result = a_result()
    message, stored = encode_result(result)
    assert stored is None and message["result_key"] is None
    assert message["columns"] is not None and compute_rows(message["columns"]) == list(result.rows)
    assert decode_result(json.dumps(message)) == message
    assert set(message) == set(RESULT_SCHEMA["required"]) and message["version"] == 2


def test_big_result_goes_to_storage_with_its_key() -> None:
    result = a_result(rows=50_000)
    message, stored = encode_result(result, inline_limit=200_000)
    assert stored is not None
    assert message["columns"] is None and message["result_key"] == result_key("j-1") == "results/j-1.json"
    assert message["best"] == result.best and message["backtests"] == 50_000
    assert len(json.dumps(message)) < 10_000
    document = decode_result_body(stored)
    assert document["rows"] == 50_000 and document["job_id"] == "j-1"
    assert compute_rows(document["columns"]) == list(result.rows)
    assert decode_result(json.dumps(message))["result_key"] == message["result_key"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"columns": None}, "columns: null without a result_key"),
        ({"version": 1}, "message version 1 is not supported"),
        ({"rows": []}, "rows: unknown field"),
        (
            {"columns": {"strategy": ["S"], "symbol": ["X"], "params": {}, "extras": None}},
            "columns.metrics: missing",
        ),
        (
            {
                "columns": {
                    "strategy": ["S"],
                    "symbol": ["X", "Y"],
                    "params": {},
                    "metrics": {},
                    "extras": None,
                }
            },
            "columns.symbol: expected a list of 1 values",
        ),
        (
            {
                "columns": {
                    "strategy": ["S"],
                    "symbol": ["X"],
                    "params": {},
                    "metrics": {"sharpe": []},
                    "extras": None,
                }
            },
            "columns.metrics.sharpe: expected a list of 1 values",
        ),
    ],
    ids=[
        "no-columns-no-key",
        "old-version",
        "v1-rows-field",
        "metrics-missing",
        "short-symbol",
        "short-metric",
    ],
)
def test_malformed_results_name_the_field(change: dict[str, Any], expected: str) -> None:
    message, _ = encode_result(a_result())
    with pytest.raises(MessageError) as info:
        decode_result(json.dumps({**message, **change}))
    assert expected in str(info.value)


def test_failure_message_carries_the_retry_classification() -> None:
    job = a_job(attempt=2)
    body = encode_failure(job, JobFailed("unknown strategy 'X'"))
    failure = decode_failure(body)
    assert failure["error"] == {"type": "JobFailed", "message": "unknown strategy 'X'", "retryable": False}
    assert failure["attempt"] == 2 and failure["status"] == "FAILED"
    assert decode_failure(encode_failure(job, TimeoutError("slow S3")))["error"]["retryable"] is True
    assert message_kind(body) == "failure"
    with pytest.raises(MessageError, match="kind"):
        message_kind('{"kind": "other"}')
