"""The handlers' environment: what the worker and collector read from environment variables, and the one
place those variables are named.

The deploy (on each function) and the local runtime (on each poller process) write it with `to_environ`
from one `HandlerEnv`, built from the stack configuration by `opslib.stack.StackConfig.handler_env`; the
handlers read it back with `from_environ`, once per container.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..jobs.messages import DEFAULT_INLINE_LIMIT
from ..names import METRIC_NAMESPACE
from .errors import HandlerEnvError

TABLE_NAME = "TABLE_NAME"
BUCKET_NAME = "BUCKET_NAME"
RESULT_QUEUE_URL = "RESULT_QUEUE_URL"
DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"
MAX_RECEIVE_COUNT = "MAX_RECEIVE_COUNT"
METRIC_NAMESPACE_VAR = "METRIC_NAMESPACE"
INLINE_RESULT_LIMIT = "INLINE_RESULT_LIMIT"
DEFAULT_MAX_RECEIVE_COUNT = (
    3  # the queues' redrive policy default (config/stack.yaml queues.max_receive_count)
)

REQUIRED = (TABLE_NAME, BUCKET_NAME, RESULT_QUEUE_URL, DEAD_LETTER_QUEUE_URL)

# A worker has one vCPU (Lambda at 1,769 MB; a local poller stands for one): numpy's BLAS must not start a
# thread per core it sees. Two local workers on two cores each starting OpenBLAS's default pool ran the engine
# ~4x slower (the indicators' block matmul). The pool is sized when numpy loads, so these must be in the
# process's environment before it starts: the deploy sets them on the worker function, the local runtime
# around each poller's spawn (a value the user set wins there).
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
ONE_BLAS_THREAD = dict.fromkeys(BLAS_THREAD_VARIABLES, "1")


@dataclass(frozen=True)
class HandlerEnv:
    """Everything a handler reads from its environment."""

    table: str
    bucket: str
    result_queue_url: str
    dead_letter_queue_url: str
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT
    metric_namespace: str = METRIC_NAMESPACE
    inline_result_limit: int = DEFAULT_INLINE_LIMIT

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> HandlerEnv:
        env = dict(os.environ if environ is None else environ)
        missing = [k for k in REQUIRED if not env.get(k)]
        if missing:
            raise HandlerEnvError(
                f"environment variable(s) {', '.join(missing)} not set: the deploy scripts set them on the "
                "function; locally scripts/run_batch.py sets them for its worker processes."
            )
        return cls(
            table=env[TABLE_NAME],
            bucket=env[BUCKET_NAME],
            result_queue_url=env[RESULT_QUEUE_URL],
            dead_letter_queue_url=env[DEAD_LETTER_QUEUE_URL],
            max_receive_count=_integer(env, MAX_RECEIVE_COUNT, DEFAULT_MAX_RECEIVE_COUNT),
            metric_namespace=env.get(METRIC_NAMESPACE_VAR) or METRIC_NAMESPACE,
            inline_result_limit=_integer(env, INLINE_RESULT_LIMIT, DEFAULT_INLINE_LIMIT),
        )

    def to_environ(self) -> dict[str, str]:
        return {
            TABLE_NAME: self.table,
            BUCKET_NAME: self.bucket,
            RESULT_QUEUE_URL: self.result_queue_url,
            DEAD_LETTER_QUEUE_URL: self.dead_letter_queue_url,
            MAX_RECEIVE_COUNT: str(self.max_receive_count),
            METRIC_NAMESPACE_VAR: self.metric_namespace,
            INLINE_RESULT_LIMIT: str(self.inline_result_limit),
        }


def _integer(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise HandlerEnvError(
            f"{name}={text!r}: {MAX_RECEIVE_COUNT} / {INLINE_RESULT_LIMIT} must be integers; the deploy "
            "scripts write them from config/stack.yaml."
        ) from None
