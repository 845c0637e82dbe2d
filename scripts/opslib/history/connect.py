"""A history on a target: the deployed stack, or the embedded default's saved state in .local-aws/ (read from
its files, or restored into the emulator for the queries that need the whole store)."""

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
from .saved import SavedStore


@contextmanager
def open_history(
    target: str,
    *,
    environment: str | None = None,
    state_dir: Path | None = None,
    fresh: bool = False,
    direct: bool = True,
) -> Iterator[History]:
    """The history of the deployed stack (`target` "aws"), or of the embedded default's saved state (read
    only: queries never change it): read from its files (`direct`, `SavedStore`: no emulator), or restored
    into the emulator (what reads more than the store's queries, e.g. the charts of `show --reports`)."""
    stack = load_stack(environment=environment)
    if target == "aws":
        clients = ClientFactory.from_environ()
        account = clients.client("sts").get_caller_identity()["Account"]
        names = stack.names(account_id=account)
        yield History(Store(clients, names.table, names.bucket))
        return
    state = state_dir or local_state_dir()
    if direct:
        names = stack.names()
        if fresh:  # an empty state: an empty history
            yield History(SavedStore.empty(names.table, names.bucket, stack.region))
        else:
            yield History(SavedStore.open(state, names.table, names.bucket, stack.region))
        return
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
