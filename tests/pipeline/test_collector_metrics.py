"""The collector Lambda publishes CloudWatch metrics once per invocation, adding up to what it counted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.cloudwatch.models import cloudwatch_backends

from backtesting_modules.jobs.messages import encode_result
from backtesting_modules.jobs.planner import plan_jobs
from backtesting_modules.jobs.runner import run_job
from backtesting_modules.jobs.spec import parse_spec
from opslib.batch.bars import load_symbol_bars
from opslib.batch.submitter import Submitter
from opslib.local.pollers import LambdaContext, load_handler, sqs_record
from tests.pipeline.conftest import Stack

SPEC = parse_spec(
    {
        "name": "metrics",
        "job_type": "PARAMETER_OPTIMIZATION",
        "symbols": ["KRW-BTC", "KRW-ETH", "KRW-XRP"],
        "data": {"source": "synthetic", "seed": 3, "periods": 400, "freq": "1h"},
        "config": {"filters": None},
        "strategies": [{"name": "SMA_Crossover", "grid": {"fast": [5, 10], "slow": [20, 40]}}],
    }
)


def _event(stack: Stack, bodies: list[str]) -> dict[str, Any]:
    arn = f"arn:aws:sqs:{stack.config.region}:123456789012:{stack.names.result_queue}"
    messages = [
        {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": body, "Attributes": {}}
        for i, body in enumerate(bodies)
    ]
    return {"Records": [sqs_record(m, arn, stack.config.region) for m in messages]}


def _statistics(stack: Stack, name: str) -> dict[str, float]:
    now = datetime.now(UTC)
    points = stack.clients.client("cloudwatch").get_metric_statistics(
        Namespace=stack.config.metric_namespace,
        MetricName=name,
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
        Period=3600,
        Statistics=["Sum", "SampleCount", "Maximum"],
    )["Datapoints"]
    assert len(points) == 1, name
    return {k: float(v) for k, v in points[0].items() if k in ("Sum", "SampleCount", "Maximum")}


def test_one_put_per_invocation_with_sums_of_what_was_counted(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = stack.config.handler_env(stack.names, stack.urls)
    for key, value in env.to_environ().items():
        monkeypatch.setenv(key, value)
    submitter = Submitter(stack.clients, stack.names, stack.urls)
    prepared = submitter.prepare(SPEC)
    jobs = plan_jobs(SPEC, "b-metrics", refs=prepared.refs, bars=prepared.bars)
    submitter.register(SPEC, "b-metrics", jobs, prepared)
    frames = {symbol: load_symbol_bars(SPEC, symbol) for symbol in SPEC.symbols}
    results = [run_job(job, {s: frames[s] for s in job.symbols}) for job in jobs]
    bodies = [json.dumps(encode_result(r, inline_limit=env.inline_result_limit)[0]) for r in results]

    handler = load_handler("collector")
    event = _event(stack, bodies + bodies[:1])  # and a duplicate of the first
    response = handler.handler(event, LambdaContext("collector"))

    assert response == {"batchItemFailures": []}
    assert stack.store.get_batch("b-metrics").complete
    backend = cloudwatch_backends["123456789012"][stack.config.region]
    names = sorted(d.name for d in backend.metric_data)
    # One datum per metric name from the one call, not one per result (the duplicate counted nothing).
    assert names == ["BacktestsRun", "BatchDuration", "BatchesCompleted", "JobDuration", "JobsSucceeded"]
    succeeded = _statistics(stack, "JobsSucceeded")
    assert succeeded["Sum"] == succeeded["SampleCount"] == len(jobs)
    assert _statistics(stack, "BacktestsRun")["Sum"] == sum(r.backtests for r in results)
    slowest = max(r.engine_seconds for r in results)
    assert _statistics(stack, "JobDuration")["Maximum"] == pytest.approx(slowest)
    assert _statistics(stack, "BatchesCompleted")["Sum"] == 1
