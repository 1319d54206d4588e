"""The Lambda proxy integration's contract: a request's parts as event fields, a function's answer as HTTP.

What API Gateway (REST API, payload format 1.0) puts in the event and does with the proxy response is
documented, with its sources, in ``localcloud.apigateway.gateway``.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["GatewayError", "InvokeOutcome", "event_body", "internal_error", "proxy_response",
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


def event_body(body: bytes) -> tuple[str | None, bool]:
    """(``body``, ``isBase64Encoded``): text when it is UTF-8, base64 otherwise."""
    if not body:
        return None, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


# -- the function's answer, as HTTP ---------------------------------------------------------------


def proxy_response(outcome: InvokeOutcome) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of a proxy response; ``GatewayError`` (502, 500) for what API Gateway refuses."""
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
    data = _body(response)  # before the header names: a bad body is API Gateway's 500, not 502
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
    merged: dict[str, list[str]] = {}
    single = response.get("headers")
    if single is not None:
        if not isinstance(single, dict):
            raise _malformed()
        for name, value in single.items():
            merged[name] = [_header_value(value)]
    multi = response.get("multiValueHeaders")
    if multi is not None:
        if not isinstance(multi, dict):
            raise _malformed()
        for name, values in multi.items():
            if not isinstance(values, list):
                raise _malformed()
            merged[name] = [_header_value(v) for v in values]  # multiValueHeaders wins
    return merged


def _body(response: dict[str, Any]) -> bytes:
    body = response.get("body")
    is_b64 = response.get("isBase64Encoded")
    if body is not None and not isinstance(body, str):
        raise _malformed()
    if is_b64 is not None and not isinstance(is_b64, bool):
        raise _malformed()
    if body is None:
        return b""
    if is_b64:
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
