"""The one HTTP/1.1 server every local server is built on (Runtime API, API Gateway, ALB, proxies, control).

``HttpServer(handle)`` listens on 127.0.0.1 and calls ``handle(request)`` in a thread per connection,
once per request; ``request`` is a ``Request`` (``http.server.BaseHTTPRequestHandler``) with
``read_body()`` and ``respond()``. What every server gets from it, once:

* a listen backlog sized for bursts of hundreds of connections (``BACKLOG``), not the stdlib's 5;
* TCP_NODELAY, and each response written in one piece (with ``Date`` and ``Content-Length``):
  headers and body sent separately would wait for the peer's delayed ACK, 40 ms a call;
* errors before a request reaches ``handle`` (a bad request line, oversized headers, a malformed or
  oversized body) answered as JSON ``{"message": ...}`` with the right status, not an HTML page;
* a busy port reported in one line (``PortInUse``, a ``CloudError`` and an ``OSError``), and a
  ``stop()`` that is immediate: the accept loop is woken by a socket pair instead of polling, and
  idle keep-alive connections are closed.
"""

from __future__ import annotations

import errno
import http
import http.client
import http.server
import json
import logging
import selectors
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any

from localcloud.errors import CloudError

__all__ = ["BACKLOG", "BadRequest", "HttpServer", "PortInUse", "Request"]

log = logging.getLogger(__name__)

#: listen(2) backlog: a burst of a few hundred connections waits in the kernel instead of being reset
#: (Linux caps it at net.core.somaxconn, 4096 by default).
BACKLOG = 1024
#: the longest request line or header line read (as AWS's front ends, a longer one is refused)
MAX_LINE = 65536
#: the most header lines a request may have (as http.client's limit)
MAX_HEADERS = 100


class PortInUse(CloudError, OSError):
    """The port asked for is taken by another process (an ``OSError`` with errno ``EADDRINUSE`` too)."""

    def __init__(self, host: str, port: int, what: str) -> None:
        super().__init__(
            f"{what} cannot listen on {host}:{port}: port {port} is taken (another local cloud, "
            f"`sam local start-api`, or another server?); stop that, or use another port "
            f"(--port 0, or port=0 in Python, picks a free one)")
        self.errno = errno.EADDRINUSE  # no strerror: str() stays the one line above
        self.port = port


class BadRequest(Exception):
    """A request that cannot be read: answered with ``status`` and ``{"message": message}``, connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Request(http.server.BaseHTTPRequestHandler):
    """One connection's requests, handed to the server's ``handle`` one at a time."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY: with one write per response, no 40 ms stall
    server: _Server

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # read by StreamRequestHandler.setup
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s - " + format, self.address_string(), *args)

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
            if len(self.raw_requestline) > MAX_LINE:
                self.requestline = self.request_version = self.command = ""
                self.send_error(http.HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():  # it has answered (send_error) already
                return
            try:
                self.server.handle(self)
            except BadRequest as e:
                self.send_error(e.status, e.message)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def parse_request(self) -> bool:
        """The request line and headers; plain header lines are read without the email package.

        The stdlib parses headers with ``email.parser``: some 80 µs a request, a third of a warm Lambda
        invoke (two Runtime API requests). Any request line but ``METHOD /path HTTP/1.1`` takes the
        stdlib's way.
        """
        words = self.raw_requestline.decode("latin-1").rstrip("\r\n").split(" ")
        if len(words) != 3 or words[2] != "HTTP/1.1" or not words[1].startswith("/") or words[1].startswith("//"):
            return super().parse_request()
        self.command, self.path, self.request_version = words
        self.requestline = " ".join(words)
        self.headers = headers = http.client.HTTPMessage()
        for _ in range(MAX_HEADERS + 1):
            line = self.rfile.readline(MAX_LINE + 1)
            if line in (b"\r\n", b"\n", b""):
                break
            if len(line) > MAX_LINE:
                self.send_error(431, "Line too long")
                return False
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or name[:1] in (" ", "\t"):  # RFC 9112: a folded or nameless line is refused
                self.send_error(400, "Bad Request: malformed header line")
                return False
            headers[name] = value.strip()
        else:
            self.send_error(431, "Too many headers")
            return False
        self.close_connection = headers.get("Connection", "").lower() == "close"
        if headers.get("Expect", "").lower() == "100-continue":
            return self.handle_expect_100()
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's error answer, as JSON: ``{"message": ...}``; the connection is closed after it."""
        try:
            phrase = http.HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        self.close_connection = True
        self.respond(code, [("Content-Type", "application/json"), ("Connection", "close")],
                     json.dumps({"message": message or phrase}).encode())

    @property
    def target_path(self) -> str:
        """The request target without its query string."""
        return self.path.split("?", 1)[0]

    def read_body(self, limit: int) -> bytes:
        """The request body (``Content-Length`` or chunked); ``BadRequest`` (400, 413) if malformed or over ``limit``."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            if "Content-Length" in self.headers:  # RFC 9112 6.3: chunked wins, and the connection ends after
                self.close_connection = True
            return self._read_chunked(limit)
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or ()}
        if not lengths:
            return b""
        # RFC 9112 6.3: differing Content-Length values (or one that is not all digits: int() would take
        # "+5" or "1_0") are an unrecoverable framing error; the rest would be read as another request.
        length_header = lengths.pop()
        if lengths or not length_header.isdigit() or not length_header.isascii():
            self.close_connection = True
            raise BadRequest(400, "Bad Request: invalid or conflicting Content-Length")
        length = int(length_header)
        if length > limit:
            self.close_connection = True  # the unread body would be taken for the next request
            raise BadRequest(413, f"HTTP content length exceeded {limit} bytes.")
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise ConnectionError("client closed the connection mid-body")
        return body

    def _read_chunked(self, limit: int) -> bytes:
        chunks, total = [], 0
        while True:
            size_line = self.rfile.readline(1024)
            if not size_line:
                raise ConnectionError("client closed the connection mid-body")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise BadRequest(400, "Bad Request: invalid chunked body") from None
            if size == 0:
                while self.rfile.readline(MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > limit:
                self.close_connection = True
                raise BadRequest(413, f"HTTP content length exceeded {limit} bytes.")
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise ConnectionError("client closed the connection mid-body")
            chunks.append(chunk)
            self.rfile.readline(3)  # the CRLF after the chunk

    def respond(self, status: int, headers: Iterable[tuple[str, str]], body: bytes = b"",
                reason: str | None = None) -> None:
        """Status line, headers and ``body`` in one write.

        ``Date`` and ``Content-Length`` are added unless ``headers`` has them (a proxy's answer to
        HEAD passes the upstream's length); 1xx and 204 answers get no ``Content-Length``.
        ``Connection: close`` in ``headers`` closes the connection after the answer; when the client
        asked to close (or the request could not be read to its end) the answer says so, and an
        HTTP/1.0 client that asked for keep-alive is told it is kept.
        """
        if reason is None:
            try:
                reason = http.HTTPStatus(status).phrase
            except ValueError:
                reason = ""
        head = [f"HTTP/1.1 {status} {reason}"]
        given: set[str] = set()
        for name, value in headers:
            head.append(f"{name}: {value}")
            lower = name.lower()
            given.add(lower)
            if lower == "connection" and value.lower() == "close":
                self.close_connection = True
        if "date" not in given:
            head.insert(1, f"Date: {_http_date()}")
        if "content-length" not in given and not (status < 200 or status == 204):
            head.append(f"Content-Length: {len(body)}")
        if "connection" not in given:
            if self.close_connection:
                head.append("Connection: close")
            elif self.request_version == "HTTP/1.0":
                head.append("Connection: keep-alive")  # parse_request kept it open: the client asked
        no_body = self.command == "HEAD" or status in (204, 304) or status < 200
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "replace")
        self.wfile.write(data if no_body else data + body)


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """Now as an HTTP date, formatted once a second."""
    global _date_cache
    now = int(time.time())
    cached = _date_cache
    if cached[0] != now:
        cached = _date_cache = (now, formatdate(now, usegmt=True))
    return cached[1]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = BACKLOG
    # SO_REUSEADDR lets a restarted server reuse its port at once on POSIX; on Windows it would
    # let two servers share a port, so a busy port would not be reported.
    allow_reuse_address = sys.platform != "win32"
    allow_reuse_port = False

    def __init__(self, address: tuple[str, int], handle: Callable[[Request], None], idle_timeout: float | None) -> None:
        self.handle = handle
        self.idle_timeout = idle_timeout
        self.connections: set[socket.socket] = set()
        self.handlers: set[threading.Thread] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, Request)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also calls socket.getfqdn(), a reverse DNS lookup that can take
        # seconds on some laptops; nothing here needs the server's name.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        me = threading.current_thread()
        with self.connections_lock:
            self.handlers.add(me)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.connections_lock:
                self.handlers.discard(me)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # clients hang up: not worth a word
        log.exception("error while handling a request from %s", client_address)


class HttpServer:
    """``handle(request)`` served on ``host:port`` in background threads, from ``start()`` to ``stop()``."""

    def __init__(self, handle: Callable[[Request], None], *, host: str = "127.0.0.1", port: int = 0,
                 name: str = "http", idle_timeout: float | None = 300.0) -> None:
        """``idle_timeout``: seconds after which an idle keep-alive connection is closed (None: never)."""
        self._handle = handle
        self._host = host
        self._port = port
        self.name = name
        self._idle_timeout = idle_timeout
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._lifecycle = threading.Lock()

    def start(self) -> HttpServer:
        """Listen and serve in a background thread; returns once connections are accepted."""
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError(f"{self.name} is already started")
            try:
                server = _Server((self._host, self._port), self._handle, self._idle_timeout)
            except OSError as e:
                if self._port and e.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
                    raise PortInUse(self._host, self._port, self.name) from None
                raise
            self._server = server
            self._wake = socket.socketpair()
            self._thread = threading.Thread(target=self._accept_loop, args=(server, self._wake[0]),
                                            name=f"{self.name}-{server.server_address[1]}", daemon=True)
            self._thread.start()
        return self

    @staticmethod
    def _accept_loop(server: _Server, wake: socket.socket) -> None:
        # serve_forever() polls for its shutdown flag; this loop is woken by stop() instead, so
        # stopping is immediate and an idle server does not wake up at all.
        with selectors.DefaultSelector() as selector:
            selector.register(server, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is wake:
                        return
                    server._handle_request_noblock()  # accept + a handler thread (what serve_forever does)

    def stop(self, drain_s: float = 2.0) -> None:
        """Stop accepting, close every connection, and give requests in flight ``drain_s`` to end. Idempotent."""
        with self._lifecycle:
            server, thread, wake = self._server, self._thread, self._wake
            self._server = self._thread = self._wake = None
        if server is None:
            return
        assert thread is not None and wake is not None
        wake[1].send(b"x")
        thread.join()
        server.server_close()
        for end in wake:
            end.close()
        with server.connections_lock:
            connections = list(server.connections)
            handlers = list(server.handlers)
        for conn in connections:  # wakes handler threads waiting on idle keep-alive connections
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        # requests in flight may finish, but a slow one is not waited for: its thread is a daemon
        deadline = time.monotonic() + drain_s
        for handler in handlers:
            if handler is not threading.current_thread():
                handler.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        server = self._server
        if server is None:
            raise RuntimeError(f"{self.name} is not started")
        return server.server_address[1]

    @property
    def url(self) -> str:
        """``http://HOST:PORT/``."""
        return f"http://{self._host}:{self.port}/"
