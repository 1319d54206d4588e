"""S3 ObjectCreated: check an uploaded photo, record it ready or reject and remove it."""

from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger

from thumbnailr import bootstrap
from thumbnailr.handlers.telemetry import count, metrics, rejection_kind
from thumbnailr.processing import record_upload

logger = Logger()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    outcomes = {}
    for record in event["Records"]:
        # keys arrive URL-encoded in S3 notifications ("a b.jpg" is "a+b.jpg")
        key = unquote_plus(record["s3"]["object"]["key"])
        size = int(record["s3"]["object"].get("size", 0))
        outcomes[key] = record_upload(key, size, photos=bootstrap.photos(), store=bootstrap.photos_store())
        logger.info("upload checked", key=key, outcome=outcomes[key])
        if outcomes[key].startswith("ready"):
            count("PhotosUploaded")
        elif outcomes[key].startswith("rejected: "):
            count("PhotosRejected", reason=rejection_kind(outcomes[key].removeprefix("rejected: ")))
    return outcomes
