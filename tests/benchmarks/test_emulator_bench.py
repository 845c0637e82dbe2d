"""benchmarks/emulator.py runs both servers and reports every request of a job's mix for each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_emulator_benchmark_reports_each_request_for_both_servers() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/emulator.py", "--requests", "3", "--items", "30", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["items"] == 30
    assert set(result["stock_ms"]) == set(result["ours_ms"])
    assert any("TransactWriteItems" in name for name in result["ours_ms"])
    assert all(value >= 0 for value in [*result["stock_ms"].values(), *result["ours_ms"].values()])
    assert "| request" in done.stdout and "moto.server (ms)" in done.stdout
