"""The moto child process: moto's threaded server on 127.0.0.1, with the fixes the local cloud needs.

Run by ``MotoProcess`` as ``python -m localcloud.endpoint.moto_server PORT``. It prints
``MOTO_READY <port>`` once it listens and lives as long as its standard input is open, so it stops
when the parent closes the pipe or dies, however it dies.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: DynamoDB operations applied as one step (see ``make_dynamodb_atomic``)
ATOMIC_DYNAMODB_OPERATIONS = ("put_item", "update_item", "delete_item", "get_item", "transact_write_items",
                              "transact_get_items", "batch_write_item", "query", "scan")
#: shard iterators kept per stream backend: a stream poller asks for one every 100 ms
KEEP_SHARD_ITERATORS = 100


def make_dynamodb_atomic() -> None:
    """One lock per DynamoDB request, as DynamoDB applies each request atomically.

    A conditional update is checked and applied as one; moto's threaded server does not do that, and
    loses or double-counts concurrent writes. Two requests can still interleave between them.
    """
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()

    def atomic(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(self, *args, **kwargs)
        return call

    for name in ATOMIC_DYNAMODB_OPERATIONS:
        setattr(DynamoDBBackend, name, atomic(getattr(DynamoDBBackend, name)))


def keep_streams_across_rollbacks() -> None:
    """A cancelled transaction leaves its tables' DynamoDB streams as they were, and working.

    moto rolls a cancelled ``TransactWriteItems`` back by putting deep copies of its tables in place, stream
    shards included: every shard iterator a stream poller holds then reads a shard nobody writes to any more,
    and the stream seems to stop for good. DynamoDB writes a stream record only for what a transaction
    committed ("a stream record ... for each item modified", none for a cancelled one:
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html), so the live shard is put
    back, without the records the cancelled writes appended to it.
    """
    from moto.dynamodb.models import DynamoDBBackend

    transact_write_items = DynamoDBBackend.transact_write_items

    @functools.wraps(transact_write_items)
    def call(self: Any, transact_items: list[dict[str, Any]]) -> None:
        names = {op.get("TableName") for item in transact_items for op in item.values() if isinstance(op, dict)}
        shards = {name: (table.stream_shard, len(table.stream_shard.items))
                  for name, table in self.tables.items() if name in names and table.stream_shard is not None}
        try:
            return transact_write_items(self, transact_items)
        except Exception:
            for name, (shard, length) in shards.items():
                restored = self.tables.get(name)
                if restored is not None and restored.stream_shard is not shard:
                    del shard.items[length:]
                    shard.table = restored
                    restored.stream_shard = shard
            raise

    DynamoDBBackend.transact_write_items = call


def give_percentiles() -> None:
    """``get_metric_data`` answers a percentile statistic (``p50``, ``p99.9``) as CloudWatch does.

    moto answers only Sum, Average, Minimum, Maximum and SampleCount (None for anything else). CloudWatch
    computes a percentile from the raw values of the period, those sent as ``Value`` or ``Values``; data sent
    as statistic sets have none (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Percentiles).
    The nearest-rank percentile of the values is given; CloudWatch's own is an approximation of it.
    """
    import math
    import re

    from moto.cloudwatch.models import CloudWatchBackend, Statistics

    get_statistic = Statistics.get_statistics_for_type
    percentile = re.compile(r"p(\d{1,2}(?:\.\d+)?|100)$")

    @functools.wraps(get_statistic)
    def call(self: Any, stat: str) -> Any:
        match = percentile.match(stat)
        if not match:
            return get_statistic(self, stat)
        values = sorted(self.metric_single_values_list)
        if not values:
            return None
        rank = math.ceil(float(match.group(1)) / 100 * len(values))
        return values[max(rank, 1) - 1]

    get_metric_data = CloudWatchBackend.get_metric_data

    @functools.wraps(get_metric_data)
    def without_gaps(self: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        results = get_metric_data(self, *args, **kwargs)
        for result in results:  # a period with no value for the statistic has no datapoint (moto: None, a 500)
            pairs = [(t, v) for t, v in zip(result.get("timestamps", []), result.get("values", []), strict=False) if v is not None]
            result["timestamps"], result["values"] = [t for t, _ in pairs], [v for _, v in pairs]
        return results

    Statistics.get_statistics_for_type = call
    CloudWatchBackend.get_metric_data = without_gaps


def trim_shard_iterators() -> int:
    """Forget all but the newest shard iterators of every stream backend; returns how many were dropped.

    moto keeps every DynamoDB shard iterator it ever handed out, and only the newest can still be used.
    """
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    dropped = 0
    for account in list(dynamodbstreams_backends.values()):
        for backend in list(account.values()):
            iterators = backend.shard_iterators
            if len(iterators) > 5 * KEEP_SHARD_ITERATORS:
                for key in list(iterators)[:-KEEP_SHARD_ITERATORS]:
                    iterators.pop(key, None)
                    dropped += 1
    return dropped


def _janitor(interval_s: float = 10.0) -> None:
    while True:
        time.sleep(interval_s)
        try:
            trim_shard_iterators()
        except RuntimeError as e:  # a backend's dict changed while it was read: next time
            log.debug("trimming shard iterators: %s", e)


def main(port: int) -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    keep_streams_across_rollbacks()
    give_percentiles()
    make_dynamodb_atomic()  # after: the lock also covers putting a shard back
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print("MOTO_READY", server.get_host_and_port()[1], flush=True)
    threading.Thread(target=_janitor, name="moto-janitor", daemon=True).start()
    try:
        sys.stdin.read()  # returns at EOF: the parent closed the pipe or is gone
    finally:
        os._exit(0)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
