"""The Runtime API of one execution environment: the routes awslambdaric calls, their answers, the messages they post.

The `Lambda Runtime API <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>`_ on
127.0.0.1:<free port> (the environment's ``AWS_LAMBDA_RUNTIME_API``):

* ``GET  /2018-06-01/runtime/invocation/next`` — long poll; answers with the event and the
  ``Lambda-Runtime-*`` headers (request id, deadline, function ARN, trace id, client context,
  Cognito identity);
* ``POST /2018-06-01/runtime/invocation/{id}/response`` — 202; 413 past 6,291,556 bytes;
* ``POST /2018-06-01/runtime/invocation/{id}/error`` — 202;
* ``POST /2018-06-01/runtime/init/error`` — 202;
* 400 for an unknown request id, 403 for a second answer to the same request.

The environment hands an invocation to GET next with :meth:`RuntimeApi.deliver`; what the runtime
says comes back as one message per kind (:data:`RuntimeMessage`) in the environment's mailbox,
always before the runtime hears its 202.
"""

from __future__ import annotations

import collections
import json
import queue
import secrets
import threading
import time
from dataclasses import dataclass

from localcloud.http import HttpServer, Request
from localcloud.lambda_service.spec import MAX_RESPONSE_PAYLOAD

__all__ = [
    "InitError",
    "Invocation",
    "InvocationError",
    "InvocationResponse",
    "ResponseTooLarge",
    "RuntimeApi",
    "RuntimeMessage",
    "RuntimeReady",
]

_API = "/2018-06-01/runtime/"
_NEXT = _API + "invocation/next"
_INIT_ERROR = _API + "init/error"
_INVOCATION = _API + "invocation/"
_ERROR_TYPE = "Lambda-Runtime-Function-Error-Type"
_MAX_BODY = 64 * 1024 * 1024  # what the local Runtime API reads at all
_JSON = ("Content-Type", "application/json")


@dataclass(slots=True)
class Invocation:
    """One event for GET next: its request id, its ``Lambda-Runtime-*`` headers, its payload."""

    request_id: str
    headers: list[tuple[str, str]]
    payload: bytes
    delivered_at: float | None = None  # time.monotonic() when GET next answered with it

    @classmethod
    def of(cls, request_id: str, payload: bytes, *, deadline_ms: int, function_arn: str,
           client_context: dict | None, cognito_identity: dict | None) -> Invocation:
        trace = (f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
                 f"Parent={secrets.token_hex(8)};Sampled=0")
        headers = [
            ("Lambda-Runtime-Aws-Request-Id", request_id),
            ("Lambda-Runtime-Deadline-Ms", str(deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", function_arn),
            # awslambdaric 4.2.2's native client crashes (SIGSEGV) on a next without this one
            ("Lambda-Runtime-Trace-Id", trace),
        ]
        if client_context is not None:
            headers.append(("Lambda-Runtime-Client-Context", json.dumps(client_context)))
        if cognito_identity is not None:
            headers.append(("Lambda-Runtime-Cognito-Identity", json.dumps(cognito_identity)))
        return cls(request_id, headers, payload)


# ----------------------------------------------------------------------------- what the runtime says


@dataclass(frozen=True, slots=True)
class RuntimeReady:
    """The runtime's first GET next: it has imported the handler, its init is over."""

    at: float


@dataclass(frozen=True, slots=True)
class InvocationResponse:
    """POST .../response within the size limit: the function's result."""

    at: float
    body: bytes


@dataclass(frozen=True, slots=True)
class InvocationError:
    """POST .../error: the function raised."""

    at: float
    body: bytes
    error_type: str | None  # Lambda-Runtime-Function-Error-Type


@dataclass(frozen=True, slots=True)
class ResponseTooLarge:
    """POST .../response past MAX_RESPONSE_PAYLOAD (answered 413)."""

    at: float


@dataclass(frozen=True, slots=True)
class InitError:
    """POST /runtime/init/error: the handler's module could not be imported."""

    at: float
    body: bytes
    error_type: str | None  # Lambda-Runtime-Function-Error-Type


RuntimeMessage = RuntimeReady | InvocationResponse | InvocationError | ResponseTooLarge | InitError


# ----------------------------------------------------------------------------- the server


def _accepted(request: Request) -> None:
    request.respond(202, [_JSON], b'{"status":"OK"}', "Accepted")


def _error(request: Request, status: int, error_type: str, message: str, reason: str | None = None) -> None:
    request.respond(status, [_JSON], json.dumps({"errorMessage": message, "errorType": error_type}).encode(),
                    reason)


class RuntimeApi:
    """One environment's Runtime API: hands invocations to GET next, posts what the runtime says to ``mailbox``."""

    def __init__(self, mailbox: queue.SimpleQueue[RuntimeMessage], name: str) -> None:
        self._mailbox = mailbox
        self._next: queue.SimpleQueue[Invocation | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # the state below
        self._ready = False
        self._current: Invocation | None = None
        self._answered: collections.deque[str] = collections.deque(maxlen=32)
        self._server = HttpServer(self._handle, name=name, idle_timeout=None)  # silent while a function runs or a debugger holds it

    def start(self) -> int:
        """Listen on a free port, and return it."""
        return self._server.start().port

    def deliver(self, invocation: Invocation) -> None:
        """The answer to the runtime's (next) GET next."""
        self._next.put(invocation)

    def close(self) -> None:
        """End a blocked GET next without an answer and close every connection. Idempotent."""
        self._next.put(None)
        self._server.stop()

    def _handle(self, request: Request) -> None:
        body = request.read_body(_MAX_BODY)
        method, path = request.command, request.target_path
        if method == "GET" and path == _NEXT:
            self._next_invocation(request)
            return
        if method == "POST" and path == _INIT_ERROR:
            self._init_error(request, body)
            return
        if method == "POST" and path.startswith(_INVOCATION):
            request_id, _, kind = path[len(_INVOCATION):].partition("/")
            if kind in ("response", "error"):
                self._answer(request, request_id, kind, body)
                return
        _error(request, 404, "InvalidRequest", f"No route for {method} {path}")

    def _next_invocation(self, request: Request) -> None:
        now = time.monotonic()
        with self._lock:
            first, self._ready = not self._ready, True
        if first:
            self._mailbox.put(RuntimeReady(now))
        invocation = self._next.get()
        if invocation is None:  # the environment is going away: no answer, as Lambda freezes it
            self._next.put(None)  # for any other GET next still waiting
            request.close_connection = True
            return
        with self._lock:
            self._current = invocation
        invocation.delivered_at = time.monotonic()
        request.respond(200, [_JSON, *invocation.headers], invocation.payload, "OK")

    def _init_error(self, request: Request, body: bytes) -> None:
        with self._lock:
            ready = self._ready
        if ready:
            _error(request, 403, "InvalidStateTransition",
                   "State transition from Ready to InitError failed for runtime.")
            return
        self._mailbox.put(InitError(time.monotonic(), body, request.headers.get(_ERROR_TYPE)))
        _accepted(request)

    def _answer(self, request: Request, request_id: str, kind: str, body: bytes) -> None:
        now = time.monotonic()
        with self._lock:
            current = self._current is not None and self._current.request_id == request_id
            again = not current and request_id in self._answered
            if current:
                self._current = None
                self._answered.append(request_id)
        if again:
            _error(request, 403, "InvalidStateTransition",
                   "Invalid state transition: the invocation is already answered.")
        elif not current:
            _error(request, 400, "InvalidRequestID", "Invalid request ID")
        elif kind == "response" and len(body) > MAX_RESPONSE_PAYLOAD:
            self._mailbox.put(ResponseTooLarge(now))
            _error(request, 413, "RequestEntityTooLarge",
                   f"Exceeded maximum allowed payload size ({MAX_RESPONSE_PAYLOAD} bytes).",
                   "Request Entity Too Large")
        elif kind == "response":
            self._mailbox.put(InvocationResponse(now, body))
            _accepted(request)
        else:
            self._mailbox.put(InvocationError(now, body, request.headers.get(_ERROR_TYPE)))
            _accepted(request)
