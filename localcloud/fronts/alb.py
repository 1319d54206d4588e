"""A local Application Load Balancer front: HTTP requests in, ALB target-group Lambda events out, answers back.

The talk compares API Gateway + Lambda with ALB + Lambda. This module is the ALB half, on 127.0.0.1,
in front of the same functions the local API Gateway calls::

    from localcloud.fronts.alb import LocalAlb
    alb = LocalAlb([("GET", "/ping", "PingFunction"),
                    ("GET", "/thumbnails/{thumbnail_id}", "GetThumbnailFunction")],
                   invoke=cloud.invoke).start()
    requests.get(alb.url + "/ping")
    alb.stop()

What a request becomes (:func:`alb_event`) is the event an ALB sends a Lambda target, the shape
``sam local generate-event alb request`` prints: ``requestContext.elb.targetGroupArn``,
``httpMethod``, ``path``, ``queryStringParameters`` (as sent: ALB does not decode them),
``headers`` (lower-case names, one value each: multi-value headers are off by default),
``body`` (a string, base64 with ``isBase64Encoded`` true unless the content is text).

What the function answers (:func:`http_answer`) must be an object with an integer ``statusCode``;
``statusDescription``, ``headers``, ``body`` and ``isBase64Encoded`` are optional. Anything else (a
function error, JSON that is not such an object, a ``body`` that is not a string) makes the load
balancer answer **502 Bad Gateway**, as a real ALB does.

**Identity, a benchmark-only adapter.** An ALB has no Cognito *authorizer*: a real one signs users in
with its ``authenticate-cognito`` / ``authenticate-oidc`` listener action and passes the user to the
target in ``x-amzn-oidc-identity`` / ``x-amzn-oidc-data`` headers, which the handler would then read.
The app's handlers read API Gateway's ``requestContext.authorizer.claims`` and ``pathParameters``
instead, so, to call the *same* handlers, :func:`adapt_for_app` (on by default) copies the header
``x-user-sub`` into ``requestContext.authorizer.claims.sub`` and the route's ``{name}`` segments into
``pathParameters``. The header is trusted as is: this is a measuring rig, not an authentication.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from localcloud.http import HttpServer, Request

__all__ = ["AlbRoute", "BadAnswer", "LocalAlb", "adapt_for_app", "alb_event", "http_answer", "match"]

TARGET_GROUP_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/thumbnailr-local/0123456789abcdef"
IDENTITY_HEADER = "x-user-sub"
#: the largest request body an ALB passes to a Lambda target; a larger one is answered 413
#: (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html, "Limits")
MAX_REQUEST_BYTES = 1024 * 1024
_TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml",
               "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class AlbRoute:
    """A listener rule: ``method`` on ``pattern`` (``/thumbnails/{thumbnail_id}``) forwards to ``function``."""

    method: str
    pattern: str
    function: str


class BadAnswer(ValueError):
    """The function's answer is not one an ALB accepts: the client gets 502."""


# --------------------------------------------------------------------------- pure functions


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def match(routes: Iterable[AlbRoute], method: str, path: str) -> tuple[AlbRoute, dict[str, str]] | None:
    """The first route whose method and pattern fit, with the values of its ``{name}`` segments.

    >>> match([AlbRoute("GET", "/photos/{photo_id}", "F")], "GET", "/photos/42")
    (AlbRoute(method='GET', pattern='/photos/{photo_id}', function='F'), {'photo_id': '42'})
    """
    got = _segments(path)
    for route in routes:
        if route.method not in (method, "ANY"):
            continue
        want = _segments(route.pattern)
        if len(want) != len(got):
            continue
        params: dict[str, str] = {}
        for w, g in zip(want, got):
            if w.startswith("{") and w.endswith("}"):
                params[w[1:-1]] = g
            elif w != g:
                break
        else:
            return route, params
    return None


def _is_text(headers: dict[str, str]) -> bool:
    content_type = headers.get("content-type", "").lower()
    return content_type.startswith(_TEXT_TYPES)


def alb_event(method: str, target: str, headers: dict[str, str], body: bytes = b"",
              target_group_arn: str = TARGET_GROUP_ARN) -> dict[str, Any]:
    """The ALB target-group event for one HTTP request (``target`` is the path with its query string).

    >>> e = alb_event("GET", "/ping?x=1", {"Host": "alb"})
    >>> e["path"], e["queryStringParameters"], e["headers"], e["isBase64Encoded"]
    ('/ping', {'x': '1'}, {'host': 'alb'}, False)
    """
    parts = urlsplit(target)
    lowered = {name.lower(): value for name, value in headers.items()}
    text = not body or _is_text(lowered)
    return {
        "requestContext": {"elb": {"targetGroupArn": target_group_arn}},
        "httpMethod": method,
        "path": parts.path or "/",
        # ALB passes the query's names and values as sent (still percent-encoded); the last value wins
        "queryStringParameters": _raw_query(parts.query),
        "headers": lowered,
        "body": body.decode("utf-8", "replace") if text else base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": not text,
    }


def _raw_query(query: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            out[name] = value
    return out


def adapt_for_app(event: dict[str, Any], path_parameters: dict[str, str]) -> dict[str, Any]:
    """The benchmark adapter: the ``x-user-sub`` header as Cognito claims, and ``pathParameters``.

    A copy; the ALB fields stay as they were. Without the header, no claims (the app answers 401).
    """
    event = {**event, "pathParameters": dict(path_parameters) or None}
    sub = event["headers"].get(IDENTITY_HEADER)
    if sub:
        context = dict(event["requestContext"])
        context["authorizer"] = {"claims": {"sub": sub}}
        event["requestContext"] = context
    return event


def http_answer(payload: bytes) -> tuple[int, str, dict[str, str], bytes]:
    """(status, reason, headers, body) from a function's answer, or :class:`BadAnswer` (-> 502)."""
    try:
        answer = json.loads(payload)
    except ValueError:
        raise BadAnswer("the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise BadAnswer("the answer is not a JSON object")
    status = answer.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise BadAnswer("statusCode is missing or not an HTTP status")
    headers = answer.get("headers")
    headers = {} if headers is None else headers
    if not isinstance(headers, dict):
        raise BadAnswer("headers is not an object")
    body = answer.get("body")
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise BadAnswer("body is not a string")
    try:
        raw = base64.b64decode(body, validate=True) if answer.get("isBase64Encoded") else body.encode("utf-8")
    except ValueError:
        raise BadAnswer("body is not valid base64") from None
    description = str(answer.get("statusDescription") or "")
    reason = description.split(" ", 1)[1] if " " in description else ""
    return status, reason, {str(k): str(v) for k, v in headers.items()}, raw


# --------------------------------------------------------------------------- the server


def _payload_of(result: Any) -> bytes:
    """The function's answer as bytes: an InvocationResult's payload, or what a fake invoke returned."""
    if getattr(result, "function_error", None):
        raise BadAnswer(f"the function failed ({result.function_error})")
    payload = getattr(result, "payload", result)
    if isinstance(payload, (dict, list)):
        return json.dumps(payload).encode()
    if isinstance(payload, str):
        return payload.encode()
    return payload


class LocalAlb:
    """An ALB listener on 127.0.0.1 (a free port) whose rules forward to Lambda functions via ``invoke``.

    * ``routes``: ``AlbRoute``\\ s or ``(method, pattern, function)`` tuples, tried in order;
    * ``invoke(function, event)``: e.g. ``cloud.invoke``; its result's ``payload`` (or the result itself,
      bytes, str or dict, for a fake) is the answer; a result with a ``function_error`` gives 502;
    * ``adapt``: apply :func:`adapt_for_app` (the identity header and path parameters) to each event.
    """

    def __init__(self, routes: Sequence[AlbRoute | tuple[str, str, str]], invoke: Callable[[str, Any], Any],
                 target_group_arn: str = TARGET_GROUP_ARN, adapt: bool = True) -> None:
        self.routes = [r if isinstance(r, AlbRoute) else AlbRoute(*r) for r in routes]
        self.invoke = invoke
        self.target_group_arn = target_group_arn
        self.adapt = adapt
        self._http = HttpServer(self._serve, name="LocalAlb")

    def start(self) -> LocalAlb:
        if not self._http.running:
            self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    @property
    def port(self) -> int:
        if not self._http.running:
            raise RuntimeError("the ALB is not started")
        return self._http.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalAlb:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, request: Request) -> None:
        body = request.read_body(MAX_REQUEST_BYTES)
        found = match(self.routes, request.command, urlsplit(request.path).path)
        if found is None:
            return _send(request, 404, "Not Found", {"Content-Type": "text/plain"}, b"no listener rule matches\n")
        route, params = found
        event = alb_event(request.command, request.path, dict(request.headers.items()), body, self.target_group_arn)
        if self.adapt:
            event = adapt_for_app(event, params)
        try:
            status, reason, headers, raw = http_answer(_payload_of(self.invoke(route.function, event)))
        except BadAnswer:
            return _send(request, 502, "Bad Gateway", {"Content-Type": "text/html"}, b"<h1>502 Bad Gateway</h1>\n")
        except Exception:  # the invoke itself failed (throttled, unknown function...)
            return _send(request, 503, "Service Unavailable", {"Content-Type": "text/html"},
                         b"<h1>503 Service Temporarily Unavailable</h1>\n")
        _send(request, status, reason, headers, raw)


def _send(request: Request, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
    passed = [(name, value) for name, value in headers.items()
              if name.lower() not in ("content-length", "connection", "transfer-encoding", "date")]
    request.respond(status, [("Server", "awselb/2.0"), *passed], body, reason or None)
