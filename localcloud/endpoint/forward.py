"""Forwarding one HTTP request to another server (moto), over kept-alive connections; which AWS service a request is for.

``service_of(request)`` reads the SigV4 credential scope (``Credential=AKID/20261201/us-east-1/lambda/aws4_request``)
from the ``Authorization`` header, or from ``X-Amz-Credential`` in the query string of a presigned URL: the
service name the SDK signed for, which is how one endpoint tells Lambda's calls from S3's.
"""

from __future__ import annotations

import http.client
import re
import threading
import urllib.parse
from typing import Any

from localcloud.http import Request

__all__ = ["HOP_BY_HOP", "MAX_REQUEST_BYTES", "Forwarder", "service_of"]

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                        "upgrade"})
#: the largest body forwarded (S3's largest single PUT): in effect, any
MAX_REQUEST_BYTES = 5 * 1024**3


def service_of(headers: Any, path: str) -> str:
    """The SigV4 service name a request was signed for (``""`` when it is not signed)."""
    scope = _SCOPE.search(headers.get("Authorization", "") or "")
    if scope:
        return scope.group(1)
    if "X-Amz-Credential" in path:  # a presigned URL: the scope is in the query string
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        parts = (query.get("X-Amz-Credential") or [""])[0].split("/")
        return parts[3] if len(parts) >= 5 else ""
    return ""


class Forwarder:
    """Sends requests on to ``target`` (``http://host:port``) and relays the answers, reusing idle connections."""

    def __init__(self, target: str, timeout: float = 60.0, keep: int = 32) -> None:
        split = urllib.parse.urlsplit(target)
        self.host = split.hostname or "127.0.0.1"
        self.port = split.port or 80
        self.timeout = timeout
        self.keep = keep
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def __call__(self, request: Request, body: bytes | None = None) -> None:
        """Forward ``request`` (its body read here unless given) and answer it with the upstream's answer."""
        if body is None:
            body = request.read_body(MAX_REQUEST_BYTES)
        answer, data = self._exchange(request, body)
        head = request.command == "HEAD"  # the upstream's Content-Length describes a body not sent
        request.respond(answer.status, [(name, value) for name, value in answer.getheaders()
                                        if name.lower() not in HOP_BY_HOP
                                        and (head or name.lower() != "content-length")],
                        data, answer.reason)

    def _exchange(self, request: Request, body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
        conn, reused = self._take()
        try:
            try:
                answer = self._send(conn, request, body)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not reused:
                    raise
                # the upstream closed the idle connection before this request reached it: nothing was done
                conn.close()
                conn, reused = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout), False
                answer = self._send(conn, request, body)
            data = answer.read()
        except BaseException:
            conn.close()
            raise
        if answer.will_close:
            conn.close()
        else:
            self._give_back(conn)
        return answer, data

    @staticmethod
    def _send(conn: http.client.HTTPConnection, request: Request, body: bytes) -> http.client.HTTPResponse:
        conn.putrequest(request.command, request.path, skip_host=True, skip_accept_encoding=True)
        for name, value in request.headers.items():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                conn.putheader(name, value)
        if body or "Content-Length" in request.headers or "Transfer-Encoding" in request.headers:
            # the body was read whole (a chunked one decoded): it goes on with its length
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        return conn.getresponse()

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout), False

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
