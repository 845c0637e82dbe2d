"""The shared job model of the distributed pipeline: batch spec, planner, wire messages and `run_job`.

Pure where it can be: nothing here talks to SQS, S3 or DynamoDB; storage and queues are the callers' edges.

- spec: `load_spec`, `parse_spec`, `BatchSpec`, `JobType`, `Priority`, `spec_hash`, `count_backtests`
- planning: `plan_jobs`, `batch_id`, `Job`, `DataRef`, `described_refs`, `result_key`
- messages: `encode_job`, `decode_job`, `encode_result`, `decode_result`, `encode_failure`, `JOB_SCHEMA`, ...
- running: `run_job`, `JobResult`, `JobStatus`, `JobFailed`, `is_retryable`
"""

from .data_refs import DataRef
from .messages import (
    DEFAULT_INLINE_LIMIT,
    FAILURE_SCHEMA,
    JOB_SCHEMA,
    MESSAGE_VERSION,
    RESULT_SCHEMA,
    FailureMessage,
    JobMessage,
    MessageError,
    ResultMessage,
    decode_failure,
    decode_job,
    decode_result,
    encode_failure,
    encode_job,
    encode_result,
    message_kind,
)
from .planner import Job, batch_id, described_refs, plan_jobs, result_key
from .runner import JobFailed, JobResult, JobStatus, is_retryable, run_job
from .spec import (
    BatchSpec,
    DataSource,
    DataSpec,
    JobError,
    JobType,
    Priority,
    Ranking,
    SpecError,
    StrategySpec,
    count_backtests,
    load_spec,
    parse_spec,
    spec_hash,
)

__all__ = [
    "DEFAULT_INLINE_LIMIT",
    "FAILURE_SCHEMA",
    "JOB_SCHEMA",
    "MESSAGE_VERSION",
    "RESULT_SCHEMA",
    "BatchSpec",
    "DataRef",
    "DataSource",
    "DataSpec",
    "FailureMessage",
    "Job",
    "JobError",
    "JobFailed",
    "JobMessage",
    "JobResult",
    "JobStatus",
    "JobType",
    "MessageError",
    "Priority",
    "Ranking",
    "ResultMessage",
    "SpecError",
    "StrategySpec",
    "batch_id",
    "count_backtests",
    "decode_failure",
    "decode_job",
    "decode_result",
    "described_refs",
    "encode_failure",
    "encode_job",
    "encode_result",
    "is_retryable",
    "load_spec",
    "message_kind",
    "parse_spec",
    "plan_jobs",
    "result_key",
    "run_job",
    "spec_hash",
]
