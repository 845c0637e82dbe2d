"""Result collector Lambda: results and failures from the result queue → DynamoDB, S3 summary, metrics.

Thin by design: see `backtesting_modules.pipeline.collector.Collector` for the exactly-once counting.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.collector import Collector
from backtesting_modules.pipeline.env import HandlerEnv

processor = BatchProcessor(event_type=EventType.SQS)


@cache
def collector() -> Collector:
    return Collector(ClientFactory.from_environ(), HandlerEnv.from_environ())


def record_handler(record: SQSRecord) -> None:
    collector().process(record.raw_event)


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    try:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    finally:
        if collector.cache_info().currsize:  # not when it could not even be built (missing environment)
            collector().flush_metrics()  # one PutMetricData call per invocation
