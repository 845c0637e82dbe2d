"""Chaos on the embedded default: each scenario of benchmarks/chaos.py on a 200-job batch (one SMA_Crossover
combination per job), audited job by job against `run_job` run in-process (`chaos_scenarios.audit`): the
exact counters, the same stored result bytes, best row and summary rows for every job id, nothing counted
twice. `python benchmarks/chaos.py --jobs 500` runs the same scenarios, larger, and prints the table.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaos_scenarios import collector, duplicates, kills, poison, restart, retryable
from chaos_scenarios.audit import CleanRun, _job_id_of, audit_batch
from chaos_scenarios.common import chaos_spec_dict

from backtesting_modules.jobs.spec import parse_spec
from opslib.batch.reports import write_reports
from opslib.local.faults import CRASH_EXIT_STATUS
from tests.chaos.conftest import JOBS
from tests.script_loader import load_script, run_main


def assert_clean(result: Any, *, poisoned: int = 0) -> None:
    audit = result.audit
    assert audit.status == "COMPLETE"
    assert audit.lost == {}, f"{len(audit.lost)} jobs lost: {list(audit.lost.items())[:5]}"
    assert audit.duplicates == 0
    assert audit.counters == audit.expected_counters == (JOBS - poisoned, poisoned, JOBS - poisoned)
    assert audit.terminal == JOBS and audit.summary_rows == audit.expected_summary_rows


def test_every_message_delivered_twice_counts_every_job_once(
    spec: Any, clean: Any, new_stack: Callable[..., Any]
) -> None:
    stack = new_stack()
    result = duplicates.run_duplicates(stack, spec, clean)
    assert result.details["messages_sent"] == 2 * JOBS
    # Audited after every copy was consumed (queues empty): late duplicates moved nothing.
    assert_clean(result)
    assert stack.messages(stack.names.dead_letter_queue) == 0

    # The audit is not vacuous: a changed result body is a lost result, an extra count a duplicate.
    batch = result.details["batch_id"]
    job = stack.store.list_jobs(batch)[0]
    stack.store.put_result_body(str(job.result_key), b"{}")
    stack.clients.client("dynamodb").update_item(
        TableName=stack.names.table,
        Key={"PK": {"S": f"BATCH#{batch}"}, "SK": {"S": "META"}},
        UpdateExpression="ADD succeeded :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    tampered = audit_batch(stack.store, batch, clean.expected(result.details["jobs"]))
    assert list(tampered.lost) == [job.job_id] and tampered.duplicates == 1


def test_workers_killed_twice_mid_batch_lose_nothing(
    spec: Any, clean: Any, new_stack: Callable[..., Any]
) -> None:
    # One victim is SIGKILLed while it reads its bars (the job not run yet), the other while it sends its
    # result (the job run, the result not sent); each provably holds a job (a delay fault keeps it there).
    result = kills.run_worker_kills(new_stack(), spec, clean)
    victims = result.details["kills"]
    assert [k.exitcode for k in victims] == [-signal.SIGKILL] * 2
    assert all(0 < k.counted < JOBS for k in victims)  # mid-batch
    assert len({k.job_id for k in victims}) == 2
    assert all(attempts >= 2 for attempts in result.details["held_attempts"])  # run again after the kill
    assert_clean(result)


def test_collector_killed_between_counting_and_deleting_counts_nothing_twice(
    spec: Any, clean: Any, new_stack: Callable[..., Any]
) -> None:
    stack = new_stack()
    result = collector.run_collector_crashes(stack, spec, clean)
    details = result.details
    # Each collector exited right after its Nth successful TransactWriteItems, its messages undeleted: the
    # first a third into the batch, the second right after the last count, before the summary.
    assert details["exit_codes"] == [CRASH_EXIT_STATUS] * 2
    assert details["counted_at_crash"] == [JOBS // 3, JOBS]
    assert details["status_after_last_count"] == "RUNNING"
    assert all(n >= 1 for n in details["in_flight_at_crash"])
    # The redelivered results counted nothing; the third collector completed the batch from a duplicate.
    assert_clean(result)
    assert stack.messages(stack.names.dead_letter_queue) == 0


def test_poison_jobs_are_reported_once_with_their_error_and_dead_lettered_once(
    spec: Any, clean: Any, new_stack: Callable[..., Any], tmp_path: Path
) -> None:
    stack = new_stack()
    result = poison.run_poison(stack, spec, clean)
    poisoned: dict[str, str] = result.details["poisoned"]
    assert len(poisoned) == JOBS // 20  # 5 %
    assert_clean(result, poisoned=len(poisoned))  # FAILED with its error; the other jobs as a clean run
    # The summary lists each poisoned job once, with its error; so does the report.
    assert set(result.audit.failures) == set(poisoned)
    assert all(poisoned[j] in error for j, error in result.audit.failures.items())
    record = stack.store.get_batch(result.details["batch_id"])
    summary = stack.store.get_summary(record)
    report = write_reports(summary, tmp_path / "report", []).read_text(encoding="utf-8")
    assert all(job_id in report for job_id in poisoned)
    # Reported on the first attempt (a malformed body is never marked running), never retried.
    kinds = dict(zip(poisoned, [*poison.POISON_KINDS] * JOBS, strict=False))
    assert all(n == (0 if kinds[j] == "malformed" else 1) for j, n in result.details["attempts"].items())
    # The DLQ holds each poisoned job once and each unreadable body once, all sent by a worker with the
    # error (none moved there by SQS after maxReceiveCount receives).
    dead = result.details["dead_letters"]
    ids = Counter(_job_id_of(body) for body, _ in dead)
    assert ids == Counter({**dict.fromkeys(poisoned, 1), None: len(poison.UNREADABLE)})
    assert all(error for _, error in dead), [body[:80] for body, error in dead if not error]


def test_retryable_faults_and_throttling_succeed_on_retry(
    spec: Any, clean: Any, new_stack: Callable[..., Any]
) -> None:
    # Workers: their first S3 read fails (the job is redelivered); every 50th mark-running and result send
    # is throttled. Collector: its first S3 read (the summary) fails; every 50th counting transaction and
    # 100th S3 write is throttled. botocore retries the throttled requests, SQS redelivers the rest.
    stack = new_stack()
    result = retryable.run_retryable(stack, spec, clean)
    injected = result.details["injected"]
    assert injected["s3.GetObject error"] == 3  # two workers and the collector
    for operation in (
        "dynamodb.UpdateItem",
        "sqs.SendMessage",
        "dynamodb.TransactWriteItems",
        "s3.PutObject",
    ):
        assert injected[f"{operation} throttle"] >= 2, injected
    assert len(result.details["redelivered"]) >= 2
    assert_clean(result)
    assert stack.messages(stack.names.dead_letter_queue) == 0


@pytest.fixture
def saved_environ() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_emulator_restarted_mid_batch_is_completed_by_run_batch_resume(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    saved_environ: None,
) -> None:
    # TIMEZONE_ANALYSIS: one job per parameter set, so run_batch.py (the planner's default target) plans
    # the same 200 jobs as the interrupted run.
    spec_dict = chaos_spec_dict(JOBS, job_type="TIMEZONE_ANALYSIS")
    spec_file = tmp_path / "chaos.yaml"
    spec_file.write_text(yaml.safe_dump(spec_dict), encoding="utf-8")
    spec = parse_spec(spec_dict)
    state = tmp_path / "local-aws"
    run_batch = load_script("run_batch")
    monkeypatch.setattr(run_batch, "LOCAL_STATE", state)
    reports = tmp_path / "reports"

    def resume(batch: str) -> dict[str, Any]:
        code, out, err = run_main(
            run_batch, capsys, str(spec_file), "--resume", batch, "--json", "--reports", str(reports)
        )
        assert code == 0, err
        return dict(json.loads(out.strip().splitlines()[-1]))

    result = restart.run_emulator_restart(spec, CleanRun(spec), state, workers=1, at=0.75, resume=resume)
    kept = result.details["kept"]
    assert 0 < len(kept) < JOBS  # stopped mid-batch, with outcomes saved
    resumed = result.details["resume"]
    assert (resumed["jobs_total"], resumed["jobs_succeeded"], resumed["jobs_failed"]) == (JOBS, JOBS, 0)
    assert resumed["backtests"] == JOBS and Path(resumed["report"]).exists()
    # Only the jobs without an outcome were sent again: those with one ran once.
    assert all(result.details["attempts"][j] == 1 for j in kept)
    assert_clean(result)
