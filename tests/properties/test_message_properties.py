"""Properties of the wire messages: jobs survive encoding, and no body whatever makes a decoder raise
anything but `MessageError` (a worker or collector must classify every body, never crash on one)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backtesting_modules.jobs import (
    JobFailed,
    MessageError,
    decode_failure,
    decode_job,
    encode_failure,
    encode_job,
    message_kind,
)
from backtesting_modules.jobs.planner import Job
from tests.properties.generators import JUNK, jobs

DECODERS: dict[str, Callable[[str | bytes], Any]] = {
    "decode_job": decode_job,
    "decode_failure": decode_failure,
    "message_kind": message_kind,
}


def decodes_or_message_error(decoder: Callable[[str | bytes], Any], body: str | bytes) -> None:
    with contextlib.suppress(MessageError):
        decoder(body)


@given(job=jobs())
def test_jobs_round_trip(job: Job) -> None:
    body = encode_job(job)
    assert decode_job(body) == job
    assert decode_job(body.encode("utf-8")) == job
    assert message_kind(body) == "job"


@given(job=jobs(), retryable=st.booleans(), text=st.text(max_size=50))
def test_failures_round_trip(job: Job, retryable: bool, text: str) -> None:
    exc = JobFailed(text, retryable=retryable)
    failure = decode_failure(encode_failure(job, exc))
    assert (failure["job_id"], failure["batch_id"], failure["attempt"]) == (
        job.job_id,
        job.batch_id,
        job.attempt,
    )
    assert failure["error"] == {"type": "JobFailed", "message": text, "retryable": retryable}


@pytest.mark.parametrize("name", sorted(DECODERS))
@given(body=st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_bytes_raise_only_message_error(name: str, body: str | bytes) -> None:
    decodes_or_message_error(DECODERS[name], body)


@pytest.mark.parametrize("name", sorted(DECODERS))
@given(value=JUNK)
def test_arbitrary_json_raises_only_message_error(name: str, value: Any) -> None:
    decodes_or_message_error(DECODERS[name], json.dumps(value))


@pytest.mark.parametrize("kind", ["job", "failure"])
@given(job=jobs(), data=st.data())
def test_a_message_with_one_field_changed_decodes_or_raises_message_error(
    kind: str, job: Job, data: Any
) -> None:
    body = json.loads(encode_job(job) if kind == "job" else encode_failure(job, JobFailed("x")))
    key = data.draw(st.sampled_from(sorted(body)) | st.text(max_size=8), label="key")
    if data.draw(st.booleans(), label="delete") and key in body:
        del body[key]
    else:
        body[key] = data.draw(JUNK, label="value")
    decoder = decode_job if kind == "job" else decode_failure
    try:
        decoded = decoder(json.dumps(body))
    except MessageError:
        return
    if kind == "job":  # whatever decodes is a job that encodes to what was read
        assert json.loads(encode_job(decoded)) == body
