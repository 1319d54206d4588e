"""API Gateway proxy events in, proxy responses out: every answer is JSON, every error has a message."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from thumbnailr.model import (
    DomainError,
    IdempotencyKeyReused,
    InvalidRequest,
    NotFound,
    NotReady,
    QuotaExceeded,
    Unauthorized,
)

log = logging.getLogger(__name__)
Handler = Callable[[dict, Any], dict]

#: The HTTP status of each domain error: the one place where the core's errors meet HTTP.
STATUSES: dict[type[DomainError], int] = {
    InvalidRequest: 400,
    Unauthorized: 401,
    NotFound: 404,
    NotReady: 409,
    IdempotencyKeyReused: 422,
    QuotaExceeded: 429,
}


def status_of(error: DomainError) -> int | None:
    """The status of the error's class, or of its nearest base in STATUSES; None if neither is there."""
    return next((STATUSES[cls] for cls in type(error).__mro__ if cls in STATUSES), None)


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


def header(event: dict[str, Any], name: str) -> str | None:
    """A request header's value, its name matched without case (API Gateway passes names as the client sent them)."""
    wanted = name.lower()
    return next((v for k, v in (event.get("headers") or {}).items() if k.lower() == wanted), None)


def path_parameter(event: dict[str, Any], name: str) -> str:
    return ((event.get("pathParameters") or {}).get(name)) or ""


def error_response(error: Exception) -> dict[str, Any]:
    """The answer to an error: a domain error's status from STATUSES, 503 for an AWS fault, 500 for a bug
    (a domain error missing from STATUSES is one). Called in an ``except`` block, so the log has the trace."""
    if isinstance(error, DomainError) and (status := status_of(error)) is not None:
        return respond(status, {"message": error.message})
    if isinstance(error, (ClientError, BotoCoreError)):
        log.exception("an AWS call failed")
        return respond(503, {"message": "the service is temporarily unavailable, please retry"})
    log.exception("unexpected error")
    return respond(500, {"message": "internal error"})


def api(handler: Handler) -> Handler:
    """Answer the handler's errors as error_response says, each with a JSON message."""

    @functools.wraps(handler)
    def wrapper(event: dict, context: Any) -> dict:
        try:
            return handler(event, context)
        except Exception as error:
            return error_response(error)

    return wrapper
