"""The worker: make the thumbnail a create command asks for, once, from SNS or the thumbnails table's stream."""

import functools
import json

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord, DynamoDBRecordEventName
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from thumbnailr import bootstrap
from thumbnailr.handlers.telemetry import count, metrics
from thumbnailr.processing import CreateCommand, GaveUp, create_thumbnail

logger = Logger()
idempotency = IdempotencyConfig(event_key_jmespath="thumbnail_id", expires_after_seconds=24 * 3600)
stream_batch = BatchProcessor(event_type=EventType.DynamoDBStreams)


def _create(command: dict) -> str:
    # Idempotent by itself: a thumbnail that is no longer pending is skipped, only a pending one is
    # marked ready (a conditional update), and its object key is fixed, so a replay changes nothing.
    # Counted here, inside Powertools idempotency: a duplicate it answers from its record is not counted again.
    thumbnail_format = str(command.get("format"))
    try:
        outcome = create_thumbnail(
            CreateCommand.parse(command),
            thumbnails=bootstrap.thumbnails(),
            photos_store=bootstrap.photos_store(),
            thumbnails_store=bootstrap.thumbnails_store(),
            max_attempts=bootstrap.max_attempts(),
        )
    except Exception as error:  # an attempt all the same; the last one (GaveUp) marked the thumbnail failed
        count("WorkerAttempts")
        if isinstance(error, GaveUp):
            count("ThumbnailsFailed", format=thumbnail_format)
        raise
    if not outcome.startswith("ignored"):
        count("WorkerAttempts")
    if outcome == "created":
        count("ThumbnailsCreated", format=thumbnail_format)
    elif outcome.startswith("failed"):
        count("ThumbnailsFailed", format=thumbnail_format)
    return outcome


@functools.cache
def _create_once():
    """_create behind Powertools idempotency: SNS may deliver one message twice AT ONCE, to two
    environments, and this makes the second wait for (and then reuse) the first one's result."""
    store = DynamoDBPersistenceLayer(
        table_name=bootstrap.env("IDEMPOTENCY_TABLE"), boto3_client=bootstrap.client("dynamodb")
    )
    return idempotent_function(data_keyword_argument="command", persistence_store=store, config=idempotency)(_create)


def _correlated(command: dict) -> dict:
    """The id of the request that asked for the thumbnail goes on this record's log lines."""
    logger.set_correlation_id(command.get("correlation_id"))
    return command


def _log(command: dict, outcome: str) -> str:
    logger.info("create command handled", thumbnail_id=command.get("thumbnail_id"), outcome=outcome)
    return outcome


def _handle_sns_message(command: dict) -> str:
    return _log(command, _create_once()(command=_correlated(command)))


def _handle_stream_record(record: DynamoDBRecord) -> str:
    if record.event_name is not DynamoDBRecordEventName.INSERT:  # only a new pending thumbnail is a command
        return "ignored: not an insert"
    # A shard's batches arrive one at a time, in order, so a replayed record never runs beside
    # itself and _create's own idempotency is enough. Powertools idempotency would even hurt here: after
    # a crash its record stays "in progress" until the timeout, longer than the stream's immediate
    # retries take to run out, and the thumbnail would be lost to the dead-letter queue.
    command = record.dynamodb.new_image  # numbers come as Decimal; CreateCommand.parse makes them int
    return _log(command, _create(_correlated(command)))


@logger.inject_lambda_context
@metrics.log_metrics  # flushed in a finally: an attempt that raises is counted too
def lambda_handler(event: dict, context: object) -> dict:
    idempotency.register_lambda_context(context)
    records = event.get("Records", [])
    if records and records[0].get("eventSource") == "aws:dynamodb":
        # failed records are reported one by one, so a retry replays only what failed
        return process_partial_response(
            event=event, record_handler=_handle_stream_record, processor=stream_batch, context=context
        )
    # an SNS invocation carries exactly one message; an exception makes Lambda retry it
    return {"outcomes": [_handle_sns_message(json.loads(record["Sns"]["Message"])) for record in records]}
