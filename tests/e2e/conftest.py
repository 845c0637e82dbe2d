"""Fixtures of the emulator tests that start their own emulator on a state folder (test_persistence,
test_history_scale): each module opts in with `pytestmark = pytest.mark.usefixtures("restore_environ")`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opslib.local.emulator import Emulator


@pytest.fixture
def restore_environ() -> Iterator[None]:
    """The environment as it was before the test (a test points boto3 at its own emulator)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Emulator]]:
    """Start an emulator on the test's state folder; any still running at the end (a failed assertion)
    is stopped, so no server outlives the test."""
    running: list[Emulator] = []

    def started(**options: Any) -> Emulator:
        emulator = Emulator(state_dir=tmp_path, **options)
        running.append(emulator)
        return emulator.start()

    yield started
    for emulator in running:
        emulator.stop()
