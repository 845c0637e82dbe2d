"""Fixtures of the bad-input suite: an emulated deployed stack to prove nothing was submitted, and an
environment with no AWS credentials at all."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from backtesting_modules.pipeline.clients import ClientFactory
from opslib.local.provision import ensure_stack
from opslib.stack import load_stack
from tests.badinput.support import ACCOUNT, DeployedStack


@pytest.fixture
def deployed(mocked_aws: None) -> DeployedStack:
    config = load_stack()
    names = config.names(account_id=ACCOUNT)
    clients = ClientFactory(region=config.region)
    return DeployedStack(clients, names, ensure_stack(clients, config, names))


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS credentials anywhere botocore looks (environment, files, instance metadata), and an endpoint
    on the discard port, so even a credential found by mistake could not reach AWS."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-2")
    # boto3's default session caches the credentials it resolved for an earlier test.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
