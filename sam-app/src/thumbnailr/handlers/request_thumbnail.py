"""POST /thumbnails: check the request, spend quota, record a pending thumbnail, send the create command."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths

from thumbnailr import bootstrap, services
from thumbnailr.handlers.http import api, caller, header, json_body, respond
from thumbnailr.handlers.telemetry import count, metrics
from thumbnailr.model import now_utc

logger = Logger()


# correlation id: API Gateway's request id, on every line this request logs, kept on the thumbnail and carried
# in its create command to the worker's lines. Cold-start cost 0.1 ms (0.2 ms without .pyc): correlation_paths
# is a module of constants, measured as in telemetry.py
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics  # flushed in a finally: a failed request's counts are kept too
def lambda_handler(event: dict, context: object) -> dict:
    response = _request_thumbnail(event, context)
    if response["statusCode"] == 429:
        count("QuotaRefusals")
    return response


@api
def _request_thumbnail(event: dict, context: object) -> dict:
    thumbnail = services.request_thumbnail(
        caller(event),
        json_body(event),
        photos=bootstrap.photos(),
        thumbnails=bootstrap.thumbnails(),
        dispatcher=bootstrap.dispatcher(),
        monthly_quota=bootstrap.monthly_quota(),
        now=now_utc(),
        idempotency_key=header(event, "Idempotency-Key"),
        correlation_id=logger.get_correlation_id(),
    )
    logger.info("thumbnail requested", thumbnail_id=thumbnail.thumbnail_id)
    count("ThumbnailsRequested", format=thumbnail.format)
    return respond(202, {"thumbnail_id": thumbnail.thumbnail_id, "status": thumbnail.status})
