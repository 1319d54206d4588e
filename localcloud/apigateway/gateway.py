"""A local API Gateway REST API: Lambda proxy integration (payload format 1.0) on 127.0.0.1.

``LocalApiGateway`` is what ``sam local start-api`` would be without Docker: it turns HTTP
requests into the events a REST API sends to a Lambda proxy integration, calls ``invoke`` (the
local Lambda runtime), and turns the function's answer back into HTTP the way API Gateway does,
including API Gateway's own error answers. What it does, and where each behaviour comes from:

Routing (REST API resources and methods)
  * ``/Prod/photos/abc`` and ``/photos/abc`` both work (the stage prefix is optional locally).
  * Per path segment a literal beats ``{param}``, which beats a greedy ``{proxy+}``; a greedy
    parameter needs at least one segment. A trailing slash is ignored for matching but kept in
    ``path``. The resource is chosen first, then the method on it (``ANY`` is the fallback), so a
    method missing on the best resource is not rescued by a less specific one.
  * Path parameters are passed percent-encoded, as received; query strings are decoded
    (``+`` is a space), the last value wins in ``queryStringParameters``. (Recorded AWS events:
    localstack ``tests/aws/services/apigateway/test_apigateway_lambda.snapshot.json``.)
  * No resource/method: ``403 {"message":"Missing Authentication Token"}``; if the request has an
    ``Authorization`` header, API Gateway tries to read it as SigV4 and says instead
    ``403 {"message":"Invalid key=value pair (missing equal-sign) in Authorization header
    (hashed with SHA-256 and encoded with Base64): '<b64 sha256>'."}``.

Cognito authorizer (routes with ``authorized=True``)
  * No/empty ``Authorization`` header: ``401 {"message":"Unauthorized"}``.
  * Invalid token (forged, other pool, access token, alg none, ...): ``401 {"message":"Unauthorized"}``.
  * Expired token: ``401 {"message":"The incoming token has expired"}`` (what the Cognito
    authorizer answers; client code commonly matches on that message to refresh tokens).
  * The header holds the raw ID token. ``Bearer <token>`` is accepted too: AWS's own workshop
    tells you to test a Cognito authorizer with ``Bearer <token>``, and
    amazon-cognito-identity-js#165 reports AWS Support confirming it works.
  * The function sees ``requestContext.authorizer.claims``: every claim as a string, ``exp`` and
    ``iat`` in Java's date format ("Fri Jul 29 18:52:53 UTC 2016"), booleans as "true"/"false"
    (see amazon-cognito-identity-js#92 for a recorded example). Unauthorized routes have no
    ``authorizer`` key at all.

Lambda proxy response (what the function returns)
  * A JSON object with only ``statusCode``, ``headers``, ``multiValueHeaders``, ``body``,
    ``isBase64Encoded``; none is required (``{}`` is a 200 with an empty body), ``statusCode`` may
    be a numeric string, header values may be strings or booleans, ``body`` a string or null.
    Anything else (not JSON, not an object, an unknown key, wrong types) is a "Malformed Lambda
    proxy response": ``502 {"message": "Internal server error"}``. (localstack's AWS-validated
    ``test_lambda_aws_proxy_response_format`` and its ``_is_lambda_response_valid``.)
  * A function error (``function_error`` set, e.g. "Unhandled"): 502 with the same body.
  * Lambda refusing the invocation (``invoke`` raises; ``Throttled`` = Lambda's 429
    TooManyRequestsException included): **500** ``{"message": "Internal server error"}``, not 429 —
    "If the Lambda API rejects the invocation request, API Gateway returns a 500 error code. If the
    function runs but returns an error, or returns a response in the wrong format, API Gateway
    returns a 502." (AWS Lambda developer guide, "Handling Lambda errors with an API Gateway API";
    the knowledge-center article "api-gateway-internal-server-error" lists Lambda throttling under
    500s, and API Gateway's execution log reads "Lambda invocation failed with status: 429 ...
    Method completed with status: 500"). API Gateway itself only answers 429 for *its own* throttles.
    The local Lambda's *account* concurrency is a laptop's, far below an AWS account's 1,000: a
    request that meets it waits for an environment (``concurrency_wait_s``, 10 s) before that 500;
    a function's reserved concurrency (the template's choice) throttles at once, as on AWS.
  * ``isBase64Encoded: true`` bodies are decoded and sent as bytes only when the first type of the
    request's ``Accept`` is one of the API's ``BinaryMediaTypes`` (``binary_media_types``); otherwise
    the base64 text is the body, as on AWS. A body that is not valid base64 is ``500 {"message":
    "Internal server error"}`` (API_CONFIGURATION_ERROR). Without a Content-Type from the function,
    it is application/json.
  * ``headers`` and ``multiValueHeaders`` are merged into one list per name (names compared without
    case); a ``headers`` value that repeats a multi value appears once. Headers API Gateway reserves (Content-Length, Connection, Date, Server, WWW-Authenticate,
    Authorization, Transfer-Encoding) come out renamed ``x-amzn-Remapped-<name>``.
  * Integration timeout (29 s by default, ``integration_timeout_s``):
    ``504 {"message": "Endpoint request timed out"}``.

Requests
  * A request body whose Content-Type is one of the API's binary media types is passed base64-encoded
    with ``isBase64Encoded: true``; any other is text (bytes that are not UTF-8 become U+FFFD).
  * Over 10 MB (``max_request_bytes``): ``413`` with the plain-text body API Gateway's front end
    sends, "HTTP content length exceeded 10485760 bytes." (observed on a live REST API; the
    documented REQUEST_TOO_LARGE gateway response is never reached for Content-Length bodies).
  * ``Authorization`` and ``User-Agent`` are re-cased as CloudFront does; ``Content-Length`` and
    ``Connection`` are not passed to the function; ``X-Forwarded-For/Port/Proto`` are added.

Stage (``throttling``, ``stage_variables``: the stage's ``MethodSettings`` and ``Variables``)
  * Each method has a token bucket (``ThrottlingRateLimit``, ``ThrottlingBurstLimit``; see
    ``localcloud.apigateway.throttle``): past it, ``429 {"message": "Too Many Requests"}``.
  * ``stageVariables`` in the event is the stage's ``Variables`` (null when it has none).
  * A MOCK integration (the ``OPTIONS`` preflight SAM's ``Cors`` generates) answers its
    ``responseParameters`` headers with its status, without a function; with a default authorizer
    SAM puts it behind the authorizer too (``AddDefaultAuthorizerToCorsPreflight``), as on AWS. A
    Lambda proxy answer gets no ``Access-Control-*`` header from API Gateway: the function returns them
    ("a proxy integration doesn't return an integration response", apigateway/latest/developerguide/how-to-cors.html).

Every response carries ``x-amzn-RequestId`` (= ``requestContext.requestId``), ``x-amz-apigw-id``
(= ``extendedRequestId``) and ``X-Amzn-Trace-Id``; the function sees the same trace id in the
``X-Amzn-Trace-Id`` request header (the client's own, if it sent one). API Gateway's own errors are
application/json with ``x-amzn-ErrorType``. With the pool's JWKS unreachable, a token is answered
``401 {"message": "Unauthorized"}`` (within the verifier's short fetch timeout), as AWS answers a
token its keys cannot verify.

Server: :class:`localcloud.http.HttpServer` on 127.0.0.1 (HTTP/1.1 keep-alive, TCP_NODELAY, one
``send`` per response; a busy port raises ``PortInUse``), nothing printed to stderr: pass
``on_request`` to get one dict per request for an access log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import queue
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from localcloud.apigateway.cognito import JwksUnavailable, TokenInvalid
from localcloud.apigateway.throttle import MethodThrottle, StageThrottle
from localcloud.apigateway.proxy import (
    GatewayError,
    InvokeOutcome,
    event_body,
    internal_error,
    proxy_response,
    query_parameters,
    request_headers,
)
from localcloud.errors import Throttled
from localcloud.http import BadRequest, HttpServer, Request

if TYPE_CHECKING:
    from localcloud.apigateway.cognito import CognitoVerifier

__all__ = ["InvokeOutcome", "LocalApiGateway", "MockResponse", "Route"]

log = logging.getLogger(__name__)

#: API Gateway's maximum payload size for REST APIs (10 MB).
MAX_REQUEST_BYTES = 10 * 1024 * 1024
#: REST API default (and, without a quota increase, maximum) integration timeout.
INTEGRATION_TIMEOUT_S = 29.0
#: How long a request waits for the local Lambda's account concurrency (a laptop's stand-in for the
#: 1,000 of an AWS account) before it is answered as a throttle. See ``LocalApiGateway._invoke_waiting``.
CONCURRENCY_WAIT_S = 10.0

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"})
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_PARAM_RE = re.compile(r"^\{([A-Za-z0-9._-]+)(\+?)\}$")


@dataclass(frozen=True)
class MockResponse:
    """A MOCK integration's answer (what SAM's ``Cors`` generates for the preflight ``OPTIONS``)."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True)
class Route:
    """One REST API method: ``method`` on resource ``path`` integrates with ``function`` (or is a ``mock``)."""

    method: str  # "GET", "POST", ... or "ANY"
    path: str  # API Gateway resource path, e.g. "/photos/{photo_id}" or "/files/{proxy+}"
    function: str | None  # the function to invoke (None: a mock integration)
    authorized: bool  # True => needs a valid Cognito ID token in the Authorization header
    mock: MockResponse | None = None


# -- helpers ------------------------------------------------------------------------------------


def _request_time(epoch_s: float) -> str:
    t = time.gmtime(epoch_s)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def _java_date(epoch_s: float) -> str:
    """Java's Date.toString() in UTC, the format API Gateway uses for exp/iat in claims."""
    t = time.gmtime(epoch_s)
    return (f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} UTC {t.tm_year}")


def _claim_str(name: str, value: Any) -> str:
    if name in ("exp", "iat") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return _java_date(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # e.g. cognito:groups
        return ",".join(_claim_str("", v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _apigw_id() -> str:
    # Shaped like API Gateway's extendedRequestId / x-amz-apigw-id, e.g. "Fp5K2G3oIAMFxxQ=".
    return base64.b64encode(secrets.token_bytes(10)).decode()


def _resource_id(path: str) -> str:
    digest = int.from_bytes(hashlib.sha1(path.encode()).digest()[:8], "big")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(6 if path != "/" else 10):
        digest, r = divmod(digest, 36)
        out.append(alphabet[r])
    return "".join(out)


def _trace_id(now: float) -> str:
    """An X-Ray trace id as API Gateway starts one: ``Root=1-<epoch, 8 hex>-<96 random bits>``."""
    return f"Root=1-{int(now):08x}-{secrets.token_hex(12)}"


def _trace_root(header: str | None) -> str | None:
    """``Root=...`` of a client's ``X-Amzn-Trace-Id`` (API Gateway continues the client's trace), or None."""
    for part in (header or "").split(";"):
        part = part.strip()
        if re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", part):
            return part
    return None


def _is_throttle(exc: BaseException) -> bool:
    if isinstance(exc, Throttled):
        return True
    error = getattr(exc, "response", None)
    return isinstance(error, dict) and error.get("Error", {}).get("Code") == "TooManyRequestsException"


class _Resource:
    """A resource path with its methods, compiled for matching."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.resource_id = _resource_id(path)
        self.methods: dict[str, Route] = {}
        # Each segment: ("lit", text) | ("param", name) | ("greedy", name)
        self.segments: list[tuple[str, str]] = []
        for part in [p for p in path.split("/") if p] if path != "/" else []:
            m = _PARAM_RE.match(part)
            if m:
                self.segments.append(("greedy" if m.group(2) else "param", m.group(1)))
            elif "{" in part or "}" in part:
                raise ValueError(f"route path {path!r}: {part!r} is not a valid path segment "
                                 "(a parameter must be a whole segment, e.g. {photo_id})")
            else:
                self.segments.append(("lit", part))
        for kind, _ in self.segments[:-1]:
            if kind == "greedy":
                raise ValueError(f"route path {path!r}: a greedy {{name+}} parameter must be the last segment")
        # Two resources with the same shape but different parameter names clash.
        self.shape = tuple((kind, text if kind == "lit" else "") for kind, text in self.segments)

    def match(self, segments: list[str]) -> tuple[tuple[int, ...], dict[str, str]] | None:
        """(rank, path parameters) if this resource matches; higher rank = more specific."""
        rank: list[int] = []
        params: dict[str, str] = {}
        for i, (kind, text) in enumerate(self.segments):
            if kind == "greedy":
                rest = segments[i:]
                if not rest:
                    return None
                params[text] = "/".join(rest)
                rank.append(0)
                return tuple(rank), params
            if i >= len(segments):
                return None
            segment = segments[i]
            if kind == "lit":
                if urllib.parse.unquote(segment) != text:
                    return None
                rank.append(2)
            else:
                if not segment:
                    return None
                params[text] = segment
                rank.append(1)
        if len(segments) != len(self.segments):
            return None
        return tuple(rank), params


class _Call:
    __slots__ = ("args", "done", "error", "fn", "result")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args)
        except BaseException as e:  # noqa: BLE001 - handed back to the waiting request thread
            self.error = e
        finally:
            self.done.set()


class _DaemonPool:
    """Runs integration calls on reusable daemon threads so a request can stop waiting after the
    integration timeout (the call itself goes on, as a Lambda invocation does when API Gateway
    gives up). Daemon threads: a stuck function never blocks interpreter exit."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Call:
        call = _Call(fn, args)
        with self._lock:
            if self._closed:
                raise RuntimeError("the gateway is stopped")
            reuse = self._idle > 0
            if reuse:
                self._idle -= 1
        if reuse:
            self._queue.put(call)
        else:
            threading.Thread(target=self._work, args=(call,), name="apigw-integration", daemon=True).start()
        return call

    def _work(self, call: _Call | None) -> None:
        while call is not None:
            call.run()
            with self._lock:
                if self._closed:
                    return
                self._idle += 1
            call = self._queue.get()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, 0
        for _ in range(idle):
            self._queue.put(None)


# -- the gateway ----------------------------------------------------------------------------------


class LocalApiGateway:
    """A REST API (Lambda proxy integrations, optional Cognito authorizer) served on 127.0.0.1."""

    def __init__(
        self,
        *,
        routes: Sequence[Route],
        invoke: Callable[[str, dict], InvokeOutcome],
        verifier: CognitoVerifier | None,
        host: str = "127.0.0.1",
        port: int = 0,
        stage: str = "Prod",
        api_id: str = "local",
        region: str = "us-east-1",
        account_id: str = "123456789012",
        on_request: Callable[[dict], None] | None = None,
        integration_timeout_s: float | None = INTEGRATION_TIMEOUT_S,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        binary_media_types: Sequence[str] = (),
        stage_variables: dict[str, str] | None = None,
        throttling: Sequence[MethodThrottle] = (),
        concurrency_wait_s: float = CONCURRENCY_WAIT_S,
    ) -> None:
        """``binary_media_types``, ``stage_variables`` and ``throttling`` are the RestApi's
        ``BinaryMediaTypes`` and its stage's ``Variables`` and ``MethodSettings``."""
        if not stage or not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", stage):
            raise ValueError(f"stage {stage!r}: only letters, digits, '-' and '_' (at most 128)")
        self._resources: list[_Resource] = []
        by_path: dict[str, _Resource] = {}
        shapes: dict[tuple[Any, ...], _Resource] = {}
        for route in routes:
            method = route.method.upper()
            if method not in _METHODS:
                raise ValueError(f"route {route}: method must be one of {sorted(_METHODS)}")
            if not route.path.startswith("/"):
                raise ValueError(f"route {route}: path must start with '/'")
            path = route.path if route.path == "/" else route.path.rstrip("/")
            resource = by_path.get(path)
            if resource is None:
                resource = _Resource(path)
                clash = shapes.get(resource.shape)
                if clash is not None:
                    raise ValueError(f"routes {clash.path!r} and {path!r} are the same resource with "
                                     "different parameter names (API Gateway refuses this)")
                shapes[resource.shape] = by_path[path] = resource
                self._resources.append(resource)
            if method in resource.methods:
                raise ValueError(f"two routes for {method} {path}")
            if route.authorized and verifier is None:
                raise ValueError(f"route {method} {path} is authorized but no verifier was given")
            if (route.function is None) == (route.mock is None):
                raise ValueError(f"route {method} {path}: give either a function or a mock response")
            resource.methods[method] = Route(method, path, route.function, route.authorized, route.mock)
        self._invoke = invoke
        self._verifier = verifier
        self._host = host
        self.stage = stage
        self.api_id = api_id
        self.region = region
        self.account_id = account_id
        self._on_request = on_request
        self._timeout = integration_timeout_s
        self._max_request_bytes = max_request_bytes
        self._binary_media_types = tuple(binary_media_types)
        self._stage_variables = dict(stage_variables) if stage_variables else None
        self._throttle = StageThrottle(throttling)
        self._concurrency_wait_s = concurrency_wait_s
        self._freed = threading.Condition()  # an invocation ended: a request waiting for concurrency may go
        self._deployment_id = _resource_id(secrets.token_hex(8))
        self._http = HttpServer(self._serve, host=host, port=port, name="LocalApiGateway")
        self._pool: _DaemonPool | None = None
        self._lifecycle = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen and serve in a background thread; returns once connections are accepted.

        A busy port raises ``PortInUse`` (an ``OSError`` and a ``CloudError``) naming it.
        """
        with self._lifecycle:
            if self._http.running:
                raise RuntimeError("LocalApiGateway is already started")
            self._pool = _DaemonPool()
            try:
                self._http.start()
            except BaseException:
                self._pool.close()
                self._pool = None
                raise

    def redeploy(self, other: "LocalApiGateway") -> None:
        """Serve ``other``'s API (routes, authorizer, stage...) from now on, on this gateway's port and
        connections: a stack update deploys the API anew, and API Gateway keeps answering while it does."""
        # the server itself stays, and so does the signal that wakes requests waiting for concurrency
        runtime = {"_http", "_pool", "_lifecycle", "_freed"}
        for name, value in vars(other).items():
            if name not in runtime:
                setattr(self, name, value)

    def stop(self) -> None:
        """Stop serving, close every connection and join the server thread. Idempotent."""
        with self._lifecycle:
            # requests in flight get 2 s to finish (and their on_request records land), but a slow
            # function is not waited for: its thread is a daemon and its client has been disconnected
            self._http.stop(drain_s=2.0)
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> LocalApiGateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if not self._http.running:
            raise RuntimeError("LocalApiGateway is not started: call start() (or use it in a with block)")
        return self._http.port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/`` (requests may add the stage: ``<url>Prod/...``)."""
        return f"http://{self._host}:{self.port}/"

    # -- one request ----------------------------------------------------------------------------

    def _serve(self, h: Request) -> None:
        started = time.perf_counter()
        now = time.time()
        request_id = str(uuid.uuid4())
        apigw_id = _apigw_id()
        method = h.command
        raw_target = h.path
        info: dict[str, Any] = {"method": method, "path": raw_target.split("?", 1)[0],
                                "request_id": request_id, "function": None, "error": None,
                                "trace_id": _trace_root(h.headers.get("X-Amzn-Trace-Id")) or _trace_id(now)}
        try:
            status, headers, body = self._handle(h, now, request_id, apigw_id, info)
        except GatewayError as e:
            status, headers, body = self._gateway_error(e, info)
        except (ConnectionError, TimeoutError):
            raise  # the client went away: nothing to answer
        except Exception as e:  # a bug here must still answer the client
            log.exception("LocalApiGateway: internal error")
            status, headers, body = self._gateway_error(internal_error(500, f"gateway bug: {e!r}"), info)
        self._send(h, status, headers, body, request_id, apigw_id, info["trace_id"])
        info["status"] = status
        info["latency_ms"] = (time.perf_counter() - started) * 1000.0
        if self._on_request is not None:
            try:
                self._on_request(info)
            except Exception:
                log.exception("LocalApiGateway: on_request hook failed")

    def _invoke_waiting(self, function: str, event: dict[str, Any]) -> InvokeOutcome:
        """``invoke``, waiting up to ``concurrency_wait_s`` while the local account concurrency is used up.

        AWS would run the request (an account has 1,000 concurrent executions, a laptop far fewer);
        waiting for an environment to come free gives the answer AWS gives, later. A function's own
        reserved concurrency is the template's choice: its throttle is answered at once, as on AWS.
        """
        deadline = time.monotonic() + self._concurrency_wait_s
        while True:
            try:
                outcome = self._invoke(function, event)
            except Throttled as e:
                left = deadline - time.monotonic()
                if e.reason == "ReservedFunctionConcurrentInvocationLimitExceeded" or left <= 0:
                    raise
                with self._freed:  # woken when one of this API's invocations ends; other sources' within 50 ms
                    self._freed.wait(min(0.05, left))
                continue
            except BaseException:
                self._notify_freed()
                raise
            self._notify_freed()
            return outcome

    def _notify_freed(self) -> None:
        with self._freed:
            self._freed.notify()

    @staticmethod
    def _gateway_error(e: GatewayError, info: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        info["error"] = e.log_error
        if e.status == 413:  # the front end's answer: plain text, and the unread body ends the connection
            return 413, [("Content-Type", "text/plain"), ("Connection", "close")], (e.message or "").encode()
        headers = [("Content-Type", "application/json")]
        if e.error_type:
            headers.append(("x-amzn-ErrorType", e.error_type))
        return e.status, headers, json.dumps({"message": e.message}).encode()

    def _read_body(self, h: Request) -> bytes:
        limit = self._max_request_bytes
        try:
            return h.read_body(limit)
        except BadRequest as e:
            if e.status == 413:
                raise GatewayError(413, f"HTTP content length exceeded {limit} bytes.", None,
                                    "request body too large") from None
            raise GatewayError(400, "Bad Request", None, e.message) from None

    def _route(self, segments: list[str]) -> tuple[_Resource, dict[str, str]] | None:
        best: tuple[tuple[int, ...], _Resource, dict[str, str]] | None = None
        for resource in self._resources:
            m = resource.match(segments)
            if m is not None and (best is None or m[0] > best[0]):
                best = (m[0], resource, m[1])
        return None if best is None else (best[1], best[2])

    def _handle(self, h: Request, now: float, request_id: str, apigw_id: str,
                info: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        method = h.command
        target = h.path
        if target.startswith(("http://", "https://")):  # absolute-form request target
            parts = urllib.parse.urlsplit(target)
            target = parts.path + ("?" + parts.query if parts.query else "")
        raw_path, _, raw_query = target.partition("?")
        raw_query = raw_query.split("#", 1)[0]
        if not raw_path.startswith("/"):
            raw_path = "/" + raw_path
        body = self._read_body(h)

        stage_prefix = "/" + self.stage
        if raw_path == stage_prefix or raw_path.startswith(stage_prefix + "/"):
            path = raw_path[len(stage_prefix):] or "/"
        else:
            path = raw_path

        segments = path.split("/")[1:]
        if segments and segments[-1] == "":
            segments.pop()  # a trailing slash does not change the resource
        found = self._route(segments)
        route = None
        if found is not None:
            resource, path_params = found
            route = resource.methods.get(method) or resource.methods.get("ANY")
        authorization = h.headers.get("Authorization")
        if route is None:
            if authorization:
                digest = base64.b64encode(hashlib.sha256(authorization.encode("utf-8", "surrogateescape"))
                                          .digest()).decode()
                raise GatewayError(
                    403, "Invalid key=value pair (missing equal-sign) in Authorization header "
                         f"(hashed with SHA-256 and encoded with Base64): '{digest}'.",
                    "IncompleteSignatureException", "no such resource/method (Authorization header present)")
            raise GatewayError(403, "Missing Authentication Token", "MissingAuthenticationTokenException",
                                "no such resource/method")
        info["function"] = route.function
        info["resource"] = resource.path
        if not self._throttle.allow(resource.path, route.method):
            raise GatewayError(429, "Too Many Requests", "TooManyRequestsException",
                                f"stage throttling: {route.method} {resource.path} is over its rate or burst")

        claims = None
        if route.authorized:
            claims = self._authorize(authorization, info)
        if route.mock is not None:
            return route.mock.status, list(route.mock.headers), route.mock.body

        event = self._event(h, now, request_id, apigw_id, method, path, raw_query, body,
                            resource, route, path_params, claims, info["trace_id"])
        assert route.function is not None
        outcome = self._call(route.function, event)
        return proxy_response(outcome, h.headers.get("Accept"), self._binary_media_types)

    def _authorize(self, authorization: str | None, info: dict[str, Any]) -> dict[str, str]:
        assert self._verifier is not None
        token = (authorization or "").strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            raise GatewayError(401, "Unauthorized", "UnauthorizedException", "no Authorization header")
        try:
            claims = self._verifier.verify(token)
        except TokenInvalid as e:
            if e.reason == "expired":
                raise GatewayError(401, "The incoming token has expired", "UnauthorizedException",
                                    f"token invalid: {e}") from None
            raise GatewayError(401, "Unauthorized", "UnauthorizedException", f"token invalid: {e}") from None
        except JwksUnavailable as e:
            # The pool's keys cannot be had (the local JWKS endpoint is down): on AWS the keys are always
            # there, and a token they cannot verify (an unknown kid) is answered 401 Unauthorized.
            log.warning("LocalApiGateway: %s", e)
            raise GatewayError(401, "Unauthorized", "UnauthorizedException", f"JWKS unavailable: {e}") from None
        info["principal"] = claims.get("sub")
        return {name: _claim_str(name, value) for name, value in claims.items()}

    def _event(self, h: Request, now: float, request_id: str, apigw_id: str, method: str, path: str,
               raw_query: str, body: bytes, resource: _Resource, route: Route,
               path_params: dict[str, str], claims: dict[str, str] | None, trace_id: str) -> dict[str, Any]:
        port = h.server.server_address[1]
        headers = request_headers(h.headers.items(), h.client_address[0], port)
        if "x-amzn-trace-id" not in headers.spelled:
            headers.add("X-Amzn-Trace-Id", trace_id)
        query, multi_query = query_parameters(raw_query)
        body_field, is_b64 = event_body(body, headers.get("content-type"), self._binary_media_types)
        host = headers.get("host") or f"{self._host}:{port}"
        return {
            "resource": resource.path,
            "path": path,
            "httpMethod": method,
            "headers": headers.single or None,
            "multiValueHeaders": headers.multi or None,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_params or None,
            "stageVariables": dict(self._stage_variables) if self._stage_variables else None,
            "requestContext": self._request_context(h, now, request_id, apigw_id, method, path, host,
                                                    headers.get("user-agent"), resource, claims),
            "body": body_field,
            "isBase64Encoded": is_b64,
        }

    def _request_context(self, h: Request, now: float, request_id: str, apigw_id: str, method: str, path: str,
                         host: str, user_agent: str | None, resource: _Resource,
                         claims: dict[str, str] | None) -> dict[str, Any]:
        context: dict[str, Any] = {"accountId": self.account_id, "apiId": self.api_id}
        if claims is not None:
            context["authorizer"] = {"claims": claims}
        identity = dict.fromkeys(("accessKey", "accountId", "caller", "cognitoAuthenticationProvider",
                                  "cognitoAuthenticationType", "cognitoIdentityId", "cognitoIdentityPoolId",
                                  "principalOrgId", "sourceIp", "user", "userAgent", "userArn"))
        identity.update(sourceIp=h.client_address[0], userAgent=user_agent)
        context.update({
            "deploymentId": self._deployment_id,
            "domainName": host,
            "domainPrefix": host.split(":", 1)[0].split(".", 1)[0],
            "extendedRequestId": apigw_id,
            "httpMethod": method,
            "identity": identity,
            "path": f"/{self.stage}{path}",
            "protocol": h.request_version,
            "requestId": request_id,
            "requestTime": _request_time(now),
            "requestTimeEpoch": int(now * 1000),
            "resourceId": resource.resource_id,
            "resourcePath": resource.path,
            "stage": self.stage,
        })
        return context

    def _call(self, function: str, event: dict[str, Any]) -> InvokeOutcome:
        try:
            if self._timeout is None:
                return self._invoke_waiting(function, event)
            pool = self._pool
            if pool is None:
                raise RuntimeError("the gateway is stopped")
            call = pool.submit(self._invoke_waiting, function, event)
            if not call.done.wait(self._timeout):
                raise GatewayError(504, "Endpoint request timed out", None,
                                    f"integration timed out after {self._timeout} s")
            if call.error is not None:
                raise call.error
            return call.result
        except GatewayError:
            raise
        except Exception as e:
            # The Lambda API refused the invocation: API Gateway answers 500 (not 502, not 429).
            if _is_throttle(e):
                raise internal_error(500, "Lambda invocation failed with status: 429 "
                                           "(TooManyRequestsException, Rate Exceeded)") from None
            log.warning("LocalApiGateway: invoking %s failed: %r", function, e)
            raise internal_error(500, f"Lambda invocation failed: {type(e).__name__}: {e}") from None

    @staticmethod
    def _send(h: Request, status: int, headers: list[tuple[str, str]], body: bytes,
              request_id: str, apigw_id: str, trace_id: str) -> None:
        h.respond(status, [*headers, ("x-amzn-RequestId", request_id), ("x-amz-apigw-id", apigw_id),
                           ("X-Amzn-Trace-Id", f"{trace_id};Sampled=0")], body)
