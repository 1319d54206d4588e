"""API Gateway proxy events in, proxy responses out: every answer is JSON, every error has a message."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from thumbnailr.model import DomainError, InvalidRequest

log = logging.getLogger(__name__)
Handler = Callable[[dict, Any], dict]


class Unauthorized(DomainError):
    status = 401


def respond(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def json_body(event: dict[str, Any]) -> Any:
    raw = event.get("body")
    if raw is None or raw == "":
        raise InvalidRequest("the request body must be a JSON object")
    try:
        if event.get("isBase64Encoded"):
            raw = base64.b64decode(raw, validate=True).decode("utf-8")
        return json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError) as error:  # RecursionError: deeply nested JSON
        raise InvalidRequest("the request body is not valid JSON") from error


def caller(event: dict[str, Any]) -> str:
    """The signed-in user: the Cognito authorizer's `sub` claim, which API Gateway put in the event."""
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("claims") or {}
    sub = claims.get("sub")
    if not sub:
        raise Unauthorized("Unauthorized")
    return sub


def path_parameter(event: dict[str, Any], name: str) -> str:
    return ((event.get("pathParameters") or {}).get(name)) or ""


def api(handler: Handler) -> Handler:
    """Turn domain errors into their status, AWS faults into 503 and bugs into 500, each with a JSON message."""

    @functools.wraps(handler)
    def wrapper(event: dict, context: Any) -> dict:
        try:
            return handler(event, context)
        except DomainError as error:
            return respond(error.status, {"message": error.message})
        except (ClientError, BotoCoreError):
            log.exception("an AWS call failed")
            return respond(503, {"message": "the service is temporarily unavailable, please retry"})
        except Exception:
            log.exception("unexpected error")
            return respond(500, {"message": "internal error"})

    return wrapper
