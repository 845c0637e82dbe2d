"""Shared fixtures of the end-to-end tests.

`bed`: one emulator, its stack (resource names prefixed with the module's `BED_PREFIX`), two worker
processes and a collector for a whole module. `restore_environ` and `start`: for the tests that start
their own emulator on a state folder (test_persistence, test_history_scale), which opt in with
`pytestmark = pytest.mark.usefixtures("restore_environ")`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opslib.local.emulator import Emulator
from opslib.local.testbed import Testbed


@pytest.fixture(scope="module")
def bed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    prefix = request.module.BED_PREFIX
    server = Emulator().start()
    saved = dict(os.environ)
    os.environ.update(server.environ())
    testbed = Testbed.create(server, prefix, tmp_path_factory.mktemp(prefix))
    testbed.start_workers(2)
    testbed.start_collector()
    yield testbed
    testbed.stop()
    server.stop()
    os.environ.clear()
    os.environ.update(saved)


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
