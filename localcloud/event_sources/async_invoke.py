"""Asynchronous invocation (``Event``; S3 and SNS invoke this way), with Lambda's retries, event age and destinations.

Events wait in an internal queue; worker threads invoke the function. A function error is retried
``MaximumRetryAttempts`` times (the function's ``EventInvokeConfig``, default 2), after a wait:
AWS waits about 1 and then 2 *minutes*, the local cloud what ``retry_delays`` says (seconds). A
throttled invocation (``Throttled``, concurrency used up) is retried too, without counting, until
the event is older than ``MaximumEventAgeInSeconds``. An event that is given up goes to the
``OnFailure`` destination (an invocation record) and/or the ``DeadLetterQueue`` (the event itself,
with ``RequestID``, ``ErrorCode`` and ``ErrorMessage`` message attributes); success goes to
``OnSuccess``. The request id in a dead-letter message is the last attempt's.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from localcloud.cfn.stack import (
    AsyncConfig,
)
from localcloud.errors import Throttled, UnknownFunction
from localcloud.event_sources.destinations import (
    Destinations,
    Invoke,
    Measure,
    error_message,
    iso_time,
    measured_nowhere,
    response_payload,
)
from localcloud.lambda_service.spec import InvocationResult

log = logging.getLogger(__name__)


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    function: str = field(compare=False)
    event: Any = field(compare=False)
    enqueued: float = field(compare=False)
    attempts: int = field(default=0, compare=False)  # invocations that ran and failed
    invocations: int = field(default=0, compare=False)


class AsyncInvoker:
    """Lambda's asynchronous invocation (``InvocationType=Event``): queue, retries, DLQ and destinations."""

    def __init__(
        self,
        invoke: Invoke,
        destinations: Destinations,
        *,
        retry_delays: Iterable[float] = (1.0, 2.0),
        throttle_delay: float = 0.5,
        workers: int = 4,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        measure: Measure = measured_nowhere,
    ) -> None:
        self.invoke = invoke
        self.measure = measure
        self.destinations = destinations
        self.retry_delays = tuple(retry_delays) or (1.0,)
        self.throttle_delay = throttle_delay
        self.region = region
        self.account_id = account_id
        self.configs: dict[str, AsyncConfig] = {}
        #: What happened to each event: {"function", "event", "outcome": success|failed|dropped,
        #: "attempts", "condition", "request_id", "error"} (the last 1,000).
        self.history: deque[dict] = deque(maxlen=1000)
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._running = 0
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="events-async")
        self._thread = threading.Thread(target=self._schedule, name="events-async-scheduler", daemon=True)
        self._thread.start()

    def configure(self, function: str, config: AsyncConfig) -> None:
        self.configs[function] = config

    def function_arn(self, function: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{function}"

    def submit(self, function: str, event: Any) -> None:
        """Queue one event for ``function`` (returns at once, as Invoke with ``Event`` does: 202)."""
        now = time.time()
        with self._cond:
            if self._stopped:
                raise RuntimeError("the local cloud is stopped")
            heapq.heappush(self._heap, _Job(time.monotonic(), next(self._seq), function, event, now))
            self._cond.notify()
        self.measure("AsyncEventsReceived", function, 1, "Count")

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._running

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no event is queued, waiting for a retry or being invoked."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _schedule(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0].due > time.monotonic()):
                    timeout = self._heap[0].due - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                job = heapq.heappop(self._heap)
                self._running += 1
            try:
                self._pool.submit(self._run, job)
            except RuntimeError:  # the pool is shut down
                with self._cond:
                    self._running -= 1
                return

    def _later(self, job: _Job, delay: float) -> None:
        with self._cond:
            if self._stopped:
                return
            job.due = time.monotonic() + delay
            job.seq = next(self._seq)
            heapq.heappush(self._heap, job)
            self._cond.notify()

    def _run(self, job: _Job) -> None:
        try:
            self._attempt(job)
        except Exception:  # noqa: BLE001 - a bug here must not kill the worker
            log.exception("async invocation of %s failed unexpectedly", job.function)
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def _attempt(self, job: _Job) -> None:
        # configured per function; an event may be for one of its aliases or versions (name:qualifier)
        config = self.configs.get(job.function.split(":", 1)[0], AsyncConfig())
        if time.time() - job.enqueued > config.max_event_age_s:
            self._give_up(job, config, None, "EventAgeExceeded", "the event is older than MaximumEventAgeInSeconds")
            return
        age_ms = (time.time() - job.enqueued) * 1000
        try:
            result = self.invoke(job.function, job.event)
        except Exception as e:  # noqa: BLE001
            if isinstance(e, Throttled):
                self._later(job, self.throttle_delay)  # throttles are retried without counting
                return
            if isinstance(e, UnknownFunction) or self._stopped:
                self._record(job, "dropped", None, None, str(e))
                self.measure("AsyncEventsDropped", job.function, 1, "Count")
                log.warning("async event for %s dropped: %s", job.function, e)
                return
            log.warning("async invocation of %s failed: %r", job.function, e)
            result = None
            error = f"{type(e).__name__}: {e}"
        else:
            error = error_message(result) if result.function_error else None
        # from queueing to this invocation (a throttled attempt is none): it grows with retries and throttles
        self.measure("AsyncEventAge", job.function, age_ms, "Milliseconds")
        job.invocations += 1
        if error is None:
            self._record(job, "success", result, None, None)
            if config.on_success and not self._safe(self._send_record, config.on_success, job, result, "Success"):
                self.measure("DestinationDeliveryFailures", job.function, 1, "Count")
            return
        job.attempts += 1
        if job.attempts <= config.max_retry_attempts:
            delay = self.retry_delays[min(job.attempts - 1, len(self.retry_delays) - 1)]
            log.info("%s failed (attempt %d of %d), retrying in %.2f s: %s", job.function, job.attempts,
                     config.max_retry_attempts + 1, delay, error)
            self._later(job, delay)
            return
        self._give_up(job, config, result, "RetriesExhausted", error)

    def _give_up(self, job: _Job, config: AsyncConfig, result: InvocationResult, condition: str, error: str) -> None:
        self._record(job, "failed", result, condition, error)
        self.measure("AsyncEventsDropped", job.function, 1, "Count")
        if not (config.on_failure or config.dead_letter_arn):
            log.warning("%s: event given up (%s), no dead-letter queue or OnFailure destination: %s",
                        job.function, condition, error)
        if config.on_failure and not self._safe(self._send_record, config.on_failure, job, result, condition):
            self.measure("DestinationDeliveryFailures", job.function, 1, "Count")
        if config.dead_letter_arn:
            request_id = getattr(result, "request_id", None) or str(uuid.uuid4())
            attributes = {
                "RequestID": ("String", request_id),
                "ErrorCode": ("Number", "200"),
                "ErrorMessage": ("String", (error or condition)[:1024]),
            }
            if not self._safe(self.destinations.send, config.dead_letter_arn, json.dumps(job.event), attributes):
                self.measure("DeadLetterErrors", job.function, 1, "Count")

    def _send_record(self, arn: str, job: _Job, result: InvocationResult, condition: str) -> None:
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if result is not None and result.function_error:
            response["functionError"] = result.function_error
        record = {
            "version": "1.0",
            "timestamp": iso_time(),
            "requestContext": {
                "requestId": getattr(result, "request_id", None) or str(uuid.uuid4()),
                "functionArn": f"{self.function_arn(job.function)}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": job.invocations,
            },
            "requestPayload": job.event,
            "responseContext": response,
            "responsePayload": response_payload(result) if result is not None else None,
        }
        self.destinations.send(arn, json.dumps(record))

    @staticmethod
    def _safe(fn: Callable[..., Any], *args: Any) -> bool:
        try:
            fn(*args)
            return True
        except Exception:  # noqa: BLE001
            log.exception("sending to %s failed", args[0])
            return False

    def _record(self, job: _Job, outcome: str, result: InvocationResult, condition: str | None, error: str | None) -> None:
        self.history.append({
            "function": job.function,
            "event": job.event,
            "outcome": outcome,
            "attempts": job.invocations,
            "condition": condition,
            "request_id": getattr(result, "request_id", None),
            "error": error,
        })
