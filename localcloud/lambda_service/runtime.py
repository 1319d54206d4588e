"""The local Lambda service (LambdaRuntime): registered functions, their environments, concurrency, ``invoke``.

SAM CLI's ``sam local`` needs Docker. This does what the Lambda service does, without it: each
*execution environment* (:mod:`.environment`) is a Python process running AWS's own runtime
interface client (``python -m awslambdaric <handler>``, the same ``bootstrap`` the managed
python3.x runtimes run), talking over HTTP to a local Runtime API (:mod:`.runtime_api`).

What it reproduces (``LambdaRuntime.invoke`` is synchronous, thread-safe and never queues):

* **Cold and warm starts.** Environments start lazily on the first invoke. An idle environment
  of the function is reused; when every one is busy a new one starts, up to the function's
  reserved concurrency (or the account's unreserved concurrency, shared by the functions that
  have none): past that, :class:`Throttled` (Lambda's ``TooManyRequestsException``). An
  environment whose process died is replaced on the next invoke.
* **Idle environments live for minutes**, as on Lambda: ``idle_lifetime_s`` after its last
  invocation (10 minutes by default, ``DEFAULT_IDLE_LIFETIME_S``) an idle environment is stopped
  (``stop_reason`` "idle"); a steady trickle of calls stays warm.
* **Concurrency.** The account's is ``account_concurrency`` (Lambda's default quota, 1,000; the
  CLI's ``up --concurrency N``); reservations must leave ``min_unreserved`` (100, or all of a
  smaller account) to the functions without one, as Lambda does.
* **What a laptop can afford.** Every environment may use up to its function's memory size, so the live
  environments' memory sizes together stay within ``memory_budget_mb`` (by default the machine's RAM:
  an environment seldom uses all of its memory size, a Python one 40 to 150 MB, and the memory watcher
  stops any that passes it). A new environment first makes room by stopping the
  least recently used idle ones, of any function (``stop_reason`` "reclaimed"); when every
  environment is busy and the budget is spent, the invoke is throttled as the account's limit
  would (``ConcurrentInvocationLimitExceeded``), and a warning says why. One environment of a
  function larger than the whole budget may still start.
* **Debugging** (like ``sam local invoke -d PORT``): an environment can run under `debugpy
  <https://github.com/microsoft/debugpy>`_, ``python -Xfrozen_modules=off -m debugpy --listen
  127.0.0.1:PORT --wait-for-client -m awslambdaric <handler>``, for every new environment of a
  function (``FunctionSpec.debug_port``), for its next one (:meth:`LambdaRuntime.debug_next`) or
  for one invocation (``invoke(..., debug_port=PORT)``). It waits for a debugger before it
  imports the handler (make the call first, then attach, as with SAM), and serves one invocation
  only: the next one gets a fresh environment. Only one environment can listen on a port: debug
  with one call at a time.

Each environment gets Lambda's variables (``_HANDLER``, ``AWS_LAMBDA_FUNCTION_NAME``,
``AWS_LAMBDA_LOG_STREAM_NAME``...), then ``base_env`` (the platform's: endpoint URL, fake
credentials), then the function's own. Nothing else is inherited from the parent but ``PATH``,
``HOME`` and ``LANG``: no ``AWS_PROFILE``, no real credentials.

Linux and macOS (not Windows: process groups). Every process is reaped and every thread is a
daemon; :meth:`LambdaRuntime.stop` (or leaving the ``with`` block) kills everything.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import json
import logging
import os
import platform
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localcloud.errors import RequestTooLarge, Throttled, UnknownFunction
from localcloud.lambda_service import process
from localcloud.lambda_service.environment import Environment
from localcloud.lambda_service.spec import (
    DEFAULT_ACCOUNT_CONCURRENCY,
    DEFAULT_ACCOUNT_ID,
    DEFAULT_IDLE_LIFETIME_S,
    MAX_REQUEST_PAYLOAD,
    MIN_UNRESERVED_CONCURRENCY,
    RESERVED_ENVIRONMENT_KEYS,
    EnvironmentRecord,
    FunctionSpec,
    InvocationResult,
)

__all__ = ["LambdaRuntime"]

log = logging.getLogger(__name__)


class _FunctionState:
    """One registered function: its configuration, its environments, its invocations in flight."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self.envs: list[Environment] = []
        self.in_flight = 0
        self.debug_next: tuple[int, bool] | None = None  # (port, wait): the next new environment's debugpy


_LIVE_RUNTIMES: weakref.WeakSet[LambdaRuntime] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:  # a forgotten stop() must not leave processes behind
    for runtime in list(_LIVE_RUNTIMES):
        try:
            runtime.stop()
        except Exception:  # noqa: BLE001
            pass


def _retire_locked(fn: _FunctionState, reason: str) -> list[Environment]:
    """Take ``fn``'s idle environments out (returned, to be killed outside the lock); busy ones retire after their call."""
    idle = []
    for env in list(fn.envs):
        if env.busy:
            env.retire_reason = reason
        else:
            fn.envs.remove(env)
            idle.append(env)
    return idle


def _default_memory_budget_mb() -> int:
    """The machine's RAM (8 GB when it cannot be read): the memory sizes the environments may have together."""
    try:
        import psutil

        total = psutil.virtual_memory().total
    except Exception:  # noqa: BLE001 - no psutil, or no way to read memory here
        return 8192
    return max(2048, total // (1024 * 1024))


class LambdaRuntime:
    """The local Lambda service: registered functions, their environments, ``invoke``."""

    def __init__(
        self,
        *,
        account_concurrency: int = DEFAULT_ACCOUNT_CONCURRENCY,
        base_env: dict[str, str] | None = None,
        python: str = sys.executable,
        log_sink: Callable[[str, list[str], str], None] | None = None,
        region: str = "us-east-1",
        account_id: str = DEFAULT_ACCOUNT_ID,
        idle_lifetime_s: float = DEFAULT_IDLE_LIFETIME_S,
        memory_budget_mb: int | None = None,
    ) -> None:
        if not isinstance(account_concurrency, int) or account_concurrency < 1:
            raise ValueError(f"the account's concurrency must be a whole number >= 1, not {account_concurrency!r}")
        if not idle_lifetime_s > 0:
            raise ValueError(f"idle_lifetime_s must be a positive number of seconds, not {idle_lifetime_s!r}")
        self.account_concurrency = account_concurrency
        self.idle_lifetime_s = float(idle_lifetime_s)
        self.memory_budget_mb = int(memory_budget_mb) if memory_budget_mb else _default_memory_budget_mb()
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
        self._runtime_dir = process.runtime_dir(python)
        self._ric_version = process.ric_version()
        self._budget_warned = False
        self._stopping = threading.Event()
        self._reaper = threading.Thread(target=self._reap_idle, name="lambda-idle-reaper", daemon=True)
        self._reaper.start()
        _LIVE_RUNTIMES.add(self)

    @property
    def min_unreserved(self) -> int:
        """What reservations must leave unreserved: 100, or the whole of a smaller account."""
        return min(MIN_UNRESERVED_CONCURRENCY, self.account_concurrency)

    def _check_reservation_locked(self, function_name: str, reserved: int | None) -> None:
        others = self._reserved_locked(exclude=function_name)
        if self.account_concurrency - others - (reserved or 0) < self.min_unreserved:
            raise ValueError(
                f"Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of [{self.min_unreserved}].")

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
        stale: list[Environment] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the local Lambda runtime is stopped")
            if spec.reserved_concurrency:
                self._check_reservation_locked(spec.function_name, spec.reserved_concurrency)
            old = self._functions.get(spec.name)
            if old is None:
                self._functions[spec.name] = _FunctionState(spec)
            else:
                old.spec = spec
                stale = _retire_locked(old, "replaced")
        for env in stale:
            env.kill("replaced")

    def unregister(self, name: str) -> None:
        """Remove a function: its idle environments are killed, busy ones once their invocation ends."""
        with self._lock:
            fn = self._functions.pop(name, None)
            stale = _retire_locked(fn, "deleted") if fn is not None else []
        for env in stale:
            env.kill("deleted")

    def set_reserved_concurrency(self, function_name: str, reserved: int | None) -> None:
        """Change the reserved concurrency of every key of ``function_name``, without replacing its environments."""
        if reserved is not None and reserved < 0:
            raise ValueError("reserved_concurrency must be >= 0")
        with self._lock:
            if reserved:
                self._check_reservation_locked(function_name, reserved)
            for fn in self._functions.values():
                if fn.spec.function_name == function_name:
                    fn.spec = dataclasses.replace(fn.spec, reserved_concurrency=reserved)

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
                # the function's name, not the runtime key: every version logs to /aws/lambda/<function>
                self.log_sink(env.spec.function_name, list(result.log_lines), result.log_stream)
            except Exception:  # noqa: BLE001 - the sink's failure is not the function's
                log.exception("log_sink failed for %s", name)
        return result

    def _acquire(self, name: str, debug: tuple[int, bool] | None = None) -> Environment:
        reclaim: list[Environment] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the local Lambda runtime is stopped")
            fn = self._functions.get(name)
            if fn is None:
                raise UnknownFunction(name, self.function_arn(name))
            reserved = fn.spec.reserved_concurrency
            if reserved is not None:
                # a function's reservation covers all its versions (keys of one function_name)
                group = sum(f.in_flight for f in self._functions.values()
                            if f.spec.function_name == fn.spec.function_name)
                if group >= reserved:
                    raise Throttled(name, "ReservedFunctionConcurrentInvocationLimitExceeded")
            else:
                pool = self.account_concurrency - self._reserved_locked()
                used = sum(f.in_flight for f in self._functions.values() if f.spec.reserved_concurrency is None)
                if used >= pool:
                    raise Throttled(name, "ConcurrentInvocationLimitExceeded")
            env = None
            if debug is None:  # armed on the function: its next invocation, whichever version or alias it runs
                armed = fn if fn.debug_next is not None else next(
                    (f for f in self._functions.values()
                     if f.debug_next is not None and f.spec.function_name == fn.spec.function_name), None)
                if armed is not None:
                    debug, armed.debug_next = armed.debug_next, None
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
            throttled = None
            if env is None:
                try:
                    reclaim += self._make_room_locked(fn.spec)
                except Throttled as e:
                    throttled = e
                else:
                    env = Environment(self, fn.spec, debug)
                    fn.envs.append(env)
                    self._records.append(env.record)
            if env is not None:
                env.busy = True
                fn.in_flight += 1
        for old in reclaim:  # what was found dead is reaped, throttled or not
            old.kill("exited" if old.exited() else "reclaimed")
        if throttled is not None:
            raise throttled
        return env

    def _make_room_locked(self, spec: FunctionSpec) -> list[Environment]:
        """Room in the memory budget for a new environment of ``spec``: the least recently used idle environments
        it takes (returned, to be killed outside the lock). Throttled when the busy ones leave no room."""
        envs = [e for f in self._functions.values() for e in f.envs]
        used = sum(e.spec.memory_mb for e in envs)
        out: list[Environment] = []
        for env in sorted((e for e in envs if not e.busy), key=lambda e: (not (e.dead or e.exited()), e.last_used)):
            if used + spec.memory_mb <= self.memory_budget_mb:
                break
            self._functions[env.spec.name].envs.remove(env)
            out.append(env)
            used -= env.spec.memory_mb
        if used + spec.memory_mb > self.memory_budget_mb and used > 0:
            for env in out:  # nothing taken after all: the idle ones stay
                self._functions[env.spec.name].envs.append(env)
            if not self._budget_warned:
                self._budget_warned = True
                log.warning(
                    "the local Lambda service throttles %s: its environments' memory sizes would pass the "
                    "%d MB this machine gives them (LambdaRuntime(memory_budget_mb=...) to change it)",
                    spec.name, self.memory_budget_mb)
            raise Throttled(spec.name, "ConcurrentInvocationLimitExceeded")
        return out

    def _reap_idle(self) -> None:
        """Stop the environments idle for ``idle_lifetime_s``, checking a few times per lifetime."""
        interval = min(5.0, self.idle_lifetime_s / 4)
        while not self._stopping.wait(interval):
            now = time.monotonic()
            stale: list[Environment] = []
            with self._lock:
                for fn in self._functions.values():
                    for env in list(fn.envs):
                        if not env.busy and now - env.last_used >= self.idle_lifetime_s:
                            fn.envs.remove(env)
                            stale.append(env)
            for env in stale:
                env.kill("idle")

    def _reserved_locked(self, exclude: str | None = None) -> int:
        """The concurrency reserved by functions (each counted once, whatever its versions), but ``exclude``."""
        per_function: dict[str, int] = {}
        for f in self._functions.values():
            if f.spec.function_name != exclude and f.spec.reserved_concurrency:
                per_function[f.spec.function_name] = f.spec.reserved_concurrency
        return sum(per_function.values())

    def _release(self, env: Environment) -> None:
        reason = None
        with self._lock:
            env.busy = False
            env.last_used = time.monotonic()
            fn = self._functions.get(env.spec.name)
            if fn is None or env not in fn.envs:  # its function was unregistered meanwhile
                reason = env.retire_reason or "deleted"
            else:
                fn.in_flight -= 1
                if env.dead or env.retire_reason or self._closed or env.exited():
                    fn.envs.remove(env)
                    reason = env.retire_reason or ("shutdown" if self._closed else "exited")
        if reason is not None:
            env.kill(reason)

    # ----------------------------------------------------------------- what the process gets

    def process_environment(self, spec: FunctionSpec, port: int, log_stream: str) -> dict[str, str]:
        """The variables of an environment's process, whose Runtime API listens on ``port``."""
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
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        })
        return env

    def init_start_line(self, spec: FunctionSpec) -> str:
        """The log line a cold start opens with, in Lambda's words:
        ``INIT_START Runtime Version: python:3.13.v<N>\tRuntime Version ARN: arn:aws:lambda:<region>::runtime:<64 hex>``
        (https://docs.aws.amazon.com/lambda/latest/dg/runtime-management-identify.html). Lambda numbers its runtime's releases;
        here the release is this machine's Python and awslambdaric: N is the Python's micro version and the ARN's
        hash is the SHA-256 of both versions, so that it changes when either does, as AWS's does."""
        version = spec.runtime.replace("python", "python:", 1)
        release = hashlib.sha256(f"{platform.python_version()}/awslambdaric-{self._ric_version}".encode()).hexdigest()
        return (f"INIT_START Runtime Version: {version}.v{sys.version_info.micro}\tRuntime Version ARN: "
                f"arn:aws:lambda:{self.region}::runtime:{release}")

    # ----------------------------------------------------------------- observing, stopping

    def records(self) -> list[EnvironmentRecord]:
        with self._lock:
            return [
                EnvironmentRecord(**{**r.__dict__, "invocations": list(r.invocations)})
                for r in self._records
            ]

    def reset(self, name: str | None = None) -> None:
        """Stop the idle environments (of one function, or all): the next invokes are cold."""
        stale: list[Environment] = []
        with self._lock:
            for fname, fn in self._functions.items():
                if name is None or fname == name:
                    stale += _retire_locked(fn, "reset")
        for env in stale:
            env.kill("reset")

    def stop(self) -> None:
        """Kill every environment's process and server. Idempotent; invoke raises afterwards."""
        self._stopping.set()
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
