"""The fault kinds the chaos scenarios rely on (`opslib.local.faults`), each against the emulator: a throttle
is retried inside botocore, a crash comes right after a successful call, and a deployed handler cannot turn
any of it on."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from backtesting_modules.pipeline.clients import ClientFactory
from opslib.local.emulator import Emulator
from opslib.local.faults import CRASH_EXIT_STATUS, FaultInjector, FaultSpecError

ROOT = Path(__file__).resolve().parents[2]


def test_throttled_requests_are_retried_by_botocore_and_logged(emulator: Emulator, tmp_path: Path) -> None:
    log = tmp_path / "faults.log"
    spec = "dynamodb.ListTables=throttle:2,s3.ListBuckets=throttle:2,sqs.ListQueues=throttle:2"
    injector = FaultInjector(spec, str(log))
    clients = ClientFactory(endpoint_url=emulator.endpoint_url)
    calls = {"dynamodb": "list_tables", "s3": "list_buckets", "sqs": "list_queues"}
    for service, operation in calls.items():
        client = clients.client(service)
        injector.attach(client)
        retries = [getattr(client, operation)()["ResponseMetadata"]["RetryAttempts"] for _ in range(2)]
        assert retries == [0, 1]  # the 2nd request throttled (ThrottlingException / SlowDown), the 3rd passed
    lines = [line.split() for line in log.read_text(encoding="utf-8").splitlines()]
    assert sorted(op for _, op, _, _ in lines) == ["dynamodb.ListTables", "s3.ListBuckets", "sqs.ListQueues"]
    assert {kind for _, _, kind, _ in lines} == {"throttle"}


def test_installed_faults_reach_every_client_built_after_and_crash_after_the_nth_call(
    emulator: Emulator, tmp_path: Path
) -> None:
    # What a local poller does before it loads its handler: install, then build clients.
    script = (
        "import sys\n"
        "from opslib.local.faults import FaultInjector\n"
        "from backtesting_modules.pipeline.clients import ClientFactory\n"
        "FaultInjector('sqs.ListQueues=crash-after:3', sys.argv[1]).install()\n"
        "client = ClientFactory.from_environ().client('sqs')\n"
        "for n in range(1, 5):\n"
        "    client.list_queues()\n"
        "    print(n, flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "log")],
        env=emulator.environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Calls 1 and 2 returned; the 3rd succeeded on the server, and the process died before it returned.
    assert (done.returncode, done.stdout.split()) == (CRASH_EXIT_STATUS, ["1", "2"]), done.stderr
    assert (tmp_path / "log").read_text(encoding="utf-8").split()[1:3] == ["sqs.ListQueues", "crash"]


@pytest.mark.parametrize("spec", ["s3.GetObject=throttle:1", "s3.GetObject=explode:2", "s3.GetObject=x"])
def test_a_fault_spec_that_means_nothing_is_refused(spec: str) -> None:
    with pytest.raises(FaultSpecError, match="means nothing"):
        FaultInjector(spec)


def _code_findings(path: Path) -> list[str]:
    """What in a module's code (not its prose) could inject faults: an import of the scripts' library or of
    a fault module, a FaultInjector, a string naming a fault variable, a hard process exit."""
    findings = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            parts = [(m, set(m.split("."))) for m in modules]
            findings += [f"imports {m}" for m, p in parts if p & {"opslib", "faults", "FaultInjector"}]
        elif isinstance(node, ast.Name | ast.Attribute):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in {"FaultInjector", "_exit"}:
                findings.append(f"uses {name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "INJECT" in node.value:
            findings.append(f"names {node.value!r}")
    return findings


def test_nothing_the_lambda_functions_ship_can_inject_faults() -> None:
    # The layer (and each function's zip, its handler alone) carries no fault injection and reads no
    # variable that could turn it on: it lives in scripts/opslib/local, installed only by local pollers.
    shipped = [*sorted((ROOT / "layer").rglob("*.py")), *sorted((ROOT / "lambdas").rglob("handler.py"))]
    assert len(shipped) > 30
    found = {str(p.relative_to(ROOT)): f for p in shipped if (f := _code_findings(p))}
    assert found == {}
    # The check itself finds what it looks for.
    findings = _code_findings(ROOT / "scripts" / "opslib" / "local" / "pollers.py")
    assert {"imports faults", "imports FaultInjector", "uses FaultInjector"} <= set(findings)


def test_a_deployed_handler_environment_cannot_enable_faults(emulator: Emulator, tmp_path: Path) -> None:
    # The worker handler loaded as Lambda loads it, in a process whose environment names the variables that
    # once switched fault injection on: its clients still reach the emulator untouched.
    script = (
        "from opslib.local.pollers import load_handler\n"
        "handler = load_handler('worker')\n"
        "worker = handler.worker()\n"
        "client = worker.clients.client('sqs')\n"
        "print(sum(1 for _ in range(3) if client.list_queues() is not None), flush=True)\n"
    )
    env = {
        **emulator.environ(),
        "TABLE_NAME": "t",
        "BUCKET_NAME": "b",
        "RESULT_QUEUE_URL": f"{emulator.endpoint_url}/123456789012/r",
        "DEAD_LETTER_QUEUE_URL": f"{emulator.endpoint_url}/123456789012/d",
        "MAKENAIDE_INJECT_FAULTS": "sqs.ListQueues=crash-after:1",
        "MAKENAIDE_FAULT_LOG": str(tmp_path / "log"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout.split()) == (0, ["3"]), done.stderr
    assert not (tmp_path / "log").exists()
