"""The EC2 stand-in: the app's handlers served in-process by a plain threaded HTTP server, in its own process.

The talk's third option is "ALB + EC2": the same code on a long-running server. Here that server is a
:class:`localcloud.http.HttpServer` in a separate Python process that imports the app's handler
modules once and calls them directly: no Lambda runtime between the request and the code::

    from localcloud import start_plain_server
    server = start_plain_server(cloud)          # a subprocess, aimed at the local cloud's moto
    requests.get(server.url + "/ping")
    server.stop()

:func:`start_plain_server` reads the routes, handlers and environment variables from the local cloud (the
template's), gives the process ``cloud.environment()`` (``AWS_ENDPOINT_URL`` and fake credentials)
plus the functions' variables, and puts the functions' code folder on ``PYTHONPATH``. The server
makes an API Gateway proxy event of each request (the handlers' contract), with the same benchmark
identity trick as :mod:`localcloud.fronts.alb`: the ``x-user-sub`` header becomes
``requestContext.authorizer.claims.sub``. Run directly, ``python -m localcloud.fronts.plain_server CONFIG.json``
prints ``listening on PORT`` and serves until stdin closes or it is terminated.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from localcloud.fronts.alb import IDENTITY_HEADER, AlbRoute, match
from localcloud.http import HttpServer, Request

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

__all__ = ["Standalone", "apigw_event", "config_for", "start_plain_server"]

#: a cap on a request body held in memory (an EC2 server behind an ALB has no limit of its own)
MAX_REQUEST_BYTES = 100 * 1024 * 1024


def apigw_event(method: str, target: str, headers: dict[str, str], body: bytes, pattern: str,
                path_parameters: dict[str, str]) -> dict[str, Any]:
    """A minimal API Gateway (REST, proxy) event for a request, with the identity header as claims."""
    parts = urlsplit(target)
    query = dict(pair.partition("=")[::2] for pair in parts.query.split("&") if pair) or None
    text = True
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError:
        text = False
    context: dict[str, Any] = {"resourcePath": pattern, "httpMethod": method, "requestId": str(uuid.uuid4()),
                               "stage": "ec2"}
    sub = {k.lower(): v for k, v in headers.items()}.get(IDENTITY_HEADER)
    if sub:
        context["authorizer"] = {"claims": {"sub": sub}}
    return {
        "resource": pattern,
        "path": unquote(parts.path),
        "httpMethod": method,
        "headers": dict(headers),
        "queryStringParameters": {unquote(k): unquote(v) for k, v in query.items()} if query else None,
        "pathParameters": {k: unquote(v) for k, v in path_parameters.items()} or None,
        "requestContext": context,
        "body": (decoded if text else base64.b64encode(body).decode()) if body else None,
        "isBase64Encoded": not text,
    }


def _context(function: str, memory_mb: int = 1024) -> Any:
    """What Lambda's context object offers the handlers (Powertools' Logger reads these fields)."""
    return types.SimpleNamespace(
        function_name=function, function_version="$LATEST", memory_limit_in_mb=memory_mb,
        invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{function}",
        aws_request_id=str(uuid.uuid4()), log_group_name="ec2", log_stream_name="ec2",
        get_remaining_time_in_millis=lambda: 30_000,
    )


# --------------------------------------------------------------------------- the server process


class _App:
    """The routes and the imported handlers: one request in, the handler's answer out."""

    def __init__(self, routes: list[AlbRoute], handlers: dict[str, Callable[[dict, Any], dict]]) -> None:
        self.routes = routes
        self.handlers = handlers

    def __call__(self, request: Request) -> None:
        body = request.read_body(MAX_REQUEST_BYTES)
        found = match(self.routes, request.command, urlsplit(request.path).path)
        if found is None:
            return _send(request, 404, {"Content-Type": "application/json"}, b'{"message": "Not Found"}')
        route, params = found
        handler = self.handlers[route.function]
        event = apigw_event(request.command, request.path, dict(request.headers.items()), body, route.pattern, params)
        try:
            answer = handler(event, _context(route.function))
            raw = answer.get("body") or ""
            data = base64.b64decode(raw) if answer.get("isBase64Encoded") else raw.encode()
            _send(request, int(answer["statusCode"]), answer.get("headers") or {}, data)
        except Exception:  # a bug in a handler: what a web framework would answer
            _send(request, 500, {"Content-Type": "application/json"}, b'{"message": "Internal server error"}')


def _send(request: Request, status: int, headers: dict[str, Any], body: bytes) -> None:
    request.respond(status, [(name, str(value)) for name, value in headers.items()
                             if name.lower() not in ("content-length", "connection")], body)


def serve(config: dict[str, Any]) -> None:
    """In the server process: import every handler, then serve on 127.0.0.1 until stdin closes."""
    handlers = {}
    for fn, dotted in config["handlers"].items():
        module, _, name = dotted.rpartition(".")
        handlers[fn] = getattr(importlib.import_module(module), name)
    app = _App([AlbRoute(*r) for r in config["routes"]], handlers)
    server = HttpServer(app, port=config.get("port", 0), name="plain server").start()
    print(f"listening on {server.port}", flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the handlers' logs: nobody reads the pipe any more
    sys.stdin.read()  # the parent closes our stdin (or dies): stop
    server.stop()


# --------------------------------------------------------------------------- the parent's side


def config_for(cloud: LocalCloud, functions: list[str] | None = None) -> tuple[dict[str, Any], dict[str, str], str]:
    """(server config, the process's environment variables, code folder) for the cloud's API routes."""
    routes, handlers, env, code_dirs = [], {}, {}, set()
    for route in cloud.stack.routes():
        function = cloud.stack.function_for(route.function)  # its logical id: what the runtime runs it as
        if function is None or (functions is not None and function not in functions):
            continue
        spec = cloud.runtime.spec(function)
        routes.append((route.method, route.path, function))
        handlers[function] = spec.handler
        for name, value in spec.environment.items():
            if env.get(name, value) != value:
                raise ValueError(f"{name} differs between functions; serve them from separate processes")
            env[name] = str(value)
        code_dirs.add(str(spec.code_dir))
    if len(code_dirs) != 1:
        raise ValueError(f"the functions run from several code folders: {sorted(code_dirs)}")
    return {"routes": routes, "handlers": handlers}, env, code_dirs.pop()


@dataclass
class Standalone:
    """A running server process: its ``url`` and ``stop()``."""

    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()

    def __enter__(self) -> Standalone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_plain_server(cloud: LocalCloud, functions: list[str] | None = None, timeout: float = 30) -> Standalone:
    """Start the server process for the cloud's API routes (or those of ``functions``); returns when it listens."""
    config, fn_env, code_dir = config_for(cloud, functions)
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(cloud.environment())
    env.update(fn_env)
    env.update({"PYTHONPATH": os.pathsep.join([code_dir, str(Path(__file__).resolve().parents[2])]),
                "PYTHONUNBUFFERED": "1"})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
    process = subprocess.Popen([sys.executable, "-m", "localcloud.fronts.plain_server", f.name], env=env, cwd=code_dir,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + timeout
    try:
        line = process.stdout.readline()  # "listening on PORT", or "" if it died
        if not line.startswith("listening on ") or time.monotonic() > deadline:
            raise RuntimeError(f"the standalone server did not start (exit code {process.poll()})")
        return Standalone(process, int(line.split()[-1]))
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        os.unlink(f.name)


if __name__ == "__main__":
    serve(json.loads(Path(sys.argv[1]).read_text()))
