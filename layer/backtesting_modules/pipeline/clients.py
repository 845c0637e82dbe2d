"""The one place boto3 clients are built: endpoint (the emulator is one setting away), region, retries.

`AWS_ENDPOINT_URL` (boto3's own variable) points every client at the local emulator; the deploy scripts'
`--endpoint-url` sets it too. Retries use botocore's standard mode; the runtime never sleeps on its own.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

DEFAULT_REGION = "ap-northeast-2"  # Seoul, where Upbit's users are
# Opt-in fault injection for reliability tests, never set in production. "s3.GetObject=2,sqs.SendMessage=1"
# makes the first 2 (resp. 1) such calls of this process fail with a connection error, as a flaky network
# would; "s3.GetObject=delay:5" makes every such call wait 5 s first, as a slow network would.
FAULTS_ENV = "MAKENAIDE_INJECT_FAULTS"


class FaultInjector:
    """Fails, or delays, calls of chosen operations at the botocore boundary (before the request is sent)."""

    def __init__(self, spec: str) -> None:
        self.budget: Counter[str] = Counter()
        self.delay: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, value = (x.strip() for x in part.partition("="))
            if value.startswith("delay:"):
                self.delay[name] = float(value.removeprefix("delay:"))
            else:
                self.budget[name] = int(value or 1)

    def attach(self, client: Any, service: str) -> None:
        for name in {*self.budget, *self.delay}:
            target_service, _, operation = name.partition(".")
            if target_service == service:
                client.meta.events.register(f"before-call.{service}.{operation}", self._hook(name))

    def _hook(self, name: str) -> Any:
        def inject(**_: Any) -> None:
            if name in self.delay:
                time.sleep(self.delay[name])
            if self.budget[name] > 0:
                self.budget[name] -= 1
                raise EndpointConnectionError(endpoint_url=f"injected fault ({name})")

        return inject


@dataclass(frozen=True)
class ClientFactory:
    endpoint_url: str | None = None
    region: str | None = None
    max_attempts: int = 5
    faults: FaultInjector | None = field(
        default_factory=lambda: FaultInjector(os.environ[FAULTS_ENV]) if os.environ.get(FAULTS_ENV) else None
    )
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_environ(cls) -> ClientFactory:
        return cls(
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
        )

    def client(self, service: str) -> Any:
        """A cached client per service (clients are thread-safe; a Lambda container reuses them)."""
        if service not in self._cache:
            config = Config(retries={"max_attempts": self.max_attempts, "mode": "standard"})
            self._cache[service] = boto3.client(
                service,
                region_name=self.region or DEFAULT_REGION,
                endpoint_url=self.endpoint_url,
                config=config,
            )
            if self.faults is not None:
                self.faults.attach(self._cache[service], service)
        return self._cache[service]
