"""EventSources: the template's S3 notifications, SNS subscriptions and stream mappings, wired to their functions.

**S3 notifications.** The bucket's ``LambdaConfigurations`` become moto ``QueueConfigurations``
on an internal SQS queue (same events, same key filters); a poller turns each message into the
S3 event Lambda gets and invokes asynchronously. moto's ``s3:TestEvent`` is dropped, as Lambda
never sees it.

**SNS.** A ``lambda`` subscription becomes an internal SQS queue subscribed to the topic (raw
delivery off, the subscription's filter policy applied by moto); each SNS envelope becomes the
``aws:sns`` record Lambda gets, invoked asynchronously.

**DynamoDB streams**: ``localcloud.event_sources.streams``. **Schedules** (EventBridge rules):
``localcloud.event_sources.schedules``, their minute ``minute_s`` seconds long.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from localcloud.cfn.stack import (
    S3NotificationModel,
    SnsSubscriptionModel,
    Stack,
    StreamMappingModel,
)
from localcloud.event_sources.async_invoke import AsyncInvoker
from localcloud.event_sources.destinations import Destinations, Invoke, Measure, measured_nowhere
from localcloud.event_sources.schedules import ScheduleRunner
from localcloud.event_sources.shapes import s3_lambda_record, sns_lambda_event
from localcloud.event_sources.streams import StreamPoller
from localcloud.sdk import Clients

log = logging.getLogger(__name__)

__all__ = ["EventSources"]


class _QueuePoller:
    """Long-polls an internal SQS queue and hands each message body to ``handle``.

    The queue stands in for SNS's or S3's own delivery to Lambda, so it follows their rule: a message is deleted
    only once ``handle`` took it; one it failed on stays in the queue and comes back after a backoff (1, 2, 4 ... up
    to 20 s, SNS's delivery policy for Lambda), and is given up, with a log line, after ``max_receives``. A delete
    that fails is logged and the message delivered again: at least once, as AWS delivers.
    https://docs.aws.amazon.com/sns/latest/dg/sns-message-delivery-retries.html
    """

    def __init__(self, name: str, clients: Clients, queue_url: str, handle: Callable[[str], None],
                 stopped: threading.Event, max_receives: int = 10) -> None:
        self.name = name
        self.clients = clients
        self.queue_url = queue_url
        self.handle = handle
        self.stopped = stopped
        self.max_receives = max_receives
        self.thread = threading.Thread(target=self._run, name=f"poll-{name}", daemon=True)
        self.busy = False

    def _run(self) -> None:
        sqs = self.clients("sqs")
        while not self.stopped.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                    AttributeNames=["ApproximateReceiveCount"],
                ).get("Messages", [])
            except Exception as e:  # noqa: BLE001
                if self.stopped.is_set():
                    return
                log.warning("polling %s failed: %s", self.name, e)
                self.stopped.wait(0.5)
                continue
            self.busy = bool(messages)
            for message in messages:
                if self.stopped.is_set():
                    return  # not deleted: the message stays for the next start
                self._deliver(sqs, message)
            self.busy = False

    def _deliver(self, sqs: Any, message: dict[str, Any]) -> None:
        receives = int((message.get("Attributes") or {}).get("ApproximateReceiveCount", 1))
        try:
            self.handle(message["Body"])
        except Exception:  # noqa: BLE001
            if receives < self.max_receives:
                log.exception("%s: cannot handle a message (receive %d of %d), it comes back later",
                              self.name, receives, self.max_receives)
                self._later(sqs, message, min(2 ** (receives - 1), 20))
                return
            log.exception("%s: cannot handle a message after %d receives, it is given up", self.name, receives)
        try:
            sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        except Exception as e:  # noqa: BLE001
            if not self.stopped.is_set():
                log.warning("%s: deleting a handled message failed, it will be delivered again: %s", self.name, e)

    def _later(self, sqs: Any, message: dict[str, Any], delay: int) -> None:
        try:
            sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=delay)
        except Exception as e:  # noqa: BLE001 - it comes back after the queue's visibility timeout instead
            log.warning("%s: could not schedule a message's retry: %s", self.name, e)


def _internal_queue_name(kind: str, name: str) -> str:
    clean = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
    full = f"workshop-internal-{kind}-{clean}"
    if len(full) > 80:
        import hashlib

        full = f"{full[:67]}-{hashlib.sha1(name.encode()).hexdigest()[:12]}"
    return full


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
        minute_s: float = 60.0,
        measure: Measure = measured_nowhere,
    ) -> None:
        self.stack = stack
        self.measure = measure
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
            region=self.region, account_id=self.account_id, measure=measure,
        )
        self.destinations.invoke_async = self.async_invoker.submit
        self.streams: list[StreamPoller] = []
        self.schedules = ScheduleRunner(stack.schedules(), self.async_invoker.submit, minute_s=minute_s,
                                        region=self.region, account_id=self.account_id)
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
            measure=self.measure,
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
        self.schedules.start()

    def stop(self) -> None:
        self._stopped.set()
        self.schedules.stop()
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
