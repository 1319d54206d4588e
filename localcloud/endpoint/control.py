"""The control endpoint of a running local cloud: invoke a function, or debug its next invocation, over HTTP.

Command-line tools talk to it from another process:

* ``GET /`` or ``GET /state``: the local cloud's outputs, as JSON;
* ``POST /invoke/<Function>`` (body: the event) -> the invocation, as JSON; ``?debug_port=N``: that
  invocation runs in a fresh environment under debugpy, waiting for a debugger on 127.0.0.1:N;
* ``POST /debug/<Function>`` (body ``{"port": N}``, or ``null`` to cancel): the function's next
  invocation, from anywhere (the API, an event source), does so.

Errors are ``{"error": ...}`` with 400 (not JSON, not a port), 404 (no such path or function),
429 (throttled) or 500 (the invocation failed).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from typing import TYPE_CHECKING, Any

from localcloud.errors import Throttled
from localcloud.http import HttpServer, Request

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

__all__ = ["ControlServer"]

#: far over Lambda's 6 MB invoke payload, so an event too large is refused by the invoke, in Lambda's words
MAX_REQUEST_BYTES = 64 * 1024 * 1024
_ACTION = re.compile(r"/(invoke|debug)/([A-Za-z0-9_.-]+)")


class ControlServer:
    """The control endpoint of ``cloud`` on 127.0.0.1 (a free port), serving from construction to ``stop()``."""

    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud
        self._http = HttpServer(self._serve, name="control endpoint").start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/``."""
        return self._http.url

    def stop(self) -> None:
        self._http.stop()

    def _serve(self, request: Request) -> None:
        raw = request.read_body(MAX_REQUEST_BYTES)  # read even when refused: the connection stays usable
        if request.command == "POST":
            status, body = self._post(request.path, raw)
        elif request.command == "GET" and request.path.rstrip("/") in ("", "/state"):
            status, body = 200, self._cloud.outputs
        else:
            status, body = 404, {"error": f"no {request.path}: try POST /invoke/<Function>"}
        request.respond(status, [("Content-Type", "application/json")], json.dumps(body).encode())

    def _post(self, target: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        path, _, query = target.partition("?")
        match = _ACTION.fullmatch(path)
        if not match:
            return 404, {"error": f"no {target}: try POST /invoke/<Function>"}
        action, name = match.groups()
        cloud = self._cloud
        known = cloud.runtime.functions() if cloud.runtime else []
        if name not in known:
            return 404, {"error": f"unknown function {name}", "functions": sorted(known)}
        try:
            event = json.loads(raw or b"{}")
            debug_port = _port_or_none((event or {}).get("port") if action == "debug" else
                                       dict(urllib.parse.parse_qsl(query)).get("debug_port"))
        except (ValueError, AttributeError) as e:
            return 400, {"error": f"the event is not JSON, or the port is not a port: {e}"}
        if action == "debug":
            cloud.debug(name, debug_port)
            return 200, {"function": name, "debug_port": debug_port}
        try:
            result = cloud.invoke(name, event, debug_port=debug_port)
        except Exception as e:  # noqa: BLE001 - the caller gets the error, as Lambda's Invoke API would
            return 429 if isinstance(e, Throttled) else 500, {"error": f"{type(e).__name__}: {e}"}
        return 200, {
            "function": name,
            "request_id": result.request_id,
            "payload": base64.b64encode(result.payload or b"").decode(),
            "function_error": result.function_error,
            "log_lines": result.log_lines,
            "report": result.report.line(),
            "cold_start": result.cold_start,
            "log_stream": result.log_stream,
        }


def _port_or_none(value: Any) -> int | None:
    """A TCP port from a query string or JSON (None stays None); ValueError otherwise."""
    if value is None:
        return None
    port = int(value)
    if not 0 < port < 65536:
        raise ValueError(f"{value} is not a TCP port")
    return port
