"""Every resource name and storage key of the pipeline, in one place.

Deploy scripts, the local runtime and the Lambda handlers all derive names from here, so the emulator and
AWS differ only by endpoint. Handlers receive the concrete names through environment variables set by the
deploy (see `env.HandlerEnv`), never by guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

DEFAULT_PREFIX = "makenaide"
METRIC_NAMESPACE = "Makenaide/Backtesting"


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
    def work_queues(self) -> tuple[str, str, str]:
        """The job, priority and result queues: the ones the pipeline feeds, each redriven to the DLQ."""
        return (self.job_queue, self.priority_queue, self.result_queue)

    @property
    def queues(self) -> tuple[str, str, str, str]:
        """Every queue of the stack: the work queues and the dead-letter queue."""
        return (*self.work_queues, self.dead_letter_queue)

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

TABLE_HASH, TABLE_RANGE = "PK", "SK"  # the table's key attributes
BATCH_INDEX = "batches-by-created"  # GSI: every batch under one key, sorted by creation time
BATCH_INDEX_HASH, BATCH_INDEX_RANGE = "GSI1PK", "GSI1SK"  # its key attributes (range: created_at)
BATCH_INDEX_PK = "BATCHES"
JOB_SK_PREFIX = "JOB#"
RESULT_SK = "RESULT"  # a job's stored result (the reuse index), in the partition JOB#<job_id>


def batch_pk(batch_id: str) -> str:
    return f"BATCH#{batch_id}"


BATCH_SK = "META"


def job_sk(job_id: str) -> str:
    return f"{JOB_SK_PREFIX}{job_id}"


def job_pk(job_id: str) -> str:
    """The partition of a job's stored result, shared by every batch that plans the job."""
    return f"{JOB_SK_PREFIX}{job_id}"


# --- S3 keys ---------------------------------------------------------------------------------------------


def bars_key(bars_sha256: str) -> str:
    """Bars uploaded by the driver, content-addressed: the sha256 of their canonical bytes (`data_window`)."""
    return f"bars/{bars_sha256}.npz"


def result_key(job_id: str) -> str:
    """Every row of one job (`jobs.results`: columnar JSON, metrics as base64 float64). Job ids hash the
    job's content (bars included), so one stored result serves every batch that plans the same job."""
    return f"results/{job_id}.json"


def digest_key(job_id: str, top_n: int, min_trades: int = 0) -> str:
    """A job's result digest for batches keeping `top_n` rows and ranking only variants with `min_trades`
    trades (top rows, mergeable aggregates): what batch summaries are built from."""
    return f"results/{job_id}.top{top_n}.min{min_trades}.digest.json"


def validation_key(batch_id: str) -> str:
    """The validation document of a validated sweep (docs/validation.md), named by its train batch: the
    batch id hashes the spec and the bars, so the document stays true of that batch."""
    return f"validation/{batch_id}.json"


def search_key(batch_id: str) -> str:
    """The search document of an adaptive search's batch (docs/search.md)."""
    return f"search/{batch_id}.json"


def summary_key(batch_id: str, created: datetime) -> str:
    return f"summaries/{created:%Y/%m/%d}/{batch_id}.json"
