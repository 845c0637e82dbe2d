"""Shared by the chaos tests: the scenarios of benchmarks/chaos.py (loaded by path: benchmarks/ is not a
package), one emulator for the module, a 200-job spec and its clean run (`run_job` in-process, once)."""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from opslib.local.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
JOBS = 200
_stacks = itertools.count()


def load_chaos() -> ModuleType:
    if "chaos" not in sys.modules:
        spec = importlib.util.spec_from_file_location("chaos", ROOT / "benchmarks" / "chaos.py")
        if spec is None or spec.loader is None:
            raise ImportError("benchmarks/chaos.py not found")
        module = importlib.util.module_from_spec(spec)
        sys.modules["chaos"] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules["chaos"]


@pytest.fixture(scope="session")
def chaos() -> ModuleType:
    return load_chaos()


@pytest.fixture(scope="session")
def spec(chaos: ModuleType) -> Any:
    return chaos.chaos_spec(JOBS)


@pytest.fixture(scope="session")
def clean(chaos: ModuleType, spec: Any) -> Any:
    return chaos.CleanRun(spec)


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
def new_stack(chaos: ModuleType, emulator: Emulator, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Stacks on the module's emulator, each under a fresh prefix; their processes stop with the test."""
    stacks: list[Any] = []

    def create(**options: Any) -> Any:
        stack = chaos.ChaosStack.create(emulator, f"chaos{next(_stacks)}", tmp_path, **options)
        stacks.append(stack)
        return stack

    yield create
    for stack in stacks:
        stack.stop()
