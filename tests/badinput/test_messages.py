"""Malformed job, result and failure messages, and bodies of unknown kind: `MessageError` names the field
(or the cause) and the fix; decoding is pure, so nothing is written whatever arrives."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from backtesting_modules.jobs import (
    JobFailed,
    MessageError,
    decode_failure,
    decode_job,
    decode_result,
    encode_failure,
    encode_job,
    is_retryable,
    message_kind,
    parse_spec,
    plan_jobs,
)
from backtesting_modules.jobs.messages import RESULT_VERSION

DELETE = object()


def _job() -> Any:
    spec = parse_spec(
        {
            "name": "m",
            "job_type": "PARAMETER_OPTIMIZATION",
            "symbols": ["KRW-BTC"],
            "data": {"source": "synthetic", "periods": 500},
            "strategies": [{"name": "SMA_Crossover", "grid": {"fast": [5, 10], "slow": [20, 30]}}],
        }
    )
    return plan_jobs(spec, "b-bad")[0]


JOB = json.loads(encode_job(_job()))
FAILURE = json.loads(encode_failure(_job(), JobFailed("unknown strategy 'X'")))


def changed(base: dict[str, Any], **change: Any) -> str:
    body = json.loads(json.dumps(base))
    for key, value in change.items():
        if value is DELETE:
            del body[key]
        else:
            body[key] = value
    return json.dumps(body)


Decoder = Callable[[str | bytes], Any]

# (id, decoder, body, the field or cause named, the fix named)
CASES: list[tuple[str, Decoder, str | bytes, str, str]] = [
    ("job-not-json", decode_job, "{not json", "body is not valid JSON", "must send json.dumps output"),
    ("job-not-utf8", decode_job, b"\xff\xfe{}", "body is not valid JSON", "must send json.dumps output"),
    ("job-nested-too-deep", decode_job, "[" * 100_000, "body is not valid JSON", "json.dumps output"),
    ("job-json-array", decode_job, "[1, 2]", "body is a JSON list", "expected an object"),
    ("job-empty-body", decode_job, "", "body is not valid JSON", "json.dumps output"),
    (
        "job-newer-version",
        decode_job,
        changed(JOB, version=7),
        "message version 7 is not supported",
        "deploy the matching layer",
    ),
    ("job-no-version", decode_job, changed(JOB, version=DELETE), "version: missing", "carries its version"),
    (
        "job-version-as-text",
        decode_job,
        changed(JOB, version="1"),
        "not an integer ('1')",
        "carries its version",
    ),
    ("job-missing-field", decode_job, changed(JOB, strategy=DELETE), "strategy: missing", "must carry it"),
    ("job-wrong-type", decode_job, changed(JOB, start="0"), "start: expected integer", "got str"),
    ("job-bool-for-int", decode_job, changed(JOB, attempt=True), "attempt: expected integer", "got bool"),
    ("job-negative-index", decode_job, changed(JOB, start=-1), "start: -1", "below the minimum 0"),
    (
        "job-empty-range",
        decode_job,
        changed(JOB, start=3, stop=3),
        "stop=3 is not above start=3",
        "stop > start",
    ),
    (
        "job-keys-per-symbol",
        decode_job,
        changed(JOB, data_keys=["a", "b"]),
        "data_keys: expected one key per symbol",
        "in symbol order",
    ),
    ("job-unknown-field", decode_job, changed(JOB, bars=[1, 2]), "bars: unknown field", "docs/messages.md"),
    ("job-unknown-job-type", decode_job, changed(JOB, job_type="NOPE"), "job_type: 'NOPE'", "PARAMETER_OPT"),
    (
        "job-empty-string",
        decode_job,
        changed(JOB, strategy=""),
        "strategy: must not be empty",
        "not be empty",
    ),
    (
        "job-grid-value-text",
        decode_job,
        changed(JOB, grid=[{"name": "fast", "values": ["5"]}]),
        "grid[0].values[0]: expected number",
        "got str",
    ),
    ("job-read-as-failure", decode_failure, encode_job(_job()), "status: missing", "must carry it"),
    ("failure-no-error", decode_failure, changed(FAILURE, error=DELETE), "error: missing", "must carry it"),
    (
        "failure-retryable-text",
        decode_failure,
        changed(FAILURE, error={"type": "X", "message": "m", "retryable": "no"}),
        "error.retryable: expected boolean",
        "got str",
    ),
    (
        "failure-wrong-status",
        decode_failure,
        changed(FAILURE, status="SUCCEEDED"),
        "status: 'SUCCEEDED'",
        "['FAILED']",
    ),
    (
        "failure-newer-version",
        decode_failure,
        changed(FAILURE, version=9),
        "message version 9",
        "deploy the matching layer",
    ),
    ("result-not-object", decode_result, "[]", "body is a JSON list", "expected an object"),
    (
        "result-old-version",
        decode_result,
        '{"version": 1, "kind": "result"}',
        "message version 1 is not supported",
        "deploy the matching layer",
    ),
    (
        "result-missing-fields",
        decode_result,
        json.dumps({"version": RESULT_VERSION, "kind": "result"}),
        "job_id: missing",
        "must carry it",
    ),
    ("kind-unknown", message_kind, '{"kind": "other"}', "kind: 'other'", "'job', 'result', 'failure'"),
    ("kind-missing", message_kind, '{"version": 1}', "kind: None", "'job', 'result', 'failure'"),
    ("kind-not-json", message_kind, b"\x00\x01", "body is not valid JSON", "json.dumps output"),
    ("kind-nested-too-deep", message_kind, '{"a":' * 100_000, "body is not valid JSON", "json.dumps output"),
]


@pytest.mark.parametrize(
    ("decoder", "body", "named", "fix"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_message_names_the_field_and_the_fix(
    decoder: Decoder, body: str | bytes, named: str, fix: str
) -> None:
    with pytest.raises(MessageError) as info:
        decoder(body)
    message = str(info.value)
    assert named in message and fix in message, message
    assert is_retryable(info.value) is False  # deterministic: reported once, never retried
