"""Shared by the chaos tests: the scenarios of benchmarks/chaos.py (`benchmarks/chaos_scenarios`, importable
once benchmarks/ is on the path: it is not a package), one emulator for the module, a 200-job spec and its
clean run (`run_job` in-process, once), and testbeds (`opslib.local.testbed`) under fresh prefixes."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opslib.local.emulator import Emulator
from opslib.local.testbed import Testbed

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

from chaos_scenarios.audit import CleanRun  # noqa: E402
from chaos_scenarios.common import VISIBILITY_TIMEOUT_S, chaos_spec  # noqa: E402

JOBS = 200
_stacks = itertools.count()


@pytest.fixture(scope="session")
def spec() -> Any:
    return chaos_spec(JOBS)


@pytest.fixture(scope="session")
def clean(spec: Any) -> CleanRun:
    return CleanRun(spec)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    saved = dict(os.environ)
    server = Emulator().start()
    os.environ.update(server.environ())  # boto3 reads the (fake) credentials from the environment
    yield server
    server.stop()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def new_stack(emulator: Emulator, tmp_path: Path) -> Iterator[Callable[..., Testbed]]:
    """Testbeds on the module's emulator, each under a fresh prefix; their processes stop with the test."""
    stacks: list[Testbed] = []

    def create(**options: Any) -> Testbed:
        options.setdefault("visibility_timeout_s", VISIBILITY_TIMEOUT_S)
        stack = Testbed.create(emulator, f"chaos{next(_stacks)}", tmp_path, **options)
        stacks.append(stack)
        return stack

    yield create
    for stack in stacks:
        stack.stop()
