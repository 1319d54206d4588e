"""POST /thumbnails: check the request, spend quota, record a pending thumbnail, send the create command."""

from aws_lambda_powertools import Logger

from thumbnailr import bootstrap, services
from thumbnailr.handlers.http import api, caller, header, json_body, respond
from thumbnailr.model import now_utc

logger = Logger()


@logger.inject_lambda_context
@api
def lambda_handler(event: dict, context: object) -> dict:
    thumbnail = services.request_thumbnail(
        caller(event),
        json_body(event),
        photos=bootstrap.photos(),
        thumbnails=bootstrap.thumbnails(),
        dispatcher=bootstrap.dispatcher(),
        monthly_quota=bootstrap.monthly_quota(),
        now=now_utc(),
        idempotency_key=header(event, "Idempotency-Key"),
    )
    logger.info("thumbnail requested", thumbnail_id=thumbnail.thumbnail_id)
    return respond(202, {"thumbnail_id": thumbnail.thumbnail_id, "status": thumbnail.status})
