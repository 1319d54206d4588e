"""``python -m workshop``: the local cloud from a terminal, in the spirit of SAM CLI.

=============================================  ==========================================================
command                                        what it does
=============================================  ==========================================================
``up [--port 3000] [--dispatch sns|stream]``   start the local cloud (moto, the app's resources, every
``[--param NAME=VALUE ...]``                   function, their event sources, the API); runs until
                                               ``down``, Ctrl-C or SIGTERM
``down``                                       stop the running ``up``
``status``                                     what is running (the state file)
``user add NAME --password P``                 add a confirmed user to the API's Cognito user pool
``token NAME --password P``                    print an ID token for NAME (the ``Authorization`` header)
``invoke FUNCTION [--event FILE]``             one invocation in the running ``up`` (warm environments
``[--debug-port 5678]``                        are reused), like ``sam local invoke``: logs on stderr,
                                               the response on stdout; with ``--debug-port``, in a fresh
                                               environment that waits for a debugger (``sam local
                                               invoke -d``): attach then, e.g. VS Code's "Attach to
                                               local Lambda" (``.vscode/launch.json``)
``debug FUNCTION [--port 5678] [--cancel]``     the function's next invocation (through the API, an
                                               event source...) waits for a debugger on that port
``logs FUNCTION [--tail] [--filter P]``        the function's CloudWatch Logs in the local cloud, like
``[--since 10m]``                              ``sam logs``
``doctor``                                     is this laptop ready? Python, disk, memory, ports, the pins,
                                               a local cloud's ``/ping``, sam build's wheels
                                               (``workshop.doctor``, ``make doctor``)
=============================================  ==========================================================

``up`` writes its endpoints to ``.workshop/state.json`` (``WORKSHOP_STATE_FILE``); the other
commands read it. Exit codes: 0 done, 1 the local cloud says no (nothing running, already
running, port taken...), 2 the command line is wrong (unknown function, bad event file...).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop import config

if TYPE_CHECKING:
    from localcloud import LocalCloud

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class WorkshopError(Exception):
    """A message for the user (no traceback) and an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --------------------------------------------------------------------------- the state file


def _pid_running(pid: Any) -> bool:
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - psutil missing or the process just went
        return True


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _running_state(path: Path) -> dict[str, Any]:
    """The state of the running ``up``, or WorkshopError('nothing is running')."""
    state = _read_state(path)
    if not state or not _pid_running(state.get("Pid")):
        raise WorkshopError(
            f"the local cloud is not running (no live `up` in {_show(path)}): start it with `python -m workshop up`"
        )
    return state


def _write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


def _show(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _client(state: dict[str, Any], service: str) -> Any:
    from localcloud import Clients

    return Clients(state["AwsEndpointUrl"], state.get("Region") or config.region())(service)


def _check_function(state: dict[str, Any], name: str) -> None:
    functions = state.get("Functions") or []
    if name not in functions:
        raise WorkshopError(f"unknown function {name!r}; the functions are: {', '.join(functions)}", EXIT_USAGE)


def _lambda_name(state: dict[str, Any], logical_id: str) -> str:
    """The Lambda name CloudFormation gave a function of the stack (``thumbnailr-PingFunction-...``), asked of
    CloudFormation as ``sam logs`` asks it."""
    resource = _client(state, "cloudformation").describe_stack_resource(
        StackName=state.get("StackName") or "thumbnailr", LogicalResourceId=logical_id)
    return resource["StackResourceDetail"]["PhysicalResourceId"]


# --------------------------------------------------------------------------- up / down / status


def _claim_state(state_path: Path) -> Any:
    """The lock that makes this the only `up` (held until exit); a stale state file is removed."""
    import fcntl

    state_path.parent.mkdir(parents=True, exist_ok=True)
    state = _read_state(state_path)
    if state and _pid_running(state.get("Pid")):
        raise WorkshopError(
            f"the local cloud is already running (pid {state['Pid']}, API {state.get('LocalApiUrl') or state.get('ApiUrl')}); "
            f"stop it with `python -m workshop down` first (or delete {_show(state_path)} if that pid is not it)"
        )
    lock_file = open(state_path.with_name(state_path.name + ".lock"), "w")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock_file.close()
        raise WorkshopError("another `python -m workshop up` is starting or running; "
                            "stop it with `python -m workshop down` first") from None
    if state is not None:
        state_path.unlink(missing_ok=True)  # stale: its process is gone
    return lock_file


def _parameters(items: list[str] | None) -> dict[str, str]:
    """``--param NAME=VALUE`` options as template parameters."""
    parameters = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise WorkshopError(f"--param {item!r}: use NAME=VALUE, e.g. --param MonthlyQuota=3", EXIT_USAGE)
        parameters[name] = value
    return parameters


#: C0 and C1 control characters and DEL, but the tab (REPORT lines are tab-separated)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(value: object) -> str:
    """``value`` as text with its control characters escaped (``\\n``, ``\\x1b``).

    What a request or a token carries (a path, a header, a token's ``alg``) is printed by ``up``:
    unescaped, a newline would forge a console line and an ESC sequence would reach the terminal.
    """
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))


def _printers(quiet: bool) -> tuple[Any, Any]:
    """(echo of the functions' log lines, access log of the API), both silent when ``quiet``."""
    print_lock = threading.Lock()

    def echo(function: str, lines: list[str]) -> None:
        if quiet:
            return
        with print_lock:
            for line in lines:
                print(f"[{printable(function)}] {printable(line)}", flush=True)

    def access(info: dict) -> None:
        if quiet:
            return
        with print_lock:
            extra = f" -> {info.get('function')}" if info.get("function") else ""
            error = f" ({info['error']})" if info.get("error") else ""
            print(printable(f"{time.strftime('%H:%M:%S')} {info.get('method')} {info.get('path')} {info.get('status')} "
                            f"{info.get('latency_ms', 0):.0f} ms{extra}{error}"), flush=True)

    return echo, access


def _cmd_up(args: argparse.Namespace) -> int:
    state_path = config.state_file()
    lock_file = _claim_state(state_path)
    try:
        parameters = _parameters(args.param)
        if not args.minute_s > 0:
            raise WorkshopError(f"--minute-s {args.minute_s:g}: a positive number of seconds", EXIT_USAGE)
        if args.concurrency is not None and args.concurrency < 1:
            raise WorkshopError(f"--concurrency {args.concurrency}: a whole number of at least 1", EXIT_USAGE)
    except WorkshopError:
        lock_file.close()
        raise

    from localcloud import CloudError, LocalCloud

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    echo, access = _printers(args.quiet)
    options = config.local_cloud_options()
    if args.template is not None:  # another SAM app: its own stack name, unless given
        template = Path(args.template).expanduser().resolve()
        if not template.is_file():
            lock_file.close()
            raise WorkshopError(f"--template {args.template}: no such file", EXIT_USAGE)
        options.update(template=template, stack_name=args.stack_name or _stack_name_for(template))
    elif args.stack_name:
        options["stack_name"] = args.stack_name
    cloud = LocalCloud(**options, port=args.port, dispatch=args.dispatch, parameters=parameters,
                       echo_logs=echo, on_request=access, minute_s=args.minute_s, concurrency=args.concurrency)
    try:
        print(f"Starting the local cloud (dispatch: {args.dispatch})...", flush=True)
        try:
            cloud.start()
        except CloudError as e:
            raise WorkshopError(str(e)) from None
        _write_state(state_path, dict(cloud.outputs))
        _print_up(cloud, state_path)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        print("\nStopping the local cloud...", flush=True)
    finally:
        try:
            cloud.stop()
        finally:
            current = _read_state(state_path)
            if current is not None and current.get("Pid") == os.getpid():
                state_path.unlink(missing_ok=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            lock_file.close()
    print("Stopped.", flush=True)
    return EXIT_OK


def _stack_name_for(template: Path) -> str:
    """A stack name from the template's folder (``sam deploy --guided`` suggests the same)."""
    name = re.sub(r"[^A-Za-z0-9-]+", "-", template.resolve().parent.name).strip("-")
    return name if name[:1].isalpha() else f"app-{name}".rstrip("-")


def _print_up(cloud: LocalCloud, state_path: Path) -> None:
    out = cloud.outputs
    lines = [
        f"The local cloud is up in {cloud.started_in_s:.1f} s: stack {cloud.stack_name}, "
        f"dispatch {out.get('Dispatch')}, region {cloud.region}.",
        "",
        f"  API             {cloud.api_url}  (stage URL: {out.get('ApiUrl', cloud.api_url)})",
        f"  AWS endpoint    {cloud.endpoint_url}  (every service: Lambda, CloudFormation, S3, DynamoDB, ...)",
        f"  Control         {cloud.control_url}",
        f"  Lambda          concurrency {cloud.runtime.account_concurrency} (--concurrency N), idle environments "
        f"kept {cloud.runtime.idle_lifetime_s / 60:g} min, {cloud.runtime.memory_budget_mb} MB for them all",
        "",
        "  Routes:",
    ]
    for route in cloud.stack.routes():
        auth = "  (Cognito ID token)" if route.authorized else ""
        lines.append(f"    {route.method:<6} {route.path:<28} {route.function}{auth}")
    lines += ["", "  Outputs:"]
    for name, value in out.items():
        if name in ("Functions", "Pid", "ControlUrl", "LocalApiUrl", "CognitoUserPoolId", "CognitoClientId",
                    "CognitoClientSecret"):
            continue
        lines.append(f"    {name:<24} {value}")
    for warning in cloud.stack.warnings:
        lines.append(f"  warning: {warning}")
    dirs = sorted({why for _, why in cloud.code_dirs.values()})
    if dirs:
        lines.append(f"  Code: {'; '.join(dirs)}")
    lines += [
        "",
        "  Aim a shell's aws and sam at it (fake credentials, never your account):",
        *(f"    {line}" for line in _exports(out)),
        '  or: eval "$(python -m workshop env)"',
        "",
        f"Endpoints written to {_show(state_path)}. Try:",
        f"  curl {cloud.api_url}ping",
        "  aws lambda list-functions    # with the exports above",
        "  python -m workshop user add ada --password 'Passw0rd!'",
        "Stop with Ctrl-C or `python -m workshop down`.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _cmd_down(args: argparse.Namespace) -> int:
    state_path = config.state_file()
    state = _read_state(state_path)
    if state is None:
        raise WorkshopError("nothing is running (no state file): nothing to stop")
    pid = state.get("Pid")
    if not _pid_running(pid):
        state_path.unlink(missing_ok=True)
        raise WorkshopError(f"nothing is running (the `up` with pid {pid} is gone); removed its stale state file")
    os.kill(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not _pid_running(pid) or not state_path.exists():
            break
        time.sleep(0.1)
    else:
        os.kill(int(pid), signal.SIGKILL)
        state_path.unlink(missing_ok=True)
        print(f"The local cloud (pid {pid}) did not stop within {args.timeout:.0f} s: killed.")
        return EXIT_OK
    while _pid_running(pid) and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    print(f"The local cloud (pid {pid}) is stopped.")
    return EXIT_OK


def _exports(state: dict[str, Any]) -> list[str]:
    """The ``export`` lines that aim the AWS CLI, SAM CLI and SDKs of a shell at the running local cloud."""
    from localcloud import fake_aws_environment

    env = fake_aws_environment(state["AwsEndpointUrl"], state.get("Region") or "us-east-1")
    # the session token too: a real one left in the shell must not go with the fake keys
    names = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION")
    return [f"export {name}={shlex.quote(env[name])}" for name in names if name in env]


def _cmd_env(args: argparse.Namespace) -> int:
    state = _running_state(config.state_file())
    print("\n".join(_exports(state)))
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    state = _running_state(config.state_file())
    print(json.dumps(state, indent=2))
    return EXIT_OK


# --------------------------------------------------------------------------- users and tokens


def _cmd_user_add(args: argparse.Namespace) -> int:
    from localcloud import CloudError, add_user

    state = _running_state(config.state_file())
    pool_id = state.get("CognitoUserPoolId")
    if not pool_id:
        raise WorkshopError("the running local cloud has no Cognito user pool for its API")
    try:
        add_user(_client(state, "cognito-idp"), pool_id, args.name, args.password)
    except CloudError as e:
        raise WorkshopError(str(e)) from None
    print(f"User {args.name} added to pool {pool_id} (confirmed). Get a token: "
          f"python -m workshop token {args.name} --password '...'")
    return EXIT_OK


def _cmd_token(args: argparse.Namespace) -> int:
    from localcloud import CloudError, id_token

    state = _running_state(config.state_file())
    client_id = state.get("CognitoClientId")
    if not client_id:
        raise WorkshopError("the running local cloud has no Cognito app client for its API")
    try:
        token = id_token(_client(state, "cognito-idp"), client_id, args.name, args.password,
                         state.get("CognitoClientSecret"))
    except CloudError as e:
        raise WorkshopError(str(e)) from None
    print(token)
    return EXIT_OK


# --------------------------------------------------------------------------- invoke


def _read_event(source: str | None) -> bytes:
    if source is None:
        return b"{}"
    try:
        if source == "-":
            raw = sys.stdin.buffer.read()
        else:
            raw = Path(source).read_bytes()
    except FileNotFoundError:
        raise WorkshopError(f"event file {source} does not exist", EXIT_USAGE) from None
    except IsADirectoryError:
        raise WorkshopError(f"event file {source} is a folder, not a JSON file", EXIT_USAGE) from None
    except OSError as e:
        raise WorkshopError(f"cannot read event file {source}: {e.strerror or e}", EXIT_USAGE) from None
    try:
        json.loads(raw or b"")
    except ValueError as e:
        raise WorkshopError(f"event file {source} is not valid JSON ({e}); sam-app/events/ has examples",
                            EXIT_USAGE) from None
    return raw


def _cmd_invoke(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    state = _running_state(config.state_file())
    _check_function(state, args.function)
    event = _read_event(args.event)
    control = state.get("ControlUrl")
    if not control:
        raise WorkshopError("the running local cloud has no control endpoint; restart it with `python -m workshop up`")
    url = f"{control.rstrip('/')}/invoke/{args.function}"
    timeout = args.timeout
    if args.debug_port is not None:
        url += f"?debug_port={args.debug_port}"
        timeout = None  # stopped at a breakpoint for as long as it takes
        print(f"{args.function} waits for a debugger on 127.0.0.1:{args.debug_port}: attach now "
              "(VS Code: \"Attach to local Lambda\")", file=sys.stderr, flush=True)
    request = urllib.request.Request(url, data=event, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read())
        except ValueError:
            body = {}
        message = body.get("error") or f"HTTP {e.code}"
        if body.get("functions"):
            message += f"; the functions are: {', '.join(body['functions'])}"
        raise WorkshopError(message, EXIT_USAGE if e.code in (400, 404) else EXIT_ERROR) from None
    except (urllib.error.URLError, OSError) as e:
        raise WorkshopError(f"cannot reach the local cloud at {control} ({e}); is `python -m workshop up` running?") from None
    for line in answer.get("log_lines") or []:
        print(line, file=sys.stderr)
    payload = base64.b64decode(answer.get("payload") or "")
    sys.stdout.write(payload.decode("utf-8", "replace") + "\n")
    sys.stdout.flush()
    return EXIT_OK


def _cmd_debug(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    state = _running_state(config.state_file())
    _check_function(state, args.function)
    control = state.get("ControlUrl")
    if not control:
        raise WorkshopError("the running local cloud has no control endpoint; restart it with `python -m workshop up`")
    port = None if args.cancel else args.port
    request = urllib.request.Request(f"{control.rstrip('/')}/debug/{args.function}", method="POST",
                                     data=json.dumps({"port": port}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except urllib.error.HTTPError as e:
        raise WorkshopError(f"the local cloud refused: HTTP {e.code} {e.read().decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as e:
        raise WorkshopError(f"cannot reach the local cloud at {control} ({e}); is `python -m workshop up` running?") from None
    if port is None:
        print(f"{args.function}: debugging cancelled")
    else:
        print(f"{args.function}: its next invocation waits for a debugger on 127.0.0.1:{port} "
              "(make the call, then attach)")
    return EXIT_OK


# --------------------------------------------------------------------------- logs


_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|w)?[a-z]*\s*$", re.IGNORECASE)


def _since_ms(text: str) -> int:
    match = _SINCE.match(text or "")
    if not match:
        raise WorkshopError(f"--since {text!r}: use a duration like 30s, 10m, 2h or 1d", EXIT_USAGE)
    unit = (match.group(2) or "m").lower()[0]
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    return int((time.time() - seconds) * 1000)


def _print_event(event: dict) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event["timestamp"] / 1000))
    stamp += f".{event['timestamp'] % 1000:03d}Z"
    # CloudWatch's messages end with a newline (REPORT's with a tab and a newline): one line each here
    print(f"{event.get('logStreamName', '')} {stamp} {event['message'].rstrip()}", flush=True)


def _cmd_logs(args: argparse.Namespace) -> int:
    state = _running_state(config.state_file())
    _check_function(state, args.function)
    logs = _client(state, "logs")
    group = f"/aws/lambda/{_lambda_name(state, args.function)}"
    start = _since_ms(args.since)
    seen: set[str] = set()

    def fetch(start_ms: int) -> int:
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start_ms}
        if args.filter:
            kwargs["filterPattern"] = args.filter
        newest = start_ms
        events: list[dict] = []
        while True:
            page = logs.filter_log_events(**kwargs)
            events.extend(page.get("events") or [])
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = token
        events.sort(key=lambda e: (e["timestamp"], e.get("ingestionTime", 0)))
        for event in events:
            key = event.get("eventId") or f"{event.get('logStreamName')}/{event['timestamp']}/{event['message']}"
            if key in seen:
                continue
            seen.add(key)
            _print_event(event)
            newest = max(newest, event["timestamp"])
        return newest

    try:
        newest = fetch(start)
    except logs.exceptions.ResourceNotFoundException:
        raise WorkshopError(f"no logs yet for {args.function} (log group {group} does not exist)") from None
    if not args.tail:
        return EXIT_OK
    try:
        while True:
            time.sleep(1.0)
            try:
                newest = fetch(max(start, newest - 2000))
            except Exception:  # noqa: BLE001
                if not _pid_running(state.get("Pid")):
                    print("The local cloud stopped.", file=sys.stderr)
                    return EXIT_OK
                raise
    except KeyboardInterrupt:
        return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from workshop import doctor

    return doctor.run()


# --------------------------------------------------------------------------- the parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workshop",
        description="The workshop's local cloud: the SAM app on this machine, no Docker, no AWS account.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser("up", help="start the local cloud (until `down` or Ctrl-C)")
    up.add_argument("--port", type=int, default=None, help="the API's port (default 3000; 0: any free port)")
    up.add_argument("--dispatch", choices=["sns", "stream"], default="sns",
                    help="how thumbnail commands reach the worker (the template's Dispatch parameter)")
    up.add_argument("--param", action="append", metavar="NAME=VALUE",
                    help="override a template parameter (repeatable), e.g. --param MonthlyQuota=3")
    up.add_argument("--quiet", action="store_true", help="do not print requests and function logs")
    up.add_argument("--minute-s", type=float, default=60.0, metavar="SECONDS",
                    help="how long a minute of CodeDeploy's traffic shifting and of alarm periods lasts "
                         "(default 60, as on AWS; e.g. 2 to watch a canary deployment in seconds)")
    up.add_argument("--concurrency", type=int, default=None, metavar="N",
                    help="the account's Lambda concurrency (default 1,000, Lambda's default quota); "
                         "reserved concurrency must leave 100 of it unreserved, as on AWS")
    up.add_argument("--template", metavar="PATH", help="another SAM app's template (default: sam-app/template.yaml)")
    up.add_argument("--stack-name", metavar="NAME", help="the stack's name (default: thumbnailr, or the template's folder)")
    up.set_defaults(handler=_cmd_up)

    down = sub.add_parser("down", help="stop the running local cloud")
    down.add_argument("--timeout", type=float, default=20.0, help=argparse.SUPPRESS)
    down.set_defaults(handler=_cmd_down)

    env = sub.add_parser("env", help="print the exports that aim a shell's aws/sam at the running local cloud",
                         description='Aim this shell at the running local cloud: eval "$(python -m workshop env)"')
    env.set_defaults(handler=_cmd_env)

    status = sub.add_parser("status", help="print the running local cloud's endpoints")
    status.set_defaults(handler=_cmd_status)

    user = sub.add_parser("user", help="manage the API's Cognito users")
    user_sub = user.add_subparsers(dest="user_command", metavar="ACTION")
    add = user_sub.add_parser("add", help="add a confirmed user")
    add.add_argument("name")
    add.add_argument("--password", required=True)
    add.set_defaults(handler=_cmd_user_add)

    token = sub.add_parser("token", help="print a Cognito ID token (for the Authorization header)")
    token.add_argument("name")
    token.add_argument("--password", required=True)
    token.set_defaults(handler=_cmd_token)

    invoke = sub.add_parser("invoke", help="invoke a function once in the running local cloud")
    invoke.add_argument("function", help="the function's logical id, e.g. PingFunction")
    invoke.add_argument("--event", "-e", metavar="FILE", help="a JSON event file ('-': stdin; default {})")
    invoke.add_argument("--debug-port", "-d", type=int, metavar="PORT",
                        help="run it in a fresh environment that waits for a debugger on 127.0.0.1:PORT")
    invoke.add_argument("--timeout", type=float, default=120.0, help=argparse.SUPPRESS)
    invoke.set_defaults(handler=_cmd_invoke)

    debug = sub.add_parser("debug", help="make a function's next invocation wait for a debugger")
    debug.add_argument("function", help="the function's logical id, e.g. CreateThumbnailFunction")
    debug.add_argument("--port", "-p", type=int, default=5678, help="debugpy's port on 127.0.0.1 (default 5678)")
    debug.add_argument("--cancel", action="store_true", help="cancel a debug request not yet taken")
    debug.set_defaults(handler=_cmd_debug)

    logs = sub.add_parser("logs", help="a function's logs (CloudWatch Logs in the local cloud)")
    logs.add_argument("function", help="the function's logical id, e.g. PingFunction")
    logs.add_argument("--tail", "-t", action="store_true", help="keep printing new lines until Ctrl-C")
    logs.add_argument("--filter", metavar="PATTERN", help="a CloudWatch filter pattern: a term or \"a phrase\"")
    logs.add_argument("--since", "-s", default="10m", help="how far back, e.g. 30s, 10m, 2h (default 10m)")
    logs.set_defaults(handler=_cmd_logs)

    doctor = sub.add_parser("doctor", help="check that this laptop is ready for the workshop (one line per problem)")
    doctor.set_defaults(handler=_cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed the usage and the error
        return int(e.code or 0)
    handler = getattr(args, "handler", None)
    if handler is None:
        if getattr(args, "command", None) == "user":
            print("usage: python -m workshop user add NAME --password P", file=sys.stderr)
        else:
            parser.print_help(sys.stderr)
        return EXIT_USAGE
    if getattr(args, "port", None) is None and args.command == "up":
        try:
            args.port = config.api_port()
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE
    try:
        return handler(args)
    except WorkshopError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - no traceback for the user, but say what happened
        if os.environ.get("WORKSHOP_DEBUG"):
            raise
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(e, (BotoCoreError, ClientError)):
            print(f"error: the local cloud refused: {e}", file=sys.stderr)
        else:
            print(f"error: {type(e).__name__}: {e} (set WORKSHOP_DEBUG=1 to see the traceback)", file=sys.stderr)
        return EXIT_ERROR

