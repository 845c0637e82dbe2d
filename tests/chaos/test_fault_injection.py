"""The fault kinds the chaos scenarios rely on (`MAKENAIDE_INJECT_FAULTS`, `pipeline/clients.py`), each
against the emulator: a throttle is retried inside botocore, a crash comes right after a successful call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backtesting_modules.pipeline.clients import (
    CRASH_EXIT_STATUS,
    FAULT_LOG_ENV,
    FAULTS_ENV,
    ClientFactory,
    FaultInjector,
)
from opslib.local.emulator import Emulator


def test_throttled_requests_are_retried_by_botocore_and_logged(emulator: Emulator, tmp_path: Path) -> None:
    log = tmp_path / "faults.log"
    spec = "dynamodb.ListTables=throttle:2,s3.ListBuckets=throttle:2,sqs.ListQueues=throttle:2"
    clients = ClientFactory(endpoint_url=emulator.endpoint_url, faults=FaultInjector(spec, str(log)))
    calls = {"dynamodb": "list_tables", "s3": "list_buckets", "sqs": "list_queues"}
    for service, operation in calls.items():
        client = clients.client(service)
        retries = [getattr(client, operation)()["ResponseMetadata"]["RetryAttempts"] for _ in range(2)]
        assert retries == [0, 1]  # the 2nd request throttled (ThrottlingException / SlowDown), the 3rd passed
    lines = [line.split() for line in log.read_text(encoding="utf-8").splitlines()]
    assert sorted(op for _, op, _, _ in lines) == ["dynamodb.ListTables", "s3.ListBuckets", "sqs.ListQueues"]
    assert {kind for _, _, kind, _ in lines} == {"throttle"}


def test_crash_after_exits_right_after_the_nth_successful_call(emulator: Emulator, tmp_path: Path) -> None:
    script = (
        "from backtesting_modules.pipeline.clients import ClientFactory\n"
        "client = ClientFactory.from_environ().client('sqs')\n"
        "for n in range(1, 5):\n"
        "    client.list_queues()\n"
        "    print(n, flush=True)\n"
    )
    env = {
        **emulator.environ(),
        FAULTS_ENV: "sqs.ListQueues=crash-after:3",
        FAULT_LOG_ENV: str(tmp_path / "log"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    # Calls 1 and 2 returned; the 3rd succeeded on the server, and the process died before it returned.
    assert (done.returncode, done.stdout.split()) == (CRASH_EXIT_STATUS, ["1", "2"])
    assert (tmp_path / "log").read_text(encoding="utf-8").split()[1:3] == ["sqs.ListQueues", "crash"]


@pytest.mark.parametrize("spec", ["s3.GetObject=throttle:1", "s3.GetObject=explode:2", "s3.GetObject=x"])
def test_a_fault_spec_that_means_nothing_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match=FAULTS_ENV):
        FaultInjector(spec)
