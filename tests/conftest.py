"""Fixtures shared across test folders: AWS emulated in-process by moto, and a deploy context on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from backtesting_modules.pipeline.clients import ClientFactory
from opslib.deploy.plan import DeployContext
from opslib.stack import load_stack

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "ap-northeast-2",
    "GITHUB_SHA": "f" * 40,
}


@pytest.fixture
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process: every boto3 call in the test goes to the emulator, never to AWS."""
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def deploy_ctx(mocked_aws: None) -> DeployContext:
    config = load_stack()
    clients = ClientFactory(region=config.region)
    account = clients.client("sts").get_caller_identity()["Account"]
    return DeployContext(clients, config, config.names(account_id=account), config.region, account)


@pytest.fixture(autouse=True)
def _local_state_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_batch / results on the embedded default keep state: never in the developer's .local-aws/."""
    monkeypatch.setenv("MAKENAIDE_LOCAL_STATE", str(tmp_path_factory.mktemp("local-aws")))
