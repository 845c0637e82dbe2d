"""Every resource name and storage key of the pipeline, in one place.

Deploy scripts, the local runtime and the Lambda handlers all derive names from here, so the emulator and
AWS differ only by endpoint. Handlers receive the concrete names through environment variables set by the
deploy (see `HandlerEnv`), never by guessing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from ..errors import BacktestError

DEFAULT_PREFIX = "makenaide"
METRIC_NAMESPACE = "Makenaide/Backtesting"


class ConfigurationError(BacktestError):
    """A missing or invalid setting of the pipeline (environment variable, stack configuration)."""


@dataclass(frozen=True)
class StackNames:
    """Resource names for one prefix (and environment suffix, e.g. 'makenaide' or 'makenaide-dev')."""

    prefix: str = DEFAULT_PREFIX
    account_id: str | None = None

    @property
    def job_queue(self) -> str:
        return f"{self.prefix}-distributed-backtest-job-queue"

    @property
    def priority_queue(self) -> str:
        return f"{self.prefix}-distributed-backtest-priority-queue"

    @property
    def result_queue(self) -> str:
        return f"{self.prefix}-distributed-backtest-result-queue"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.prefix}-distributed-backtest-dlq"

    @property
    def table(self) -> str:
        return f"{self.prefix}-backtest-jobs"

    @property
    def bucket(self) -> str:
        # Bucket names are global: the account id makes ours unique without hard-coding it.
        suffix = f"-{self.account_id}" if self.account_id else ""
        return f"{self.prefix}-backtest-data{suffix}"

    @property
    def worker_function(self) -> str:
        return f"{self.prefix}-distributed-backtest-worker"

    @property
    def collector_function(self) -> str:
        return f"{self.prefix}-backtest-result-collector"

    @property
    def layer(self) -> str:
        return f"{self.prefix}-backtesting-modules-layer"

    def role(self, function: str) -> str:
        return f"{function}-role"


# --- DynamoDB item keys (single table: a batch and its jobs share a partition) ---------------------------

BATCH_INDEX = "batches-by-created"  # GSI: every batch under one key, sorted by creation time
BATCH_INDEX_PK = "BATCHES"


def batch_pk(batch_id: str) -> str:
    return f"BATCH#{batch_id}"


BATCH_SK = "META"


def job_sk(job_id: str) -> str:
    return f"JOB#{job_id}"


# --- S3 keys ---------------------------------------------------------------------------------------------


def bars_key(data_id: str, symbol: str) -> str:
    """Bars of one symbol from one data source (`data_id` hashes the source description)."""
    return f"bars/{data_id}/{symbol}.npz"


def result_key(batch_id: str, job_id: str) -> str:
    """Every row of one job (`jobs.results`: columnar JSON, metrics as base64 float64)."""
    return f"results/{batch_id}/{job_id}.json"


def digest_key(batch_id: str, job_id: str) -> str:
    """A job's result digest (top rows, mergeable aggregates) that batch summaries are built from."""
    return f"results/{batch_id}/{job_id}.digest.json"


def summary_key(batch_id: str, created: datetime) -> str:
    return f"summaries/{created:%Y/%m/%d}/{batch_id}.json"


@dataclass(frozen=True)
class HandlerEnv:
    """What a handler needs, read once from the environment the deploy (or local runtime) sets."""

    table: str
    bucket: str
    result_queue_url: str
    max_receive_count: int
    metric_namespace: str
    inline_result_limit: int

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> HandlerEnv:
        env = dict(os.environ if environ is None else environ)
        missing = [k for k in ("TABLE_NAME", "BUCKET_NAME", "RESULT_QUEUE_URL") if not env.get(k)]
        if missing:
            raise ConfigurationError(
                f"environment variable(s) {', '.join(missing)} not set: the deploy scripts set them on the "
                "function; locally scripts/run_batch.py sets them for its worker processes."
            )
        try:
            return cls(
                table=env["TABLE_NAME"],
                bucket=env["BUCKET_NAME"],
                result_queue_url=env["RESULT_QUEUE_URL"],
                max_receive_count=int(env.get("MAX_RECEIVE_COUNT", "3")),
                metric_namespace=env.get("METRIC_NAMESPACE", METRIC_NAMESPACE),
                inline_result_limit=int(env.get("INLINE_RESULT_LIMIT", "200000")),
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"MAX_RECEIVE_COUNT / INLINE_RESULT_LIMIT must be integers: {exc}"
            ) from exc

    def to_environ(self) -> dict[str, str]:
        return {
            "TABLE_NAME": self.table,
            "BUCKET_NAME": self.bucket,
            "RESULT_QUEUE_URL": self.result_queue_url,
            "MAX_RECEIVE_COUNT": str(self.max_receive_count),
            "METRIC_NAMESPACE": self.metric_namespace,
            "INLINE_RESULT_LIMIT": str(self.inline_result_limit),
        }
