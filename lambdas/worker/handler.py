"""Worker Lambda: job messages from the job and priority queues → engine → result queue.

Thin by design: the environment is read once per container, records go through Powertools' BatchProcessor so
a record that raises is reported in `batchItemFailures` and only it is redelivered. The work itself is
`backtesting_modules.pipeline.worker.Worker`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.env import HandlerEnv
from backtesting_modules.pipeline.worker import Worker

processor = BatchProcessor(event_type=EventType.SQS)


@cache
def worker() -> Worker:
    return Worker(ClientFactory.from_environ(), HandlerEnv.from_environ())


def record_handler(record: SQSRecord) -> None:
    worker().process(record.raw_event)


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
