"""The local cloud: moto, the app's resources, the Lambda runtime, its event sources and the API.

``LocalCloud`` is ``sam deploy`` + AWS on 127.0.0.1, without Docker::

    from localcloud.cloud import LocalCloud

    with LocalCloud(port=0, dispatch="sns") as cloud:
        cloud.add_user("ada", "Passw0rd!")
        token = cloud.token("ada", "Passw0rd!")
        # HTTP to cloud.api_url with {"Authorization": token}; boto3 through cloud.client("s3")

What ``start()`` does, in order:

1. starts moto in server mode (``moto.server.ThreadedMotoServer``) in a child process of its own,
   on a free port of 127.0.0.1: each ``LocalCloud`` has its own AWS (moto's state is
   process-wide), and the child stops when this process goes, however it goes;
2. reads ``sam-app/template.yaml`` (``localcloud.cfn.stack``), with its parameters (``Dispatch``
   from ``dispatch``; overrides in ``parameters``);
3. makes the resources in moto in dependency order (``localcloud.cfn.provision``);
4. registers every function with the local Lambda runtime (``localcloud.lambda_service.runtime``), code
   from ``sam-app/src`` (or ``.aws-sam/build/<Function>`` when built for this machine), the
   template's environment, memory, timeout, reserved concurrency; the environments' AWS
   variables (``base_env``) aim at moto with fake credentials, never at a real account;
5. wires S3 notifications, SNS subscriptions and DynamoDB stream mappings
   (``localcloud.event_sources.sources``);
6. starts the API (``localcloud.apigateway.gateway``) with the template's routes and its Cognito authorizer;
7. forwards every invocation's log lines to CloudWatch Logs in moto
   (``/aws/lambda/<Function>``, one stream per execution environment), and serves a small
   control endpoint (``POST /invoke/<Function>[?debug_port=N]``, ``POST /debug/<Function>``) for
   ``python -m workshop invoke`` and ``python -m workshop debug``.

Every boto3 client it makes (``client()``) and every process it starts gets the moto endpoint
and the fake credentials ``testing``; none reads ``~/.aws``. Presigned S3 URLs point at
``http://localhost:<moto port>``, which HTTP clients on this machine can use.
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import queue
import re
import select
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from localcloud.errors import CloudError, Throttled
from localcloud.sdk import Clients, fake_aws_environment
from localcloud.users import add_user, id_token

log = logging.getLogger(__name__)

__all__ = ["CloudError", "LocalCloud"]

#: The moto child: a ThreadedMotoServer that lives as long as its stdin is open.
_MOTO_CHILD = r"""
import logging, os, sys, threading, time
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
from moto.dynamodb.models import DynamoDBBackend

# DynamoDB applies each request atomically (a conditional update is checked and applied as one);
# moto's threaded server does not, and loses or double-counts concurrent writes. One lock per request
# restores what the app relies on, and no more: two requests can still interleave between them.
_dynamodb_lock = threading.RLock()
def _atomic(method):
    def call(self, *args, **kwargs):
        with _dynamodb_lock:
            return method(self, *args, **kwargs)
    return call
for _name in ("put_item", "update_item", "delete_item", "get_item", "transact_write_items",
              "transact_get_items", "batch_write_item", "query", "scan"):
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("MOTO_READY", server.get_host_and_port()[1], flush=True)

def janitor():
    # moto keeps every DynamoDB shard iterator it ever handed out; a stream poller asks for one
    # every 100 ms. Only the newest ones can still be used.
    from moto.dynamodbstreams.models import dynamodbstreams_backends
    while True:
        time.sleep(10)
        try:
            for account in list(dynamodbstreams_backends.values()):
                for backend in list(account.values()):
                    its = backend.shard_iterators
                    if len(its) > 500:
                        for key in list(its)[:-100]:
                            its.pop(key, None)
        except Exception:
            pass

threading.Thread(target=janitor, daemon=True).start()
try:
    sys.stdin.read()  # returns at EOF: the parent closed the pipe or is gone
finally:
    os._exit(0)
"""


def _free_port_check(port: int) -> None:
    if port == 0:
        return
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise CloudError(
                f"port {port} on 127.0.0.1 is taken (another `python -m workshop up`, `sam local start-api`, or "
                f"another server?): stop that, or use another port (--port {port + 1}, or --port 0 for any free one)"
            ) from None


class _MotoProcess:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _MOTO_CHILD, "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,  # a Ctrl-C in a terminal goes to `up`, which stops moto itself
        )
        self.port: int | None = None

    def wait_ready(self, timeout: float = 30.0) -> int:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        fd = self.process.stdout.fileno()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(fd, 256)
            if not chunk:
                raise CloudError(f"moto did not start (exit code {self.process.wait()}); see the error above")
            line += chunk
            if b"\n" in line:
                match = re.search(rb"MOTO_READY (\d+)", line)
                if match:
                    self.port = int(match.group(1))
                    return self.port
        self.stop()
        raise CloudError(f"moto did not start within {timeout:.0f} s")

    def stop(self) -> None:
        process = self.process
        if process.poll() is None:
            try:
                if process.stdin:
                    process.stdin.close()
            except OSError:
                pass
            try:
                process.wait(3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(3)
        for pipe in (process.stdout, process.stdin):
            try:
                if pipe:
                    pipe.close()
            except OSError:
                pass


class _LogForwarder:
    """Sends each invocation's log lines to CloudWatch Logs in moto, off the invoking thread."""

    def __init__(self, clients: Callable[[str], Any], streams_of: Callable[[str], str | None],
                 echo: Callable[[str, list[str]], None] | None = None) -> None:
        self.clients = clients
        self.streams_of = streams_of
        self.echo = echo
        self.queue: queue.Queue = queue.Queue()
        self.known: set[tuple[str, str]] = set()
        self.stream_by_request: dict[str, str] = {}
        self.thread = threading.Thread(target=self._run, name="log-forwarder", daemon=True)
        self.thread.start()

    def note(self, request_id: str, stream: str) -> None:
        if stream:
            self.stream_by_request[request_id] = stream

    def sink(self, function: str, lines: list[str], *rest: Any) -> None:
        """The runtime's ``log_sink(name, lines)``; a third argument, the log stream or the
        ``InvocationResult``, is used if the runtime passes one (it does not say the stream yet)."""
        extra = rest[0] if rest else None
        stream = extra if isinstance(extra, str) else getattr(extra, "log_stream", None) or None
        if self.echo is not None:
            try:
                self.echo(function, lines)
            except Exception:  # noqa: BLE001
                pass
        self.queue.put((function, list(lines), int(time.time() * 1000), stream))

    def flush(self, timeout: float = 5.0) -> None:
        done = threading.Event()
        self.queue.put(done)
        done.wait(timeout)

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(5)

    def _request_id(self, lines: list[str]) -> str | None:
        for line in lines:
            match = re.match(r"(?:START|END|REPORT) RequestId: ([0-9a-f-]{36})", line)
            if match:
                return match.group(1)
        return None

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            while True:  # take everything waiting: one pass resolves streams and sends per stream
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            items = [i for i in batch if isinstance(i, tuple)]
            if items:
                try:
                    self._send(items)
                except Exception as e:  # noqa: BLE001 - logs must never break the cloud
                    log.debug("forwarding logs failed: %s", e)
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
            if any(item is None for item in batch):
                return

    def _send(self, items: list[tuple]) -> None:
        logs = self.clients("logs")
        resolved = []
        missing = False
        for function, lines, timestamp, stream in items:
            request_id = self._request_id(lines)
            if stream is None and request_id:
                stream = self.stream_by_request.pop(request_id, None)
                missing = missing or stream is None
            resolved.append([function, lines, timestamp, stream, request_id])
        if missing:
            time.sleep(0.02)  # the invoker notes the stream right after the sink is called
            for item in resolved:
                if item[3] is None and item[4]:
                    item[3] = self.stream_by_request.pop(item[4], None) or self.streams_of(item[4])
        if len(self.stream_by_request) > 10000:  # notes nobody will collect (no START line)
            self.stream_by_request.clear()
        by_stream: dict[tuple[str, str], list[dict]] = {}
        for function, lines, timestamp, stream, _ in resolved:
            key = (f"/aws/lambda/{function}", stream or time.strftime("%Y/%m/%d/[$LATEST]unknown"))
            by_stream.setdefault(key, []).extend({"timestamp": timestamp, "message": line} for line in lines if line)
        for (group, stream), events in by_stream.items():
            if (group, stream) not in self.known:
                try:
                    logs.create_log_group(logGroupName=group)
                except logs.exceptions.ResourceAlreadyExistsException:
                    pass
                try:
                    logs.create_log_stream(logGroupName=group, logStreamName=stream)
                except logs.exceptions.ResourceAlreadyExistsException:
                    pass
                self.known.add((group, stream))
            events.sort(key=lambda e: e["timestamp"])  # stable: lines of one invocation keep their order
            for i in range(0, len(events), 5000):  # PutLogEvents takes at most 10,000 events
                logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[i:i + 5000])


class _ControlServer:
    """``POST /invoke/<Function>`` (body: the event) -> the invocation, as JSON; for ``workshop invoke``.

    ``?debug_port=N``: that invocation runs in a fresh environment under debugpy, waiting for a
    debugger on 127.0.0.1:N. ``POST /debug/<Function>`` (body ``{"port": N}``, or ``null`` to
    cancel): the function's next invocation, from anywhere (the API, an event source), does so.
    """

    def __init__(self, cloud: LocalCloud) -> None:
        cloud_ref = cloud

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/") in ("", "/state"):
                    self._answer(200, cloud_ref.outputs)
                else:
                    self._answer(404, {"error": f"no {self.path}: try POST /invoke/<Function>"})

            def do_POST(self) -> None:  # noqa: N802
                path, _, query = self.path.partition("?")
                match = re.fullmatch(r"/(invoke|debug)/([A-Za-z0-9_.-]+)", path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if not match:
                    self._answer(404, {"error": f"no {self.path}: try POST /invoke/<Function>"})
                    return
                action, name = match.groups()
                known = cloud_ref.runtime.functions() if cloud_ref.runtime else []
                if name not in known:
                    self._answer(404, {"error": f"unknown function {name}", "functions": sorted(known)})
                    return
                try:
                    event = json.loads(raw or b"{}")
                    debug_port = _port_or_none((event or {}).get("port") if action == "debug" else
                                               dict(urllib.parse.parse_qsl(query)).get("debug_port"))
                except (ValueError, AttributeError) as e:
                    self._answer(400, {"error": f"the event is not JSON, or the port is not a port: {e}"})
                    return
                if action == "debug":
                    cloud_ref.debug(name, debug_port)
                    self._answer(200, {"function": name, "debug_port": debug_port})
                    return
                try:
                    result = cloud_ref.invoke(name, event, debug_port=debug_port)
                except Exception as e:  # noqa: BLE001
                    status = 429 if isinstance(e, Throttled) else 500
                    self._answer(status, {"error": f"{type(e).__name__}: {e}"})
                    return
                self._answer(200, {
                    "function": name,
                    "request_id": result.request_id,
                    "payload": base64.b64encode(result.payload or b"").decode(),
                    "function_error": result.function_error,
                    "log_lines": result.log_lines,
                    "report": result.report.line(),
                    "cold_start": result.cold_start,
                    "log_stream": getattr(result, "log_stream", ""),
                })

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="workshop-control", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _port_or_none(value: Any) -> int | None:
    """A TCP port from a query string or JSON (None stays None); ValueError otherwise."""
    if value is None:
        return None
    port = int(value)
    if not 0 < port < 65536:
        raise ValueError(f"{value} is not a TCP port")
    return port


class LocalCloud:
    """The app deployed on this machine: moto + the Lambda runtime + event sources + the API."""

    def __init__(
        self,
        template: str | os.PathLike[str],
        port: int = 0,
        dispatch: str = "sns",
        *,
        parameters: Mapping[str, Any] | None = None,
        stack_name: str = "thumbnailr",
        region: str = "us-east-1",
        account_id: str = "123456789012",
        retry_delays: tuple[float, ...] = (1.0, 2.0),
        stream_retry_delay: float = 0.2,
        cache_dir: str | os.PathLike[str] | None = None,
        control: bool = True,
        echo_logs: Callable[[str, list[str]], None] | None = None,
        on_request: Callable[[dict], None] | None = None,
        account_concurrency: int = 10,
    ) -> None:
        self.template_path = Path(template).resolve()
        self.port = port
        self.dispatch = dispatch
        self.parameters = dict(parameters or {})
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.retry_delays = retry_delays
        self.stream_retry_delay = stream_retry_delay
        # the SAM transform takes seconds; its result is kept beside SAM CLI's own build output
        self.cache_dir = Path(cache_dir) if cache_dir else self.template_path.parent / ".aws-sam" / "localcloud"
        self.control = control
        self.echo_logs = echo_logs
        self.on_request = on_request
        self.account_concurrency = account_concurrency
        self.stack: Any = None
        self.runtime: Any = None
        self.gateway: Any = None
        self.event_sources: Any = None
        self.code_dirs: dict[str, tuple[Path, str]] = {}
        self.outputs: dict[str, Any] = {}
        self.started_in_s: float | None = None
        self._moto: _MotoProcess | None = None
        self._clients: Any = None
        self._logs: _LogForwarder | None = None
        self._control: _ControlServer | None = None
        self._endpoint_url: str | None = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> LocalCloud:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalCloud:
        """Start everything; returns when the API answers. Raises ``CloudError`` (and stops what started)."""
        if self._moto is not None:
            raise CloudError("this LocalCloud is already started")
        began = time.monotonic()
        _free_port_check(self.port)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.started_in_s = time.monotonic() - began
        return self

    def _start(self) -> None:
        from localcloud.cfn.stack import Stack, TemplateError

        # moto imports in its own process while this one reads the template
        self._moto = _MotoProcess(self._child_env())
        try:
            self.stack = Stack(
                self.template_path,
                parameters=self.parameters,
                optional_parameters={"Dispatch": self.dispatch},
                stack_name=self.stack_name,
                region=self.region,
                account_id=self.account_id,
                cache_dir=self.cache_dir,
            )
        except TemplateError as e:
            raise CloudError(str(e)) from None
        moto_port = self._moto.wait_ready()
        self._endpoint_url = f"http://localhost:{moto_port}"

        from localcloud.apigateway.gateway import LocalApiGateway, Route
        from localcloud.apigateway.cognito import CognitoVerifier
        from localcloud.event_sources.sources import EventSources
        from localcloud.lambda_service.runtime import FunctionSpec, LambdaRuntime
        from localcloud.cfn.provision import ProvisionError, provision
        from localcloud.lambda_service.code import host_code_dir

        self._clients = Clients(self._endpoint_url, self.region)
        try:
            provision(self.stack, self._clients)
        except (ProvisionError, TemplateError) as e:
            raise CloudError(str(e)) from None

        self._logs = _LogForwarder(self._clients, self._stream_of_request, self.echo_logs)
        self.runtime = LambdaRuntime(
            base_env=fake_aws_environment(self._endpoint_url, self.region),
            log_sink=self._logs.sink,
            region=self.region,
            account_id=self.account_id,
            account_concurrency=self.account_concurrency,
        )
        build_root = self.template_path.parent / ".aws-sam" / "build"
        for fn in self.stack.functions():
            if fn.code_uri is None:
                self.stack.warn(f"{fn.logical_id}: its code is not in a local folder; it cannot run locally")
                continue
            code_dir, why = host_code_dir(fn.code_uri, build_root / fn.logical_id)
            self.code_dirs[fn.name] = (code_dir, why)
            self.runtime.register(FunctionSpec(
                name=fn.name,
                handler=fn.handler,
                code_dir=code_dir,
                environment=fn.environment,
                memory_mb=fn.memory_mb,
                timeout_s=fn.timeout_s,
                reserved_concurrency=fn.reserved_concurrency,
                runtime=fn.runtime,
                architecture=fn.architecture,
            ))

        self.event_sources = EventSources(
            self.stack, self._clients, self.invoke,
            endpoint_url=self._endpoint_url,
            retry_delays=self.retry_delays,
            stream_retry_delay=self.stream_retry_delay,
        )
        self.event_sources.setup()
        self.event_sources.start()

        routes = self.stack.routes()
        apis = sorted({r.api for r in routes})
        if len(apis) > 1:
            self.stack.warn(f"several REST APIs ({', '.join(apis)}): all their routes are served on one port")
        verifier = None
        pool = self.stack.user_pool_for_api()
        if pool is not None and any(r.authorized for r in routes):
            pool_id, client_ids = pool
            if not client_ids:
                raise CloudError(f"the API's Cognito authorizer uses pool {pool_id}, which has no app client")
            verifier = CognitoVerifier.for_pool(
                endpoint_url=self._endpoint_url, region=self.region, user_pool_id=pool_id, app_client_ids=client_ids
            )
        api_lid = apis[0] if apis else None
        self.gateway = LocalApiGateway(
            routes=[Route(r.method, r.path, r.function, r.authorized) for r in routes],
            invoke=self.invoke,
            verifier=verifier,
            port=self.port,
            stage=self.stack.stage_name(api_lid) if api_lid else "Prod",
            api_id=str(self.stack.refs.get(api_lid, "local")) if api_lid else "local",
            region=self.region,
            account_id=self.account_id,
            on_request=self.on_request,
        )
        try:
            self.gateway.start()
        except OSError as e:
            raise CloudError(
                f"port {self.port} on 127.0.0.1 is taken: {e}; use another port (--port 0 picks a free one)"
            ) from None
        if self.control:
            self._control = _ControlServer(self)
        self.outputs = self._outputs()

    def stop(self) -> None:
        """Stop everything that was started (idempotent)."""
        with self._lock:
            control, gateway, sources, logs, runtime, moto = (
                self._control, self.gateway, self.event_sources, self._logs, self.runtime, self._moto)
            self._control = self._logs = self._moto = None
            self.gateway = self.event_sources = None
        for step in (
            control.stop if control else None,
            gateway.stop if gateway else None,
            sources.stop if sources else None,
            (lambda: logs.flush(2.0)) if logs else None,
            runtime.stop if runtime else None,
            logs.stop if logs else None,
            moto.stop if moto else None,
        ):
            if step is None:
                continue
            try:
                step()
            except Exception:  # noqa: BLE001 - stop as much as possible
                log.exception("stopping the local cloud: %s failed", step)

    # ----------------------------------------------------------------- what it offers

    @property
    def running(self) -> bool:
        return self.gateway is not None

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/`` (the stage prefix, ``/Prod/``, is optional)."""
        if self.gateway is None:
            raise CloudError("the local cloud is not started: call start() (or use `with LocalCloud() as cloud:`)")
        return self.gateway.url

    @property
    def endpoint_url(self) -> str:
        """moto's URL, ``http://localhost:PORT``: what ``AWS_ENDPOINT_URL`` is for everything local."""
        if self._endpoint_url is None:
            raise CloudError("the local cloud is not started")
        return self._endpoint_url

    @property
    def control_url(self) -> str | None:
        return self._control.url if self._control else None

    @property
    def functions(self) -> list[str]:
        return self.runtime.functions() if self.runtime else []

    def client(self, service: str) -> Any:
        """A boto3 client for ``service``, aimed at the local cloud with fake credentials."""
        if self._clients is None:
            raise CloudError("the local cloud is not started")
        return self._clients(service)

    def environment(self) -> dict[str, str]:
        """The variables that aim an AWS SDK or CLI at this local cloud (fake credentials)."""
        return fake_aws_environment(self.endpoint_url, self.region)

    def invoke(self, function: str, event: Any, *, debug_port: int | None = None) -> Any:
        """Invoke ``function`` synchronously (``RequestResponse``): the runtime's ``InvocationResult``.

        With ``debug_port``, in a fresh environment that waits for a debugger on 127.0.0.1:``debug_port``
        (``sam local invoke -d``): attach after the call, as with SAM; no timeout while debugging.
        """
        if self.runtime is None:
            raise CloudError("the local cloud is not started")
        if debug_port is not None:
            result = self.runtime.invoke(function, event, debug_port=debug_port)
        else:
            result = self.runtime.invoke(function, event)
        if self._logs is not None:
            self._logs.note(result.request_id, getattr(result, "log_stream", ""))
        return result

    def debug(self, function: str, port: int | None = 5678) -> None:
        """The function's next invocation (through the API, an event source...) waits for a debugger.

        It runs in a fresh environment under debugpy on 127.0.0.1:``port``, like ``sam local start-api
        -d``; once only. ``port=None`` cancels.
        """
        if self.runtime is None:
            raise CloudError("the local cloud is not started")
        self.runtime.debug_next(function, port)

    def invoke_async(self, function: str, event: Any) -> None:
        """Invoke ``function`` asynchronously (``Event``): retried on error, then its DLQ/destination."""
        if self.event_sources is None:
            raise CloudError("the local cloud is not started")
        self.event_sources.invoke_async(function, event)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no event is being delivered or retried; True if that happened within ``timeout``."""
        return self.event_sources.wait_idle(timeout) if self.event_sources else True

    def user_pool(self) -> tuple[str, str, str | None]:
        """(pool id, app client id, client secret or None) of the API's Cognito authorizer."""
        pool = self.stack.user_pool_for_api() if self.stack else None
        if pool is None:
            pools = self.stack.of_type("AWS::Cognito::UserPool") if self.stack else []
            if not pools:
                raise CloudError("the template has no Cognito user pool")
            pool_id = self.stack.refs[pools[0]]
            clients = [self.stack.refs[c] for c in self.stack.of_type("AWS::Cognito::UserPoolClient")
                       if self.stack.properties(c).get("UserPoolId") == pool_id]
        else:
            pool_id, clients = pool
        if not clients:
            raise CloudError(f"user pool {pool_id} has no app client")
        client_lid = next(c for c in self.stack.of_type("AWS::Cognito::UserPoolClient")
                          if self.stack.refs.get(c) == clients[0])
        return pool_id, clients[0], self.stack.attrs.get((client_lid, "ClientSecret"))

    def add_user(self, name: str, password: str) -> None:
        """Add a confirmed user to the API's user pool (``admin_create_user`` + a permanent password)."""
        pool_id, _, _ = self.user_pool()
        add_user(self.client("cognito-idp"), pool_id, name, password)

    def token(self, name: str, password: str) -> str:
        """A Cognito ID token for ``name`` (``USER_PASSWORD_AUTH``): the API's ``Authorization`` header."""
        _, client_id, secret = self.user_pool()
        return id_token(self.client("cognito-idp"), client_id, name, password, secret)

    # ----------------------------------------------------------------- internals

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(fake_aws_environment("http://localhost:0", self.region))
        env.pop("AWS_ENDPOINT_URL", None)
        return env

    def _stream_of_request(self, request_id: str) -> str | None:
        if self.runtime is None:
            return None
        for record in reversed(self.runtime.records()):
            if any(inv[0] == request_id for inv in record.invocations):
                return record.log_stream
        return None

    def _outputs(self) -> dict[str, Any]:
        outputs = self.stack.outputs()
        local = self.api_url.rstrip("/")
        for lid in self.stack.of_type("AWS::ApiGateway::RestApi"):
            api_id = re.escape(str(self.stack.refs.get(lid)))
            pattern = re.compile(rf"https://{api_id}\.execute-api\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
            outputs = {k: pattern.sub(local, v) if isinstance(v, str) else v for k, v in outputs.items()}
        outputs.update({
            "AwsEndpointUrl": self.endpoint_url,
            "Region": self.region,
            "StackName": self.stack_name,
            "Dispatch": self.stack.parameters.get("Dispatch", self.dispatch),
            "Pid": os.getpid(),
            "ControlUrl": self.control_url,
            "LocalApiUrl": self.api_url,
            "Functions": sorted(self.functions),
        })
        try:
            pool_id, client_id, secret = self.user_pool()
        except CloudError:  # a template without Cognito
            pass
        else:
            outputs.update({"CognitoUserPoolId": pool_id, "CognitoClientId": client_id})
            if secret:
                outputs["CognitoClientSecret"] = secret
        return outputs

    def delete_stack(self) -> list[tuple[str, str, str]]:
        """Delete what the template made, as ``sam delete`` does (``localcloud.cfn.delete``): resources in reverse
        dependency order, buckets emptied first, then the functions' alarms and log groups. The event sources
        stop first. Returns (type, name, what was done) rows."""
        from localcloud.cfn.delete import delete_stack

        if self._clients is None:
            raise CloudError("the local cloud is not started")
        queues: list[str] = []
        if self.event_sources is not None:
            self.event_sources.stop()  # the notifications and subscriptions go with their resources
            queues = self.event_sources.internal_queues()
        return delete_stack(self.stack, self._clients, queues)
