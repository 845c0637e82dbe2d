"""The errors of the scripts' library: one base, a subclass per kind. `opslib.cli.exit_status` maps them
(and the engine's and the pipeline's) to the entry points' exit statuses, in one place."""

from __future__ import annotations


class OpsError(Exception):
    """Base of every error the scripts' library raises on purpose."""


class StackConfigError(OpsError):
    """A setting under config/ (stack.yaml, pricing.yaml), an unknown --environment or --region: the fix is
    the configuration, and nothing was done."""


class NotDeployedError(OpsError):
    """A resource the command needs is not deployed where the credentials point (or not yet, in a deploy
    that creates it in an earlier unit): nothing was done."""


class BatchInputError(OpsError):
    """The bars a batch spec names cannot be read here (no file for a symbol, exchange data not fetched yet,
    a source this target does not read): nothing was submitted."""


class DeployError(OpsError):
    """A deploy that cannot be planned as asked (no built layer zip, no earlier version to roll back to)."""


class DeployAccessError(DeployError):
    """A planner's read of the live stack was refused (a permission the deploy role lacks, invalid or expired
    credentials): the plan stops rather than read the resource as absent."""


class DeployThrottledError(DeployError):
    """AWS throttled a planner's read beyond botocore's retries: nothing was changed; run the deploy again."""


class LocalSetupError(OpsError):
    """The embedded default cannot start (the emulator did not start, its saved state cannot be restored, a
    handler file is missing): nothing was submitted."""


class BatchIncompleteError(OpsError):
    """A submitted batch did not complete here (timeout, every local worker exited); `--resume BATCH_ID`
    finishes it."""

    def __init__(self, message: str, batch_id: str) -> None:
        super().__init__(message)
        self.batch_id = batch_id


class BatchTimeoutError(BatchIncompleteError):
    """A submitted batch did not complete within `--timeout`: it is kept, `--resume BATCH_ID` finishes it
    (its own exit status, 3: the batch may still be running)."""


class HistoryError(OpsError):
    """A history query cannot be answered (expired job records, unreadable results)."""


class UnknownBatchError(HistoryError):
    """No batch has this id; `suggestions` are the closest ids (prefix matches, then difflib, then names)."""

    def __init__(self, batch_id: str, suggestions: list[str], table: str) -> None:
        hint = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            f"batch {batch_id!r} not found in table {table}.{hint} `results.py list` shows the batches."
        )
        self.batch_id = batch_id
        self.suggestions = list(suggestions)
