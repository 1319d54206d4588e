"""Every photo and thumbnail reaches a final state, and the quota matches, whatever dies or loses its answer on
the way: a worker killed or timed out on every attempt (both dispatch modes), a request whose quota transaction
committed but whose answer came too late, a counter reset while a thumbnail fails, a replayed Idempotency-Key,
a scan bomb, a reused upload form.

The settle function runs on its schedule (``rate(5 minutes)``) with a short clock: a minute lasts
``MINUTE_S`` seconds, and its pending deadline is ``DEADLINE_S`` instead of the template's 1200 s. Each test
ends with the invariant: nothing pending once retries and sweeps have run, and ``used`` equal to the number of
thumbnails of this month that did not fail.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from localcloud.faults import FaultProxy
from tests.reliability import harness

pytestmark = pytest.mark.local_cloud

WORKER, REQUEST, SETTLE = "CreateThumbnailFunction", "RequestThumbnailFunction", "SettleFunction"
MINUTE_S = 0.3  # the sweep every 1.5 s
DEADLINE_S = 25  # past every retry of the short clock (cold starts on 2 busy cores included)


def _reroute(cloud: Any, name: str, **changes: Any) -> None:
    harness.respec(cloud, name, **changes)


@pytest.fixture(scope="module", params=["sns", "stream"])
def world(request: pytest.FixtureRequest) -> Any:
    from benchmarks.photos import encode, realistic_photo

    with harness.local_cloud(dispatch=request.param, minute_s=MINUTE_S) as cloud, FaultProxy(cloud.endpoint_url) as proxy:
        for name in (WORKER, REQUEST):
            _reroute(cloud, name, environment={"AWS_ENDPOINT_URL": proxy.url})
        _reroute(cloud, SETTLE, environment={"PENDING_DEADLINE_SECONDS": str(DEADLINE_S)})
        api = harness.Api(cloud)
        auth = harness.new_user(cloud, "final")
        photo_id = harness.upload(api, auth, encode(realistic_photo(160, 120, seed=3), "JPEG"))
        photo = harness.wait_photo(api, auth, photo_id)
        assert photo["status"] == "ready", (photo, harness.function_errors(cloud))
        yield {"cloud": cloud, "proxy": proxy, "api": api, "auth": auth, "photo_id": photo_id,
               "dispatch": request.param}
        harness.count("faults", proxy.faults_injected)


def _ask(world: dict, auth: dict | None = None, key: str | None = None, size: int = 24, **kw: Any) -> requests.Response:
    harness.count("inputs")
    headers = {**(auth or world["auth"]), **({"Idempotency-Key": key} if key else {})}
    return world["api"].post("thumbnails", headers=headers, expect_5xx=True,
                             json={"photo_id": world["photo_id"], "width": size, "height": size, "format": "PNG"}, **kw)


def _settled(world: dict, thumbnail_id: str, auth: dict | None = None, timeout: float = 45) -> dict:
    return harness.wait_thumbnail(world["api"], auth or world["auth"], thumbnail_id, timeout=timeout)


def _invariant(world: dict) -> None:
    """Nothing pending once retries and sweeps have run (a held answer may record a thumbnail late: wait for
    the sweep past its deadline), and the quota exact."""
    cloud = world["cloud"]
    cloud.wait_idle(10)
    harness.poll(lambda: [t for t in harness.table_items(cloud, "ThumbnailsTableName") if t["status"] == "pending"],
                 lambda stuck: not stuck, timeout=DEADLINE_S + 10 * MINUTE_S * 5, interval=0.5)
    assert harness.check_nothing_pending(cloud) == []
    assert harness.check_quota(cloud) == []


def _stream_state(world: dict) -> Any:
    sources = world["cloud"].event_sources
    return [(list(p.invocations)[-4:], p.idle()) for p in sources.streams]


def _item(cloud: Any, thumbnail_id: str) -> dict:
    return next(t for t in harness.table_items(cloud, "ThumbnailsTableName") if t["thumbnail_id"] == thumbnail_id)


def test_the_same_idempotency_key_sent_at_once_makes_one_thumbnail_and_another_body_is_422(world: dict) -> None:
    cloud = world["cloud"]
    before = sum(harness.quota_used(cloud).values())
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _ask(world, key="one-thumbnail", size=48), range(4)))
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    assert len({a.json()["thumbnail_id"] for a in answers}) == 1
    made = _settled(world, answers[0].json()["thumbnail_id"])
    assert made["status"] == "ready", (made.get("reason"), _stream_state(world))
    replay = _ask(world, key="one-thumbnail", size=48)
    assert replay.status_code == 202 and replay.json() == {"thumbnail_id": answers[0].json()["thumbnail_id"],
                                                           "status": "ready"}
    other = _ask(world, key="one-thumbnail", size=49)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["message"]
    assert sum(harness.quota_used(cloud).values()) == before + 1
    _invariant(world)


def test_a_scan_bomb_is_rejected_quickly_with_a_reason(world: dict) -> None:
    from tests.unit.test_imaging import _scan_bomb

    bomb = _scan_bomb(6000, 24_000)
    harness.count("inputs")
    started = time.monotonic()
    photo_id = harness.upload(world["api"], world["auth"], bomb)
    body = harness.wait_photo(world["api"], world["auth"], photo_id, timeout=60)
    assert body["status"] == "rejected" and "scans" in body["reason"], body
    assert time.monotonic() - started < 20
    _invariant(world)


def test_a_reused_upload_form_cannot_replace_a_ready_photo(world: dict) -> None:
    from benchmarks.photos import encode, realistic_photo

    api, auth, cloud = world["api"], world["auth"], world["cloud"]
    answer = api.post("photos", json={"content_type": "image/jpeg"}, headers=auth)
    form = answer.json()["upload"]
    photo_id = answer.json()["photo_id"]
    for data in (encode(realistic_photo(100, 80, seed=5), "JPEG"), b"not a photo, sent with the same form"):
        harness.count("inputs")
        stored = requests.post(form["url"], data=form["fields"], files={"file": ("p.jpg", data, "image/jpeg")}, timeout=30)
        assert stored.status_code in (200, 201, 204), stored.text
        harness.poll(lambda: api.get(f"photos/{photo_id}", headers=auth).json(), lambda b: b["status"] != "pending")
        cloud.wait_idle(10)
    body = api.get(f"photos/{photo_id}", headers=auth).json()
    assert (body["status"], body["width"], body["height"]) == ("ready", 100, 80), body
    world["photo_id"], photo = photo_id, world["photo_id"]
    try:
        made = _settled(world, _ask(world, size=16).json()["thumbnail_id"])
        assert made["status"] == "ready", made.get("reason")
    finally:
        world["photo_id"] = photo
    _invariant(world)


def test_a_worker_timing_out_on_every_attempt_ends_failed_with_the_unit_back(world: dict) -> None:
    cloud, proxy = world["cloud"], world["proxy"]
    _reroute(cloud, WORKER, timeout_s=2.0)
    rule = proxy.delay("s3", "GetObject", seconds=3.0, times=10**6, match=cloud.outputs["PhotosBucketName"])
    try:
        answer = _ask(world)
        assert answer.status_code == 202, answer.text
        body = _settled(world, answer.json()["thumbnail_id"])
    finally:
        rule.times = 0
        _reroute(cloud, WORKER, timeout_s=30.0)
    assert body["status"] == "failed", body
    # SNS: Lambda's on-failure destination says so at once; stream: the sweep, past the deadline
    expected = "the worker gave up" if world["dispatch"] == "sns" else "not created in time"
    assert body["reason"].startswith(expected), body
    _invariant(world)


def test_a_worker_killed_mid_thumbnail_on_every_attempt_ends_failed(world: dict) -> None:
    cloud, proxy = world["cloud"], world["proxy"]
    rule = proxy.delay("s3", "GetObject", seconds=1.5, times=10**6, match=cloud.outputs["PhotosBucketName"])
    stop = threading.Event()

    def killer() -> None:  # every attempt that reaches the photo dies there
        seen = 0
        while not stop.is_set():
            if rule.hits > seen:
                seen = rule.hits
                for record in cloud.runtime.records():
                    if record.function == WORKER and record.stopped_at is None and record.pid:
                        try:
                            os.killpg(record.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        answer = _ask(world)
        body = _settled(world, answer.json()["thumbnail_id"])
    finally:
        stop.set()
        thread.join()
        rule.times = 0
    assert body["status"] == "failed" and body["reason"], body
    assert _item(cloud, body["thumbnail_id"])["attempts"] >= 1
    _invariant(world)


def test_a_quota_answer_lost_past_the_timeout_is_found_again_by_its_idempotency_key(world: dict) -> None:
    from benchmarks.photos import encode, realistic_photo

    cloud, proxy, api = world["cloud"], world["proxy"], world["api"]
    auth = harness.new_user(cloud, "lostack")
    own = harness.upload(api, auth, encode(realistic_photo(120, 90, seed=4), "JPEG"))
    assert harness.wait_photo(api, auth, own)["status"] == "ready"
    mine = {**world, "photo_id": own}
    _ask(mine, auth, size=8)  # a warm environment, so the timeout below is the held answer's, not a cold start's
    _reroute(cloud, REQUEST, timeout_s=5.0)
    try:
        # the transaction commits in moto; its answer comes back after the function timed out
        rule = proxy.delay("dynamodb", "TransactWriteItems", seconds=7.0, times=1, match=cloud.outputs["QuotaTableName"])
        keyed = _ask(mine, auth, key="retry-me")
        assert rule.hits == 1 and keyed.status_code == 502, keyed.text
        again = _ask(mine, auth, key="retry-me")  # the client's retry: the same thumbnail, charged once
        assert again.status_code == 202, again.text
        body = _settled(world, again.json()["thumbnail_id"], auth)
        assert body["status"] == "ready", body
        owner = _owner(cloud, auth)
        assert harness.quota_used(cloud)[owner] == 2  # the warm-up and the keyed one
        if world["dispatch"] == "sns":  # (by the stream, recording it is the command: nothing to lose)
            # without a key the retry is another thumbnail; the first one's command never went, and the sweep
            # fails it past the deadline, giving its unit back
            rule = proxy.delay("dynamodb", "TransactWriteItems", seconds=7.0, times=1, match=cloud.outputs["QuotaTableName"])
            assert _ask(mine, auth, size=9).status_code == 502
            # recorded when the held transaction goes through, after the function is gone
            [lost] = harness.poll(lambda: [t for t in harness.table_items(cloud, "ThumbnailsTableName")
                                           if t["owner"] == owner and t["width"] == 9], bool, timeout=20)
            assert (lost["status"], lost["attempts"]) == ("pending", 0)
            settled = _settled(world, lost["thumbnail_id"], auth, timeout=90)
            assert (settled["status"], settled.get("reason")) == ("failed", "not created in time"), settled
            assert harness.quota_used(cloud)[owner] == 2
    finally:
        _reroute(cloud, REQUEST, timeout_s=10.0)
    _invariant(world)


def _owner(cloud: Any, auth: dict) -> str:
    import base64
    import json

    payload = auth["Authorization"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]




def test_a_counter_reset_while_failing_records_the_failure_and_never_goes_below_zero(world: dict) -> None:
    cloud, proxy = world["cloud"], world["proxy"]
    rule = proxy.fail("s3", "PutObject", times=10**6, status=403, code="AccessDenied",
                      match=cloud.outputs["ThumbnailsBucketName"])
    try:
        answer = _ask(world)
        thumbnail_id = answer.json()["thumbnail_id"]
        harness.poll(lambda: rule.hits, lambda hits: hits >= 1, timeout=20, interval=0.05)
        owner = _item(cloud, thumbnail_id)["owner"]
        month = _item(cloud, thumbnail_id)["quota_month"]
        cloud.client("dynamodb").update_item(  # an operator resets the counter
            TableName=cloud.outputs["QuotaTableName"], Key={"user_id": {"S": owner}, "month": {"S": month}},
            UpdateExpression="SET used = :zero", ExpressionAttributeValues={":zero": {"N": "0"}})
        body = _settled(world, thumbnail_id)
    finally:
        rule.times = 0
    assert body["status"] == "failed", body
    refund = harness.poll(lambda: _item(cloud, thumbnail_id).get("refund"), lambda r: r != "due", timeout=30)
    assert refund.startswith("skipped"), refund
    used = harness.quota_used(cloud)[owner]
    assert used >= 0
    # the reset forgot the other thumbnails' units: put the counter back to what they spent, then check
    charged = sum(1 for t in harness.table_items(cloud, "ThumbnailsTableName")
                  if t["owner"] == owner and t["quota_month"] == month and t["status"] != "failed")
    assert used == 0
    cloud.client("dynamodb").update_item(
        TableName=cloud.outputs["QuotaTableName"], Key={"user_id": {"S": owner}, "month": {"S": month}},
        UpdateExpression="SET used = :n", ExpressionAttributeValues={":n": {"N": str(charged)}})
    _invariant(world)


def test_after_the_faults_a_new_thumbnail_is_still_made(world: dict) -> None:
    made = _settled(world, _ask(world, size=20).json()["thumbnail_id"])
    assert made["status"] == "ready", (made.get("reason"), _stream_state(world))
    _invariant(world)
