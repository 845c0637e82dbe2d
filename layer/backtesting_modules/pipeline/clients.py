"""The one place boto3 clients are built: endpoint (the emulator is one setting away), region, retries.

`AWS_ENDPOINT_URL` (boto3's own variable) points every client at the local emulator; the deploy scripts'
`--endpoint-url` sets it too. Retries use botocore's standard mode; the runtime never sleeps on its own.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

DEFAULT_REGION = "ap-northeast-2"  # Seoul, where Upbit's users are
# Opt-in fault injection for reliability tests (never set in production), comma-separated:
#   `s3.GetObject=2`      the first 2 such calls of this process fail with a connection error before the
#                         request is sent, outside botocore's retries: the caller sees it (a flaky network);
#   `s3.GetObject=delay:5` every such call waits 5 s first (a slow network);
#   `dynamodb.UpdateItem=throttle:10` every 10th request is answered with a throttling error (S3: 503
#                         SlowDown) inside botocore's retry loop, which retries it after its own backoff;
#   `dynamodb.TransactWriteItems=crash-after:50` the process exits (status CRASH_EXIT_STATUS) right after its
#                         50th successful call, before the caller sees the response: a crash between a write
#                         and what should follow it (deleting the message).
# `MAKENAIDE_FAULT_LOG=path` appends one line per injected fault ("<pid> <service.Operation> <kind> <unix
# time>"), so a test can prove its faults happened even where botocore's retries hide them.
FAULTS_ENV = "MAKENAIDE_INJECT_FAULTS"
FAULT_LOG_ENV = "MAKENAIDE_FAULT_LOG"
CRASH_EXIT_STATUS = 86


class FaultInjector:
    """Fails, delays, throttles calls of chosen operations at the botocore boundary, or crashes after them."""

    def __init__(self, spec: str, log: str | None = None) -> None:
        self.budget: Counter[str] = Counter()
        self.delay: dict[str, float] = {}
        self.throttle: dict[str, int] = {}
        self.crash_after: dict[str, int] = {}
        self.seen: Counter[str] = Counter()  # requests (throttle) and successful calls (crash) so far
        self.log = log
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, value = (x.strip() for x in part.partition("="))
            try:
                self._add(name, value)
            except ValueError as exc:
                raise ValueError(
                    f"{FAULTS_ENV}: {part!r} is not a fault; use N, delay:SECONDS, throttle:K (K >= 2) "
                    "or crash-after:N"
                ) from exc

    def _add(self, name: str, value: str) -> None:
        kind, colon, amount = value.partition(":")
        if not colon:
            self.budget[name] = int(value or 1)
        elif kind == "delay":
            self.delay[name] = float(amount)
        elif kind == "throttle" and int(amount) >= 2:  # every request throttled would never succeed
            self.throttle[name] = int(amount)
        elif kind == "crash-after":
            self.crash_after[name] = int(amount)
        else:
            raise ValueError(kind)

    def attach(self, client: Any, service: str) -> None:
        events = client.meta.events
        for name in {*self.budget, *self.delay, *self.throttle, *self.crash_after}:
            target_service, _, operation = name.partition(".")
            if target_service != service:
                continue
            if name in self.budget or name in self.delay:
                events.register(f"before-call.{service}.{operation}", self._hook(name))
            if name in self.throttle:
                protocol = client.meta.service_model.protocol
                events.register(f"before-send.{service}.{operation}", self._throttle_hook(name, protocol))
            if name in self.crash_after:
                events.register(f"after-call.{service}.{operation}", self._crash_hook(name))

    def _record(self, name: str, kind: str) -> None:
        if self.log:
            with open(self.log, "a", encoding="utf-8") as out:
                out.write(f"{os.getpid()} {name} {kind} {time.time():.3f}\n")

    def _hook(self, name: str) -> Any:
        def inject(**_: Any) -> None:
            if name in self.delay:
                self._record(name, "delay")
                time.sleep(self.delay[name])
            if self.budget[name] > 0:
                self.budget[name] -= 1
                self._record(name, "error")
                raise EndpointConnectionError(endpoint_url=f"injected fault ({name})")

        return inject

    def _throttle_hook(self, name: str, protocol: str) -> Any:
        def throttle(request: Any, **_: Any) -> AWSResponse | None:
            self.seen[f"send:{name}"] += 1
            if self.seen[f"send:{name}"] % self.throttle[name]:
                return None  # botocore sends the request
            self._record(name, "throttle")
            return _throttling_response(request.url, protocol)

        return throttle

    def _crash_hook(self, name: str) -> Any:
        def crash(http_response: Any, **_: Any) -> None:
            if http_response.status_code >= 300:
                return
            self.seen[f"ok:{name}"] += 1
            if self.seen[f"ok:{name}"] == self.crash_after[name]:
                self._record(name, "crash")
                os._exit(CRASH_EXIT_STATUS)  # no cleanup, no flush: as abrupt as a killed process

        return crash


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


def _throttling_response(url: str, protocol: str) -> AWSResponse:
    """What a throttled service answers, in its protocol, so botocore classifies it as throttling."""
    if protocol == "rest-xml":  # S3
        body = b"<Error><Code>SlowDown</Code><Message>injected throttle</Message></Error>"
        return AWSResponse(url, 503, {"Content-Type": "application/xml"}, _Body(body))
    if protocol == "json":  # DynamoDB, SQS
        body = json.dumps({"__type": "ThrottlingException", "message": "injected throttle"}).encode()
        return AWSResponse(url, 400, {"Content-Type": "application/x-amz-json-1.0"}, _Body(body))
    return AWSResponse(url, 503, {}, _Body(b""))  # other protocols: a 503, which botocore retries too


@dataclass(frozen=True)
class ClientFactory:
    endpoint_url: str | None = None
    region: str | None = None
    max_attempts: int = 5
    faults: FaultInjector | None = field(
        default_factory=lambda: (
            FaultInjector(os.environ[FAULTS_ENV], os.environ.get(FAULT_LOG_ENV))
            if os.environ.get(FAULTS_ENV)
            else None
        )
    )
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
            if self.faults is not None:
                self.faults.attach(self._cache[service], service)
        return self._cache[service]
