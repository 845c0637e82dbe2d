"""How a batch is fed to SQS and waited on: largest jobs first, the queue filled to its depth in one go,
every job sent once, and a completion poll that is slow early and quick at the end."""

from __future__ import annotations

from typing import Any

import pytest

from backtesting_modules.jobs.messages import decode_job
from backtesting_modules.jobs.planner import plan_jobs
from backtesting_modules.jobs.spec import parse_spec
from opslib.batch.execute import poll_interval
from opslib.batch.submitter import Submitter, largest_first
from tests.pipeline.conftest import Stack

SPEC = parse_spec(
    {
        "name": "waves",
        "job_type": "PARAMETER_OPTIMIZATION",
        "symbols": ["KRW-BTC", "KRW-ETH"],
        "data": {"source": "synthetic", "seed": 1, "periods": 500, "freq": "1h"},
        "config": {"filters": None},
        "strategies": [{"name": "SMA_Crossover", "grid": {"fast": "2:40:1", "slow": "50:70:1"}}],
    }
)


def _jobs() -> list[Any]:
    # A tiny target time splits each symbol's grid into tiles of 1 × 16 and the remainders of 1 × 5.
    return plan_jobs(SPEC, "b-waves", bars=500, target_seconds=0.0005)


def test_largest_first_puts_the_remainders_last_and_keeps_every_job() -> None:
    jobs = _jobs()
    ordered = largest_first(jobs)
    sizes = [j.stop - j.start for j in ordered]
    assert sorted(j.job_id for j in ordered) == sorted(j.job_id for j in jobs)
    assert sizes == sorted(sizes, reverse=True)
    assert len(set(sizes)) > 1, "the plan should have remainders for this test to mean anything"


def test_waves_fill_the_queue_to_depth_and_send_each_job_once(stack: Stack) -> None:
    jobs = _jobs()
    assert len(jobs) > 25
    submitter = Submitter(stack.clients, stack.names, stack.urls)
    sqs = stack.clients.client("sqs")
    url = stack.urls[stack.names.job_queue]
    received: list[str] = []
    ticks: list[int] = []

    def drain() -> bool:
        """A worker's share between two polls: take everything visible, so the next wave has room."""
        visible = int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]["ApproximateNumberOfMessages"]
        )
        ticks.append(visible)
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not messages:
                return True
            received.extend(decode_job(m["Body"]).job_id for m in messages)
            for m in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    submitter.send_in_waves(jobs, depth=12, on_tick=drain, poll_s=0.0)
    drain()
    assert sorted(received) == sorted(j.job_id for j in jobs)
    # Each wave filled the queue to the depth (more than one request of 10) before waiting.
    assert ticks[0] == 12
    assert len(ticks) == -(-len(jobs) // 12)


def test_waves_grow_past_depth_when_workers_take_jobs_faster_than_the_polls(stack: Stack) -> None:
    """Short jobs: a queue of `depth` would sit empty between two polls, so the next fill covers what the
    workers took in two poll periods at the rate seen."""
    jobs = _jobs()
    submitter = Submitter(stack.clients, stack.names, stack.urls)
    sqs = stack.clients.client("sqs")
    url = stack.urls[stack.names.job_queue]
    waves: list[int] = []

    def take_all() -> bool:
        taken = 0
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        ):
            taken += len(messages)
            for m in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        waves.append(taken)
        return True

    submitter.send_in_waves(jobs, depth=2, on_tick=take_all, poll_s=0.2)
    take_all()
    assert sum(waves) == len(jobs)
    assert waves[0] == 2  # the first fill knows no rate yet
    assert max(waves) > 2  # later fills follow the workers' pace


def test_send_in_waves_stops_when_told(stack: Stack) -> None:
    submitter = Submitter(stack.clients, stack.names, stack.urls)
    submitter.send_in_waves(_jobs(), depth=3, on_tick=lambda: False, poll_s=0.0)
    attributes = stack.clients.client("sqs").get_queue_attributes(
        QueueUrl=stack.urls[stack.names.job_queue], AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "3"


@pytest.mark.parametrize(
    ("done", "total", "elapsed", "expected"),
    [
        (0, 24, 2.0, 0.25),  # nothing done yet: as much time left as has passed
        (0, 1, 0.1, 0.05),  # a tiny batch just sent: polled quickly
        (4, 24, 2.0, 1.0),  # 10 s of work left: the slowest poll
        (23, 24, 12.0, 0.065),  # the last job (~0.52 s) is running: an eighth of it
        (24, 24, 13.0, 0.05),  # done (the caller stops reading): never below the floor
    ],
)
def test_poll_interval_is_an_eighth_of_the_time_left(
    done: int, total: int, elapsed: float, expected: float
) -> None:
    assert poll_interval(done, total, elapsed) == pytest.approx(expected, abs=0.001)
