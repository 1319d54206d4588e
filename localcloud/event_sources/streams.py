"""DynamoDB streams: one poller per event source mapping and shard, synchronous like Lambda's.

Every ``poll_interval`` (0.1 s) ``GetRecords`` from the mapping's ``StartingPosition`` (taken when the
mapping is made); records that match no ``FilterCriteria`` pattern are dropped; the rest go in order,
in batches of up to ``BatchSize``, one batch at a time. On a function error the batch is split in two
when ``BisectBatchOnFunctionError`` (a split does not use up a retry), else retried until
``MaximumRetryAttempts`` (-1: until the record is older than ``MaximumRecordAgeInSeconds``); with
``ReportBatchItemFailures`` the function's ``batchItemFailures`` are honoured (processing resumes at
the lowest failed sequence number; an invalid answer fails the whole batch). What cannot be processed
is skipped, and the ``OnFailure`` destination gets the record Lambda sends: metadata describing the
batch (``DDBStreamBatchInfo``), not the records themselves.

Not emulated: ``ParallelizationFactor``, tumbling windows and ``MaximumBatchingWindowInSeconds``
(batches go as soon as records are there); ``approximateInvokeCount`` counts the invocations of the
failed records after their last split.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from typing import Any

from localcloud.cfn.stack import (
    StreamMappingModel,
)
from localcloud.errors import Throttled
from localcloud.event_sources.destinations import Destinations, Invoke, Measure, iso_time, measured_nowhere
from localcloud.event_sources.filters import matches_filter
from localcloud.event_sources.shapes import dynamodb_stream_record
from localcloud.lambda_service.spec import InvocationResult
from localcloud.sdk import Clients

log = logging.getLogger(__name__)


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
        measure: Measure = measured_nowhere,
    ) -> None:
        self.mapping = mapping
        self.measure = measure
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
            # "the age of the last record in the batch when Lambda reads it" (IteratorAge)
            last = float(records[-1]["dynamodb"].get("ApproximateCreationDateTime") or time.time())
            self.measure("IteratorAge", m.function, max(0.0, time.time() - last) * 1000, "Milliseconds")
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
            "timestamp": iso_time(),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": str(first.get("SequenceNumber")),
                "endSequenceNumber": str(last.get("SequenceNumber")),
                "approximateArrivalOfFirstRecord": iso_time(float(first.get("ApproximateCreationDateTime") or time.time())),
                "approximateArrivalOfLastRecord": iso_time(float(last.get("ApproximateCreationDateTime") or time.time())),
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
                self.measure("DestinationDeliveryFailures", self.mapping.function, 1, "Count")
                log.exception("%s: sending the failure record to %s failed", self.mapping.logical_id,
                              self.mapping.on_failure)
