"""A local AWS Lambda service whose execution environments are real processes.

SAM CLI's ``sam local`` needs Docker. This module does what the Lambda service does, without it:
each *execution environment* is a Python process running AWS's own runtime interface client
(``python -m awslambdaric <handler>``, the same ``bootstrap`` the managed python3.x runtimes run),
talking over HTTP to a local implementation of the `Lambda Runtime API
<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>`_:

* ``GET  /2018-06-01/runtime/invocation/next`` — long poll; answers with the event and the
  ``Lambda-Runtime-*`` headers (request id, deadline, function ARN, trace id, client context,
  Cognito identity);
* ``POST /2018-06-01/runtime/invocation/{id}/response`` — 202; 413 past 6,291,556 bytes;
* ``POST /2018-06-01/runtime/invocation/{id}/error`` — 202;
* ``POST /2018-06-01/runtime/init/error`` — 202;
* 400 for an unknown request id, 403 for a second answer to the same request.

What it reproduces (``LambdaRuntime.invoke`` is synchronous, thread-safe and never queues):

* **Cold and warm starts.** Environments start lazily on the first invoke. An idle environment
  of the function is reused; when every one is busy a new one starts, up to the function's
  reserved concurrency (or the account's unreserved concurrency, shared by the functions that
  have none): past that, :class:`Throttled` (Lambda's ``TooManyRequestsException``).
* **The REPORT line** (:class:`Report`): Duration from handing the event to the runtime until
  its ``/response`` or ``/error``; Billed Duration rounded up to 1 ms, plus the Init Duration on a
  cold start (Lambda bills the INIT phase of managed runtimes since August 2025); Max Memory Used
  is the process's peak RSS; Init Duration runs from the process spawn to its first
  ``GET next`` (when awslambdaric has imported the handler's module).
* **Debugging** (like ``sam local invoke -d PORT``): an environment can run under `debugpy
  <https://github.com/microsoft/debugpy>`_, ``python -Xfrozen_modules=off -m debugpy --listen
  127.0.0.1:PORT --wait-for-client -m awslambdaric <handler>``, for every new environment of a
  function (``FunctionSpec.debug_port``), for its next one (:meth:`LambdaRuntime.debug_next`) or
  for one invocation (``invoke(..., debug_port=PORT)``). It waits for a debugger before it
  imports the handler (make the call first, then attach, as with SAM), neither the INIT phase
  limit nor the timeout is enforced while debugging, and it serves one invocation only (then it
  is retired, ``stop_reason`` "debugged"): the next one gets a fresh environment. Only one
  environment can listen on a port: debug with one call at a time.
* **Logs**: the process's stdout and stderr, between ``START`` and ``END``; what the module
  prints while it is imported comes before ``START`` on a cold start, after an ``INIT_START``
  line, as in CloudWatch.
* **Limits**: the timeout (the process is killed, ``Sandbox.Timedout``), the memory size (an
  RSS watcher kills the process, ``Runtime.ExitError`` ``signal: killed``), 6 MB payloads, the
  10 s INIT phase, crashes at init (``/runtime/init/error``) and mid-invocation
  (``Runtime.ExitError``). An environment whose process died is replaced on the next invoke.

Each environment gets Lambda's variables (``_HANDLER``, ``AWS_LAMBDA_FUNCTION_NAME``,
``AWS_LAMBDA_LOG_STREAM_NAME``...), then ``base_env`` (the platform's: endpoint URL, fake
credentials), then the function's own. Nothing else is inherited from the parent but ``PATH``,
``HOME`` and ``LANG``: no ``AWS_PROFILE``, no real credentials.

Linux and macOS (not Windows: process groups). Every process is reaped and every thread is a
daemon; :meth:`LambdaRuntime.stop` (or leaving the ``with`` block) kills everything.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import datetime as _dt
import importlib.util
import json
import logging
import math
import os
import queue
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.errors import RequestTooLarge, Throttled, UnknownFunction

__all__ = [
    "EnvironmentRecord",
    "FunctionSpec",
    "InvocationResult",
    "LambdaRuntime",
    "Report",
    "RequestTooLarge",
    "Throttled",
    "UnknownFunction",
]

log = logging.getLogger(__name__)

#: Synchronous Invoke: largest request payload (RequestEntityTooLargeException beyond).
MAX_REQUEST_PAYLOAD = 6 * 1024 * 1024  # 6,291,456
#: Largest response the Runtime API accepts (413 beyond, "6291556 bytes" in Lambda's messages).
MAX_RESPONSE_PAYLOAD = 6 * 1024 * 1024 + 100  # 6,291,556
#: On-demand INIT phase limit; a longer init goes on in the invoke phase, under the timeout.
INIT_PHASE_TIMEOUT_S = 10.0
#: How often the watcher samples the process's RSS while an invocation (or init) runs.
MEMORY_SAMPLE_INTERVAL_S = 0.010
#: The account id in ARNs.
DEFAULT_ACCOUNT_ID = "123456789012"

#: Variables Lambda refuses in a function's configuration.
RESERVED_ENVIRONMENT_KEYS = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)

_API = "/2018-06-01/runtime/"
_NEXT = _API + "invocation/next"
_INIT_ERROR = _API + "init/error"
_INVOCATION = _API + "invocation/"
_MAX_BODY = 64 * 1024 * 1024  # what the local Runtime API reads at all
_MAX_LOG_LINE = 256 * 1024  # CloudWatch's event size: a longer line without "\n" is cut there
_MAX_PENDING_LINES = 100_000  # lines kept between invocations (a chatty background thread)

_HAVE_PROC = os.path.exists("/proc/self/statm")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# Go's names for signals: Lambda's init is written in Go ("signal: killed").
_SIGNAL_NAMES = {
    signal.SIGKILL: "killed",
    signal.SIGTERM: "terminated",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGILL: "illegal instruction",
    signal.SIGINT: "interrupt",
    signal.SIGHUP: "hangup",
    signal.SIGPIPE: "broken pipe",
}


# --------------------------------------------------------------------------- public data types


@dataclass
class FunctionSpec:
    """One function's configuration (what the template's ``AWS::Serverless::Function`` says)."""

    name: str  # e.g. "PingFunction" (the template's logical id)
    handler: str  # e.g. "thumbnailr.handlers.ping.lambda_handler"
    code_dir: Path  # put on PYTHONPATH and used as cwd / LAMBDA_TASK_ROOT
    environment: dict[str, str] = field(default_factory=dict)  # the function's own variables
    memory_mb: int = 128
    timeout_s: float = 3.0
    reserved_concurrency: int | None = None
    runtime: str = "python3.13"
    architecture: str = "arm64"
    #: every new environment runs under debugpy on 127.0.0.1:debug_port (no timeout, one invocation)
    debug_port: int | None = None
    debug_wait: bool = True  # debugpy's --wait-for-client: start the handler only once a debugger is attached


@dataclass
class Report:
    """The numbers of an invocation's ``REPORT`` line."""

    request_id: str
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None  # only on a cold start
    #: Lambda appends ``Status: timeout`` or ``Status: error`` + ``Error Type: ...`` when the
    #: platform ended the invocation (timeout, out of memory, runtime crash, failed init).
    status: str | None = None
    error_type: str | None = None

    def line(self) -> str:
        text = (
            f"REPORT RequestId: {self.request_id}\tDuration: {self.duration_ms:.2f} ms"
            f"\tBilled Duration: {self.billed_duration_ms} ms\tMemory Size: {self.memory_size_mb} MB"
            f"\tMax Memory Used: {self.max_memory_used_mb} MB"
        )
        if self.init_duration_ms is not None:
            text += f"\tInit Duration: {self.init_duration_ms:.2f} ms"
        if self.status:
            text += f"\tStatus: {self.status}"
        if self.error_type:
            text += f"\tError Type: {self.error_type}"
        return text


@dataclass
class InvocationResult:
    """What a synchronous (``RequestResponse``) Invoke returns, plus the invocation's logs."""

    request_id: str
    payload: bytes  # the raw response or error payload, as Lambda's Invoke returns it
    function_error: str | None  # None, or "Unhandled" (X-Amz-Function-Error)
    log_lines: list[str]  # [INIT_START, init output,] START, output, END, REPORT
    report: Report
    cold_start: bool
    environment_id: str
    function_name: str = ""
    log_stream: str = ""  # the environment's AWS_LAMBDA_LOG_STREAM_NAME

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None

    @property
    def error_type(self) -> str | None:
        """``errorType`` of an error payload (None on success)."""
        if not self.function_error:
            return None
        try:
            body = self.json()
        except ValueError:
            return None
        return body.get("errorType") if isinstance(body, dict) else None


@dataclass
class EnvironmentRecord:
    """One execution environment's life, for timeline plots.

    Times are ``time.monotonic()`` seconds; ``origin`` (the same for every record of a
    ``LambdaRuntime``) is the runtime's creation: plot ``t - origin``.
    """

    id: str
    function: str
    origin: float
    spawned_at: float | None = None
    init_end_at: float | None = None
    init_duration_ms: float | None = None
    #: (request_id, start, end, duration_ms): start = event delivered, end = answer received
    invocations: list[tuple[str, float, float, float]] = field(default_factory=list)
    stopped_at: float | None = None
    #: timeout | out_of_memory | exited | init_error | response_too_large | reclaimed |
    #: replaced | reset | shutdown | debugged
    stop_reason: str | None = None
    pid: int | None = None
    log_stream: str = ""
    debug_port: int | None = None  # debugpy's port when the environment ran under the debugger


# --------------------------------------------------------------------------- helpers


def _iso_now() -> str:
    now = _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _http(status: str, body: bytes = b"", content_type: str = "application/json",
          headers: list[str] | None = None) -> bytes:
    """One HTTP/1.1 response, headers and body in a single buffer (one write)."""
    head = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}"]
    if headers:
        head.extend(headers)
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _api_error(status: str, error_type: str, message: str) -> bytes:
    return _http(status, json.dumps({"errorMessage": message, "errorType": error_type}).encode())


_ACCEPTED = _http("202 Accepted", b'{"status":"OK"}')


def _exit_description(returncode: int | None) -> str:
    """Lambda's wording for a runtime process that went away."""
    if returncode is None:
        return "Runtime exited without providing a reason"
    if returncode < 0:
        sig = -returncode
        try:
            name = _SIGNAL_NAMES.get(signal.Signals(sig), signal.Signals(sig).name.lower())
        except ValueError:
            name = f"signal {sig}"
        return f"Runtime exited with error: signal: {name}"
    if returncode == 0:
        return "Runtime exited without providing a reason"
    return f"Runtime exited with error: exit status {returncode}"


def _rss_bytes(pid: int) -> int | None:
    if _HAVE_PROC:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                return int(f.read().split()[1]) * _PAGE_SIZE
        except (OSError, IndexError, ValueError):
            return None
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except Exception:  # noqa: BLE001 - gone, or no psutil
        return None


def _peak_rss_bytes(pid: int) -> int | None:
    """VmHWM (the peak RSS) on Linux; the current RSS elsewhere."""
    if _HAVE_PROC:
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmHWM:"):
                        return int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            return None
        return None
    return _rss_bytes(pid)


def _runtime_dir(python: str) -> str | None:
    if os.path.realpath(python) != os.path.realpath(sys.executable):
        return None
    try:
        spec = importlib.util.find_spec("awslambdaric")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(list(spec.submodule_search_locations)[0])


def _ric_version() -> str:
    try:
        from importlib.metadata import version

        return version("awslambdaric")
    except Exception:  # noqa: BLE001
        return "unknown"


# --------------------------------------------------------------------------- log capture


class _LogPipe:
    """Reads an environment's stdout+stderr pipe into lines.

    A daemon thread reads whenever data arrives; :meth:`take` reads what is still in the pipe
    under the same lock, so that everything the process wrote before it answered an invocation
    is in that invocation's lines (the process writes synchronously, then POSTs).
    """

    def __init__(self, fd: int, name: str) -> None:
        os.set_blocking(fd, False)
        self._fd: int | None = fd
        self._lock = threading.Lock()
        self._partial = b""
        self._lines: list[str] = []
        self._stop = False
        threading.Thread(target=self._run, name=f"lambda-logs-{name}", daemon=True).start()

    @staticmethod
    def _clean(raw: bytes) -> str:
        text = raw.decode("utf-8", "replace")
        if text.endswith("\r"):
            text = text[:-1]
        # awslambdaric joins the lines of an error's traceback with "\r" so that they make one
        # log event; CloudWatch shows them as lines of that event.
        return text.replace("\r", "\n")

    def _read_locked(self) -> bool:
        """Read what is available; False at end of file."""
        if self._fd is None:
            return False
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return True
            except OSError:
                chunk = b""
            if not chunk:
                self._close_locked()
                return False
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            self._lines.extend(self._clean(line) for line in complete)
            while len(self._partial) > _MAX_LOG_LINE:
                self._lines.append(self._clean(self._partial[:_MAX_LOG_LINE]))
                self._partial = self._partial[_MAX_LOG_LINE:]
            if len(self._lines) > _MAX_PENDING_LINES:
                del self._lines[: len(self._lines) - _MAX_PENDING_LINES]

    def _close_locked(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            with self._lock:
                if self._fd is None:
                    return
                sel.register(self._fd, selectors.EVENT_READ)
            while True:
                sel.select(0.5)
                with self._lock:
                    if self._stop:
                        self._read_locked()
                        self._close_locked()
                        return
                    if not self._read_locked():
                        return
        finally:
            sel.close()

    def take(self, flush_partial: bool = False) -> list[str]:
        with self._lock:
            self._read_locked()
            if flush_partial and self._partial:
                self._lines.append(self._clean(self._partial))
                self._partial = b""
            lines, self._lines = self._lines, []
            return lines

    def close(self) -> None:
        """Stop the reader (it drains and closes the pipe within half a second)."""
        with self._lock:
            self._stop = True


# --------------------------------------------------------------------------- Runtime API server


class _RuntimeAPIServer:
    """The Runtime API of one environment: a tiny HTTP/1.1 server on 127.0.0.1:<free port>.

    One thread per connection (awslambdaric keeps one keep-alive connection; its init-error
    report uses a second one). Responses are written with one ``sendall`` and TCP_NODELAY:
    headers and body written separately would meet the peer's delayed ACK (40 ms a call).
    """

    def __init__(self, env: _Environment) -> None:
        self._env = env
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._closed = False
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(1.0)  # accept() wakes up to notice close() where shutdown can't
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept_loop, name=f"lambda-api-{env.id[:8]}", daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                if self._closed:
                    return
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), name=f"lambda-api-conn-{self._env.id[:8]}",
                             daemon=True).start()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conns = list(self._conns)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        except OSError:
            pass
        self._sock.close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = bytearray()
            while not self._closed:
                request = self._read_request(conn, buf)
                if request is None:
                    return
                method, path, headers, body, keep_alive = request
                response = self._env._api(method, path, headers, body)
                if response is None:  # the environment is going away
                    return
                conn.sendall(response)
                if not keep_alive:
                    return
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    @staticmethod
    def _recv_exact(conn: socket.socket, buf: bytearray, n: int) -> bytes | None:
        if len(buf) >= n:
            data = bytes(buf[:n])
            del buf[:n]
            return data
        out = bytearray(n)
        view = memoryview(out)
        have = len(buf)
        view[:have] = buf
        buf.clear()
        while have < n:
            got = conn.recv_into(view[have:], min(n - have, 1 << 20))
            if not got:
                return None
            have += got
        return bytes(out)

    @classmethod
    def _readline(cls, conn: socket.socket, buf: bytearray) -> bytes | None:
        while (i := buf.find(b"\r\n")) < 0:
            if len(buf) > 65536:
                raise ValueError("line too long")
            chunk = conn.recv(65536)
            if not chunk:
                return None
            buf += chunk
        line = bytes(buf[:i])
        del buf[: i + 2]
        return line

    @classmethod
    def _read_request(cls, conn: socket.socket, buf: bytearray):
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > 65536:
                raise ValueError("request head too large")
            chunk = conn.recv(65536)
            if not chunk:
                return None
            buf += chunk
        head = bytes(buf[:end]).decode("latin-1")
        del buf[: end + 4]
        request_line, *header_lines = head.split("\r\n")
        method, target, version = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        for h in header_lines:
            key, _, value = h.partition(":")
            headers[key.strip().lower()] = value.strip()
        if headers.get("expect", "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts, total = [], 0
            while True:
                size_line = cls._readline(conn, buf)
                if size_line is None:
                    return None
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while cls._readline(conn, buf) not in (b"", None):  # trailers
                        pass
                    break
                total += size
                if total > _MAX_BODY:
                    raise ValueError("body too large")
                part = cls._recv_exact(conn, buf, size + 2)
                if part is None:
                    return None
                parts.append(part[:-2])
            body = b"".join(parts)
        else:
            length = int(headers.get("content-length") or 0)
            if length > _MAX_BODY:
                raise ValueError("body too large")
            body = cls._recv_exact(conn, buf, length) if length else b""
            if body is None:
                return None
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" and (version.upper() == "HTTP/1.1" or connection == "keep-alive")
        return method.upper(), target.split("?", 1)[0], headers, body, keep_alive


# --------------------------------------------------------------------------- environments


class _Invocation:
    __slots__ = ("request_id", "response", "delivered_at")

    def __init__(self, request_id: str, response: bytes) -> None:
        self.request_id = request_id
        self.response = response  # the whole HTTP response to GET next
        self.delivered_at: float | None = None


class _FunctionState:
    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self.envs: list[_Environment] = []
        self.in_flight = 0
        self.debug_next: tuple[int, bool] | None = None  # (port, wait): the next new environment's debugpy


def _debug_command(python: str, port: int, wait: bool, handler: str) -> list[str]:
    """The command line of an environment under debugpy (frozen modules off, or debugpy warns and misses)."""
    return [python, "-Xfrozen_modules=off", "-m", "debugpy", "--listen", f"127.0.0.1:{port}",
            *(["--wait-for-client"] if wait else []), "-m", "awslambdaric", handler]


class _Environment:
    """One execution environment: a process, its Runtime API server and its log pipe."""

    def __init__(self, runtime: LambdaRuntime, fn: _FunctionState,
                 debug: tuple[int, bool] | None = None) -> None:
        self.runtime = runtime
        self.fn = fn
        self.spec = fn.spec
        self.id = secrets.token_hex(16)
        self.log_stream = f"{_dt.datetime.now(_dt.UTC):%Y/%m/%d}/[$LATEST]{self.id}"
        self.debug = debug  # (port, wait_for_client) under debugpy, else None
        self.record = EnvironmentRecord(
            id=self.id, function=self.spec.name, origin=runtime.origin, log_stream=self.log_stream,
            debug_port=debug[0] if debug else None,
        )
        self.proc: subprocess.Popen | None = None
        self.server: _RuntimeAPIServer | None = None
        self.pipe: _LogPipe | None = None
        self.busy = False
        self.dead = False
        self.retire_reason: str | None = "debugged" if debug else None  # one invocation, then a fresh one
        self.last_used = time.monotonic()
        self._mailbox: queue.SimpleQueue = queue.SimpleQueue()  # server/watcher -> invoker
        self._next: queue.SimpleQueue = queue.SimpleQueue()  # invoker -> GET next
        self._lock = threading.Lock()  # the Runtime API's state below
        self._kill_lock = threading.Lock()
        self._ready = False
        self._current: _Invocation | None = None
        self._answered: collections.deque[str] = collections.deque(maxlen=32)
        self._peak = 0  # bytes

    # ----------------------------------------------------------------- Runtime API (server side)

    def _api(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes | None:
        if method == "GET" and path == _NEXT:
            return self._api_next()
        if method == "POST" and path == _INIT_ERROR:
            with self._lock:
                if self._ready:
                    return _api_error("403 Forbidden", "InvalidStateTransition",
                                      "State transition from Ready to InitError failed for runtime.")
            self._mailbox.put(("init_error", time.monotonic(), body,
                               headers.get("lambda-runtime-function-error-type")))
            return _ACCEPTED
        if method == "POST" and path.startswith(_INVOCATION):
            request_id, _, kind = path[len(_INVOCATION):].partition("/")
            if kind in ("response", "error"):
                return self._api_answer(request_id, kind, headers, body)
        return _api_error("404 Not Found", "InvalidRequest", f"No route for {method} {path}")

    def _api_next(self) -> bytes | None:
        now = time.monotonic()
        with self._lock:
            first = not self._ready
            self._ready = True
        if first:
            self._mailbox.put(("ready", now))
        inv = self._next.get()
        if inv is None:
            return None
        with self._lock:
            self._current = inv
        inv.delivered_at = time.monotonic()
        return inv.response

    def _api_answer(self, request_id: str, kind: str, headers: dict[str, str], body: bytes) -> bytes:
        now = time.monotonic()
        with self._lock:
            inv = self._current
            if inv is None or inv.request_id != request_id:
                if request_id in self._answered:
                    return _api_error("403 Forbidden", "InvalidStateTransition",
                                      "Invalid state transition: the invocation is already answered.")
                return _api_error("400 Bad Request", "InvalidRequestID", "Invalid request ID")
            self._current = None
            self._answered.append(request_id)
        if kind == "response" and len(body) > MAX_RESPONSE_PAYLOAD:
            self._mailbox.put(("too_large", now, inv))
            return _api_error("413 Request Entity Too Large", "RequestEntityTooLarge",
                              f"Exceeded maximum allowed payload size ({MAX_RESPONSE_PAYLOAD} bytes).")
        if kind == "response":
            self._mailbox.put(("response", now, inv, body))
        else:
            self._mailbox.put(("error", now, inv, body, headers.get("lambda-runtime-function-error-type")))
        return _ACCEPTED

    # ----------------------------------------------------------------- process

    def _spawn(self) -> None:
        rt, spec = self.runtime, self.spec
        with self._kill_lock:
            if self.dead:
                raise RuntimeError("the local Lambda runtime is stopped")
            self.server = _RuntimeAPIServer(self)
            env = rt._process_environment(spec, self.server.port, self.log_stream)
            r, w = os.pipe()
            self.record.spawned_at = time.monotonic()
            if self.debug:
                command = _debug_command(rt.python, self.debug[0], self.debug[1], spec.handler)
            else:
                command = [rt.python, "-m", "awslambdaric", spec.handler]
            try:
                self.proc = subprocess.Popen(
                    command,
                    cwd=str(spec.code_dir),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=w,
                    stderr=w,
                    start_new_session=True,  # its own process group: killpg gets its children too
                    close_fds=True,
                )
            except BaseException:
                os.close(r)
                self.server.close()
                raise
            finally:
                os.close(w)
            self.record.pid = self.proc.pid
            self.pipe = _LogPipe(r, self.id[:8])

    def kill(self, reason: str) -> None:
        """Kill the process (and its group), reap it, close the server. Idempotent."""
        with self._kill_lock:
            if self.dead:
                return
            self.dead = True
            self.record.stopped_at = time.monotonic()
            self.record.stop_reason = reason
            proc = self.proc
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.kill()
            except OSError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - unkillable (D state)
                log.warning("environment %s: process %s did not die", self.id, proc.pid)
        self._next.put(None)
        if self.server is not None:
            self.server.close()
        if self.pipe is not None:
            self.pipe.close()

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def _sample_peak(self) -> int:
        if self.proc is not None and self.proc.returncode is None:
            peak = _peak_rss_bytes(self.proc.pid)
            if peak:
                self._peak = max(self._peak, peak)
        return self._peak

    def _wait(self, deadline: float) -> tuple:
        """Next event: a Runtime API message, or ("timeout",), ("oom", rss), ("exit", rc)."""
        limit = self.spec.memory_mb * 1024 * 1024
        mailbox = self._mailbox
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                try:  # an answer that just made it wins over the timeout
                    return mailbox.get_nowait()
                except queue.Empty:
                    return ("timeout",)
            try:
                return mailbox.get(timeout=min(remaining, MEMORY_SAMPLE_INTERVAL_S))
            except queue.Empty:
                pass
            proc = self.proc
            if proc.poll() is not None:
                try:  # an answer always reaches the mailbox before the runtime hears its 202
                    return mailbox.get_nowait()
                except queue.Empty:
                    return ("exit", proc.returncode)
            rss = _rss_bytes(proc.pid)
            if rss is not None:
                self._peak = max(self._peak, rss)
                if rss > limit:
                    return ("oom", rss)

    # ----------------------------------------------------------------- one invocation

    def run(self, request_id: str, payload: bytes, client_context: dict | None,
            cognito_identity: dict | None) -> InvocationResult:
        rt, spec = self.runtime, self.spec
        cold = self.proc is None
        before: list[str] = []  # log lines before START
        init_ms: float | None = None
        deadline: float | None = None
        outcome: tuple | None = None

        if cold:
            self._spawn()
            before.append(rt._init_start_line(spec))
            spawned = self.record.spawned_at
            # under a debugger, the INIT phase lasts as long as it takes (waiting for the IDE too)
            outcome = self._wait(math.inf if self.debug else spawned + INIT_PHASE_TIMEOUT_S)
            if outcome[0] == "timeout":
                # Lambda lets a longer init go on in the invoke phase, under the function's timeout.
                before += self.pipe.take()
                before.append(f"INIT_REPORT Init Duration: {INIT_PHASE_TIMEOUT_S * 1000:.2f} ms"
                              f"\tPhase: init\tStatus: timeout")
                deadline = time.monotonic() + spec.timeout_s
                outcome = self._wait(deadline)
            if outcome[0] == "ready":
                init_ms = (outcome[1] - spawned) * 1000
                self.record.init_end_at = outcome[1]
                self.record.init_duration_ms = init_ms
                outcome = None

        inv: _Invocation | None = None
        if outcome is None:
            before += self.pipe.take()
            now = time.monotonic()
            if deadline is None:
                deadline = now + spec.timeout_s
            deadline_ms = int((time.time() + (deadline - now)) * 1000)
            inv = _Invocation(request_id, rt._next_response(spec, request_id, deadline_ms, payload,
                                                             client_context, cognito_identity))
            self._next.put(inv)
            # the context still says the timeout, but a function stopped at a breakpoint is not killed
            outcome = self._wait(math.inf if self.debug else deadline)
        return self._finish(request_id, inv, outcome, cold, init_ms, before)

    def _finish(self, request_id: str, inv: _Invocation | None, outcome: tuple, cold: bool,
                init_ms: float | None, before: list[str]) -> InvocationResult:
        spec = self.spec
        kind = outcome[0]
        now = time.monotonic()
        start = inv.delivered_at if inv is not None and inv.delivered_at is not None else None
        inside: list[str] = []  # between START and END
        after: list[str] = []  # after REPORT
        status = error_type = None
        function_error: str | None = "Unhandled"
        max_used: int | None = None
        stop_reason: str | None = None

        if kind in ("response", "error"):
            end = outcome[1]
            payload = outcome[3]
            if kind == "response":
                function_error = None
            duration = (end - (start or end)) * 1000
            peak = self._sample_peak()
            inside = self.pipe.take(flush_partial=True)
        elif kind == "too_large":
            end = outcome[1]
            duration = (end - (start or end)) * 1000
            payload = json.dumps({
                "errorMessage": f"Response payload size exceeded maximum allowed payload size "
                                f"({MAX_RESPONSE_PAYLOAD} bytes).",
                "errorType": "Function.ResponseSizeTooLarge",
            }).encode()
            peak = self._sample_peak()
            # awslambdaric treats the 413 as fatal and exits: take its last words, then replace it.
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            inside = self.pipe.take(flush_partial=True)
            stop_reason = "response_too_large"
        elif kind == "timeout":
            end = now
            duration = spec.timeout_s * 1000
            peak = self._sample_peak()
            self.kill("timeout")
            inside = self.pipe.take(flush_partial=True)
            message = f"Task timed out after {spec.timeout_s:.2f} seconds"
            inside.append(f"{_iso_now()} {request_id} {message}")
            payload = json.dumps({"errorType": "Sandbox.Timedout",
                                  "errorMessage": f"RequestId: {request_id} Error: {message}"}).encode()
            status = "timeout"
        elif kind in ("oom", "exit"):
            end = now
            duration = (end - (start or self.record.spawned_at)) * 1000
            peak = self._sample_peak()
            if kind == "oom":
                self.kill("out_of_memory")
                description = _exit_description(-signal.SIGKILL)
                max_used = spec.memory_mb
                error_type = "Runtime.OutOfMemory"
            else:
                self.kill("exited")
                description = _exit_description(outcome[1])
                error_type = "Runtime.ExitError"
            status = "error"
            inside = self.pipe.take(flush_partial=True)
            message = f"RequestId: {request_id} Error: {description}"
            after.append(f"{message}\nRuntime.ExitError")
            payload = json.dumps({"errorType": "Runtime.ExitError", "errorMessage": message}).encode()
            if inv is None:  # died while initialising
                before += inside
                inside = []
                before.append(f"INIT_REPORT Init Duration: {duration:.2f} ms\tPhase: init"
                              f"\tStatus: error\tError Type: {error_type}")
        elif kind == "init_error":
            end = outcome[1]
            payload = outcome[2]
            error_type = outcome[3] or "Runtime.Unknown"
            duration = (end - self.record.spawned_at) * 1000
            self.record.init_duration_ms = duration
            peak = self._sample_peak()
            try:  # awslambdaric exits(1) right after reporting
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            self.kill("init_error")
            before += self.pipe.take(flush_partial=True)
            before.append(f"INIT_REPORT Init Duration: {duration:.2f} ms\tPhase: init"
                          f"\tStatus: error\tError Type: {error_type}")
            status = "error"
        else:  # pragma: no cover
            raise AssertionError(f"unexpected event {outcome!r}")

        if start is not None:
            self.record.invocations.append((request_id, start, end, duration))
        if stop_reason and self.exited():
            self.kill(stop_reason)
        if max_used is None:
            max_used = max(1, round(peak / (1024 * 1024))) if peak else 1
        report = Report(
            request_id=request_id,
            duration_ms=duration,
            billed_duration_ms=max(1, math.ceil(duration + (init_ms or 0.0))),
            memory_size_mb=spec.memory_mb,
            max_memory_used_mb=max_used,
            init_duration_ms=init_ms,
            status=status,
            error_type=error_type,
        )
        lines = [
            *before,
            f"START RequestId: {request_id} Version: $LATEST",
            *inside,
            f"END RequestId: {request_id}",
            report.line(),
            *after,
        ]
        return InvocationResult(
            request_id=request_id,
            payload=payload,
            function_error=function_error,
            log_lines=lines,
            report=report,
            cold_start=cold,
            environment_id=self.id,
            function_name=spec.name,
            log_stream=self.log_stream,
        )


# --------------------------------------------------------------------------- the service

_LIVE_RUNTIMES: weakref.WeakSet[LambdaRuntime] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:  # a forgotten stop() must not leave processes behind
    for runtime in list(_LIVE_RUNTIMES):
        try:
            runtime.stop()
        except Exception:  # noqa: BLE001
            pass


class LambdaRuntime:
    """The local Lambda service: registered functions, their environments, ``invoke``."""

    def __init__(
        self,
        *,
        account_concurrency: int = 10,
        base_env: dict[str, str] | None = None,
        python: str = sys.executable,
        log_sink: Callable[[str, list[str]], None] | None = None,
        region: str = "us-east-1",
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        if account_concurrency < 1:
            raise ValueError("account_concurrency must be at least 1")
        self.account_concurrency = account_concurrency
        self.base_env = dict(base_env or {})
        self.python = python
        self.log_sink = log_sink
        self.region = region
        self.account_id = account_id
        self.origin = time.monotonic()
        self._lock = threading.Lock()
        self._functions: dict[str, _FunctionState] = {}
        self._records: list[EnvironmentRecord] = []
        self._closed = False
        self._runtime_dir = _runtime_dir(python)
        self._ric_version = _ric_version()
        _LIVE_RUNTIMES.add(self)

    # ----------------------------------------------------------------- configuration

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"

    def register(self, spec: FunctionSpec) -> None:
        """Add a function, or update one (its environments are replaced, as after an update)."""
        reserved = sorted(set(spec.environment) & RESERVED_ENVIRONMENT_KEYS)
        if reserved:
            raise ValueError(
                "Lambda was unable to configure your environment variables because the environment "
                "variables you have provided contains reserved keys that are currently not supported "
                f"for modification. Reserved keys used in this request: {','.join(reserved)}"
            )
        if not Path(spec.code_dir).is_dir():
            raise ValueError(f"code_dir {spec.code_dir} is not a directory")
        if spec.memory_mb <= 0 or spec.timeout_s <= 0:
            raise ValueError("memory_mb and timeout_s must be positive")
        if spec.reserved_concurrency is not None and spec.reserved_concurrency < 0:
            raise ValueError("reserved_concurrency must be >= 0")
        # a copy: the caller's later edits do not reach running environments
        spec = dataclasses.replace(spec, code_dir=Path(spec.code_dir).resolve(),
                                   environment=dict(spec.environment))
        stale: list[_Environment] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the local Lambda runtime is stopped")
            others = sum(f.spec.reserved_concurrency or 0 for n, f in self._functions.items()
                         if n != spec.name)
            if others + (spec.reserved_concurrency or 0) > self.account_concurrency:
                raise ValueError(
                    f"Specified ReservedConcurrentExecutions for function {spec.name} exceeds the "
                    f"account's concurrency ({self.account_concurrency}, {others} already reserved)"
                )
            old = self._functions.get(spec.name)
            if old is None:
                self._functions[spec.name] = _FunctionState(spec)
            else:
                old.spec = spec
                for env in list(old.envs):
                    if env.busy:
                        env.retire_reason = "replaced"
                    else:
                        old.envs.remove(env)
                        stale.append(env)
        for env in stale:
            env.kill("replaced")

    def functions(self) -> list[str]:
        with self._lock:
            return list(self._functions)

    def spec(self, name: str) -> FunctionSpec:
        with self._lock:
            fn = self._functions.get(name)
        if fn is None:
            raise UnknownFunction(name, self.function_arn(name))
        return fn.spec

    # ----------------------------------------------------------------- invoking

    def debug_next(self, name: str, port: int | None, *, wait_for_client: bool = True) -> None:
        """Run the function's next invocation in a fresh environment under debugpy on 127.0.0.1:``port``.

        For calls that come through the API or an event source (``sam local start-api -d``):
        the next invoke starts an environment that waits for a debugger (with
        ``wait_for_client``), has no timeout, and is retired after that one invocation. Once
        only; ``port=None`` cancels. Raises :class:`UnknownFunction`.
        """
        with self._lock:
            fn = self._functions.get(name)
            if fn is None:
                raise UnknownFunction(name, self.function_arn(name))
            fn.debug_next = None if port is None else (int(port), wait_for_client)

    def debug_pending(self, name: str) -> int | None:
        """The port of a :meth:`debug_next` not yet taken by an invocation (None if none)."""
        with self._lock:
            fn = self._functions.get(name)
            return fn.debug_next[0] if fn is not None and fn.debug_next else None

    def invoke(self, name: str, event: Any, *, client_context: dict | None = None,
               cognito_identity: dict | None = None, debug_port: int | None = None,
               wait_for_client: bool = True) -> InvocationResult:
        """Invoke synchronously (``RequestResponse``).

        ``event`` is JSON-encoded, unless it is ``bytes`` (taken as the JSON payload as is).
        With ``debug_port``, the invocation runs in a fresh environment under debugpy, which
        listens on 127.0.0.1:``debug_port`` (and waits for a debugger, with ``wait_for_client``):
        see the module's docstring. Raises :class:`UnknownFunction`, :class:`Throttled`,
        :class:`RequestTooLarge`.
        """
        payload = bytes(event) if isinstance(event, (bytes, bytearray, memoryview)) else json.dumps(event).encode()
        if len(payload) > MAX_REQUEST_PAYLOAD:
            raise RequestTooLarge(
                f"{len(payload)} byte payload is too large for the RequestResponse invocation type "
                f"(limit {MAX_REQUEST_PAYLOAD} bytes)"
            )
        env = self._acquire(name, (int(debug_port), wait_for_client) if debug_port is not None else None)
        request_id = str(uuid.uuid4())
        try:
            result = env.run(request_id, payload, client_context, cognito_identity)
        except BaseException:
            env.kill("shutdown" if self._closed else "exited")
            raise
        finally:
            self._release(env)
        if self.log_sink is not None:
            try:
                self.log_sink(name, list(result.log_lines))
            except Exception:  # noqa: BLE001 - the sink's failure is not the function's
                log.exception("log_sink failed for %s", name)
        return result

    def _acquire(self, name: str, debug: tuple[int, bool] | None = None) -> _Environment:
        reclaim: list[_Environment] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the local Lambda runtime is stopped")
            fn = self._functions.get(name)
            if fn is None:
                raise UnknownFunction(name, self.function_arn(name))
            reserved = fn.spec.reserved_concurrency
            if reserved is not None:
                if fn.in_flight >= reserved:
                    raise Throttled(name, "ReservedFunctionConcurrentInvocationLimitExceeded")
            else:
                pool = self.account_concurrency - sum(
                    f.spec.reserved_concurrency or 0 for f in self._functions.values())
                used = sum(f.in_flight for f in self._functions.values() if f.spec.reserved_concurrency is None)
                if used >= pool:
                    raise Throttled(name, "ConcurrentInvocationLimitExceeded")
            env = None
            if debug is None and fn.debug_next is not None:
                debug, fn.debug_next = fn.debug_next, None
            if debug is None and fn.spec.debug_port is not None:
                debug = (fn.spec.debug_port, fn.spec.debug_wait)
            # the most recently used idle environment (the others may then be reclaimed);
            # a debugged invocation always gets a fresh one
            idle = [] if debug else sorted((e for e in fn.envs if not e.busy), key=lambda e: -e.last_used)
            for candidate in idle:
                if candidate.dead or candidate.exited():
                    fn.envs.remove(candidate)
                    reclaim.append(candidate)  # reaped by kill()
                    continue
                env = candidate
                break
            if env is None:
                env = _Environment(self, fn, debug)
                fn.envs.append(env)
                self._records.append(env.record)
                reclaim += self._reclaim_locked()
            env.busy = True
            fn.in_flight += 1
        for old in reclaim:
            old.kill("exited" if old.exited() else "reclaimed")
        return env

    def _reclaim_locked(self) -> list[_Environment]:
        """Keep at most account_concurrency environments: drop the least recently used idle ones."""
        envs = [e for f in self._functions.values() for e in f.envs]
        excess = len(envs) - self.account_concurrency
        out = []
        if excess > 0:
            for env in sorted((e for e in envs if not e.busy), key=lambda e: e.last_used)[:excess]:
                env.fn.envs.remove(env)
                out.append(env)
        return out

    def _release(self, env: _Environment) -> None:
        reason = None
        with self._lock:
            env.fn.in_flight -= 1
            env.busy = False
            env.last_used = time.monotonic()
            if env.dead or env.retire_reason or self._closed or env.exited():
                if env in env.fn.envs:
                    env.fn.envs.remove(env)
                reason = env.retire_reason or ("shutdown" if self._closed else "exited")
        if reason is not None:
            env.kill(reason)

    # ----------------------------------------------------------------- what the process gets

    def _process_environment(self, spec: FunctionSpec, port: int, log_stream: str) -> dict[str, str]:
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        env.setdefault("PATH", os.defpath)
        env.setdefault("LANG", "C.UTF-8")
        env.update({
            "TZ": ":UTC",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(spec.code_dir),
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        })
        if self._runtime_dir:
            env["LAMBDA_RUNTIME_DIR"] = self._runtime_dir
        env.update(self.base_env)
        env.update(spec.environment)
        env.update({
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        })
        return env

    def _init_start_line(self, spec: FunctionSpec) -> str:
        version = spec.runtime.replace("python", "python:", 1)
        return (f"INIT_START Runtime Version: {version}.local\tRuntime Version ARN: "
                f"arn:aws:lambda:{self.region}::runtime:local-awslambdaric-{self._ric_version}")

    def _next_response(self, spec: FunctionSpec, request_id: str, deadline_ms: int, payload: bytes,
                       client_context: dict | None, cognito_identity: dict | None) -> bytes:
        trace = (f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
                 f"Parent={secrets.token_hex(8)};Sampled=0")
        headers = [
            f"Lambda-Runtime-Aws-Request-Id: {request_id}",
            f"Lambda-Runtime-Deadline-Ms: {deadline_ms}",
            f"Lambda-Runtime-Invoked-Function-Arn: {self.function_arn(spec.name)}",
            # awslambdaric 4.2.2's native client crashes (SIGSEGV) on a next without this one
            f"Lambda-Runtime-Trace-Id: {trace}",
        ]
        if client_context is not None:
            headers.append(f"Lambda-Runtime-Client-Context: {json.dumps(client_context)}")
        if cognito_identity is not None:
            headers.append(f"Lambda-Runtime-Cognito-Identity: {json.dumps(cognito_identity)}")
        return _http("200 OK", payload, headers=headers)

    # ----------------------------------------------------------------- observing, stopping

    def records(self) -> list[EnvironmentRecord]:
        with self._lock:
            return [
                EnvironmentRecord(**{**r.__dict__, "invocations": list(r.invocations)})
                for r in self._records
            ]

    def reset(self, name: str | None = None) -> None:
        """Stop the idle environments (of one function, or all): the next invokes are cold."""
        stale = []
        with self._lock:
            for fname, fn in self._functions.items():
                if name is not None and fname != name:
                    continue
                for env in list(fn.envs):
                    if env.busy:
                        env.retire_reason = "reset"
                    else:
                        fn.envs.remove(env)
                        stale.append(env)
        for env in stale:
            env.kill("reset")

    def stop(self) -> None:
        """Kill every environment's process and server. Idempotent; invoke raises afterwards."""
        with self._lock:
            self._closed = True
            envs = [e for f in self._functions.values() for e in f.envs]
            for f in self._functions.values():
                f.envs = [e for e in f.envs if e.busy]  # released (and killed) by their invokers
        for env in envs:
            env.kill("shutdown")
        _LIVE_RUNTIMES.discard(self)

    def __enter__(self) -> LambdaRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            if not self._closed:
                self.stop()
        except Exception:  # noqa: BLE001
            pass
