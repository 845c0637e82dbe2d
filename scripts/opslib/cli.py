"""What the entry points in scripts/ share: the one usage error, the exit statuses and which error maps to
which (in one place), and printing progress to stderr.

Exit statuses: 0 done; 1 failed (jobs failed, a batch did not complete, a service call failed); 2 usage or
input errors, nothing was done (a bad argument, spec, stack setting, bars, missing credentials, a stack
that is not deployed); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import sys

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from backtesting_modules.errors import BacktestError, ConfigError, DataError, StrategyError
from backtesting_modules.jobs.spec import SpecError
from backtesting_modules.pipeline.errors import PipelineError

from .errors import (
    BatchInputError,
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
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

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
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
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
