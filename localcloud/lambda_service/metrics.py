"""Lambda's invocation metrics in CloudWatch: each invoke attempt counted under ``AWS/Lambda``, as Lambda does.

Metrics and dimensions as Lambda sends them
(https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html,
https://docs.aws.amazon.com/lambda/latest/dg/monitoring-concurrency.html):

* ``Invocations`` (Count): every invocation that ran the code, failed or not; a throttled request is
  not one. ``Errors`` (Count): a binary indicator per invocation (1 on a function error, else 0), so
  its Sum counts errors and its Average is the error rate. ``Throttles`` (Count): throttled requests
  only. ``Duration`` (Milliseconds). ``ConcurrentExecutions`` (Count, view with Maximum).
* Dimensions: ``{FunctionName}`` for every invocation; ``{FunctionName, Resource}`` when it was
  called by qualifier (``Resource`` = ``f:alias`` or ``f:N``); ``{FunctionName, Resource,
  ExecutedVersion}`` when called through an alias (the version its routing picked); and none at all
  ("across all functions").
* The timestamp is when the function was invoked, not when it ended.

Event sources add their own (``measure``), each with the dimensions ``{FunctionName}`` (and ``Resource`` for an
alias or version) and none, one raw value per datum:

* asynchronous invocation: ``AsyncEventsReceived`` (Count, each event queued), ``AsyncEventAge``
  (Milliseconds, from queueing to each invocation, a throttled attempt being none: it grows with retries and
  throttles),
  ``AsyncEventsDropped`` (Count, each event given up, after it went to a DLQ or OnFailure destination if any);
* ``DeadLetterErrors`` (Count): an event that could not be sent to the dead-letter queue;
  ``DestinationDeliveryFailures`` (Count): a record that could not be sent to a destination;
* ``IteratorAge`` (Milliseconds, stream event source mappings): the age of the batch's last record when
  Lambda read it.

Records are aggregated per second and dimension set into ``StatisticValues`` (``Duration`` as its raw values,
so that CloudWatch can give its percentiles) and sent by a thread of
their own with ``put_metric_data`` (Lambda sends aggregates too, once a minute; a teaching cloud wants
them sooner, so every ``flush_interval_s``).
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

log = logging.getLogger(__name__)

__all__ = ["NAMESPACE", "InvokeRecordLike", "LambdaMetrics", "Measured", "measured_data", "metric_data"]

NAMESPACE = "AWS/Lambda"
#: PutMetricData takes at most 1000 metrics (and 1 MB) a request:
#: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html
_MAX_DATA_PER_REQUEST = 500
#: a datum's ``Values`` holds at most 150 values (same page)
_MAX_VALUES_PER_DATUM = 150


class InvokeRecordLike(Protocol):
    """What the metrics read from one invoke attempt (``localcloud.lambda_service.spec.InvokeRecord``)."""

    @property
    def function_name(self) -> str: ...
    @property
    def resource(self) -> str | None: ...  # None (unqualified), "f:alias" or "f:N", as called
    @property
    def executed_version(self) -> str | None: ...  # "$LATEST" or "N"
    @property
    def duration_ms(self) -> float | None: ...
    @property
    def error(self) -> str | bool | None: ...  # the function error ("Unhandled"), falsy on success
    @property
    def throttled(self) -> bool: ...
    @property
    def at(self) -> float: ...  # time.time() when the attempt ended


Dimensions = tuple[tuple[str, str], ...]


@dataclass
class _Aggregate:
    """One second of one dimension set: the counts and durations its invocations add up to."""

    invocations: int = 0
    errors: int = 0
    throttles: int = 0
    durations: list[float] = field(default_factory=list)
    concurrency: int = 0


def _started_at(record: InvokeRecordLike) -> float:
    # the metrics' timestamp is the invocation's start (Lambda: "reflects when the function was invoked")
    return record.at - (record.duration_ms or 0.0) / 1000.0


def _is_alias(resource: str) -> bool:
    qualifier = resource.rpartition(":")[2]
    return not (qualifier.isdigit() or qualifier == "$LATEST")


def _dimension_sets(record: InvokeRecordLike) -> list[Dimensions]:
    function = (("FunctionName", record.function_name),)
    sets: list[Dimensions] = [(), function]
    if record.resource:
        sets.append(function + (("Resource", record.resource),))
        if _is_alias(record.resource) and record.executed_version and not record.throttled:
            sets.append(function + (("Resource", record.resource), ("ExecutedVersion", record.executed_version)))
    return sets


def _peak_concurrency(spans: list[tuple[float, float]]) -> list[int]:
    """For each (start, end) span, how many spans were running at its start (itself included)."""
    starts = sorted(s for s, _ in spans)
    ends = sorted(e for _, e in spans)
    return [bisect.bisect_right(starts, s) - bisect.bisect_left(ends, s) for s, _ in spans]


def _aggregate(records: Iterable[InvokeRecordLike]) -> dict[tuple[Dimensions, int], _Aggregate]:
    buckets: dict[tuple[Dimensions, int], _Aggregate] = defaultdict(_Aggregate)
    running: dict[Dimensions, list[tuple[tuple[float, float], int]]] = defaultdict(list)
    for record in records:
        start = _started_at(record)
        second = int(start)
        for dims in _dimension_sets(record):
            bucket = buckets[(dims, second)]
            if record.throttled:
                bucket.throttles += 1
                continue
            bucket.invocations += 1
            bucket.errors += 1 if record.error else 0
            if record.duration_ms is not None:
                bucket.durations.append(float(record.duration_ms))
            running[dims].append(((start, record.at), second))
    # concurrency only within one batch: an invocation that spans two flushes is not seen by the other
    for dims, spans in running.items():
        for (_, second), peak in zip(spans, _peak_concurrency([span for span, _ in spans])):
            bucket = buckets[(dims, second)]
            bucket.concurrency = max(bucket.concurrency, peak)
    return buckets


def _statistic(values: list[float], unit: str) -> dict[str, Any]:
    return {"StatisticValues": {"SampleCount": float(len(values)), "Sum": float(sum(values)),
                                "Minimum": float(min(values)), "Maximum": float(max(values))}, "Unit": unit}


def metric_data(records: Iterable[InvokeRecordLike]) -> list[dict[str, Any]]:
    """The ``MetricData`` entries of ``put_metric_data`` for ``records`` (one per metric, dimension set, second)."""
    data = []
    for (dims, second), bucket in sorted(_aggregate(records).items()):
        common = {"Dimensions": [{"Name": n, "Value": v} for n, v in dims],
                  "Timestamp": datetime.fromtimestamp(second, timezone.utc)}
        metrics: list[tuple[str, list[float], str]] = []
        if bucket.invocations:
            ok = bucket.invocations - bucket.errors
            metrics.append(("Invocations", [1.0] * bucket.invocations, "Count"))
            metrics.append(("Errors", [1.0] * bucket.errors + [0.0] * ok, "Count"))
            metrics.append(("ConcurrentExecutions", [float(bucket.concurrency)], "Count"))
        if bucket.throttles:
            metrics.append(("Throttles", [1.0] * bucket.throttles, "Count"))
        data.extend({"MetricName": name, **common, **_statistic(values, unit)} for name, values, unit in metrics)
        # each duration as it is, so that CloudWatch can give percentiles (p50, p99) of it: it computes them
        # from raw values only, "not available for metrics when any of the metric values are negative numbers"
        # or sent as statistic sets (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Percentiles)
        for i in range(0, len(bucket.durations), _MAX_VALUES_PER_DATUM):
            data.append({"MetricName": "Duration", **common, "Unit": "Milliseconds",
                         "Values": bucket.durations[i:i + _MAX_VALUES_PER_DATUM]})
    return data


@dataclass(frozen=True)
class Measured:
    """One value an event source measured for a function (``function`` may be ``name:qualifier``)."""

    metric: str
    function: str
    value: float
    unit: str
    at: float


def measured_data(measured: Iterable[Measured]) -> list[dict[str, Any]]:
    """The ``MetricData`` entries for event sources' measurements: one per value and dimension set."""
    data = []
    for m in measured:
        name, _, qualifier = m.function.partition(":")
        function = (("FunctionName", name),)
        sets: list[Dimensions] = [(), function] + ([function + (("Resource", m.function),)] if qualifier else [])
        data.extend({"MetricName": m.metric, "Dimensions": [{"Name": n, "Value": v} for n, v in dims],
                     "Timestamp": datetime.fromtimestamp(m.at, timezone.utc), "Unit": m.unit, "Values": [m.value]}
                    for dims in sets)
    return data


class LambdaMetrics:
    """Counts every invoke attempt (``record``, a LambdaService ``on_invoked`` callback) into CloudWatch."""

    def __init__(self, clients: Callable[[str], Any], *, flush_interval_s: float = 0.5,
                 namespace: str = NAMESPACE) -> None:
        self.clients = clients
        self.flush_interval_s = flush_interval_s
        self.namespace = namespace
        self._pending: list[InvokeRecordLike] = []
        self._measured: list[Measured] = []
        self._lock = threading.Lock()
        self._publishing = threading.Lock()  # one put_metric_data batch at a time, in order
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, rec: InvokeRecordLike) -> None:
        """Count one invoke attempt; it reaches CloudWatch within ``flush_interval_s``."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._pending.append(rec)
            if self._thread is None:  # started on first use: a cloud nobody invokes runs no thread
                self._thread = threading.Thread(target=self._run, name="lambda-metrics", daemon=True)
                self._thread.start()

    __call__ = record

    def measure(self, metric: str, function: str, value: float = 1.0, unit: str = "Count") -> None:
        """Count (or time, in Milliseconds) what an event source did for ``function``."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._measured.append(Measured(metric, function, float(value), unit, time.time()))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lambda-metrics", daemon=True)
                self._thread.start()

    def flush(self) -> int:
        """Send what has been recorded so far, now; returns how many metric data were sent."""
        with self._publishing:
            with self._lock:
                records, self._pending = self._pending, []
                measured, self._measured = self._measured, []
            if not records and not measured:
                return 0
            data = metric_data(records) + measured_data(measured)
            cloudwatch = self.clients("cloudwatch")
            for i in range(0, len(data), _MAX_DATA_PER_REQUEST):
                cloudwatch.put_metric_data(Namespace=self.namespace, MetricData=data[i:i + _MAX_DATA_PER_REQUEST])
            return len(data)

    def stop(self) -> None:
        """Send what is left and stop the thread (records after this are dropped)."""
        with self._lock:
            self._stopped.set()
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(10)
        try:
            self.flush()
        except Exception as exc:  # CloudWatch (moto) may already be gone at shutdown
            log.debug("last Lambda metrics not sent: %s", exc)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.flush_interval_s)
            try:
                self.flush()
            except Exception as exc:  # keep counting: a failed batch is lost, the next ones are not
                log.warning("Lambda metrics not sent to CloudWatch: %s", exc)
