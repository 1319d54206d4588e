"""GET /photos/{photo_id}: the photo's state."""

from aws_lambda_powertools import Logger

from thumbnailr import bootstrap, services
from thumbnailr.handlers.http import api, caller, path_parameter, respond

logger = Logger()


@logger.inject_lambda_context
@api
def lambda_handler(event: dict, context: object) -> dict:
    photo = services.get_photo(caller(event), path_parameter(event, "photo_id"), bootstrap.photos())
    return respond(200, photo.public())
