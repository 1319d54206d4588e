"""The Lambda proxy integration's contract: a request's parts as event fields, a function's answer as HTTP.

What API Gateway (REST API, payload format 1.0) puts in the event and does with the proxy response is
documented, with its sources, in ``localcloud.apigateway.gateway``.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
from collections.abc import Collection, Iterable
from typing import Any, Protocol

__all__ = ["GatewayError", "InvokeOutcome", "event_body", "internal_error", "is_binary", "proxy_response",
           "query_parameters", "request_headers"]

_PROXY_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
# Response headers API Gateway does not pass through as-is but renames to x-amzn-Remapped-<name>.
_REMAPPED = frozenset({"authorization", "connection", "content-length", "date", "server",
                       "transfer-encoding", "www-authenticate"})
# Request headers that describe the connection, not the request: not in the event.
_HOP_HEADERS = frozenset({"content-length", "connection", "transfer-encoding"})


class InvokeOutcome(Protocol):
    """What ``invoke(function, event)`` returns: the Lambda Invoke API's answer."""

    @property
    def payload(self) -> bytes: ...

    @property
    def function_error(self) -> str | None:  # None, or "Unhandled" (X-Amz-Function-Error)
        ...


class GatewayError(Exception):
    """One of API Gateway's own answers."""

    def __init__(self, status: int, message: str | None, error_type: str | None = None,
                 log_error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.log_error = log_error or message


def internal_error(status: int, why: str) -> GatewayError:
    return GatewayError(status, "Internal server error", "InternalServerErrorException", why)


def _malformed() -> GatewayError:
    return internal_error(502, "Execution failed due to configuration error: Malformed Lambda proxy response")


# -- the request, as the event's fields -------------------------------------------------------------


class EventHeaders:
    """``headers`` and ``multiValueHeaders``: one spelling per name (the first seen), values in order."""

    def __init__(self) -> None:
        self.single: dict[str, str] = {}
        self.multi: dict[str, list[str]] = {}
        self.spelled: dict[str, str] = {}  # lower-case name -> the spelling first seen

    def add(self, name: str, value: str) -> None:
        lower = name.lower()
        if lower == "authorization":
            name = "Authorization"
        elif lower == "user-agent":
            name = "User-Agent"
        key = self.spelled.setdefault(lower, name)
        self.single[key] = value
        self.multi.setdefault(key, []).append(value)

    def get(self, lower_name: str) -> str | None:
        key = self.spelled.get(lower_name)
        return self.single.get(key) if key else None


def request_headers(raw: Iterable[tuple[str, str]], client_ip: str, port: int) -> EventHeaders:
    """The request's headers as API Gateway passes them, with its ``X-Forwarded-*`` ones added."""
    headers = EventHeaders()
    for name, value in raw:
        if name.lower() not in _HOP_HEADERS:
            headers.add(name, value)
    forwarded_for = headers.spelled.get("x-forwarded-for")
    if forwarded_for:
        joined = f"{headers.single[forwarded_for]}, {client_ip}"
        headers.single[forwarded_for] = headers.multi[forwarded_for][-1] = joined
    else:
        headers.add("X-Forwarded-For", client_ip)
    if "x-forwarded-port" not in headers.spelled:
        headers.add("X-Forwarded-Port", str(port))
    if "x-forwarded-proto" not in headers.spelled:
        headers.add("X-Forwarded-Proto", "http")
    return headers


def query_parameters(raw_query: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(``queryStringParameters``, ``multiValueQueryStringParameters``): decoded, the last value wins."""
    query: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        query[name] = value
        multi.setdefault(name, []).append(value)
    return query, multi


def is_binary(media_type: str | None, binary_media_types: Collection[str]) -> bool:
    """Whether ``media_type`` (a Content-Type or an Accept entry) is one of the API's ``binaryMediaTypes``.

    A binary media type may use ``*`` for the type or subtype (``image/*``, ``*/*``); parameters
    (``; charset=...``) are ignored.
    """
    if not media_type or not binary_media_types:
        return False
    kind, _, sub = media_type.split(";", 1)[0].strip().lower().partition("/")
    for pattern in binary_media_types:
        p_kind, _, p_sub = pattern.strip().lower().partition("/")
        if p_kind in ("*", kind) and p_sub in ("*", sub):
            return True
    return False


def event_body(body: bytes, content_type: str | None = None,
               binary_media_types: Collection[str] = ()) -> tuple[str | None, bool]:
    """(``body``, ``isBase64Encoded``): base64 only when the Content-Type is a binary media type of the API.

    Otherwise API Gateway passes the payload as (UTF-8) text: bytes that are not UTF-8 arrive as
    U+FFFD, which is how binary uploads to an API without ``BinaryMediaTypes`` get corrupted on AWS.
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-payload-encodings.html)
    """
    if not body:
        return None, False
    if is_binary(content_type, binary_media_types):
        return base64.b64encode(body).decode("ascii"), True
    return body.decode("utf-8", "replace"), False


# -- the function's answer, as HTTP ---------------------------------------------------------------


def proxy_response(outcome: InvokeOutcome, accept: str | None = None,
                   binary_media_types: Collection[str] = ()) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of a proxy response; ``GatewayError`` (502, 500) for what API Gateway refuses.

    A body with ``isBase64Encoded: true`` is decoded only when the first media type of the request's
    ``Accept`` is one of the API's binary media types ("API Gateway uses the first Accept header from
    clients to determine if a response should return binary media", api-gateway-payload-encodings.html);
    otherwise the client gets the base64 text, as from AWS.
    """
    payload = outcome.payload
    if isinstance(payload, str):
        payload = payload.encode()
    if outcome.function_error:
        raise internal_error(502, f"Lambda function error ({outcome.function_error})")
    try:
        response = json.loads(payload)
    except (ValueError, TypeError):
        raise _malformed() from None
    if not isinstance(response, dict) or not response.keys() <= _PROXY_KEYS:
        raise _malformed()
    status, merged = _status(response), _merged_headers(response)
    first_accept = (accept or "").split(",", 1)[0]
    data = _body(response, is_binary(first_accept, binary_media_types))  # before the header names: a bad body is 500
    return status, _response_headers(merged), data


def _status(response: dict[str, Any]) -> int:
    status_code = response.get("statusCode")
    if status_code is None:
        return 200
    if isinstance(status_code, int) and not isinstance(status_code, bool):
        status = status_code
    elif isinstance(status_code, str) and status_code.strip().isdigit():
        status = int(status_code)
    else:
        raise _malformed()
    if not 200 <= status <= 599:  # a 1xx cannot be a final HTTP response
        raise _malformed()
    return status


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str) or "\r" in value or "\n" in value:
        raise _malformed()
    return value


def _merged_headers(response: dict[str, Any]) -> dict[str, list[str]]:
    """``multiValueHeaders`` and ``headers`` as one list per name, names compared without case.

    "If you specify values for both headers and multiValueHeaders, API Gateway merges them into a
    single list. If the same key-value pair is specified in both, only the values from
    multiValueHeaders will appear in the merged list." (set-up-lambda-proxy-integrations.html,
    output format). So a ``headers`` value is kept beside different multi values (as SAM CLI's
    start-api does: the multi values first), and dropped only when it repeats one of them.
    """
    merged: dict[str, list[str]] = {}
    spelled: dict[str, str] = {}  # lower-case name -> the spelling first seen
    multi = response.get("multiValueHeaders")
    if multi is not None:
        if not isinstance(multi, dict):
            raise _malformed()
        for name, values in multi.items():
            if not isinstance(values, list):
                raise _malformed()
            key = spelled.setdefault(str(name).lower(), name)
            merged.setdefault(key, []).extend(_header_value(v) for v in values)
    single = response.get("headers")
    if single is not None:
        if not isinstance(single, dict):
            raise _malformed()
        for name, value in single.items():
            key = spelled.setdefault(str(name).lower(), name)
            values = merged.setdefault(key, [])
            text = _header_value(value)
            if text not in values:
                values.append(text)
    return merged


def _body(response: dict[str, Any], decode_base64: bool) -> bytes:
    body = response.get("body")
    is_b64 = response.get("isBase64Encoded")
    if body is not None and not isinstance(body, str):
        raise _malformed()
    if is_b64 is not None and not isinstance(is_b64, bool):
        raise _malformed()
    if body is None:
        return b""
    if is_b64 and decode_base64:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise internal_error(500, "Execution failed due to configuration error: "
                                      "Unable to base64 decode the body") from None
    return body.encode("utf-8", "surrogatepass")


def _response_headers(merged: dict[str, list[str]]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    has_content_type = False
    for name, values in merged.items():
        if not name or any(c in name for c in "\r\n: \t"):
            raise _malformed()
        lower = name.lower()
        if lower in _REMAPPED:
            name = "x-amzn-Remapped-" + name
        elif lower == "content-type":
            has_content_type = True
        headers.extend((name, v) for v in values)
    if not has_content_type:
        headers.insert(0, ("Content-Type", "application/json"))
    return headers
