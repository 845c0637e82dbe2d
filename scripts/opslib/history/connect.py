"""A history on a target: the deployed stack, or the embedded default restored from .local-aws/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.store import Store

from ..local.emulator import Emulator, local_state_dir
from ..local.provision import ensure_stack
from ..stack import load_stack
from .queries import History


@contextmanager
def open_history(
    target: str,
    *,
    environment: str | None = None,
    state_dir: Path | None = None,
    fresh: bool = False,
) -> Iterator[History]:
    """The history of the deployed stack (`target` "aws"), or of the embedded default restored from its saved
    state (read only: queries never change it)."""
    stack = load_stack(environment=environment)
    if target == "aws":
        clients = ClientFactory.from_environ()
        account = clients.client("sts").get_caller_identity()["Account"]
        names = stack.names(account_id=account)
        yield History(Store(clients, names.table, names.bucket))
        return
    state = state_dir or local_state_dir()
    emulator = Emulator(state_dir=state, fresh=fresh, read_only=True, region=stack.region)
    saved = dict(os.environ)
    emulator.start()
    try:
        os.environ.update(emulator.environ())
        clients = ClientFactory(endpoint_url=emulator.endpoint_url, region=stack.region)
        names = stack.names()
        ensure_stack(clients, stack, names)  # an empty state has no table yet: an empty history, not an error
        yield History(Store(clients, names.table, names.bucket))
    finally:
        emulator.stop()
        os.environ.clear()
        os.environ.update(saved)
