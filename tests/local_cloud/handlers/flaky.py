"""Toy handlers for the event-source tests (tests/local_cloud/test_event_sources.py).

Each appends what it saw to the file named by the function's RECORD_FILE variable (one JSON
line per invocation), so a test can see every invocation, retries included.
"""

import json
import os


def _record(event) -> int:
    path = os.environ["RECORD_FILE"]
    with open(path, "a") as f:
        f.write(json.dumps(event) + "\n")
    with open(path) as f:
        return sum(1 for _ in f)


def record(event, context):
    """Remember the event and succeed."""
    return {"invocation": _record(event)}


def always_fail(event, context):
    """Remember the event and fail (an unhandled exception: Lambda's function error)."""
    count = _record(event)
    raise RuntimeError(f"always fails (invocation {count})")


def fail_first(event, context):
    """Fail the first ``event["failures"]`` invocations, then succeed."""
    count = _record(event)
    if count <= int(event.get("failures", 1)):
        raise RuntimeError(f"invocation {count} fails")
    return {"invocation": count}


def _poison(record) -> bool:
    return "poison" in (record.get("dynamodb", {}).get("NewImage") or {})


def stream_all_or_nothing(event, context):
    """A stream batch fails as a whole if any record is poison."""
    _record([r["dynamodb"]["SequenceNumber"] for r in event["Records"]])
    bad = [r["dynamodb"]["Keys"]["id"]["S"] for r in event["Records"] if _poison(r)]
    if bad:
        raise ValueError(f"poison records: {bad}")
    return {"processed": len(event["Records"])}


def stream_partial(event, context):
    """Report the poison records as batch item failures (ReportBatchItemFailures)."""
    _record([r["dynamodb"]["SequenceNumber"] for r in event["Records"]])
    failures = [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in event["Records"] if _poison(r)]
    return {"batchItemFailures": failures}


def slow_record(event, context):
    """Take ``event["seconds"]``, then remember the event (to keep an environment busy)."""
    import time

    time.sleep(float(event.get("seconds", 0.5)))
    return {"invocation": _record(event)}
