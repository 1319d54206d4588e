"""The Lambda service's data: function configuration, invocation result, REPORT line, environment record, limits."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_ACCOUNT_CONCURRENCY",
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_IDLE_LIFETIME_S",
    "INIT_PHASE_TIMEOUT_S",
    "MAX_ASYNC_REQUEST_PAYLOAD",
    "MAX_REQUEST_PAYLOAD",
    "MAX_RESPONSE_PAYLOAD",
    "MEMORY_SAMPLE_INTERVAL_S",
    "MIN_UNRESERVED_CONCURRENCY",
    "RESERVED_ENVIRONMENT_KEYS",
    "EnvironmentRecord",
    "FunctionSpec",
    "InvocationResult",
    "InvokeRecord",
    "Report",
    "cloudwatch_message",
]

#: Synchronous Invoke: largest request payload (RequestTooLargeException beyond).
MAX_REQUEST_PAYLOAD = 6 * 1024 * 1024  # 6,291,456
#: Asynchronous (``Event``) Invoke: largest request payload, 1 MB since October 2025
#: (https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html).
MAX_ASYNC_REQUEST_PAYLOAD = 1024 * 1024  # 1,048,576
#: Largest response the Runtime API accepts (413 beyond, "6291556 bytes" in Lambda's messages).
MAX_RESPONSE_PAYLOAD = 6 * 1024 * 1024 + 100  # 6,291,556
#: On-demand INIT phase limit; a longer init goes on in the invoke phase, under the timeout.
INIT_PHASE_TIMEOUT_S = 10.0
#: How often the watcher samples the process's RSS while an invocation (or init) runs.
MEMORY_SAMPLE_INTERVAL_S = 0.010
#: An account's concurrency in a Region, Lambda's default quota
#: (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html): ``up --concurrency N`` sets another.
DEFAULT_ACCOUNT_CONCURRENCY = 1000
#: What reservations must leave to the functions without one: "You can reserve concurrency for as many functions
#: as you like, as long as you leave at least 100 simultaneous executions unreserved"
#: (https://docs.aws.amazon.com/lambda/latest/dg/API_PutFunctionConcurrency.html); an account under 100 (new
#: accounts start lower) can reserve nothing.
MIN_UNRESERVED_CONCURRENCY = 100
#: How long an idle execution environment is kept for the next invoke. AWS does not say: it "retains the execution
#: environment for a non-deterministic period of time" and "may reuse" it
#: (https://docs.aws.amazon.com/lambda/latest/operatorguide/execution-environments.html); measured lifetimes of
#: idle environments are 5 to 15 minutes or more.
DEFAULT_IDLE_LIFETIME_S = 600.0
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
    #: Lambda's name for the function (AWS_LAMBDA_FUNCTION_NAME, the log group); "" means ``name``.
    #: ``name`` is the runtime's key: ``f`` for $LATEST, ``f:3`` for version 3 (see LambdaService).
    function_name: str = ""
    version: str = "$LATEST"  # AWS_LAMBDA_FUNCTION_VERSION, the START line, the log stream's [VERSION]
    #: lines the INIT log shows right after INIT_START (what was done to the code to run it here)
    init_notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.function_name:
            self.function_name = self.name


@dataclass
class Report:
    """The numbers of an invocation's ``REPORT`` line.

    Duration runs from handing the event to the runtime until its ``/response`` or ``/error``;
    Billed Duration is rounded up to 1 ms, plus the Init Duration on a cold start (Lambda bills the
    INIT phase of managed runtimes since August 2025); Max Memory Used is the process's peak RSS;
    Init Duration runs from the process spawn to its first ``GET next`` (when awslambdaric has
    imported the handler's module).
    """

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


def cloudwatch_message(line: str) -> str:
    """A log line as CloudWatch Logs records it: the Lambda platform and the python runtime end each message
    with a newline, and the REPORT line with a tab and a newline (``...\tMax Memory Used: 45 MB\t\n``), as
    ``GetLogEvents`` and the Tail of ``Invoke`` return them."""
    if line.endswith("\n"):
        return line
    return line + ("\t\n" if line.startswith("REPORT RequestId: ") else "\n")


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
    #: timeout | out_of_memory | exited | init_error | response_too_large | idle | reclaimed |
    #: replaced | reset | shutdown | debugged | deleted
    stop_reason: str | None = None
    pid: int | None = None
    log_stream: str = ""
    debug_port: int | None = None  # debugpy's port when the environment ran under the debugger


@dataclass
class InvokeRecord:
    """One invoke attempt as the Lambda service saw it: what CloudWatch metrics and CodeDeploy count."""

    function_name: str
    resource: str | None  # None (unqualified or $LATEST), "f:alias" or "f:N", as called
    executed_version: str
    duration_ms: float
    error: bool  # a function error (X-Amz-Function-Error)
    throttled: bool
    at: float = field(default_factory=time.time)
