"""An emulated stack (moto in-process) built from the same definitions the deploy scripts use."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from backtesting_modules.names import StackNames
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.store import Store
from opslib.local.provision import ensure_stack
from opslib.stack import StackConfig, load_stack


@dataclass
class Stack:
    clients: ClientFactory
    config: StackConfig
    names: StackNames
    urls: dict[str, str]
    store: Store


@pytest.fixture
def stack(mocked_aws: None) -> Stack:
    config = load_stack()
    names = config.names(account_id="123456789012")
    clients = ClientFactory(region="ap-northeast-2")
    urls = ensure_stack(clients, config, names)
    return Stack(clients, config, names, urls, Store(clients, names.table, names.bucket))
