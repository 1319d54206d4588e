"""What invokes the functions besides the API: S3 notifications, SNS, DynamoDB streams — as Lambda does.

Each source delivers the event shape the function gets on AWS, with the same retry rules:

**Asynchronous invocations** (``AsyncInvoker``; S3 and SNS invoke this way). Events wait in an
internal queue; worker threads invoke the function. A function error is retried
``MaximumRetryAttempts`` times (the function's ``EventInvokeConfig``, default 2), after a wait:
AWS waits about 1 and then 2 *minutes*, the local cloud 1 and then 2 *seconds* by default
(``WORKSHOP_ASYNC_RETRY_DELAYS`` / ``retry_delays``). A throttled invocation
(``Throttled``, concurrency used up) is retried too, without counting, until the event is older
than ``MaximumEventAgeInSeconds``. An event that is given up goes to the ``OnFailure``
destination (an invocation record) and/or the ``DeadLetterQueue`` (the event itself, with
``RequestID``, ``ErrorCode`` and ``ErrorMessage`` message attributes); success goes to
``OnSuccess``.

**S3 notifications.** The bucket's ``LambdaConfigurations`` become moto ``QueueConfigurations``
on an internal SQS queue (same events, same key filters); a poller turns each message into the
S3 event Lambda gets (``Records[].eventVersion`` 2.1, ``eventSource`` ``aws:s3``, the key
URL-encoded, ``size``, ``eTag``, ``sequencer``...) and invokes asynchronously. moto's
``s3:TestEvent`` is dropped, as Lambda never sees it.

**SNS.** A ``lambda`` subscription becomes an internal SQS queue subscribed to the topic (raw
delivery off, the subscription's filter policy applied by moto); each SNS envelope becomes the
``aws:sns`` record Lambda gets (``EventSubscriptionArn``, ``Sns.Type/MessageId/TopicArn/Subject/
Message/Timestamp/SignatureVersion/Signature/SigningCertUrl/UnsubscribeUrl/MessageAttributes``).

**DynamoDB streams** (``StreamPoller``, one per event source mapping and shard, synchronous like
Lambda's pollers): every ``poll_interval`` (0.1 s) ``GetRecords`` from the mapping's
``StartingPosition`` (taken when the mapping is made); records that match no ``FilterCriteria``
pattern are dropped; the rest go in order, in batches of up to ``BatchSize``, one batch at a
time. On a function error the batch is split in two when ``BisectBatchOnFunctionError`` (a
split does not use up a retry), else retried until ``MaximumRetryAttempts`` (-1: until the
record is older than ``MaximumRecordAgeInSeconds``); with ``ReportBatchItemFailures`` the
function's ``batchItemFailures`` are honoured (processing resumes at the lowest failed sequence
number; an invalid answer fails the whole batch). What cannot be processed is skipped, and
the ``OnFailure`` destination gets the record Lambda sends: metadata describing the batch
(``DDBStreamBatchInfo``: shard, first/last sequence numbers, arrival times, size, stream ARN),
not the records themselves.

Approximations: retries are seconds apart, not minutes; the request id in a dead-letter
message is the last attempt's (the local runtime gives each attempt its own); the
``approximateInvokeCount`` of a stream failure counts the invocations of the failed records
after their last split; ``ParallelizationFactor``, tumbling windows and
``MaximumBatchingWindowInSeconds`` are not emulated (batches go as soon as records are there).
"""

from __future__ import annotations

import base64
import datetime as _dt
import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from localcloud.cfn.stack import (
    AsyncConfig,
    S3NotificationModel,
    SnsSubscriptionModel,
    Stack,
    StreamMappingModel,
)
from localcloud.errors import Throttled, UnknownFunction
from localcloud.lambda_service.spec import InvocationResult
from localcloud.sdk import Clients

log = logging.getLogger(__name__)

__all__ = [
    "AsyncInvoker",
    "Destinations",
    "EventSources",
    "StreamPoller",
    "dynamodb_stream_record",
    "matches_filter",
    "s3_lambda_record",
    "sns_lambda_event",
]

Invoke = Callable[[str, Any], InvocationResult]  # (function name, event) -> its result


def _iso(ts: float | None = None) -> str:
    moment = _dt.datetime.fromtimestamp(ts if ts is not None else time.time(), _dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _error_message(result: InvocationResult) -> str:
    try:
        body = json.loads(result.payload or b"null")
    except ValueError:
        return (result.payload or b"").decode("utf-8", "replace")
    if isinstance(body, dict):
        return str(body.get("errorMessage") or body.get("errorType") or body)
    return str(body)


def _response_payload(result: InvocationResult) -> Any:
    try:
        return json.loads(result.payload) if result.payload else None
    except ValueError:
        return result.payload.decode("utf-8", "replace")


# --------------------------------------------------------------------------- event filtering


_MISSING = object()


def matches_filter(pattern: Mapping[str, Any], event: Any) -> bool:
    """Lambda event filtering: does ``event`` match ``pattern`` (``FilterCriteria.Filters[].Pattern``)?

    Supports value lists (strings, numbers, null, booleans), nested objects, ``prefix``, ``suffix``,
    ``equals-ignore-case``, ``anything-but`` (a value, a list or ``{"prefix": ...}``),
    ``numeric`` ranges, ``exists`` and ``wildcard``. An event value that is a list matches if any
    element does.
    """
    if not isinstance(pattern, Mapping):
        return False
    for key, rule in pattern.items():
        value = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(rule, Mapping):
            if value is _MISSING or not isinstance(value, Mapping) or not matches_filter(rule, value):
                return False
        elif isinstance(rule, list):
            if not _match_rules(rule, value):
                return False
        else:
            return False
    return True


def _match_rules(rules: list, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    for rule in rules:
        if isinstance(rule, Mapping):
            if "exists" in rule:
                if (value is not _MISSING) == bool(rule["exists"]):
                    return True
                continue
            if value is _MISSING:
                continue
            if any(_match_operator(rule, v) for v in values):
                return True
        elif value is not _MISSING and any(_equal(rule, v) for v in values):
            return True
    return False


def _equal(rule: Any, value: Any) -> bool:
    if isinstance(rule, bool) or isinstance(value, bool) or rule is None or value is None:
        return rule is value or rule == value and type(rule) is type(value)
    if isinstance(rule, (int, float)) and isinstance(value, (int, float)):
        return float(rule) == float(value)
    return isinstance(rule, str) and isinstance(value, str) and rule == value


def _match_operator(rule: Mapping[str, Any], value: Any) -> bool:  # noqa: PLR0911
    if "prefix" in rule:
        p = rule["prefix"]
        if isinstance(p, Mapping) and "equals-ignore-case" in p:
            return isinstance(value, str) and value.lower().startswith(str(p["equals-ignore-case"]).lower())
        return isinstance(value, str) and value.startswith(str(p))
    if "suffix" in rule:
        s = rule["suffix"]
        if isinstance(s, Mapping) and "equals-ignore-case" in s:
            return isinstance(value, str) and value.lower().endswith(str(s["equals-ignore-case"]).lower())
        return isinstance(value, str) and value.endswith(str(s))
    if "equals-ignore-case" in rule:
        return isinstance(value, str) and value.lower() == str(rule["equals-ignore-case"]).lower()
    if "anything-but" in rule:
        but = rule["anything-but"]
        if isinstance(but, Mapping):
            return not _match_operator(but, value)
        excluded = but if isinstance(but, list) else [but]
        return not any(_equal(e, value) for e in excluded)
    if "numeric" in rule:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        if isinstance(value, bool):
            return False
        ops = rule["numeric"]
        checks = {"<": number.__lt__, "<=": number.__le__, "=": number.__eq__, ">": number.__gt__, ">=": number.__ge__}
        return all(checks[op](float(limit)) for op, limit in zip(ops[::2], ops[1::2], strict=False))
    if "wildcard" in rule:
        import fnmatch

        return isinstance(value, str) and fnmatch.fnmatchcase(value, str(rule["wildcard"]))
    return False


# --------------------------------------------------------------------------- destinations


class Destinations:
    """Sends a message to an SQS queue, an SNS topic or a function, by ARN (DLQs and destinations)."""

    def __init__(self, clients: Clients, invoke_async: Callable[[str, Any], None] | None = None) -> None:
        self.clients = clients
        self.invoke_async = invoke_async
        self._queue_urls: dict[str, str] = {}
        self._lock = threading.Lock()

    def queue_url(self, arn: str) -> str:
        with self._lock:
            url = self._queue_urls.get(arn)
        if url is None:
            parts = arn.split(":")
            url = self.clients("sqs").get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
            with self._lock:
                self._queue_urls[arn] = url
        return url

    def send(self, arn: str, body: str, attributes: Mapping[str, tuple[str, str]] | None = None) -> None:
        """``attributes``: name -> (DataType, value)."""
        service = arn.split(":")[2] if arn.count(":") >= 5 else ""
        if service == "sqs":
            kwargs: dict[str, Any] = {"QueueUrl": self.queue_url(arn), "MessageBody": body}
            if attributes:
                kwargs["MessageAttributes"] = {
                    k: {"DataType": t, "StringValue": v} for k, (t, v) in attributes.items()
                }
            self.clients("sqs").send_message(**kwargs)
        elif service == "sns":
            kwargs = {"TopicArn": arn, "Message": body}
            if attributes:
                kwargs["MessageAttributes"] = {
                    k: {"DataType": t, "StringValue": v} for k, (t, v) in attributes.items()
                }
            self.clients("sns").publish(**kwargs)
        elif service == "lambda" and self.invoke_async is not None:
            self.invoke_async(arn.split(":")[6], json.loads(body))
        else:
            log.warning("destination %s is not supported locally (SQS, SNS and Lambda are): message dropped", arn)


# --------------------------------------------------------------------------- asynchronous invocation


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
    ) -> None:
        self.invoke = invoke
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
        config = self.configs.get(job.function, AsyncConfig())
        if time.time() - job.enqueued > config.max_event_age_s:
            self._give_up(job, config, None, "EventAgeExceeded", "the event is older than MaximumEventAgeInSeconds")
            return
        try:
            result = self.invoke(job.function, job.event)
        except Exception as e:  # noqa: BLE001
            if isinstance(e, Throttled):
                self._later(job, self.throttle_delay)  # throttles are retried without counting
                return
            if isinstance(e, UnknownFunction) or self._stopped:
                self._record(job, "dropped", None, None, str(e))
                log.warning("async event for %s dropped: %s", job.function, e)
                return
            log.warning("async invocation of %s failed: %r", job.function, e)
            result = None
            error = f"{type(e).__name__}: {e}"
        else:
            error = _error_message(result) if result.function_error else None
        job.invocations += 1
        if error is None:
            self._record(job, "success", result, None, None)
            if config.on_success:
                self._send_record(config.on_success, job, result, "Success")
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
        if not (config.on_failure or config.dead_letter_arn):
            log.warning("%s: event given up (%s), no dead-letter queue or OnFailure destination: %s",
                        job.function, condition, error)
        if config.on_failure:
            self._safe(self._send_record, config.on_failure, job, result, condition)
        if config.dead_letter_arn:
            request_id = getattr(result, "request_id", None) or str(uuid.uuid4())
            attributes = {
                "RequestID": ("String", request_id),
                "ErrorCode": ("Number", "200"),
                "ErrorMessage": ("String", (error or condition)[:1024]),
            }
            self._safe(self.destinations.send, config.dead_letter_arn, json.dumps(job.event), attributes)

    def _send_record(self, arn: str, job: _Job, result: InvocationResult, condition: str) -> None:
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if result is not None and result.function_error:
            response["functionError"] = result.function_error
        record = {
            "version": "1.0",
            "timestamp": _iso(),
            "requestContext": {
                "requestId": getattr(result, "request_id", None) or str(uuid.uuid4()),
                "functionArn": f"{self.function_arn(job.function)}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": job.invocations,
            },
            "requestPayload": job.event,
            "responseContext": response,
            "responsePayload": _response_payload(result) if result is not None else None,
        }
        self.destinations.send(arn, json.dumps(record))

    @staticmethod
    def _safe(fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001
            log.exception("sending to %s failed", args[0])

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


# --------------------------------------------------------------------------- shapes


def s3_lambda_record(record: Mapping[str, Any], *, source_ip: str = "127.0.0.1") -> dict[str, Any]:
    """moto's S3 event record, completed into the record Lambda gets from S3 (event version 2.1)."""
    rec = json.loads(json.dumps(record))
    rec.setdefault("eventVersion", "2.1")
    rec.setdefault("eventSource", "aws:s3")
    rec.setdefault("userIdentity", {"principalId": "AWS:AIDAWORKSHOPLOCALUSER"})
    rec.setdefault("requestParameters", {"sourceIPAddress": source_ip})
    rec.setdefault("responseElements", {
        "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
        "x-amz-id-2": base64.b64encode(uuid.uuid4().bytes * 2).decode(),
    })
    s3 = rec.setdefault("s3", {})
    s3.setdefault("s3SchemaVersion", "1.0")
    s3.setdefault("bucket", {}).setdefault("ownerIdentity", {"principalId": "A3WORKSHOPLOCAL"})
    obj = s3.setdefault("object", {})
    if "key" in obj:
        # S3 URL-encodes the key in notifications ("a b.jpg" -> "a+b.jpg"), keeping "/" (moto encodes it too)
        obj["key"] = quote_plus(unquote_plus(obj["key"]), safe="/")
    obj.setdefault("sequencer", f"{time.time_ns() // 1000:016X}")
    return rec


def sns_lambda_event(envelope: Mapping[str, Any], subscription_arn: str, endpoint_url: str) -> dict[str, Any]:
    """An SNS HTTP/SQS envelope (raw delivery off) -> the event SNS gives a subscribed function."""
    unsubscribe = envelope.get("UnsubscribeURL") or envelope.get("UnsubscribeUrl") or \
        f"{endpoint_url.rstrip('/')}/?Action=Unsubscribe&SubscriptionArn={subscription_arn}"
    if "SubscriptionArn=" in unsubscribe:
        unsubscribe = unsubscribe.split("SubscriptionArn=")[0] + f"SubscriptionArn={subscription_arn}"
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": envelope.get("Type", "Notification"),
                    "MessageId": envelope.get("MessageId"),
                    "TopicArn": envelope.get("TopicArn"),
                    "Subject": envelope.get("Subject") or None,
                    "Message": envelope.get("Message"),
                    "Timestamp": envelope.get("Timestamp"),
                    "SignatureVersion": envelope.get("SignatureVersion", "1"),
                    "Signature": envelope.get("Signature", ""),
                    "SigningCertUrl": envelope.get("SigningCertURL") or envelope.get("SigningCertUrl", ""),
                    "UnsubscribeUrl": unsubscribe,
                    "MessageAttributes": envelope.get("MessageAttributes") or {},
                },
            }
        ]
    }


def _attribute_json(value: Any) -> Any:
    """boto3's parsed AttributeValue back to DynamoDB JSON (bytes -> base64)."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {k: _attribute_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_attribute_json(v) for v in value]
    return value


def dynamodb_stream_record(record: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A ``GetRecords`` record (as boto3 parses it) -> the record Lambda puts in a stream event."""
    dynamodb = dict(record.get("dynamodb") or {})
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, _dt.datetime):
        dynamodb["ApproximateCreationDateTime"] = float(int(created.timestamp()))
    for key in ("Keys", "NewImage", "OldImage"):
        if key in dynamodb:
            dynamodb[key] = _attribute_json(dynamodb[key])
    out = {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if record.get("userIdentity"):
        out["userIdentity"] = record["userIdentity"]
    return out


# --------------------------------------------------------------------------- queue pollers (S3, SNS)


class _QueuePoller:
    """Long-polls an internal SQS queue and hands each message body to ``handle``."""

    def __init__(self, name: str, clients: Clients, queue_url: str, handle: Callable[[str], None],
                 stopped: threading.Event) -> None:
        self.name = name
        self.clients = clients
        self.queue_url = queue_url
        self.handle = handle
        self.stopped = stopped
        self.thread = threading.Thread(target=self._run, name=f"poll-{name}", daemon=True)
        self.busy = False

    def _run(self) -> None:
        sqs = self.clients("sqs")
        while not self.stopped.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                ).get("Messages", [])
            except Exception as e:  # noqa: BLE001
                if self.stopped.is_set():
                    return
                log.warning("polling %s failed: %s", self.name, e)
                self.stopped.wait(0.5)
                continue
            self.busy = bool(messages)
            for message in messages:
                try:
                    self.handle(message["Body"])
                except Exception:  # noqa: BLE001
                    log.exception("%s: cannot handle a message", self.name)
                try:
                    sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                except Exception:  # noqa: BLE001
                    if self.stopped.is_set():
                        return
            self.busy = False


def _internal_queue_name(kind: str, name: str) -> str:
    clean = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
    full = f"workshop-internal-{kind}-{clean}"
    if len(full) > 80:
        import hashlib

        full = f"{full[:67]}-{hashlib.sha1(name.encode()).hexdigest()[:12]}"
    return full


# --------------------------------------------------------------------------- DynamoDB streams


class StreamPoller:
    """One event source mapping on a DynamoDB stream: poll, filter, batch, invoke, retry, report."""

    def __init__(
        self,
        mapping: StreamMappingModel,
        *,
        clients: Clients,
        invoke: Invoke,
        destinations: Destinations,
        region: str,
        function_arn: str,
        retry_delay: float = 0.2,
        throttle_delay: float = 0.5,
        poll_interval: float = 0.1,
    ) -> None:
        self.mapping = mapping
        self.clients = clients
        self.invoke = invoke
        self.destinations = destinations
        self.region = region
        self.function_arn = function_arn
        self.retry_delay = retry_delay
        self.throttle_delay = throttle_delay
        self.poll_interval = poll_interval
        self.stopped = threading.Event()
        self._iterators: dict[str, str] = {}
        self._last_seq: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        self._busy = False
        #: One entry per invocation: {"records": [sequence numbers], "outcome": ok|partial|error|throttled,
        #: "failed_from": seq or None}. And one per batch sent to OnFailure in ``failures``.
        self.invocations: deque[dict] = deque(maxlen=1000)
        self.failures: deque[dict] = deque(maxlen=1000)

    def open(self) -> None:
        """Take the shard iterators at the starting position (what LATEST means is fixed here)."""
        ds = self.clients("dynamodbstreams")
        arn = self.mapping.event_source_arn
        position = self.mapping.starting_position.upper()
        if position not in ("LATEST", "TRIM_HORIZON"):
            log.warning("%s: StartingPosition %s is read as LATEST locally", self.mapping.logical_id, position)
            position = "LATEST"
        shards = ds.describe_stream(StreamArn=arn)["StreamDescription"].get("Shards", [])
        for shard in shards:
            self._iterators[shard["ShardId"]] = ds.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType=position
            )["ShardIterator"]

    def start(self) -> None:
        if not self._iterators:
            self.open()
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.mapping.logical_id}", daemon=True)
        self._thread.start()

    def _reopen(self, ds: Any, shard_id: str) -> None:
        """A new iterator just after the last record read (an iterator can expire), else at the start."""
        kwargs: dict[str, Any] = {"StreamArn": self.mapping.event_source_arn, "ShardId": shard_id}
        if shard_id in self._last_seq:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=self._last_seq[shard_id])
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON" if self.mapping.starting_position.upper() == "TRIM_HORIZON" \
                else "LATEST"
        try:
            self._iterators[shard_id] = ds.get_shard_iterator(**kwargs)["ShardIterator"]
        except Exception as e:  # noqa: BLE001
            log.warning("%s: GetShardIterator failed: %s", self.mapping.logical_id, e)
            self.stopped.wait(1.0)

    def stop(self) -> None:
        self.stopped.set()

    def idle(self) -> bool:
        return not self._busy

    def _run(self) -> None:
        ds = self.clients("dynamodbstreams")
        while not self.stopped.is_set():
            got = False
            for shard_id, iterator in list(self._iterators.items()):
                try:
                    page = ds.get_records(ShardIterator=iterator, Limit=1000)
                except Exception as e:  # noqa: BLE001
                    if self.stopped.is_set():
                        return
                    log.warning("%s: GetRecords failed (%s): taking a new shard iterator", self.mapping.logical_id, e)
                    self._reopen(ds, shard_id)
                    continue
                self._iterators[shard_id] = page.get("NextShardIterator") or iterator
                records = page.get("Records") or []
                if records:
                    self._last_seq[shard_id] = str(records[-1]["dynamodb"]["SequenceNumber"])
                if records:
                    got = True
                    self._busy = True
                    try:
                        self._process(shard_id, records)
                    except Exception:  # noqa: BLE001
                        log.exception("%s: processing a batch failed", self.mapping.logical_id)
                    finally:
                        self._busy = False
            if not got:
                self.stopped.wait(self.poll_interval)

    def _process(self, shard_id: str, raw: list[dict]) -> None:
        records = [dynamodb_stream_record(r, self.mapping.event_source_arn, self.region) for r in raw]
        if self.mapping.filters:
            records = [r for r in records if any(matches_filter(p, r) for p in self.mapping.filters)]
        size = max(1, self.mapping.batch_size)
        for i in range(0, len(records), size):
            if self.stopped.is_set():
                return
            self._deliver(shard_id, records[i:i + size])

    @staticmethod
    def _seq(record: dict) -> str:
        return str(record["dynamodb"].get("SequenceNumber"))

    def _first_failure(self, result: InvocationResult, batch: list[dict]) -> tuple[int | None, bool]:
        """(index of the first record to retry or None for a success, whether the answer was invalid).

        Lambda's rules for ``ReportBatchItemFailures``: no, null or empty ``batchItemFailures`` is a
        success; an answer that is not JSON, or an ``itemIdentifier`` that is null, empty or not in
        the batch, fails the whole batch; otherwise processing resumes at the lowest failed record.
        """
        try:
            body = json.loads(result.payload) if result.payload else None
        except ValueError:
            return 0, True
        if not isinstance(body, dict):
            return None, False
        failures = body.get("batchItemFailures")
        if not failures:
            return None, False
        if not isinstance(failures, list):
            return 0, True
        positions = {self._seq(r): i for i, r in enumerate(batch)}
        indexes = []
        for failure in failures:
            ident = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not ident or str(ident) not in positions:
                return 0, True
            indexes.append(positions[str(ident)])
        return min(indexes), False

    def _deliver(self, shard_id: str, batch: list[dict]) -> None:
        m = self.mapping
        pending: deque[tuple[list[dict], int, int]] = deque([(batch, 0, 0)])  # (records, retries, invocations)
        while pending and not self.stopped.is_set():
            records, retries, invocations = pending.popleft()
            if m.maximum_record_age_s >= 0:
                oldest = min(float(r["dynamodb"].get("ApproximateCreationDateTime") or time.time()) for r in records)
                if time.time() - oldest > m.maximum_record_age_s:
                    self._on_failure(shard_id, records, None, invocations, "RecordAgeExceeded")
                    continue
            try:
                result = self.invoke(m.function, {"Records": records})
            except Exception as e:  # noqa: BLE001
                if isinstance(e, Throttled):
                    self.invocations.append({"records": [self._seq(r) for r in records], "outcome": "throttled"})
                    pending.appendleft((records, retries, invocations))
                    self.stopped.wait(self.throttle_delay)
                    continue
                if self.stopped.is_set():
                    return
                log.warning("%s: invoking %s failed: %s", m.logical_id, m.function, e)
                result = None
            invocations += 1
            seqs = [self._seq(r) for r in records]
            if result is not None and not result.function_error:
                index, invalid = self._first_failure(result, records) if m.report_batch_item_failures else (None, False)
                if index is None:
                    self.invocations.append({"records": seqs, "outcome": "ok", "failed_from": None})
                    continue
                remaining = records[index:]
                self.invocations.append({"records": seqs, "outcome": "invalid" if invalid else "partial",
                                         "failed_from": self._seq(remaining[0])})
                # a partial answer resumes at the failed record (a "split" there), without halving
                whole_batch = invalid
            else:
                remaining = records
                self.invocations.append({"records": seqs, "outcome": "error", "failed_from": seqs[0]})
                whole_batch = True
            if whole_batch and m.bisect_on_error and len(remaining) > 1:
                half = len(remaining) // 2  # splitting does not use up a retry
                pending.appendleft((remaining[half:], retries, 0))
                pending.appendleft((remaining[:half], retries, 0))
                continue
            if m.maximum_retry_attempts >= 0 and retries >= m.maximum_retry_attempts:
                self._on_failure(shard_id, remaining, result, invocations, "RetryAttemptsExhausted")
                continue
            self.stopped.wait(self.retry_delay)
            pending.appendleft((remaining, retries + 1, invocations))

    def _on_failure(self, shard_id: str, records: list[dict], result: InvocationResult, invocations: int, condition: str) -> None:
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if result is not None and result.function_error:
            response["functionError"] = result.function_error
        record = {
            "requestContext": {
                "requestId": getattr(result, "request_id", None) or str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": condition,
                "approximateInvokeCount": invocations,
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": _iso(),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": str(first.get("SequenceNumber")),
                "endSequenceNumber": str(last.get("SequenceNumber")),
                "approximateArrivalOfFirstRecord": _iso(float(first.get("ApproximateCreationDateTime") or time.time())),
                "approximateArrivalOfLastRecord": _iso(float(last.get("ApproximateCreationDateTime") or time.time())),
                "batchSize": len(records),
                "streamArn": self.mapping.event_source_arn,
            },
        }
        self.failures.append(record)
        log.warning("%s: %d record(s) skipped (%s)", self.mapping.logical_id, len(records), condition)
        if self.mapping.on_failure:
            try:
                self.destinations.send(self.mapping.on_failure, json.dumps(record))
            except Exception:  # noqa: BLE001
                log.exception("%s: sending the failure record to %s failed", self.mapping.logical_id,
                              self.mapping.on_failure)


# --------------------------------------------------------------------------- all of them


class EventSources:
    """Every event source of a stack, wired to a runtime's ``invoke``."""

    def __init__(
        self,
        stack: Stack,
        clients: Clients,
        invoke: Invoke,
        *,
        endpoint_url: str,
        retry_delays: Iterable[float] = (1.0, 2.0),
        stream_retry_delay: float = 0.2,
        poll_interval: float = 0.1,
        workers: int = 4,
    ) -> None:
        self.stack = stack
        self.clients = clients
        self.invoke = invoke
        self.endpoint_url = endpoint_url
        self.region = stack.region
        self.account_id = stack.account_id
        self.stream_retry_delay = stream_retry_delay
        self.poll_interval = poll_interval
        self.destinations = Destinations(clients)
        self.async_invoker = AsyncInvoker(
            invoke, self.destinations, retry_delays=retry_delays, workers=workers,
            region=self.region, account_id=self.account_id,
        )
        self.destinations.invoke_async = self.async_invoker.submit
        self.streams: list[StreamPoller] = []
        self._pollers: list[_QueuePoller] = []
        self._stopped = threading.Event()
        self._started = False

    # ----------------------------------------------------------------- wiring

    def setup(self) -> None:
        """Configure async invocation, S3 notifications, SNS subscriptions and stream positions."""
        for fn in self.stack.functions():
            self.async_invoker.configure(fn.name, fn.async_config)
        self._setup_s3()
        for sub in self.stack.sns_subscriptions():
            self.add_sns_subscription(sub)
        for mapping in self.stack.stream_mappings():
            self.add_stream_mapping(mapping)

    def _setup_s3(self) -> None:
        by_bucket: dict[str, list[S3NotificationModel]] = {}
        for n in self.stack.s3_notifications():
            by_bucket.setdefault(n.bucket_logical_id, []).append(n)
        for lid in self.stack.of_type("AWS::S3::Bucket"):
            notification = self.stack.properties(lid).get("NotificationConfiguration") or {}
            if notification or lid in by_bucket:
                self.add_s3_notifications(self.stack.refs[lid], by_bucket.get(lid, []), notification, lid)

    def add_s3_notifications(self, bucket: str, notifications: list[S3NotificationModel],
                             template_configuration: Mapping[str, Any] | None = None, label: str = "") -> None:
        """Set ``bucket``'s notification configuration: its functions (through an internal queue), plus the
        template's own ``QueueConfigurations``/``TopicConfigurations`` (CloudFormation form), as given."""
        template_configuration = template_configuration or {}
        configuration: dict[str, list] = {"QueueConfigurations": [], "TopicConfigurations": []}
        routes: dict[str, str] = {}
        if notifications:
            queue_url, queue_arn = self._internal_queue("s3", bucket)
            for n in notifications:
                entry: dict[str, Any] = {"Id": n.id, "QueueArn": queue_arn, "Events": n.events}
                if n.filter_rules:
                    entry["Filter"] = {"Key": {"FilterRules": n.filter_rules}}
                configuration["QueueConfigurations"].append(entry)
                routes[n.id] = n.function
            poller = _QueuePoller(
                f"s3-{bucket}", self.clients, queue_url,
                lambda body, routes=routes: self._s3_message(body, routes), self._stopped,
            )
            self._pollers.append(poller)
            if self._started:
                poller.thread.start()
        for kind, target in (("QueueConfigurations", "Queue"), ("TopicConfigurations", "Topic")):
            for i, cfg in enumerate(template_configuration.get(kind) or []):
                entry = {"Id": f"{label or bucket}-{target}-{i}", f"{target}Arn": cfg[target], "Events": [cfg["Event"]]}
                rules = ((cfg.get("Filter") or {}).get("S3Key") or {}).get("Rules")
                if rules:
                    entry["Filter"] = {"Key": {"FilterRules": rules}}
                configuration[kind].append(entry)
        self.clients("s3").put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={k: v for k, v in configuration.items() if v}
        )

    def _internal_queue(self, kind: str, name: str) -> tuple[str, str]:
        sqs = self.clients("sqs")
        url = sqs.create_queue(QueueName=_internal_queue_name(kind, name))["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def internal_queues(self) -> list[str]:
        """The names of the SQS queues ``setup`` puts behind the stack's S3 notifications and SNS subscriptions,
        in the order it makes them (for the stack's deletion)."""
        buckets = dict.fromkeys(n.bucket for n in self.stack.s3_notifications())
        return ([_internal_queue_name("s3", bucket) for bucket in buckets]
                + [_internal_queue_name("sns", sub.logical_id) for sub in self.stack.sns_subscriptions()])

    def _s3_message(self, body: str, routes: Mapping[str, str]) -> None:
        message = json.loads(body)
        if message.get("Event") == "s3:TestEvent":
            return
        for record in message.get("Records") or []:
            function = routes.get((record.get("s3") or {}).get("configurationId"))
            if function is None:
                continue
            self.async_invoker.submit(function, {"Records": [s3_lambda_record(record)]})

    def add_sns_subscription(self, sub: SnsSubscriptionModel) -> None:
        queue_url, queue_arn = self._internal_queue("sns", sub.logical_id)
        attributes = {"RawMessageDelivery": "false"}
        if sub.filter_policy is not None:
            attributes["FilterPolicy"] = json.dumps(sub.filter_policy)
        if sub.filter_policy_scope:
            attributes["FilterPolicyScope"] = sub.filter_policy_scope
        self.clients("sns").subscribe(TopicArn=sub.topic_arn, Protocol="sqs", Endpoint=queue_arn,
                                      Attributes=attributes, ReturnSubscriptionArn=True)

        def handle(body: str, sub: SnsSubscriptionModel = sub) -> None:
            self.async_invoker.submit(sub.function, sns_lambda_event(json.loads(body), sub.arn, self.endpoint_url))

        poller = _QueuePoller(f"sns-{sub.logical_id}", self.clients, queue_url, handle, self._stopped)
        self._pollers.append(poller)
        if self._started:
            poller.thread.start()

    def add_stream_mapping(self, mapping: StreamMappingModel) -> StreamPoller:
        """Add a DynamoDB stream event source mapping (its position is taken now). Returns its poller."""
        poller = StreamPoller(
            mapping,
            clients=self.clients,
            invoke=self.invoke,
            destinations=self.destinations,
            region=self.region,
            function_arn=f"arn:aws:lambda:{self.region}:{self.account_id}:function:{mapping.function}",
            retry_delay=self.stream_retry_delay,
            poll_interval=self.poll_interval,
        )
        if mapping.enabled:
            poller.open()
            self.streams.append(poller)
            if self._started:
                poller.start()
        return poller

    # ----------------------------------------------------------------- running

    def start(self) -> None:
        self._started = True
        for poller in self._pollers:
            poller.thread.start()
        for stream in self.streams:
            stream.start()

    def stop(self) -> None:
        self._stopped.set()
        for stream in self.streams:
            stream.stop()
        self.async_invoker.stop()

    def invoke_async(self, function: str, event: Any) -> None:
        self.async_invoker.submit(function, event)

    def wait_idle(self, timeout: float = 30.0, settle: float = 0.3) -> bool:
        """Wait until nothing is being delivered (for tests and notebooks): True if idle in time."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            busy = (self.async_invoker.pending() or any(p.busy for p in self._pollers)
                    or not all(s.idle() for s in self.streams))
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= settle:
                return True
            time.sleep(0.02)
        return False
