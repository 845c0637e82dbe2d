"""benchmarks/performance.py: regression verdicts against noise bands, size parsing, and the AWS target's
errors without credentials (the runs themselves are exercised by tests/workflows on a tiny spec)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from perf_report import compare  # noqa: E402
from performance import parse_sizes  # noqa: E402


def _run(mode: str, workers: int, median: float, low: float, high: float) -> dict[str, Any]:
    return {"mode": mode, "workers": workers, "wall_s": {"median": median, "min": low, "max": high}}


@pytest.mark.parametrize(
    ("head", "verdict"),
    [
        (_run("distributed", 2, 10.0, 9.9, 10.1), "within noise"),
        (_run("distributed", 2, 11.5, 11.4, 11.6), "within noise"),  # +15 % < 10 % + 10 % noise of the base
        (_run("distributed", 2, 12.5, 12.4, 12.6), "regression"),  # +25 % > 10 % + 10 %
        (_run("distributed", 2, 7.0, 6.9, 7.1), "faster"),
    ],
    ids=["same", "slower-within-noise", "slower-beyond-noise", "faster"],
)
def test_regressions_are_judged_against_threshold_plus_noise(head: dict[str, Any], verdict: str) -> None:
    base = {"runs": [_run("distributed", 2, 10.0, 9.5, 10.5), _run("sequential", 1, 20.0, 19.0, 21.0)]}
    table, regressions = compare({"runs": [head]}, base, threshold=0.10)
    assert verdict in table
    assert bool(regressions) == (verdict == "regression")
    assert "sequential" not in table  # only runs present on both sides are compared


def test_sizes_parse_and_reject_nonsense() -> None:
    assert parse_sizes("10, 1_000/10,100000/1000") == [(10, None), (1000, 10), (100000, 1000)]
    for bad in ("ten", "100/0", "0"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"BACKTESTS|at least 1"):
            parse_sizes(bad)


def test_aws_target_without_credentials_exits_2_with_the_fix(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "ap-northeast-2",
    }
    done = subprocess.run(
        [sys.executable, "benchmarks/performance.py", "batches/demo.yaml", "--target", "aws"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "Unable to locate credentials" in done.stderr and "configure AWS credentials" in done.stderr
    usage = subprocess.run(
        [sys.executable, "benchmarks/performance.py", "--target", "aws"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert usage.returncode == 2 and "--target aws needs a SPEC" in usage.stderr
