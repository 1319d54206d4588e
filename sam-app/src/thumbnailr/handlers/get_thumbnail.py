"""GET /thumbnails/{thumbnail_id}: the thumbnail's state, with a presigned download URL once it is ready."""

from aws_lambda_powertools import Logger

from thumbnailr import bootstrap, services
from thumbnailr.handlers.http import api, caller, path_parameter, respond

logger = Logger()


@logger.inject_lambda_context
@api
def lambda_handler(event: dict, context: object) -> dict:
    body = services.get_thumbnail(
        caller(event),
        path_parameter(event, "thumbnail_id"),
        thumbnails=bootstrap.thumbnails(),
        store=bootstrap.thumbnails_store(),
    )
    return respond(200, body)
