"""A result message the collector cannot decode: its ids are recovered (message attributes, else the raw
body), its job is recorded FAILED once, or its batch counts it as unreadable, and the batch completes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from backtesting_modules.jobs.messages import encode_result
from backtesting_modules.jobs.planner import Job, plan_jobs
from backtesting_modules.jobs.runner import JobStatus, run_job
from backtesting_modules.jobs.spec import parse_spec
from backtesting_modules.pipeline.collector import UNREADABLE, recover_ids, result_ids
from backtesting_modules.pipeline.worker import Worker
from opslib.batch.bars import load_symbol_bars
from opslib.batch.submitter import Submitter
from opslib.local.pollers import LambdaContext, load_handler, sqs_record
from tests.pipeline.conftest import Stack

SPEC = parse_spec(
    {
        "name": "poison-results",
        "job_type": "PARAMETER_OPTIMIZATION",
        "symbols": ["KRW-BTC", "KRW-ETH"],
        "data": {"source": "synthetic", "seed": 5, "periods": 300, "freq": "1h"},
        "config": {"filters": None},
        "strategies": [{"name": "SMA_Crossover", "grid": {"fast": [5, 10], "slow": [20, 40]}}],
    }
)
BATCH = "b-poison"


# --- id recovery (pure) ---------------------------------------------------------------------------------


def test_ids_are_read_from_a_truncated_body() -> None:
    body = '{"version":2,"kind":"result","job_id":"j-1a2b","batch_id":"b-3c4d","status":"SUCC'
    assert recover_ids(body) == ("b-3c4d", "j-1a2b")
    assert recover_ids(body.encode()) == ("b-3c4d", "j-1a2b")


def test_ids_are_read_from_a_parsable_body_with_bad_fields() -> None:
    assert recover_ids(json.dumps({"batch_id": "b-1", "job_id": 7, "kind": "result"})) == ("b-1", None)
    assert recover_ids('{"batch_id" : "b-1", "job_id":"j-2", "backtests": "lots"}') == ("b-1", "j-2")


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[1, 2]",
        '{"kind": "result"}',
        '{"batch_id": ""}',
        '{"batch_id": "b 1; drop"}',
        "\x00\xff",
    ],
)
def test_no_ids_in_a_body_that_names_none(body: str) -> None:
    assert recover_ids(body) == (None, None)


def _record(
    body: str, attributes: dict[str, str] | None = None, spelling: str = "stringValue"
) -> dict[str, Any]:
    typed = {k: {spelling: v, "dataType": "String"} for k, v in (attributes or {}).items()}
    return {"messageId": "m-1", "body": body, "messageAttributes": typed}


def test_message_attributes_come_first_then_the_body() -> None:
    named = '{"batch_id":"b-body","job_id":"j-body"'
    assert result_ids(_record("garbage", {"batch_id": "b-1", "job_id": "j-1"})) == ("b-1", "j-1")
    assert result_ids(_record(named, {"batch_id": "b-1", "job_id": "j-1"}, "StringValue")) == ("b-1", "j-1")
    assert result_ids(_record(named)) == ("b-body", "j-body")
    assert result_ids(_record(named, {"job_id": "j-1"})) == ("b-body", "j-1")
    # A job id from the body only when the body names the attributes' batch.
    assert result_ids(_record(named, {"batch_id": "b-1"})) == ("b-1", None)
    assert result_ids(_record('{"batch_id":"b-1","job_id":"j-2"', {"batch_id": "b-1"})) == ("b-1", "j-2")
    assert result_ids({"body": "x"}) == (None, None)


# --- the collector on an emulated stack -----------------------------------------------------------------


def _register(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> list[Job]:
    for key, value in stack.config.handler_env(stack.names, stack.urls).to_environ().items():
        monkeypatch.setenv(key, value)
    submitter = Submitter(stack.clients, stack.names, stack.urls)
    prepared = submitter.prepare(SPEC)
    jobs = plan_jobs(SPEC, BATCH, refs=prepared.refs, bars=prepared.bars)
    submitter.register(SPEC, BATCH, jobs, prepared)
    return jobs


def _bodies(stack: Stack, jobs: list[Job]) -> list[str]:
    limit = stack.config.handler_env(stack.names, stack.urls).inline_result_limit
    frames = {symbol: load_symbol_bars(SPEC, symbol) for symbol in SPEC.symbols}
    results = [run_job(job, {s: frames[s] for s in job.symbols}) for job in jobs]
    return [json.dumps(encode_result(r, inline_limit=limit)[0]) for r in results]


def _event(stack: Stack, records: list[dict[str, Any]]) -> dict[str, Any]:
    arn = f"arn:aws:sqs:{stack.config.region}:123456789012:{stack.names.result_queue}"
    out = []
    for i, record in enumerate(records):
        message = {"MessageId": record["messageId"], "ReceiptHandle": f"r{i}", "Body": record["body"]}
        out.append({**sqs_record(message, arn, stack.config.region), **record})
    return {"Records": out}


def test_a_poison_result_fails_its_job_once_and_the_batch_completes(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = _register(stack, monkeypatch)
    victim, others = jobs[0], jobs[1:]
    good = [{"messageId": f"g{i}", "body": b} for i, b in enumerate(_bodies(stack, others))]
    poison = {**_record("{corrupt", {"batch_id": BATCH, "job_id": victim.job_id}), "messageId": "p"}
    handler = load_handler("collector")
    response = handler.handler(_event(stack, [*good, poison]), LambdaContext("collector"))
    # The poison record fails (SQS redelivers it and its redrive policy dead-letters it); the rest succeed.
    assert response == {"batchItemFailures": [{"itemIdentifier": "p"}]}
    batch = stack.store.get_batch(BATCH)
    assert batch.complete and (batch.succeeded, batch.failed) == (len(others), 1)
    (failed,) = [j for j in stack.store.list_jobs(BATCH) if j.status is JobStatus.FAILED]
    assert failed.job_id == victim.job_id
    assert str(failed.error).startswith("unreadable result message: body is not valid JSON")
    # A redelivery (beside a duplicate result: a batch of only failed records raises) counts nothing.
    again = handler.handler(_event(stack, [good[0], poison]), LambdaContext("collector"))
    assert again == {"batchItemFailures": [{"itemIdentifier": "p"}]}
    assert (stack.store.get_batch(BATCH).succeeded, stack.store.get_batch(BATCH).failed) == (len(others), 1)


def test_a_poison_result_naming_only_its_batch_completes_it_flagged(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = _register(stack, monkeypatch)
    poison = {"messageId": "p", "body": f'{{"kind":"result","batch_id":"{BATCH}","job_id":'}
    handler = load_handler("collector")
    # The poison result first, redelivered twice: counted once, the batch still waits for the others.
    for _ in range(3):
        with pytest.raises(Exception, match="All records failed"):
            handler.handler(_event(stack, [poison]), LambdaContext("collector"))
    item = stack.clients.client("dynamodb").get_item(
        TableName=stack.names.table, Key={"PK": {"S": f"BATCH#{BATCH}"}, "SK": {"S": "META"}}
    )["Item"]
    assert item[UNREADABLE] == {"N": "1"}
    assert not stack.store.get_batch(BATCH).complete
    good = [{"messageId": f"g{i}", "body": b} for i, b in enumerate(_bodies(stack, jobs[1:]))]
    assert handler.handler(_event(stack, good), LambdaContext("collector")) == {"batchItemFailures": []}
    batch = stack.store.get_batch(BATCH)
    assert batch.complete and (batch.succeeded, batch.failed) == (len(jobs) - 1, 0)
    summary = stack.store.get_summary(batch)
    assert summary["jobs"]["unreadable"] == 1
    assert "1 unreadable result message(s)" in summary["failures"][-1]["error"]
    # Only the jobs the batch listed: the marker item is not a job.
    assert len(stack.store.list_jobs(BATCH)) == len(jobs)


def test_the_worker_sends_the_ids_as_message_attributes(stack: Stack) -> None:
    env = stack.config.handler_env(stack.names, stack.urls)
    Worker(stack.clients, env)._send('{"kind":"result"}', "b-1", "j-1")
    sqs = stack.clients.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=env.result_queue_url, MessageAttributeNames=["All"])["Messages"]
    got = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert got == {"batch_id": "b-1", "job_id": "j-1"}
