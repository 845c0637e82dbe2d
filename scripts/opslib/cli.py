"""What the entry points in scripts/ share: the one usage error, the exit statuses and which error maps to
which (in one place), and printing progress to stderr.

Exit statuses (README.md, "Distributed batches", has the same table):

| status | meaning |
|---|---|
| 0 | done |
| 1 | failed: jobs failed, a batch stopped (every local worker gone), a service call failed |
| 2 | usage or input errors, nothing was done (a bad argument, spec, stack setting, bars, missing |
|   | credentials, a stack that is not deployed) |
| 3 | a batch did not complete within --timeout (kept: --resume BATCH_ID) |
| 130 | interrupted by Ctrl-C (SIGINT); a submitted batch is kept for --resume |
| 143 | terminated (SIGTERM, e.g. a cancelled CI job); a submitted batch is kept for --resume |
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from backtesting_modules.errors import BacktestError, ConfigError, DataError, StrategyError
from backtesting_modules.jobs.spec import SpecError
from backtesting_modules.pipeline.errors import PipelineError

from .errors import (
    BatchInputError,
    BatchTimeoutError,
    DeployError,
    LocalSetupError,
    NotDeployedError,
    OpsError,
    StackConfigError,
    UnknownBatchError,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is (`on_sigterm`): it unwinds like Ctrl-C, so every `with` block
    stops what it started (the local runtime's emulator and workers) and the batch is kept for --resume."""


def on_sigterm() -> None:
    """Turn SIGTERM into `Terminated` in the main thread (the default would end the process at once,
    leaving the processes it started behind)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


NO_CREDENTIALS = (
    "no AWS credentials: configure them (aws configure, or OIDC in GitHub Actions) or use --target local."
)


class UsageError(Exception):
    """A bad argument: the message names it and the fix (exit status 2)."""


# Errors whose fix is the input or the setup, raised before anything was done.
USAGE_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    SpecError,  # the batch spec
    DataError,  # bars that cannot be backtested
    ConfigError,  # a StrategyConfig field
    StrategyError,  # an unknown strategy or parameter
    StackConfigError,
    BatchInputError,
    NotDeployedError,
    DeployError,
    LocalSetupError,
    UnknownBatchError,
    NoCredentialsError,
)


# Errors an entry point reports as one line (anything else is a bug, and its traceback says where).
REPORTED_ERRORS = (
    UsageError,
    BacktestError,
    PipelineError,
    OpsError,
    ClientError,
    BotoCoreError,
)


def exit_status(exc: BaseException) -> int:
    """The exit status of an entry point that stopped on `exc`."""
    if isinstance(exc, Terminated):
        return EXIT_TERMINATED
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, BatchTimeoutError):
        return EXIT_TIMEOUT
    if isinstance(exc, USAGE_ERRORS):
        return EXIT_USAGE
    return EXIT_FAILED


def error_text(exc: BaseException) -> str:
    """What to print for `exc` after the program's name."""
    if isinstance(exc, NoCredentialsError):
        return NO_CREDENTIALS
    return str(exc)


def eprint(text: str, end: str = "\n") -> None:
    print(text, end=end, file=sys.stderr, flush=True)
