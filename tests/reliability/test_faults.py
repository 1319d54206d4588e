"""Faults during a create, injected, and what the app does with them: retried, dead-lettered or failed
visibly, nothing lost, the quota never spent twice for one request.

The functions that create thumbnails talk to moto through ``localcloud.faults.FaultProxy`` (their
``AWS_ENDPOINT_URL`` is the proxy's: a local-cloud setting, the app is unchanged), which breaks chosen
calls: S3, DynamoDB and SNS errors, plus a slow call that outlives the function's timeout, and an
execution environment killed (SIGKILL) in the middle of an invocation. Then a duplicated create
command and a replayed DynamoDB stream batch must do the work once.

The app's botocore config (``retries={"mode": "standard", "max_attempts": 3}``: 3 *retries*) tries a
call 4 times, so ``times=CALL`` (4) makes one SDK call fail for the app; the worker then raises, and
Lambda retries the event (2 retries, ``MAX_ATTEMPTS`` 3).
"""

from __future__ import annotations

import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.reliability import harness
from localcloud.faults import FaultProxy

pytestmark = pytest.mark.local_cloud

WORKER, REQUEST = "CreateThumbnailFunction", "RequestThumbnailFunction"
KILLS_AND_TIMEOUTS: list[str] = []
CALL = 4  # attempts botocore makes for one SDK call


@pytest.fixture(scope="module")
def cloud() -> Any:
    with harness.local_cloud(dispatch="sns", parameters={"MonthlyQuota": "1000"}) as cloud:
        yield cloud


@pytest.fixture(scope="module")
def proxy(cloud: Any) -> Any:
    with FaultProxy(cloud.endpoint_url) as proxy:
        for name in (WORKER, REQUEST):
            _reroute(cloud, name, proxy.url)
        yield proxy
        harness.count("faults", proxy.faults_injected + len(KILLS_AND_TIMEOUTS))


def _reroute(cloud: Any, name: str, endpoint: str, **changes: Any) -> None:
    harness.respec(cloud, name, environment={"AWS_ENDPOINT_URL": endpoint}, **changes)


@pytest.fixture(scope="module")
def app(cloud: Any, proxy: Any) -> dict[str, Any]:
    from benchmarks.photos import encode, realistic_photo

    api = harness.Api(cloud)
    auth = harness.new_user(cloud, "faulty")
    photo_id = harness.upload(api, auth, encode(realistic_photo(200, 150, seed=9), "JPEG"))
    assert harness.wait_photo(api, auth, photo_id)["status"] == "ready"
    return {"api": api, "auth": auth, "photo_id": photo_id, "expected": {}}


def _request(app: dict, fmt: str = "PNG", size: int = 32) -> Any:
    harness.count("inputs")
    return app["api"].post("thumbnails", headers=app["auth"], expect_5xx=True,
                           json={"photo_id": app["photo_id"], "width": size, "height": size, "format": fmt})


def _thumbnail_item(cloud: Any, thumbnail_id: str) -> dict[str, Any]:
    return next(t for t in harness.table_items(cloud, "ThumbnailsTableName") if t["thumbnail_id"] == thumbnail_id)


def _objects(cloud: Any, thumbnail_id: str) -> list[str]:
    listing = cloud.client("s3").list_objects_v2(Bucket=cloud.outputs["ThumbnailsBucketName"], Prefix=f"thumbnails/{thumbnail_id}")
    return [o["Key"] for o in listing.get("Contents", [])]


def _requested(app: dict, cloud: Any, expect: str, **kw: Any) -> str:
    answer = _request(app, **kw)
    assert answer.status_code == 202, answer.text
    thumbnail_id = answer.json()["thumbnail_id"]
    body = harness.wait_thumbnail(app["api"], app["auth"], thumbnail_id)
    cloud.wait_idle(10)
    assert body["status"] == expect, body
    app["expected"][thumbnail_id] = expect
    return thumbnail_id


def _ready_once(cloud: Any, thumbnail_id: str, attempts: int) -> None:
    item = _thumbnail_item(cloud, thumbnail_id)
    assert item["status"] == "ready" and item["attempts"] == attempts, item
    assert len(_objects(cloud, thumbnail_id)) == 1


# --------------------------------------------------------------------------- the request: DynamoDB, SNS


def test_quota_transaction_failing_is_a_503_and_spends_nothing(cloud: Any, proxy: Any, app: dict) -> None:
    before = harness.quota_used(cloud)
    rule = proxy.fail("dynamodb", "TransactWriteItems", times=CALL, match=cloud.outputs["QuotaTableName"])
    answer = _request(app)
    assert rule.hits == CALL
    assert answer.status_code == 503 and answer.json() == {"message": "the service is temporarily unavailable, please retry"}
    assert harness.quota_used(cloud) == before
    # the client retries: one thumbnail, one unit of quota
    _requested(app, cloud, "ready")


def test_a_conditional_check_refusal_that_is_not_the_quota_is_a_503(cloud: Any, proxy: Any, app: dict) -> None:
    rule = proxy.fail("dynamodb", "TransactWriteItems", times=1, status=400, code="ValidationException",
                      match=cloud.outputs["QuotaTableName"])
    before = harness.quota_used(cloud)
    answer = _request(app)
    assert rule.hits == 1 and answer.status_code == 503, answer.text
    assert harness.quota_used(cloud) == before


def test_publish_failing_marks_the_thumbnail_failed_and_gives_the_quota_back(cloud: Any, proxy: Any, app: dict) -> None:
    before = harness.quota_used(cloud)
    known = {t["thumbnail_id"] for t in harness.table_items(cloud, "ThumbnailsTableName")}
    rule = proxy.fail("sns", "Publish", times=CALL)
    answer = _request(app)
    assert rule.hits == CALL
    assert answer.status_code == 503, answer.text
    new = [t for t in harness.table_items(cloud, "ThumbnailsTableName") if t["thumbnail_id"] not in known]
    assert len(new) == 1 and new[0]["status"] == "failed" and new[0]["reason"] == "the create command could not be sent"
    app["expected"][new[0]["thumbnail_id"]] = "failed"
    assert harness.quota_used(cloud) == before


def test_publish_dropped_connection_is_retried_by_the_sdk(cloud: Any, proxy: Any, app: dict) -> None:
    rule = proxy.drop("sns", "Publish", times=1)
    thumbnail_id = _requested(app, cloud, "ready")
    assert rule.hits == 1
    _ready_once(cloud, thumbnail_id, attempts=1)


# --------------------------------------------------------------------------- the worker


def test_reading_the_photo_failing_once_is_retried_by_lambda(cloud: Any, proxy: Any, app: dict) -> None:
    rule = proxy.fail("s3", "GetObject", times=CALL, match=cloud.outputs["PhotosBucketName"])
    thumbnail_id = _requested(app, cloud, "ready")
    assert rule.hits == CALL
    _ready_once(cloud, thumbnail_id, attempts=2)


def test_writing_the_thumbnail_failing_throttled_is_retried(cloud: Any, proxy: Any, app: dict) -> None:
    rule = proxy.fail("s3", "PutObject", times=CALL, status=503, code="SlowDown", match=cloud.outputs["ThumbnailsBucketName"])
    thumbnail_id = _requested(app, cloud, "ready", fmt="WEBP")
    assert rule.hits == CALL
    _ready_once(cloud, thumbnail_id, attempts=2)


def test_marking_ready_failing_once_is_retried_and_written_once(cloud: Any, proxy: Any, app: dict) -> None:
    rule = proxy.fail("dynamodb", "UpdateItem", times=CALL, match=":ready")
    thumbnail_id = _requested(app, cloud, "ready", fmt="JPEG")
    assert rule.hits == CALL
    _ready_once(cloud, thumbnail_id, attempts=2)


def test_the_idempotency_table_failing_is_retried(cloud: Any, proxy: Any, app: dict) -> None:
    rule = proxy.fail("dynamodb", "PutItem", times=CALL, match=cloud.outputs["IdempotencyTableName"])
    thumbnail_id = _requested(app, cloud, "ready")
    assert rule.hits == CALL
    _ready_once(cloud, thumbnail_id, attempts=1)


def test_every_attempt_failing_ends_failed_in_the_dead_letter_queue_with_the_quota_back(cloud: Any, proxy: Any, app: dict) -> None:
    before = harness.quota_used(cloud)
    # 403 is not retried by the SDK: one failing call per Lambda attempt, three attempts
    rule = proxy.fail("s3", "PutObject", times=3, status=403, code="AccessDenied", match=cloud.outputs["ThumbnailsBucketName"])
    thumbnail_id = _requested(app, cloud, "failed")
    assert rule.hits == 3
    item = _thumbnail_item(cloud, thumbnail_id)
    assert item["attempts"] == 3 and item["reason"].startswith("gave up after 3 attempts: "), item
    assert harness.quota_used(cloud) == before
    assert _objects(cloud, thumbnail_id) == []
    letters = harness.dead_letters(cloud, wait=3)
    assert len(letters) == 1
    assert json.loads(json.loads(letters[0]["Body"])["Records"][0]["Sns"]["Message"])["thumbnail_id"] == thumbnail_id
    assert letters[0]["MessageAttributes"]["ErrorCode"]["StringValue"]
    body = app["api"].get(f"thumbnails/{thumbnail_id}", headers=app["auth"]).json()
    assert body["status"] == "failed" and body["reason"].startswith("gave up") and "url" not in body


def test_an_environment_killed_mid_invocation_is_retried(cloud: Any, proxy: Any, app: dict) -> None:
    """The killed invocation leaves Powertools' idempotency record "in progress" until its deadline
    (the invocation's timeout): a retry before then is refused as a duplicate. On AWS the async retries
    come 1 and 2 minutes later, after the 30 s timeout; here the worker gets a 3 s timeout and the
    retries 4 s, the same order."""
    invoker = cloud.event_sources.async_invoker
    delays = invoker.retry_delays
    _reroute(cloud, WORKER, proxy.url, timeout_s=3.0)
    invoker.retry_delays = (4.0, 4.0)
    try:
        _killed_and_retried(cloud, proxy, app)
    finally:
        invoker.retry_delays = delays
        _reroute(cloud, WORKER, proxy.url, timeout_s=30.0)


def _killed_and_retried(cloud: Any, proxy: Any, app: dict) -> None:
    rule = proxy.delay("s3", "GetObject", seconds=2.0, times=1, match=cloud.outputs["PhotosBucketName"])
    answer = _request(app)
    thumbnail_id = answer.json()["thumbnail_id"]
    harness.poll(lambda: rule.hits, lambda hits: hits >= 1, timeout=30, interval=0.05)
    live = [r for r in cloud.runtime.records() if r.function == WORKER and r.stopped_at is None and r.pid]
    assert live
    for record in live:  # only this invocation is in flight
        os.killpg(record.pid, signal.SIGKILL)
    KILLS_AND_TIMEOUTS.append("kill")
    body = harness.wait_thumbnail(app["api"], app["auth"], thumbnail_id)
    cloud.wait_idle(10)
    assert body["status"] == "ready", body
    app["expected"][thumbnail_id] = "ready"
    _ready_once(cloud, thumbnail_id, attempts=2)
    errors = harness.function_errors(cloud, WORKER)
    assert any("Runtime.ExitError" in e[1] or "exit" in e[2].lower() for e in errors), errors


def test_a_timeout_is_retried(cloud: Any, proxy: Any, app: dict) -> None:
    _reroute(cloud, WORKER, proxy.url, timeout_s=2.0)
    try:
        rule = proxy.delay("s3", "GetObject", seconds=3.0, times=1, match=cloud.outputs["PhotosBucketName"])
        thumbnail_id = _requested(app, cloud, "ready")
        assert rule.hits == 1
        KILLS_AND_TIMEOUTS.append("timeout")
        _ready_once(cloud, thumbnail_id, attempts=2)
        assert any(e[1] == "Sandbox.Timedout" or "timed out" in e[2].lower() for e in harness.function_errors(cloud, WORKER))
    finally:
        _reroute(cloud, WORKER, proxy.url, timeout_s=30.0)


# --------------------------------------------------------------------------- duplicates and replays


def _sns_event(cloud: Any, command: dict) -> dict:
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:x",
                         "Sns": {"Type": "Notification", "MessageId": os.urandom(8).hex(),
                                 "TopicArn": cloud.outputs["CommandsTopicArn"], "Message": json.dumps(command),
                                 "Timestamp": "2026-01-01T00:00:00.000Z", "MessageAttributes": {}}}]}


def test_a_duplicated_create_command_does_the_work_once(cloud: Any, proxy: Any, app: dict) -> None:
    writes = proxy.delay("s3", "PutObject", seconds=0, times=10**6, match=cloud.outputs["ThumbnailsBucketName"])
    before = harness.quota_used(cloud)
    answer = _request(app, size=40)
    thumbnail_id = answer.json()["thumbnail_id"]
    command = {k: v for k, v in _thumbnail_item(cloud, thumbnail_id).items()
               if k in ("thumbnail_id", "photo_id", "owner", "width", "height", "format")}
    sns = cloud.client("sns")
    with ThreadPoolExecutor(4) as pool:  # the same command again, four times, while the first is handled
        list(pool.map(lambda _: sns.publish(TopicArn=cloud.outputs["CommandsTopicArn"], Message=json.dumps(command)), range(4)))
    harness.count("inputs", 4)
    body = harness.wait_thumbnail(app["api"], app["auth"], thumbnail_id)
    cloud.wait_idle(15)
    assert body["status"] == "ready"
    app["expected"][thumbnail_id] = "ready"
    # and after it is done, synchronously, twice more
    for _ in range(2):
        result = cloud.invoke(WORKER, _sns_event(cloud, command))
        assert result.function_error is None, result.payload
    cloud.wait_idle(5)
    _ready_once(cloud, thumbnail_id, attempts=1)
    assert writes.hits == 1
    assert sum(harness.quota_used(cloud).values()) == sum(before.values()) + 1
    writes.times = 0  # spent


def _stream_records(cloud: Any) -> list[dict]:
    from localcloud.event_sources.shapes import dynamodb_stream_record

    table = cloud.outputs["ThumbnailsTableName"]
    arn = cloud.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = cloud.client("dynamodbstreams")
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return [dynamodb_stream_record(r, arn, cloud.region) for r in records]


def test_a_replayed_stream_batch_does_the_work_once(cloud: Any, proxy: Any, app: dict) -> None:
    """The table's stream, read from the start: every INSERT so far, replayed twice at once."""
    writes = proxy.delay("s3", "PutObject", seconds=0, times=10**6, match=cloud.outputs["ThumbnailsBucketName"])
    before_quota = harness.quota_used(cloud)
    before = {t["thumbnail_id"]: t for t in harness.table_items(cloud, "ThumbnailsTableName")}
    records = _stream_records(cloud)
    inserts = [r for r in records if r["eventName"] == "INSERT"]
    assert len(inserts) >= len(before) - 1
    batch = {"Records": records[:100]}
    harness.count("inputs", len(batch["Records"]) * 2)
    harness.count("inputs", len(batch["Records"]))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: cloud.invoke(WORKER, batch), range(2)))
    for result in results:
        # two copies of a record at the same moment: one may be refused as "already in progress"
        # (Powertools idempotency) and reported as a batch item failure, for the poller to retry
        assert result.function_error is None, result.payload
        assert set(result.json()) == {"batchItemFailures"}
    retry = cloud.invoke(WORKER, batch)  # the poller's retry: every record is answered from the record
    assert retry.function_error is None and retry.json() == {"batchItemFailures": []}, retry.payload
    assert writes.hits == 0
    after = {t["thumbnail_id"]: t for t in harness.table_items(cloud, "ThumbnailsTableName")}
    assert {k: (v["status"], v["attempts"]) for k, v in after.items()} == {k: (v["status"], v["attempts"]) for k, v in before.items()}
    assert harness.quota_used(cloud) == before_quota
    writes.times = 0


# --------------------------------------------------------------------------- afterwards


def test_every_thumbnail_ended_ready_once_or_failed_with_a_reason_and_the_quota_is_exact(cloud: Any, proxy: Any, app: dict) -> None:
    cloud.wait_idle(10)
    items = harness.table_items(cloud, "ThumbnailsTableName")
    assert harness.check_nothing_pending(cloud) == []
    for item in items:
        assert item["status"] in ("ready", "failed")
        if item["status"] == "failed":
            assert item.get("reason")
            assert _objects(cloud, item["thumbnail_id"]) == []
        else:
            assert len(_objects(cloud, item["thumbnail_id"])) == 1
        if item["thumbnail_id"] in app["expected"]:
            assert item["status"] == app["expected"][item["thumbnail_id"]]
    ready = sum(1 for i in items if i["status"] == "ready")
    assert harness.quota_used(cloud) == {items[0]["owner"]: ready}
    assert harness.check_quota(cloud) == []
    assert proxy.faults_injected >= 30
