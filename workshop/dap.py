"""A minimal Debug Adapter Protocol client over TCP: attach to debugpy, break, read, continue.

What an IDE does when it attaches to ``python -m debugpy --listen HOST:PORT``, in a few calls
(the `Debug Adapter Protocol <https://microsoft.github.io/debug-adapter-protocol/>`_: JSON
messages, each after a ``Content-Length: N`` header, over one socket)::

    from workshop.dap import DapClient

    with DapClient.attach("127.0.0.1", 5678, breakpoints={"/path/app.py": [42]}) as dbg:
        stopped = dbg.wait_stopped(timeout=30)            # the "stopped" event's body
        frame = dbg.stack_trace(stopped["threadId"])[0]  # the innermost frame
        print(frame["name"], frame["line"], dbg.locals(frame["id"]))
        print(dbg.evaluate("len(photo)", frame["id"]))
        dbg.continue_(stopped["threadId"])

The attach handshake follows debugpy's order: ``initialize``, then ``attach`` (its response comes
only after ``configurationDone``), the ``initialized`` event, ``setBreakpoints`` per file,
``configurationDone``. A debuggee started with ``--wait-for-client`` runs on from there.

Pure standard library; one reader thread per client (a daemon). Not an IDE: no source maps,
no step-in/step-out beyond :meth:`DapClient.next`, one client per debuggee.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["DapClient", "DapError", "free_port", "line_number"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (for a debugger to listen on)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def line_number(path: str | os.PathLike[str], text: str) -> int:
    """The number (from 1) of the first line of file ``path`` that contains ``text``: where to break."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if text in line:
                return number
    raise ValueError(f"{text!r} is not in {path}")


class DapError(RuntimeError):
    """A request the debug adapter refused (``success: false``), or a message that never came."""


class DapClient:
    """One DAP session over a TCP socket (see the module's docstring for an example)."""

    def __init__(self, sock: socket.socket) -> None:
        """Wrap a connected socket; :meth:`connect` and :meth:`attach` make one for you."""
        self._sock = sock
        self._seq = 0
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._responses: dict[int, dict] = {}
        self._events: list[dict] = []  # not yet taken by wait_event
        self._closed = False
        self.capabilities: dict[str, Any] = {}
        self.log: list[dict] = []  # every message received, in order (for curiosity and debugging)
        threading.Thread(target=self._read_loop, name="dap-reader", daemon=True).start()

    # ----------------------------------------------------------------- connecting

    @classmethod
    def connect(cls, host: str, port: int, timeout: float = 30.0) -> DapClient:
        """Connect to a debug adapter, retrying until ``timeout`` (the debuggee may still be starting)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection((host, port), timeout=2.0)
            except OSError:
                if time.monotonic() >= deadline:
                    raise DapError(f"no debugger listening on {host}:{port} after {timeout:.0f} s") from None
                time.sleep(0.1)
                continue
            if sock.getsockname() == sock.getpeername():  # TCP self-connect to a port nobody holds yet
                sock.close()
                time.sleep(0.1)
                continue
            sock.settimeout(None)
            return cls(sock)

    @classmethod
    def attach(
        cls,
        host: str,
        port: int,
        breakpoints: Mapping[str, Sequence[int]] | None = None,
        *,
        timeout: float = 30.0,
        just_my_code: bool = True,
        path_mappings: Sequence[Mapping[str, str]] | None = None,
    ) -> DapClient:
        """Connect, ``initialize``, ``attach``, set ``breakpoints`` ({file: [lines]}), ``configurationDone``.

        Returns the client, attached: a debuggee waiting for a client now runs on. A connection
        the adapter drops during the handshake (it was still starting) is tried again until ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            client = cls.connect(host, port, max(1.0, deadline - time.monotonic()))
            try:
                client.initialize(timeout=timeout)
                arguments: dict[str, Any] = {"justMyCode": just_my_code}
                if path_mappings:
                    arguments["pathMappings"] = [dict(m) for m in path_mappings]
                attach_seq = client.send("attach", arguments)
                client.wait_event("initialized", timeout=timeout)
                for path, lines in (breakpoints or {}).items():
                    client.set_breakpoints(path, lines, timeout=timeout)
                client.configuration_done(timeout=timeout)
                client.response(attach_seq, timeout=timeout)
                return client
            except DapError:
                dropped = client._closed  # the adapter closed the connection (not a refusal, not a timeout)
                client.close()
                if not dropped or time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
            except BaseException:
                client.close()
                raise

    # ----------------------------------------------------------------- the wire

    def _read_loop(self) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = self._sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.decode("ascii").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                while len(buf) < length:
                    chunk = self._sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                body, buf = buf[:length], buf[length:]
                self._dispatch(json.loads(body))
        except (OSError, ValueError):
            return
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def _dispatch(self, message: dict) -> None:
        with self._cond:
            self.log.append(message)
            kind = message.get("type")
            if kind == "response":
                self._responses[message["request_seq"]] = message
            elif kind == "event":
                self._events.append(message)
            elif kind == "request":  # a reverse request (runInTerminal...): say no
                self._write({"type": "response", "request_seq": message.get("seq"), "success": False,
                             "command": message.get("command"), "message": "not supported"})
            self._cond.notify_all()

    def _write(self, message: dict) -> None:
        data = json.dumps(message).encode()
        with self._send_lock:
            self._sock.sendall(b"Content-Length: %d\r\n\r\n" % len(data) + data)

    def send(self, command: str, arguments: Mapping[str, Any] | None = None) -> int:
        """Send a request without waiting; returns its ``seq`` (for :meth:`response`)."""
        with self._send_lock:
            self._seq += 1
            seq = self._seq
        message: dict[str, Any] = {"seq": seq, "type": "request", "command": command}
        if arguments is not None:
            message["arguments"] = dict(arguments)
        self._write(message)
        return seq

    def _wait_for(self, found: Callable[[], Any], what: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = found()
                if value is not None:
                    return value
                if self._closed:
                    last = [m.get("event") or m.get("command") for m in self.log[-5:]]
                    raise DapError(f"the debug adapter closed the connection before {what} (last messages: {last})")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DapError(f"no {what} within {timeout:g} s")
                self._cond.wait(remaining)

    def response(self, seq: int, timeout: float = 30.0) -> dict:
        """The body of request ``seq``'s response; :class:`DapError` if it failed."""
        message = self._wait_for(lambda: self._responses.pop(seq, None), f"response to request {seq}", timeout)
        if not message.get("success"):
            raise DapError(f"{message.get('command')}: {message.get('message') or message.get('body')}")
        return message.get("body") or {}

    def request(self, command: str, arguments: Mapping[str, Any] | None = None, timeout: float = 30.0) -> dict:
        """Send a request and return its response's body."""
        return self.response(self.send(command, arguments), timeout)

    def wait_event(self, name: str, timeout: float = 30.0,
                   where: Callable[[dict], bool] | None = None) -> dict:
        """Take the first event ``name`` (whose body passes ``where``), waiting for it; returns its body."""

        def take() -> dict | None:
            for i, event in enumerate(self._events):
                body = event.get("body") or {}
                if event.get("event") == name and (where is None or where(body)):
                    del self._events[i]
                    return body
            return None

        return self._wait_for(take, f"{name!r} event", timeout)

    # ----------------------------------------------------------------- the requests an IDE makes

    def initialize(self, timeout: float = 30.0) -> dict:
        """``initialize``: who we are; returns (and keeps) the adapter's capabilities."""
        self.capabilities = self.request("initialize", {
            "clientID": "workshop", "clientName": "workshop.dap", "adapterID": "debugpy",
            "pathFormat": "path", "linesStartAt1": True, "columnsStartAt1": True,
            "supportsVariableType": True, "locale": "en-us",
        }, timeout)
        return self.capabilities

    def set_breakpoints(self, path: str, lines: Sequence[int], timeout: float = 30.0,
                        conditions: Mapping[int, str] | None = None) -> list[dict]:
        """Replace the breakpoints of file ``path`` with ``lines`` (optionally conditional); returns them."""
        conditions = conditions or {}
        points = [{"line": n, **({"condition": conditions[n]} if n in conditions else {})} for n in lines]
        body = self.request("setBreakpoints", {"source": {"path": str(path)}, "breakpoints": points}, timeout)
        return body.get("breakpoints", [])

    def configuration_done(self, timeout: float = 30.0) -> None:
        """``configurationDone``: breakpoints are set, the debuggee may run."""
        self.request("configurationDone", None, timeout)

    def wait_stopped(self, timeout: float = 30.0) -> dict:
        """Wait for the debuggee to stop (breakpoint, step, exception): the ``stopped`` event's body."""
        return self.wait_event("stopped", timeout)

    def threads(self) -> list[dict]:
        """The debuggee's threads: [{"id", "name"}]."""
        return self.request("threads").get("threads", [])

    def stack_trace(self, thread_id: int, levels: int = 20) -> list[dict]:
        """The stopped thread's frames, innermost first: [{"id", "name", "line", "source": {"path"}}]."""
        return self.request("stackTrace", {"threadId": thread_id, "startFrame": 0, "levels": levels})["stackFrames"]

    def scopes(self, frame_id: int) -> list[dict]:
        """A frame's scopes (Locals, Globals): [{"name", "variablesReference"}]."""
        return self.request("scopes", {"frameId": frame_id})["scopes"]

    def variables(self, reference: int) -> list[dict]:
        """The variables behind a ``variablesReference``: [{"name", "value", "type", "variablesReference"}]."""
        return self.request("variables", {"variablesReference": reference})["variables"]

    def locals(self, frame_id: int) -> dict[str, str]:
        """A frame's local variables as {name: value as the debugger shows it (a repr)}."""
        scope = next(s for s in self.scopes(frame_id) if s["name"].lower().startswith("local"))
        return {v["name"]: v["value"] for v in self.variables(scope["variablesReference"])
                if not v["name"].startswith("(")}  # debugpy's "(return) ..." and grouping entries

    def evaluate(self, expression: str, frame_id: int, context: str = "repl") -> str:
        """Evaluate ``expression`` in a stopped frame (as the Debug Console does); its result as text."""
        return self.request("evaluate", {"expression": expression, "frameId": frame_id, "context": context})["result"]

    def next(self, thread_id: int) -> None:
        """Step over one line; a ``stopped`` event (reason "step") follows."""
        self.request("next", {"threadId": thread_id})

    def continue_(self, thread_id: int) -> None:
        """Resume the stopped thread (and the others)."""
        self.request("continue", {"threadId": thread_id})

    def disconnect(self, terminate: bool = False, timeout: float = 5.0) -> None:
        """Detach (the debuggee runs on unless ``terminate``); then close the socket."""
        try:
            if not self._closed:
                self.request("disconnect", {"terminateDebuggee": terminate}, timeout)
        except (DapError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Close the socket (the reader thread ends)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def __enter__(self) -> DapClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
