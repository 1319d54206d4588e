"""POST /photos: record a pending photo and hand out a presigned S3 POST to upload it."""

from aws_lambda_powertools import Logger

from thumbnailr import bootstrap, services
from thumbnailr.handlers.http import api, caller, json_body, respond

logger = Logger()


@logger.inject_lambda_context
@api
def lambda_handler(event: dict, context: object) -> dict:
    upload = services.request_upload(caller(event), json_body(event), bootstrap.photos(), bootstrap.photos_store())
    logger.info("upload handed out", photo_id=upload["photo_id"])
    return respond(201, upload)
