"""Lambda's logs in CloudWatch Logs: each invocation's lines to ``/aws/lambda/<Function>``, one stream per environment.

A line in the Embedded Metric Format also becomes metrics in CloudWatch, as CloudWatch Logs extracts them
from a Lambda function's log group (``localcloud.lambda_service.emf``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from localcloud.lambda_service import emf
from localcloud.lambda_service.spec import cloudwatch_message

log = logging.getLogger(__name__)

__all__ = ["LogForwarder"]


class LogForwarder:
    """Sends each invocation's log lines to CloudWatch Logs in moto, off the invoking thread."""

    def __init__(self, clients: Callable[[str], Any], echo: Callable[[str, list[str]], None] | None = None) -> None:
        self.clients = clients
        self.echo = echo
        self.queue: queue.Queue = queue.Queue()
        self.known: set[tuple[str, str]] = set()
        self.thread = threading.Thread(target=self._run, name="log-forwarder", daemon=True)
        self.thread.start()

    def sink(self, function: str, lines: list[str], stream: str) -> None:
        """The runtime's ``log_sink``: one invocation's lines, and its environment's log stream."""
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
        by_stream: dict[tuple[str, str], list[dict]] = {}
        for function, lines, timestamp, stream in items:
            key = (f"/aws/lambda/{function}", stream or time.strftime("%Y/%m/%d/[$LATEST]unknown"))
            by_stream.setdefault(key, []).extend({"timestamp": timestamp, "message": cloudwatch_message(line)}
                                              for line in lines if line)
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
        self._extract_metrics(line for _, lines, _, _ in items for line in lines)

    def _extract_metrics(self, lines: Iterable[str]) -> None:
        by_namespace: dict[str, list[dict]] = {}
        for line in lines:
            for namespace, data in emf.metric_data(line).items():
                by_namespace.setdefault(namespace, []).extend(data)
        if not by_namespace:
            return
        cloudwatch = self.clients("cloudwatch")
        for namespace, data in by_namespace.items():
            for i in range(0, len(data), 500):  # PutMetricData takes at most 1,000 metrics a request
                try:
                    cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[i:i + 500])
                except Exception as e:  # noqa: BLE001 - a refused batch is lost, the logs and other batches are not
                    log.warning("metrics embedded in logs not sent to CloudWatch (%s): %s", namespace, e)
