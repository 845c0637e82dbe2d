"""The entry points' exit statuses come from one table (`opslib.cli.exit_status`): 0 done, 1 failed (a batch
that did not complete included), 2 usage or input errors with nothing done, 130 interrupted."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from backtesting_modules.errors import ConfigError, DataError, StrategyError
from backtesting_modules.jobs.results import ResultBodyError
from backtesting_modules.jobs.spec import SpecError
from backtesting_modules.pipeline.errors import MissingObjectError, StoreError
from opslib.cli import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    Terminated,
    UsageError,
    exit_status,
)
from opslib.errors import (
    BatchIncompleteError,
    BatchInputError,
    BatchTimeoutError,
    DeployError,
    HistoryError,
    LocalSetupError,
    NotDeployedError,
    StackConfigError,
    UnknownBatchError,
)
from tests.script_loader import load_script, run_main

ROOT = Path(__file__).resolve().parents[2]

CASES = [
    (UsageError("--top 0"), EXIT_USAGE),
    (SpecError("strategies: empty"), EXIT_USAGE),
    (DataError("bars unsorted"), EXIT_USAGE),
    (ConfigError("stop_loss_pct"), EXIT_USAGE),
    (StrategyError("unknown strategy"), EXIT_USAGE),
    (StackConfigError("region"), EXIT_USAGE),
    (BatchInputError("data.paths has no file for KRW-BTC"), EXIT_USAGE),
    (NotDeployedError("queue not found"), EXIT_USAGE),
    (DeployError("no layer zip"), EXIT_USAGE),
    (LocalSetupError("emulator did not start"), EXIT_USAGE),
    (UnknownBatchError("b-x", [], "t"), EXIT_USAGE),
    (NoCredentialsError(), EXIT_USAGE),
    (BatchIncompleteError("every local worker exited", "b-x"), EXIT_FAILED),
    (BatchTimeoutError("did not complete in 60 s", "b-x"), EXIT_TIMEOUT),
    (Terminated("signal 15"), EXIT_TERMINATED),
    (KeyboardInterrupt(), EXIT_INTERRUPTED),
    (HistoryError("expired"), EXIT_FAILED),
    (StoreError("throttled"), EXIT_FAILED),
    (MissingObjectError("s3://b/k"), EXIT_FAILED),
    (ResultBodyError("corrupt body"), EXIT_FAILED),
    (ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetItem"), EXIT_FAILED),
    (KeyboardInterrupt(), EXIT_INTERRUPTED),
]


@pytest.mark.parametrize(("error", "status"), CASES, ids=[type(e).__name__ for e, _ in CASES])
def test_each_error_maps_to_its_exit_status(error: BaseException, status: int) -> None:
    assert exit_status(error) == status


def test_a_batch_that_does_not_complete_in_time_exits_3_naming_resume(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Submitted, then given up on: not a usage error (2 means nothing was submitted).
    run_batch = load_script("run_batch")
    spec = ROOT / "batches" / "demo.yaml"
    code, _, err = run_main(
        run_batch, capsys, str(spec), "--workers", "1", "--timeout", "0.5", "--reports", str(tmp_path)
    )
    assert code == EXIT_TIMEOUT, err
    assert "did not complete in 0 s" in err and "--resume b-" in err


def test_ctrl_c_exits_130_keeps_the_batch_and_resume_finishes_it(tmp_path: Path) -> None:
    # Ctrl-C in a terminal signals the whole process group: the driver, the emulator and the pollers. Only
    # the driver acts on it; it stops the pollers, saves the emulator's state and names the batch.
    env = {**os.environ, "MAKENAIDE_LOCAL_STATE": str(tmp_path / "state")}
    command = [sys.executable, str(ROOT / "scripts" / "run_batch.py"), str(ROOT / "batches" / "demo.yaml")]
    options = ["--workers", "1", "--reports", str(tmp_path / "reports")]
    process = subprocess.Popen(
        [*command, *options], env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stderr is not None
    assert "backtests on local" in process.stderr.readline()  # the batch is starting
    time.sleep(2.0)  # the emulator up, the bars uploading or the jobs running
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and "not saved" not in err, err
    match = re.search(
        r"interrupted; batch (b-[0-9a-f]+) is kept: finish it with .* --resume (b-[0-9a-f]+)", err
    )
    assert match is not None and match.group(1) == match.group(2), err
    resumed = subprocess.run(
        [*command, *options, "--resume", match.group(1), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    outcome = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert (outcome["batch_id"], outcome["jobs_succeeded"], outcome["jobs_failed"]) == (match.group(1), 12, 0)


def _children(pid: int) -> set[int]:
    """Every process below `pid` (from /proc): what the command started."""
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and int(entry.name) not in found:
                found.add(int(entry.name))
                frontier.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_exits_143_stops_every_process_it_started_and_keeps_the_batch(tmp_path: Path) -> None:
    # A cancelled CI job sends SIGTERM to the command alone: it must stop the emulator and the workers it
    # started (no orphans) and name the batch to resume, like Ctrl-C.
    env = {**os.environ, "MAKENAIDE_LOCAL_STATE": str(tmp_path / "state")}
    command = [sys.executable, str(ROOT / "scripts" / "run_batch.py"), str(ROOT / "batches" / "demo.yaml")]
    options = ["--workers", "2", "--reports", str(tmp_path / "reports")]
    process = subprocess.Popen([*command, *options], env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    assert "backtests on local" in process.stderr.readline()
    time.sleep(2.5)  # the emulator and the workers up
    started = _children(process.pid)
    assert len(started) >= 3, started  # the emulator and two workers at least
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_TERMINATED, err
    assert "Traceback" not in err, err
    assert re.search(r"terminated; batch b-[0-9a-f]+ is kept: finish it with .* --resume b-[0-9a-f]+", err), (
        err
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_running(pid) for pid in started):
        time.sleep(0.2)
    assert not [pid for pid in started if _running(pid)], "processes left running after SIGTERM"
