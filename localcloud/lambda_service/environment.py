"""One execution environment: an awslambdaric process, its Runtime API, each invocation up to its REPORT line.

* **Logs**: the process's stdout and stderr, between ``START`` and ``END``; what the module
  prints while it is imported comes before ``START`` on a cold start, after an ``INIT_START``
  line, as in CloudWatch.
* **Limits**: the timeout (the process is killed, ``Sandbox.Timedout``), the memory size (an
  RSS watcher kills the process, ``Runtime.ExitError`` ``signal: killed``), 6 MB responses, the
  10 s INIT phase, crashes at init (``/runtime/init/error``) and mid-invocation
  (``Runtime.ExitError``).
* **Debugging**: under debugpy, neither the INIT phase limit nor the timeout is enforced, and the
  environment serves one invocation only (then it is retired, ``stop_reason`` "debugged").
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import queue
import secrets
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from localcloud.lambda_service import process
from localcloud.lambda_service.runtime_api import (
    InitError,
    Invocation,
    InvocationError,
    InvocationResponse,
    ResponseTooLarge,
    RuntimeApi,
    RuntimeMessage,
    RuntimeReady,
)
from localcloud.lambda_service.spec import (
    INIT_PHASE_TIMEOUT_S,
    MAX_RESPONSE_PAYLOAD,
    MEMORY_SAMPLE_INTERVAL_S,
    EnvironmentRecord,
    FunctionSpec,
    InvocationResult,
    Report,
)

if TYPE_CHECKING:
    from localcloud.lambda_service.runtime import LambdaRuntime

__all__ = ["Environment"]

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- what the watcher sees


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The deadline passed without an answer."""

    at: float


@dataclass(frozen=True, slots=True)
class OutOfMemory:
    """The process's RSS went over the function's memory size."""

    at: float
    rss: int


@dataclass(frozen=True, slots=True)
class Exited:
    """The process went away without an answer."""

    at: float
    returncode: int | None


#: what ends a wait for the runtime
Outcome = RuntimeMessage | TimedOut | OutOfMemory | Exited


# ----------------------------------------------------------------------------- one invocation


@dataclass
class _Call:
    """One invocation in an environment, as it goes."""

    request_id: str
    cold: bool
    before: list[str] = field(default_factory=list)  # log lines before START
    init_ms: float | None = None  # the Init Duration, on a cold start that got ready
    deadline: float | None = None  # time.monotonic() by which the function must have answered
    invocation: Invocation | None = None  # once handed to the runtime

    @property
    def started(self) -> float | None:
        """When the runtime took the event (None if it never did)."""
        return self.invocation.delivered_at if self.invocation is not None else None

    def since_start_ms(self, at: float) -> float:
        """Milliseconds from the runtime taking the event to ``at`` (0 if it never took it)."""
        start = self.started
        return (at - (start or at)) * 1000


@dataclass
class _Ending:
    """How an invocation ended: what Invoke returns and what the log says."""

    duration_ms: float
    payload: bytes
    function_error: str | None = "Unhandled"  # None on success
    inside: list[str] = field(default_factory=list)  # log lines between START and END
    after: list[str] = field(default_factory=list)  # log lines after REPORT
    status: str | None = None  # REPORT's Status
    error_type: str | None = None  # REPORT's Error Type
    max_used_mb: int | None = None  # None: the process's peak RSS
    stop_reason: str | None = None  # retire the environment for this if its process has exited


def _iso_now() -> str:
    now = _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _init_report(duration_ms: float, status: str, error_type: str | None = None) -> str:
    line = f"INIT_REPORT Init Duration: {duration_ms:.2f} ms\tPhase: init\tStatus: {status}"
    return line + f"\tError Type: {error_type}" if error_type else line


# ----------------------------------------------------------------------------- the environment


class Environment:
    """One execution environment: a process, its Runtime API server and its log pipe."""

    def __init__(self, runtime: LambdaRuntime, spec: FunctionSpec, debug: tuple[int, bool] | None = None) -> None:
        self.runtime = runtime
        self.spec = spec
        self.id = secrets.token_hex(16)
        # Lambda's stream name: YYYY/MM/DD/[VERSION]<32 hex>, whatever the runtime calls the function
        self.log_stream = f"{_dt.datetime.now(_dt.UTC):%Y/%m/%d}/[{spec.version}]{self.id}"
        self.debug = debug  # (port, wait_for_client) under debugpy, else None
        self.record = EnvironmentRecord(
            id=self.id, function=spec.name, origin=runtime.origin, log_stream=self.log_stream,
            debug_port=debug[0] if debug else None,
        )
        self.proc: subprocess.Popen | None = None
        self.pipe: process.LogPipe | None = None
        self.busy = False
        self.dead = False
        self.retire_reason: str | None = "debugged" if debug else None  # one invocation, then a fresh one
        self.last_used = time.monotonic()
        self._mailbox: queue.SimpleQueue[RuntimeMessage] = queue.SimpleQueue()  # Runtime API -> invoker
        self.api = RuntimeApi(self._mailbox, name=f"lambda-api-{self.id[:8]}")
        self._kill_lock = threading.Lock()
        self._peak = 0  # bytes

    # ----------------------------------------------------------------- process

    def _spawn(self) -> None:
        rt, spec = self.runtime, self.spec
        with self._kill_lock:
            if self.dead:
                raise RuntimeError("the local Lambda runtime is stopped")
            variables = rt.process_environment(spec, self.api.start(), self.log_stream)
            self.record.spawned_at = time.monotonic()
            try:
                self.proc, self.pipe = process.spawn(process.command(rt.python, spec.handler, self.debug),
                                                     cwd=str(spec.code_dir), env=variables, name=self.id[:8])
            except BaseException:
                self.api.close()
                raise
            self.record.pid = self.proc.pid

    def kill(self, reason: str) -> None:
        """Kill the process (and its group), reap it, close the Runtime API. Idempotent."""
        with self._kill_lock:
            if self.dead:
                return
            self.dead = True
            self.record.stopped_at = time.monotonic()
            self.record.stop_reason = reason
            proc = self.proc
        if proc is not None and not process.kill_group(proc):  # pragma: no cover - unkillable (D state)
            log.warning("environment %s: process %s did not die", self.id, proc.pid)
        self.api.close()
        if self.pipe is not None:
            self.pipe.close()

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def _sample_peak(self) -> int:
        if self.proc is not None and self.proc.returncode is None:
            peak = process.peak_rss_bytes(self.proc.pid)
            if peak:
                self._peak = max(self._peak, peak)
        return self._peak

    def _wait_exit(self) -> None:
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass

    # ----------------------------------------------------------------- waiting

    def _wait(self, deadline: float) -> Outcome:
        """What comes first: a message from the runtime, the deadline, the process's death or its memory."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:  # an answer that just made it wins over the timeout
                return self._message_or(TimedOut(time.monotonic()))
            try:
                return self._mailbox.get(timeout=min(remaining, MEMORY_SAMPLE_INTERVAL_S))
            except queue.Empty:
                pass
            trouble = self._watch()
            if trouble is not None:
                return trouble

    def _watch(self) -> Outcome | None:
        """The process's exit, or its RSS over the memory size (the peak is kept on the way)."""
        proc = self.proc
        if proc.poll() is not None:  # an answer always reaches the mailbox before the runtime hears its 202
            return self._message_or(Exited(time.monotonic(), proc.returncode))
        rss = process.rss_bytes(proc.pid)
        if rss is not None:
            self._peak = max(self._peak, rss)
            if rss > self.spec.memory_mb * 1024 * 1024:
                return OutOfMemory(time.monotonic(), rss)
        return None

    def _message_or(self, outcome: Outcome) -> Outcome:
        try:
            return self._mailbox.get_nowait()
        except queue.Empty:
            return outcome

    # ----------------------------------------------------------------- one invocation

    def run(self, request_id: str, payload: bytes, client_context: dict | None,
            cognito_identity: dict | None) -> InvocationResult:
        """One invocation, after a cold start if the process is not running yet."""
        call = _Call(request_id, cold=self.proc is None)
        outcome = self._init(call) if call.cold else None
        if outcome is None:
            outcome = self._invoke(call, payload, client_context, cognito_identity)
        return self._finish(call, outcome)

    def _init(self, call: _Call) -> Outcome | None:
        """Spawn the process and wait for its first GET next: None once it is ready, else how its init ended."""
        self._spawn()
        call.before.append(self.runtime.init_start_line(self.spec))
        call.before += self.spec.init_notes
        spawned = self.record.spawned_at
        # under a debugger, the INIT phase lasts as long as it takes (waiting for the IDE too)
        outcome = self._wait(math.inf if self.debug else spawned + INIT_PHASE_TIMEOUT_S)
        if isinstance(outcome, TimedOut):
            # Lambda lets a longer init go on in the invoke phase, under the function's timeout.
            call.before += self.pipe.take()
            call.before.append(_init_report(INIT_PHASE_TIMEOUT_S * 1000, "timeout"))
            call.deadline = time.monotonic() + self.spec.timeout_s
            outcome = self._wait(call.deadline)
        if not isinstance(outcome, RuntimeReady):
            return outcome
        call.init_ms = (outcome.at - spawned) * 1000
        self.record.init_end_at = outcome.at
        self.record.init_duration_ms = call.init_ms
        return None

    def _invoke(self, call: _Call, payload: bytes, client_context: dict | None,
                cognito_identity: dict | None) -> Outcome:
        """Hand the event to the runtime's GET next, and wait for how the invocation ends."""
        call.before += self.pipe.take()
        now = time.monotonic()
        if call.deadline is None:
            call.deadline = now + self.spec.timeout_s
        call.invocation = Invocation.of(
            call.request_id, payload, deadline_ms=int((time.time() + (call.deadline - now)) * 1000),
            function_arn=self.runtime.function_arn(self._qualified_name()), client_context=client_context,
            cognito_identity=cognito_identity)
        self.api.deliver(call.invocation)
        # the context still says the timeout, but a function stopped at a breakpoint is not killed
        return self._wait(math.inf if self.debug else call.deadline)

    def _qualified_name(self) -> str:
        """``f`` for $LATEST, ``f:N`` for a published version (the ARN a version's context reports)."""
        spec = self.spec
        return spec.function_name if spec.version == "$LATEST" else f"{spec.function_name}:{spec.version}"

    def _finish(self, call: _Call, outcome: Outcome) -> InvocationResult:
        peak = self._sample_peak()  # before a kill takes the process away
        match outcome:
            case InvocationResponse() | InvocationError():
                ending = self._answered(call, outcome)
            case ResponseTooLarge():
                ending = self._too_large(call, outcome)
            case TimedOut():
                ending = self._timed_out(call)
            case OutOfMemory() | Exited():
                ending = self._died(call, outcome)
            case InitError():
                ending = self._init_failed(call, outcome)
            case _:  # pragma: no cover - RuntimeReady is taken by _init
                raise AssertionError(f"unexpected outcome {outcome!r}")
        return self._result(call, outcome, ending, peak)

    # ----------------------------------------------------------------- how it ended, one function per outcome

    def _answered(self, call: _Call, outcome: InvocationResponse | InvocationError) -> _Ending:
        """The runtime answered: the function's response, or its error."""
        return _Ending(
            duration_ms=call.since_start_ms(outcome.at),
            payload=outcome.body,
            function_error=None if isinstance(outcome, InvocationResponse) else "Unhandled",
            inside=self.pipe.take(flush_partial=True),
        )

    def _too_large(self, call: _Call, outcome: ResponseTooLarge) -> _Ending:
        """The response was over the limit (Function.ResponseSizeTooLarge)."""
        # awslambdaric treats the 413 as fatal and exits: take its last words, then replace it.
        self._wait_exit()
        payload = json.dumps({
            "errorMessage": f"Response payload size exceeded maximum allowed payload size "
                            f"({MAX_RESPONSE_PAYLOAD} bytes).",
            "errorType": "Function.ResponseSizeTooLarge",
        }).encode()
        return _Ending(call.since_start_ms(outcome.at), payload, inside=self.pipe.take(flush_partial=True),
                       stop_reason="response_too_large")

    def _timed_out(self, call: _Call) -> _Ending:
        """No answer by the deadline: the process is killed (Sandbox.Timedout)."""
        self.kill("timeout")
        inside = self.pipe.take(flush_partial=True)
        message = f"Task timed out after {self.spec.timeout_s:.2f} seconds"
        inside.append(f"{_iso_now()} {call.request_id} {message}")
        payload = json.dumps({"errorType": "Sandbox.Timedout",
                              "errorMessage": f"RequestId: {call.request_id} Error: {message}"}).encode()
        return _Ending(self.spec.timeout_s * 1000, payload, inside=inside, status="timeout")

    def _died(self, call: _Call, outcome: OutOfMemory | Exited) -> _Ending:
        """The process went away, killed over its memory size or crashed (Runtime.ExitError)."""
        duration = (outcome.at - (call.started or self.record.spawned_at)) * 1000
        max_used = None
        if isinstance(outcome, OutOfMemory):
            self.kill("out_of_memory")
            description = process.exit_description(-signal.SIGKILL)
            max_used = self.spec.memory_mb
            error_type = "Runtime.OutOfMemory"
        else:
            self.kill("exited")
            description = process.exit_description(outcome.returncode)
            error_type = "Runtime.ExitError"
        inside = self.pipe.take(flush_partial=True)
        message = f"RequestId: {call.request_id} Error: {description}"
        if call.invocation is None:  # died while initialising
            call.before += inside
            inside = []
            call.before.append(_init_report(duration, "error", error_type))
        payload = json.dumps({"errorType": "Runtime.ExitError", "errorMessage": message}).encode()
        return _Ending(duration, payload, inside=inside, after=[f"{message}\nRuntime.ExitError"],
                       status="error", error_type=error_type, max_used_mb=max_used)

    def _init_failed(self, call: _Call, outcome: InitError) -> _Ending:
        """The runtime reported that the handler's module failed to import."""
        error_type = outcome.error_type or "Runtime.Unknown"
        duration = (outcome.at - self.record.spawned_at) * 1000
        self.record.init_duration_ms = duration
        self._wait_exit()  # awslambdaric exits(1) right after reporting
        self.kill("init_error")
        call.before += self.pipe.take(flush_partial=True)
        call.before.append(_init_report(duration, "error", error_type))
        return _Ending(duration, outcome.body, status="error", error_type=error_type)

    def _result(self, call: _Call, outcome: Outcome, ending: _Ending, peak: int) -> InvocationResult:
        """The InvocationResult of an ending: its REPORT line, its log lines in CloudWatch's order."""
        spec, request_id = self.spec, call.request_id
        if call.started is not None:
            self.record.invocations.append((request_id, call.started, outcome.at, ending.duration_ms))
        if ending.stop_reason and self.exited():
            self.kill(ending.stop_reason)
        max_used = ending.max_used_mb
        if max_used is None:
            max_used = max(1, round(peak / (1024 * 1024))) if peak else 1
        report = Report(
            request_id=request_id,
            duration_ms=ending.duration_ms,
            billed_duration_ms=max(1, math.ceil(ending.duration_ms + (call.init_ms or 0.0))),
            memory_size_mb=spec.memory_mb,
            max_memory_used_mb=max_used,
            init_duration_ms=call.init_ms,
            status=ending.status,
            error_type=ending.error_type,
        )
        lines = [
            *call.before,
            f"START RequestId: {request_id} Version: {spec.version}",
            *ending.inside,
            f"END RequestId: {request_id}",
            report.line(),
            *ending.after,
        ]
        return InvocationResult(
            request_id=request_id,
            payload=ending.payload,
            function_error=ending.function_error,
            log_lines=lines,
            report=report,
            cold_start=call.cold,
            environment_id=self.id,
            function_name=spec.function_name,
            log_stream=self.log_stream,
        )
