"""The worker: make the thumbnail a create command asks for, once, from SNS or the thumbnails table's stream."""

import functools
import json

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from thumbnailr import bootstrap
from thumbnailr.adapters.dynamodb import from_item
from thumbnailr.processing import CreateCommand, create_thumbnail

logger = Logger()
# SNS delivers at least once and a stream batch may be replayed: the thumbnail id is the idempotency key.
idempotency = IdempotencyConfig(event_key_jmespath="thumbnail_id", expires_after_seconds=24 * 3600)
stream_batch = BatchProcessor(event_type=EventType.DynamoDBStreams)


@functools.cache
def _create_once():
    store = DynamoDBPersistenceLayer(
        table_name=bootstrap.env("IDEMPOTENCY_TABLE"), boto3_client=bootstrap.client("dynamodb")
    )

    @idempotent_function(data_keyword_argument="command", persistence_store=store, config=idempotency)
    def create(command: dict) -> str:
        return create_thumbnail(
            CreateCommand.parse(command),
            thumbnails=bootstrap.thumbnails(),
            photos_store=bootstrap.photos_store(),
            thumbnails_store=bootstrap.thumbnails_store(),
            max_attempts=bootstrap.max_attempts(),
        )

    return create


def _handle(command: dict) -> str:
    outcome = _create_once()(command=command)
    logger.info("create command handled", thumbnail_id=command.get("thumbnail_id"), outcome=outcome)
    return outcome


def _handle_stream_record(record) -> str:
    if record.event_name.name != "INSERT":  # only a new pending thumbnail is a command
        return "ignored: not an insert"
    return _handle(from_item(record.raw_event["dynamodb"]["NewImage"]))


@logger.inject_lambda_context
def lambda_handler(event: dict, context: object) -> dict:
    idempotency.register_lambda_context(context)
    records = event.get("Records", [])
    if records and records[0].get("eventSource") == "aws:dynamodb":
        # failed records are reported one by one, so a retry replays only what failed
        return process_partial_response(
            event=event, record_handler=_handle_stream_record, processor=stream_batch, context=context
        )
    # an SNS invocation carries exactly one message; an exception makes Lambda retry it
    return {"outcomes": [_handle(json.loads(record["Sns"]["Message"])) for record in records]}
