"""The one place boto3 clients are built: endpoint (the emulator is one setting away), region, retries.

`AWS_ENDPOINT_URL` (boto3's own variable) points every client at the local emulator; the deploy scripts'
`--endpoint-url` sets it too. Retries use botocore's standard mode; the runtime never sleeps on its own.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_REGION = "ap-northeast-2"  # Seoul, where Upbit's users are


@dataclass(frozen=True)
class ClientFactory:
    endpoint_url: str | None = None
    region: str | None = None
    max_attempts: int = 5
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # boto3's default session is not thread-safe while it builds a client; a built client is.
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @classmethod
    def from_environ(cls) -> ClientFactory:
        return cls(
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
        )

    def client(self, service: str) -> Any:
        """A cached client per service (clients are thread-safe; a Lambda container reuses them)."""
        if service in self._cache:
            return self._cache[service]
        with self._lock:
            return self._build(service)

    def _build(self, service: str) -> Any:
        if service not in self._cache:
            config = Config(retries={"max_attempts": self.max_attempts, "mode": "standard"})
            self._cache[service] = boto3.client(
                service,
                region_name=self.region or DEFAULT_REGION,
                endpoint_url=self.endpoint_url,
                config=config,
            )
        return self._cache[service]
