"""The deployed stack as a batch target: its queues found by name in the credentials' account and region."""

from __future__ import annotations

from botocore.exceptions import ClientError

from backtesting_modules.pipeline.clients import ClientFactory

from ..errors import NotDeployedError
from ..stack import StackConfig
from .submitter import Submitter


def deployed_submitter(clients: ClientFactory, stack: StackConfig) -> Submitter:
    """A submitter for the stack deployed in the credentials' account and region."""
    account = clients.client("sts").get_caller_identity()["Account"]
    names = stack.names(account_id=account)
    sqs = clients.client("sqs")
    urls = {}
    for name in names.queues:
        try:
            urls[name] = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            raise NotDeployedError(
                f"queue {name} not found: the stack is not deployed in this account/region; "
                "deploy it with scripts/deploy_all.py (or use --target local)."
            ) from exc
    return Submitter(clients, names, urls, read_locations=stack.data_read_locations)
