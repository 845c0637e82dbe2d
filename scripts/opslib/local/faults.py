"""Fault injection for the chaos suite and the tests: failed, slow, throttled calls and crashes, at the
botocore boundary of a local process.

It lives here, outside the Lambda layer, and nothing in the layer or the handlers reads it: a local poller
installs it explicitly (`PollerSpec.faults`) before it loads the handler, so a deployed function cannot turn
it on, whatever its environment says.

A fault spec is comma-separated:

- `s3.GetObject=2`: the first 2 such calls of the process fail with a connection error before the request is
  sent, outside botocore's retries: the caller sees it (a flaky network);
- `s3.GetObject=delay:5`: every such call waits 5 s first (a slow network);
- `dynamodb.UpdateItem=throttle:10`: every 10th request is answered with a throttling error (S3: 503
  SlowDown) inside botocore's retry loop, which retries it after its own backoff;
- `dynamodb.TransactWriteItems=crash-after:50`: the process exits (status `CRASH_EXIT_STATUS`) right after
  its 50th successful call, before the caller sees the response: a crash between a write and what should
  follow it (deleting the message).

With a log path, each injected fault appends a line "<pid> <service.Operation> <kind> <unix time>", so a test
can prove its faults happened even where botocore's retries hide them.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError

CRASH_EXIT_STATUS = 86


class FaultSpecError(ValueError):
    """A fault spec that means nothing (the message shows the accepted forms)."""


class FaultInjector:
    """Fails, delays, throttles calls of chosen operations, or crashes after them."""

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
                raise FaultSpecError(
                    f"fault {part!r} means nothing: use SERVICE.Operation=N, =delay:SECONDS, =throttle:K "
                    "(K >= 2) or =crash-after:N"
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

    def install(self) -> None:
        """Inject into every client this process builds from now on (the handler's included): the hooks go
        on boto3's default session, whose events each new client copies."""
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        self.register(boto3.DEFAULT_SESSION.events)

    def attach(self, client: Any) -> None:
        """Inject into one client only."""
        self.register(client.meta.events)

    def register(self, events: Any) -> None:
        """Register the hooks on a botocore event emitter (a session's or a client's)."""
        for name in {*self.budget, *self.delay, *self.throttle, *self.crash_after}:
            service, _, operation = name.partition(".")
            if name in self.budget or name in self.delay:
                events.register(f"before-call.{service}.{operation}", self._hook(name))
            if name in self.throttle:
                events.register(f"before-send.{service}.{operation}", self._throttle_hook(name, service))
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

    def _throttle_hook(self, name: str, service: str) -> Any:
        def throttle(request: Any, **_: Any) -> AWSResponse | None:
            self.seen[f"send:{name}"] += 1
            if self.seen[f"send:{name}"] % self.throttle[name]:
                return None  # botocore sends the request
            self._record(name, "throttle")
            return _throttling_response(request, service)

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


def _throttling_response(request: Any, service: str) -> AWSResponse:
    """What a throttled service answers, in its protocol, so botocore classifies it as throttling: S3 in
    XML, the JSON-protocol services (DynamoDB, SQS) in JSON, anything else a bare 503 (retried too)."""
    if service == "s3":
        body = b"<Error><Code>SlowDown</Code><Message>injected throttle</Message></Error>"
        return AWSResponse(request.url, 503, {"Content-Type": "application/xml"}, _Body(body))
    content_type = request.headers.get("Content-Type", "")
    if isinstance(content_type, bytes):
        content_type = content_type.decode()
    if content_type.startswith("application/x-amz-json"):
        body = json.dumps({"__type": "ThrottlingException", "message": "injected throttle"}).encode()
        return AWSResponse(request.url, 400, {"Content-Type": content_type}, _Body(body))
    return AWSResponse(request.url, 503, {}, _Body(b""))
