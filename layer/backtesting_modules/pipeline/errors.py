"""The pipeline's errors: one base, a subclass per kind. The engine's errors (`backtesting_modules.errors`)
say an input is bad; these say a service call or the handlers' environment failed."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the pipeline's services (store, worker, collector, handler environment) raise on
    purpose."""


class HandlerEnvError(PipelineError):
    """A handler's environment variable is missing or malformed (the deploy or local runtime sets them)."""


class StoreError(PipelineError):
    """A storage call failed; `retryable` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class MissingObjectError(StoreError):
    """An S3 object or DynamoDB item that should exist does not (not retryable)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)
