"""The local pollers' receive order and normal-queue slots (`opslib.local.pollers`), on a fake SQS client:
priority first, the normal queue only while a slot is held, and a slot freed by its holder or for it."""

from __future__ import annotations

from typing import Any

from opslib.local.pollers import NormalSlots, PollerShared, PollerSpec, _job_ids, _receive

PRIORITY, NORMAL = "https://sqs/priority", "https://sqs/normal"


class FakeSqs:
    """Answers receive_message from a dict of queue → messages, and records each call's queue and wait."""

    def __init__(self, queued: dict[str, list[dict[str, Any]]]) -> None:
        self.queued = queued
        self.calls: list[tuple[str, int]] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append((kwargs["QueueUrl"], kwargs["WaitTimeSeconds"]))
        messages, self.queued[kwargs["QueueUrl"]] = self.queued.get(kwargs["QueueUrl"], []), []
        return {"Messages": messages} if messages else {}


SPEC = PollerSpec("worker", (PRIORITY, NORMAL), {}, wait_s=1)
MESSAGE = {"MessageId": "m-1", "ReceiptHandle": "r", "Body": '{"job_id": "j-1"}'}


def test_without_slots_priority_is_read_first_then_the_normal_queue_with_a_long_poll() -> None:
    sqs = FakeSqs({NORMAL: [MESSAGE]})
    assert _receive(sqs, SPEC) == (NORMAL, [MESSAGE], False)
    assert sqs.calls == [(PRIORITY, 0), (NORMAL, 1)]


def test_a_worker_without_a_free_slot_waits_on_the_priority_queue_only() -> None:
    slots = NormalSlots(1)
    assert slots.acquire(1)  # another worker holds the only slot
    sqs = FakeSqs({NORMAL: [MESSAGE]})
    assert _receive(sqs, SPEC, slots) is None
    assert sqs.calls == [(PRIORITY, 0), (PRIORITY, 1)]  # the normal message is left alone
    sqs = FakeSqs({PRIORITY: [MESSAGE]})
    assert _receive(sqs, SPEC, slots) == (PRIORITY, [MESSAGE], False)


def test_a_normal_message_holds_a_slot_until_released_and_an_empty_poll_holds_none() -> None:
    slots = NormalSlots(1)
    sqs = FakeSqs({NORMAL: [MESSAGE]})
    assert _receive(sqs, SPEC, slots) == (NORMAL, [MESSAGE], True)
    assert len(slots.held()) == 1 and not slots.acquire(999)
    slots.release(slots.held()[0])  # by its holder, or by the supervisor for a dead one
    assert slots.held() == []
    assert _receive(FakeSqs({}), SPEC, slots) is None
    assert slots.held() == []


def test_counters_add_up_and_an_uncounted_group_reads_zero() -> None:
    shared = PollerShared.create()
    shared.count(crashes=1, records=1)
    shared.count(records=2)
    assert shared.read() == (1, 3)
    assert PollerShared().read() == (0, 0)


def test_log_lines_name_the_job_or_else_the_message() -> None:
    unreadable = {"MessageId": "m-2", "Body": "[" * 100_000}
    assert _job_ids([MESSAGE, unreadable, {"MessageId": "m-3", "Body": "{}"}]) == (
        "job j-1, message m-2, message m-3"
    )
