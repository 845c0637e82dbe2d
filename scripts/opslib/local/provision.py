"""The embedded default's stack: queues, table and bucket created on the emulator through the deploy
planners (plan → apply), the same path the deploy scripts take against AWS."""

from __future__ import annotations

from dataclasses import replace

from backtesting_modules.names import StackNames
from backtesting_modules.pipeline.clients import ClientFactory

from ..deploy.plan import DeployContext, apply_plan
from ..deploy.queues import plan_queues
from ..deploy.storage import plan_storage
from ..stack import StackConfig


def ensure_stack(
    clients: ClientFactory, config: StackConfig, names: StackNames, *, visibility_timeout_s: int | None = None
) -> dict[str, str]:
    """Create or update queues, table and bucket through the deploy planners (plan → apply), the same path
    the deploy scripts take, for the local emulator (plain HTTP: no TLS-only bucket policy); returns queue
    name → URL. Safe to run twice."""
    if visibility_timeout_s is not None:
        config = replace(config, queues=replace(config.queues, visibility_timeout_s=visibility_timeout_s))
    account = clients.client("sts").get_caller_identity()["Account"]
    ctx = DeployContext(clients, config, names, clients.region or config.region, account, enforce_tls=False)
    apply_plan(plan_queues(ctx) + plan_storage(ctx), clients, echo=lambda _: None)
    sqs = clients.client("sqs")
    return {name: sqs.get_queue_url(QueueName=name)["QueueUrl"] for name in names.queues}
