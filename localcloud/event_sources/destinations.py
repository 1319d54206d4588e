"""Where a result goes: SQS, SNS and Lambda destinations and dead-letter queues, and the record they get."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from localcloud.lambda_service.spec import InvocationResult
from localcloud.sdk import Clients

log = logging.getLogger(__name__)


Invoke = Callable[[str, Any], InvocationResult]  # (function name, event) -> its result
#: (metric, function name or name:qualifier, value, unit): a metric of Lambda's that an event source measures
Measure = Callable[[str, str, float, str], None]


def measured_nowhere(metric: str, function: str, value: float, unit: str) -> None:
    """The default ``Measure``: event sources without a CloudWatch to report to."""


def iso_time(ts: float | None = None) -> str:
    moment = _dt.datetime.fromtimestamp(ts if ts is not None else time.time(), _dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def error_message(result: InvocationResult) -> str:
    try:
        body = json.loads(result.payload or b"null")
    except ValueError:
        return (result.payload or b"").decode("utf-8", "replace")
    if isinstance(body, dict):
        return str(body.get("errorMessage") or body.get("errorType") or body)
    return str(body)


def response_payload(result: InvocationResult) -> Any:
    try:
        return json.loads(result.payload) if result.payload else None
    except ValueError:
        return result.payload.decode("utf-8", "replace")


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
