"""A fault-injecting HTTP proxy in front of moto: make chosen AWS calls fail, N times.

Point a function (or any SDK) at the proxy instead of moto, through ``AWS_ENDPOINT_URL``, and tell
the proxy which calls to break::

    from localcloud.faults import FaultProxy

    with FaultProxy(cloud.endpoint_url) as proxy:
        spec = cloud.runtime.spec("CreateThumbnailFunction")
        cloud.runtime.register(dataclasses.replace(
            spec, environment={**spec.environment, "AWS_ENDPOINT_URL": proxy.url}))
        rule = proxy.fail("s3", "GetObject", times=3)         # three 500s, then through
        proxy.fail("dynamodb", "TransactWriteItems", times=1, match="QuotaTable", status=400)
        proxy.delay("s3", "GetObject", seconds=5, times=1)     # a slow call (timeouts)
        ...
        assert rule.hits == 3

Calls are recognised as AWS sees them: the service from the SigV4 credential scope in the
``Authorization`` header (``.../us-east-1/dynamodb/aws4_request``), the operation from
``X-Amz-Target`` (JSON protocols: DynamoDB, SQS), the ``Action`` form field (query protocols: SNS)
or, for S3, the method and path (``GetObject``, ``PutObject``, ``DeleteObject``, ``HeadObject``,
``ListObjects``, ``PutBucket...``). ``match`` narrows a rule to requests whose path or body contains
a string (a table or bucket name).

A failure is an error response in the service's own format, so the SDK handles it as it would a real
one: 500 ``InternalError``/``InternalServerError`` (the SDK retries it: botocore's standard mode
tries 3 times, so ``times=3`` fails one SDK call), 400 with a code of your choice (not retried),
or ``drop`` (the connection is closed without an answer, as when a network path dies).
Everything else is forwarded untouched. Every request is counted in ``proxy.seen``.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from localcloud.endpoint.forward import MAX_REQUEST_BYTES, Forwarder, service_of
from localcloud.http import HttpServer, Request

__all__ = ["FaultProxy", "Rule"]


@dataclass
class Rule:
    service: str  # "s3", "dynamodb", "sns", ... or "*"
    operation: str  # "GetObject", "TransactWriteItems", "Publish", ... or "*"
    times: int  # how many matching requests to break (then the rule is spent)
    kind: str = "error"  # error | drop | delay
    status: int = 500
    code: str | None = None  # the error code; default InternalError / InternalServerError
    match: str | None = None  # a substring the path or body must contain
    seconds: float = 0.0  # delay: how long to hold the request before forwarding it
    hits: int = 0
    requests: list[str] = field(default_factory=list)

    @property
    def spent(self) -> bool:
        return self.hits >= self.times

    def applies(self, service: str, operation: str, path: str, body: bytes) -> bool:
        if self.spent or self.service not in ("*", service) or self.operation not in ("*", operation):
            return False
        return self.match is None or self.match in path or self.match.encode() in body


def identify(method: str, path: str, headers: Any, body: bytes) -> tuple[str, str]:
    """(service, operation) of an AWS request, as well as it can be told from the outside."""
    service = service_of(headers, path)
    target = headers.get("X-Amz-Target")
    if target:
        return service, target.rsplit(".", 1)[-1]
    content_type = headers.get("Content-Type", "") or ""
    if "x-www-form-urlencoded" in content_type:
        action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return service, action[0]
    if service == "s3":
        return service, _s3_operation(method, path)
    return service, method


def _s3_operation(method: str, path: str) -> str:
    split = urllib.parse.urlsplit(path)
    parts = [p for p in split.path.split("/") if p]
    has_key = len(parts) >= 2
    if method == "GET":
        return "GetObject" if has_key else "ListObjects"
    if method == "PUT":
        return "PutObject" if has_key else "PutBucket"
    if method == "DELETE":
        return "DeleteObject" if has_key else "DeleteBucket"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "POST":
        return "PostObject"
    return method


def _error_response(service: str, rule: Rule, headers: Any) -> tuple[int, str, bytes]:
    status = rule.status
    json_protocol = bool(headers.get("X-Amz-Target"))
    if json_protocol:
        code = rule.code or ("InternalServerError" if status >= 500 else "ValidationException")
        prefix = "com.amazonaws.dynamodb.v20120810#" if service == "dynamodb" else ""
        body = ('{"__type": "%s%s", "message": "injected fault"}' % (prefix, code)).encode()
        return status, "application/x-amz-json-1.0", body
    code = rule.code or ("InternalError" if status >= 500 else "InvalidRequest")
    if service == "s3":
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>injected fault</Message></Error>"
    else:
        kind = "Receiver" if status >= 500 else "Sender"
        body = (f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>injected fault</Message>"
                f"</Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>")
    return status, "text/xml", body.encode()


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 that forwards to ``target`` (moto) and breaks the calls it is told to."""

    def __init__(self, target: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self._forward = Forwarder(target)
        self.rules: list[Rule] = []
        self.seen: Counter = Counter()  # (service, operation) -> requests
        self.injected: Counter = Counter()  # (service, operation, kind) -> faults
        self._lock = threading.Lock()
        self._http = HttpServer(self._serve, host=host, port=port, name="FaultProxy")

    # ----------------------------------------------------------------- rules

    def fail(self, service: str, operation: str, times: int = 1, *, status: int = 500, code: str | None = None,
             match: str | None = None) -> Rule:
        """Answer the next ``times`` matching calls with an error of ``status`` (500: the SDK retries)."""
        return self._add(Rule(service, operation, times, "error", status, code, match))

    def drop(self, service: str, operation: str, times: int = 1, *, match: str | None = None) -> Rule:
        """Close the connection of the next ``times`` matching calls without answering."""
        return self._add(Rule(service, operation, times, "drop", match=match))

    def delay(self, service: str, operation: str, seconds: float, times: int = 1, *, match: str | None = None) -> Rule:
        """Hold the next ``times`` matching calls for ``seconds`` before forwarding them."""
        return self._add(Rule(service, operation, times, "delay", match=match, seconds=seconds))

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def _take(self, service: str, operation: str, path: str, body: bytes) -> Rule | None:
        with self._lock:
            self.seen[(service, operation)] += 1
            for rule in self.rules:
                if rule.applies(service, operation, path, body):
                    rule.hits += 1
                    rule.requests.append(f"{service}.{operation}")
                    self.injected[(service, operation, rule.kind)] += 1
                    return rule
        return None

    @property
    def faults_injected(self) -> int:
        with self._lock:
            return sum(self.injected.values())

    # ----------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return self._http.url.rstrip("/")

    def start(self) -> FaultProxy:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()
        self._forward.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- one request

    def _serve(self, request: Request) -> None:
        body = request.read_body(MAX_REQUEST_BYTES)
        service, operation = identify(request.command, request.path, request.headers, body)
        rule = self._take(service, operation, request.path, body)
        if rule is not None and rule.kind == "drop":
            request.close_connection = True
            try:
                request.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if rule is not None and rule.kind == "error":
            status, content_type, data = _error_response(service, rule, request.headers)
            request.respond(status, [("Content-Type", content_type),
                                     ("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")], data)
            return
        if rule is not None and rule.kind == "delay":
            time.sleep(rule.seconds)
        self._forward(request, body)
