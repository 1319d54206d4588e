"""The app's REST API as an OpenAPI 3.0 document, like API Gateway's "Export as OpenAPI 3".

``export(stack_or_template_path, server_url)`` gives one path per route of the template (read by
``localcloud.cfn.stack.Stack.routes()``, so no route is written twice), the Cognito authorizer as a
security scheme the way API Gateway exports it (``type: apiKey, in: header, name: Authorization``,
``x-amazon-apigateway-authtype: cognito_user_pools``), ``GET /ping`` without security, and the
app's contract: request and response schemas.

The template declares no API Gateway *Models*; if it did, API Gateway would export these schemas
from them. This module is therefore where the contract is written down (``SCHEMAS``, and which
route answers what in ``CONTRACT``), following README's API table, with the limits taken from the app's
own validation (``thumbnailr.model``: the sides, formats, upload content types, id pattern, statuses);
unknown fields refused. Every error is ``{"message": string}``. No 5xx is part of the contract
except API Gateway's own 502 (a function error or a malformed proxy answer).
"""

from __future__ import annotations

import copy
import os
from typing import Any

from localcloud import Stack
from thumbnailr.model import (
    ID_PATTERN,
    MAX_THUMBNAIL_SIDE,
    PHOTO_STATUSES,
    THUMBNAIL_FORMATS,
    THUMBNAIL_STATUSES,
    UPLOAD_CONTENT_TYPES,
)

__all__ = ["CONTRACT", "SCHEMAS", "SECURITY_SCHEME", "export"]

#: The authorizer's name in the template (ThumbnailApi.Auth.Authorizers).
SECURITY_SCHEME = "CognitoAuthorizer"

_ID = {"type": "string", "pattern": ID_PATTERN}
_SIDE = {"type": "integer", "minimum": 1, "maximum": MAX_THUMBNAIL_SIDE}
_FORMAT = {"type": "string", "enum": list(THUMBNAIL_FORMATS)}
_NULLABLE_INT = {"type": "integer", "nullable": True}
_NULLABLE_STR = {"type": "string", "nullable": True}

#: components/schemas: the app's contract, its limits from thumbnailr.model.
SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["message"],
        "properties": {"message": {"type": "string"}},
    },
    "Ping": {
        "type": "object",
        "required": ["ok"],
        "properties": {"ok": {"type": "boolean", "enum": [True]}},
    },
    "UploadRequest": {
        "type": "object",
        "required": ["content_type"],
        "additionalProperties": False,
        "properties": {"content_type": {"type": "string", "enum": list(UPLOAD_CONTENT_TYPES)}},
    },
    "Upload": {
        "type": "object",
        "required": ["photo_id", "upload", "expires_in"],
        "properties": {
            "photo_id": _ID,
            "upload": {
                "type": "object",
                "required": ["url", "fields"],
                "properties": {
                    "url": {"type": "string"},
                    "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "expires_in": {"type": "integer", "minimum": 1},
        },
    },
    "Photo": {
        "type": "object",
        "required": ["photo_id", "status", "width", "height", "format", "reason"],
        "properties": {
            "photo_id": _ID,
            "status": {"type": "string", "enum": list(PHOTO_STATUSES)},
            "width": _NULLABLE_INT,
            "height": _NULLABLE_INT,
            "format": _NULLABLE_STR,
            "reason": _NULLABLE_STR,
        },
    },
    "ThumbnailRequest": {
        "type": "object",
        "required": ["photo_id", "width", "height", "format"],
        "additionalProperties": False,
        "properties": {
            "photo_id": {"type": "string", "minLength": 1},
            "width": _SIDE,
            "height": _SIDE,
            "format": _FORMAT,
        },
    },
    "ThumbnailAccepted": {
        "type": "object",
        "required": ["thumbnail_id", "status"],
        # a replayed Idempotency-Key answers the thumbnail as it is now
        "properties": {"thumbnail_id": _ID, "status": {"type": "string", "enum": ["pending", "ready", "failed"]}},
    },
    "Thumbnail": {
        "type": "object",
        "required": ["thumbnail_id", "photo_id", "status", "width", "height", "format"],
        "properties": {
            "thumbnail_id": _ID,
            "photo_id": {"type": "string"},
            "status": {"type": "string", "enum": list(THUMBNAIL_STATUSES)},
            "width": _SIDE,
            "height": _SIDE,
            "format": _FORMAT,
            "url": {"type": "string"},
            "reason": _NULLABLE_STR,
        },
    },
}

#: What each route takes and answers: (method, path) -> (request schema or None, {status: schema}).
#: Headers a route reads besides Authorization: (method, path) -> [OpenAPI header parameters].
HEADERS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("POST", "/thumbnails"): [{
        "name": "Idempotency-Key", "in": "header", "required": False,
        "description": "Retry-safe requests: the same key with the same body answers the same thumbnail and "
                       "charges the quota once (even sent twice at once); with another body, 422.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    }],
}

#: Errors every route may get from API Gateway itself (403 "Missing Authentication Token", 429 its
#: throttle, 502 a function error) are added by ``export``; 401 to the protected routes.
CONTRACT: dict[tuple[str, str], tuple[str | None, dict[str, str]]] = {
    ("GET", "/ping"): (None, {"200": "Ping"}),
    ("POST", "/photos"): ("UploadRequest", {"201": "Upload", "400": "Error"}),
    ("GET", "/photos/{photo_id}"): (None, {"200": "Photo", "404": "Error"}),
    ("POST", "/thumbnails"): ("ThumbnailRequest", {"202": "ThumbnailAccepted", "400": "Error", "404": "Error",
                                                  "409": "Error", "422": "Error", "429": "Error"}),
    ("GET", "/thumbnails/{thumbnail_id}"): (None, {"200": "Thumbnail", "404": "Error"}),
}

_DESCRIPTIONS = {
    "200": "OK", "201": "Created", "202": "Accepted", "400": "Bad request", "401": "No or bad token",
    "403": "Missing Authentication Token (API Gateway)", "404": "Not found (or someone else's)",
    "409": "Photo not ready", "422": "Idempotency-Key already used for a different request", "429": "Quota reached, or API Gateway's throttle",
    "502": "Internal server error (API Gateway: function error)",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def export(stack_or_template_path: Stack | str | os.PathLike[str], server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the stack's REST API, served at ``server_url``."""
    stack = stack_or_template_path
    if not isinstance(stack, Stack):
        stack = Stack(stack).predict()
    paths: dict[str, dict[str, Any]] = {}
    for route in sorted(stack.routes(), key=lambda r: (r.path, r.method)):
        request, answers = CONTRACT.get((route.method, route.path), (None, {}))
        responses = {status: {"description": _DESCRIPTIONS.get(status, status), "content": _json(schema)}
                     for status, schema in answers.items()}
        gateway = ["401", "403", "429", "502"] if route.authorized else ["403", "429", "502"]
        for status in gateway:
            responses.setdefault(status, {"description": _DESCRIPTIONS[status], "content": _json("Error")})
        operation: dict[str, Any] = {
            "operationId": f"{route.method.lower()}_{route.function}",
            "x-amazon-apigateway-function": route.function,
            "responses": dict(sorted(responses.items())),
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_parameters(route.path)
        ] + copy.deepcopy(HEADERS.get((route.method, route.path), []))
        if parameters:
            operation["parameters"] = parameters
        if request:
            operation["requestBody"] = {"required": True, "content": _json(request)}
        operation["security"] = [{SECURITY_SCHEME: []}] if route.authorized else []
        verb = "x-amazon-apigateway-any-method" if route.method == "ANY" else route.method.lower()
        paths.setdefault(route.path, {})[verb] = operation
    return {
        "openapi": "3.0.1",
        "info": {"title": stack.stack_name, "version": "1.0"},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "x-amazon-apigateway-authtype": "cognito_user_pools",
                }
            },
            "schemas": copy.deepcopy(SCHEMAS),
        },
    }


def _path_parameters(path: str) -> list[str]:
    return [part[1:-1].rstrip("+") for part in path.split("/") if part.startswith("{") and part.endswith("}")]
