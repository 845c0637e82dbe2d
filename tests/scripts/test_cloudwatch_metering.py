"""The cost report's CloudWatch figure (opslib/batch/billed.py): the worker's AWS/Lambda Duration and
Invocations over the batch's window, read with GetMetricData from moto in-process. moto emits no Lambda
metrics, so the tests put the datapoints AWS would have published (the worker's, another function's, and
some outside the window); a refused read comes from botocore's own Stubber on a real client."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from backtesting_modules.jobs.runner import JobStatus
from backtesting_modules.jobs.spec_parser import load_spec
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.records import BatchRecord, JobOutcome, JobRecord
from opslib.batch.billed import NOT_YET, PERMISSION, batch_window, cloudwatch_figure, read_sums
from opslib.batch.execute import BatchOutcome
from opslib.batch.metering import cost_json, meter_jobs, render_cost_line
from opslib.batch.projection import load_pricing, project
from opslib.batch.submitter import Submitter
from opslib.batch.validation import ValidatedOutcome
from opslib.local.provision import ensure_stack
from opslib.stack import load_stack
from tests.script_loader import load_script

ROOT = Path(__file__).resolve().parents[2]
REGION = "ap-northeast-2"
WORKER = "makenaide-distributed-backtest-worker"
T0 = datetime(2026, 12, 6, 10, 0, 0, tzinfo=UTC)
run_batch = load_script("run_batch")


def job(job_id: str, start: str, stop: str, *, reused: bool = False) -> JobRecord:
    return JobRecord(
        job_id,
        status=JobStatus.SUCCEEDED,
        attempts=1,
        started_at=f"2026-12-06T{start}+00:00",
        finished_at=f"2026-12-06T{stop}+00:00",
        duration_s=1.0,
        reused=reused,
    )


# Jobs from 10:02:10 to 10:04:20: the window is 10:01 → 10:06 (a minute either side, whole minutes).
RECORDS = [job("a", "10:02:10", "10:03:00"), job("b", "10:02:30", "10:04:20")]
EARLIER = [job("c", "09:00:00", "09:30:00", reused=True)]  # ran in an earlier batch: not in the window


def put_lambda_metrics(function: str, at: datetime, invocations: float, duration_ms: float) -> None:
    """What AWS Lambda itself would publish for `function` at `at` (namespace AWS/Lambda)."""
    dimensions = [{"Name": "FunctionName", "Value": function}]
    boto3.client("cloudwatch", region_name=REGION).put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {"MetricName": "Invocations", "Dimensions": dimensions, "Timestamp": at, "Value": invocations},
            {"MetricName": "Duration", "Dimensions": dimensions, "Timestamp": at, "Value": duration_ms},
        ],
    )


def test_the_window_is_a_minute_either_side_on_whole_minutes() -> None:
    assert batch_window(RECORDS + EARLIER) == (T0 + timedelta(minutes=1), T0 + timedelta(minutes=6))
    # A finish exactly on a minute stays on it (+1 minute); a start on one goes a minute back.
    on_minutes = [job("d", "10:02:00", "10:04:00")]
    assert batch_window(on_minutes) == (T0 + timedelta(minutes=1), T0 + timedelta(minutes=5))
    assert batch_window(EARLIER) is None  # nothing ran here


def test_sums_only_the_worker_inside_the_window(mocked_aws: None) -> None:
    put_lambda_metrics(WORKER, T0 + timedelta(minutes=2, seconds=30), 3, 12_000.0)
    put_lambda_metrics(WORKER, T0 + timedelta(minutes=4), 2, 8_000.0)
    put_lambda_metrics("makenaide-backtest-result-collector", T0 + timedelta(minutes=3), 50, 99_000.0)
    put_lambda_metrics(WORKER, T0 - timedelta(minutes=10), 40, 500_000.0)  # before the window
    put_lambda_metrics(WORKER, T0 + timedelta(minutes=20), 40, 500_000.0)  # after it
    prices = load_pricing()
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    figure = cloudwatch_figure(
        cloudwatch, WORKER, RECORDS + EARLIER, memory_mb=2048, pricing=prices, now=T0 + timedelta(hours=1)
    )
    assert figure.available and (figure.invocations, figure.duration_s) == (5, 20.0)
    assert figure.gb_s == pytest.approx(20.0 * 2.0)
    assert figure.compute_usd == pytest.approx(40.0 * prices["lambda"]["gb_second_x86_64"])
    assert figure.window == (T0 + timedelta(minutes=1), T0 + timedelta(minutes=6))
    doc = figure.to_json()
    assert doc["window"] == ["2026-12-06T10:01:00+00:00", "2026-12-06T10:06:00+00:00"]
    assert "function-wide" in doc["note"] and "billed duration" in doc["note"]
    assert "still be arriving" not in doc["note"]  # an hour later: every minute is in


def test_empty_sums_right_after_the_batch_are_not_yet_available(mocked_aws: None) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    soon = cloudwatch_figure(cloudwatch, WORKER, RECORDS, memory_mb=2048, now=T0 + timedelta(minutes=7))
    assert not soon.available and soon.reason == NOT_YET
    assert soon.to_json() == {
        "available": False,
        "reason": NOT_YET,
        "window": ["2026-12-06T10:01:00+00:00", "2026-12-06T10:06:00+00:00"],
    }
    later = cloudwatch_figure(cloudwatch, WORKER, RECORDS, memory_mb=2048, now=T0 + timedelta(hours=2))
    assert not later.available and later.reason == f"no AWS/Lambda datapoints for {WORKER} in the window"


def _stubbed(code: str) -> Any:
    client = boto3.client("cloudwatch", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.add_client_error("get_metric_data", service_error_code=code, http_status_code=403)
    stubber.activate()
    return client


def test_a_refused_read_leaves_the_figure_out_with_the_permission() -> None:
    figure = cloudwatch_figure(_stubbed("AccessDenied"), WORKER, RECORDS, memory_mb=2048)
    assert not figure.available
    assert figure.reason.startswith(f"{PERMISSION}: AccessDenied") and "github-batch-policy" in figure.reason
    assert "ExpiredToken" in cloudwatch_figure(_stubbed("ExpiredToken"), WORKER, RECORDS, memory_mb=1).reason
    # Anything else leaves it out too, named: the batch's results and report must not be lost to it.
    other = cloudwatch_figure(_stubbed("InvalidParameterValue"), WORKER, RECORDS, memory_mb=2048)
    assert not other.available and other.reason.startswith(f"{PERMISSION}: InvalidParameterValue")


def test_every_page_is_summed() -> None:
    client = boto3.client("cloudwatch", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    pages = [
        ({"invocations": [2.0], "duration": [1000.0]}, "next"),
        ({"invocations": [1.0, 1.0], "duration": [500.0, 250.0]}, None),
    ]
    for values, token in pages:
        results = [{"Id": i, "Values": v, "StatusCode": "Complete"} for i, v in values.items()]
        stubber.add_response(
            "get_metric_data", {"MetricDataResults": results, **({"NextToken": token} if token else {})}
        )
    with stubber:
        assert read_sums(client, WORKER, (T0, T0 + timedelta(minutes=5))) == (4.0, 1750.0)
    stubber.assert_no_pending_responses()


def test_the_cost_line_and_json_carry_the_figure_only_when_there_is_one(mocked_aws: None) -> None:
    put_lambda_metrics(WORKER, T0 + timedelta(minutes=3), 2, 30_000.0)
    metered = meter_jobs(RECORDS, memory_mb=1024)
    projected = project(2, 8, 8 * 2000.0, throughput_per_vcpu=2e7, memory_mb=1024, concurrency=10)
    assert "cloudwatch" not in cost_json(metered, projected)
    assert "CloudWatch" not in render_cost_line(metered, projected)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    figure = cloudwatch_figure(cloudwatch, WORKER, RECORDS, memory_mb=1024, now=T0 + timedelta(hours=1))
    with_figure = replace(metered, cloudwatch=figure)
    line = render_cost_line(with_figure, projected)
    assert line.startswith("actual (metered) $") and "vs projected $" in line
    assert "; CloudWatch (worker, 10:01–10:06 UTC, function-wide) $" in line and "2 invocations" in line
    doc = cost_json(with_figure, projected)
    assert doc["cloudwatch"]["invocations"] == 2 and doc["cloudwatch"]["lambda_gb_s"] == 30.0


def test_metered_cost_reads_cloudwatch_on_aws_only(mocked_aws: None) -> None:
    """run_batch.metered_cost on a stack deployed in moto: the local target's call (the default) has no
    CloudWatch figure; the AWS target's (`cloudwatch=True`) reads the worker's metrics for its jobs."""
    stack = load_stack()
    clients = ClientFactory(region=stack.region)
    names = stack.names(account_id=clients.client("sts").get_caller_identity()["Account"])
    submitter = Submitter(clients, names, ensure_stack(clients, stack, names))
    store = submitter.store
    store.put_pending_jobs("b1", [JobRecord("j1", status=JobStatus.PENDING, backtests=4)])
    store.mark_running("b1", "j1", "worker-1")
    store.record_outcome("b1", "j1", JobOutcome(JobStatus.SUCCEEDED, backtests=4, duration_s=0.5))
    put_lambda_metrics(names.worker_function, datetime.now(UTC), 1, 2_000.0)
    train = BatchOutcome("b1", [], 2000, BatchRecord("b1"), {"backtests": 4}, 1.0)
    spec = load_spec(ROOT / "batches" / "demo.yaml")
    local, _ = run_batch.metered_cost(submitter, spec, ValidatedOutcome(train), stack)
    assert local.cloudwatch is None and "cloudwatch" not in cost_json(local, _)
    metered, projected = run_batch.metered_cost(
        submitter, spec, ValidatedOutcome(train), stack, cloudwatch=True
    )
    doc = cost_json(metered, projected)["cloudwatch"]
    assert doc["available"] and (doc["invocations"], doc["duration_s"]) == (1, 2.0)
    assert doc["lambda_gb_s"] == pytest.approx(2.0 * stack.worker.memory_mb / 1024, abs=1e-3)
    assert "still be arriving" in doc["note"]  # the batch ended seconds ago
    assert "CloudWatch (worker" in render_cost_line(metered, projected)
