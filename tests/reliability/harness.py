"""Shared machinery of the reliability tests: a local cloud that records every invocation, an HTTP
client that counts what it sends, the real upload flow, and the tally ``make reliability`` prints.

The tally is process-wide (``TALLY``): each test adds the inputs it tried, the faults it injected,
the requests it sent and what was lost (a 5xx or unanswered request, a record left ``pending``, a
function crash nobody accounted for). ``conftest.py`` prints it at the end of the session.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Passw0rd!"
FAST_RETRIES = (0.05, 0.1)

TALLY: collections.Counter = collections.Counter()
LOSSES: list[str] = []
_lock = threading.Lock()
_users = itertools.count()


def count(key: str, n: int = 1) -> None:
    with _lock:
        TALLY[key] += n


def lost(what: str) -> None:
    with _lock:
        TALLY["lost"] += 1
        LOSSES.append(what)


# --------------------------------------------------------------------------- the cloud


@contextlib.contextmanager
def local_cloud(**kwargs: Any) -> Iterator[Any]:
    """A started LocalCloud (port 0, fast retries) whose ``results`` list every invocation's result."""
    from localcloud.cloud import LocalCloud

    kwargs.setdefault("retry_delays", FAST_RETRIES)
    kwargs.setdefault("stream_retry_delay", 0.05)
    cloud = LocalCloud(REPO / "sam-app" / "template.yaml", port=0, **kwargs)
    cloud.start()
    cloud.results = []
    real_invoke = cloud.runtime.invoke

    def recording_invoke(name: str, event: Any, **kw: Any) -> Any:
        result = real_invoke(name, event, **kw)
        with _lock:
            cloud.results.append((name, result))
        return result

    cloud.runtime.invoke = recording_invoke  # cloud.invoke (API, event sources) goes through here
    try:
        yield cloud
    finally:
        cloud.stop()


def function_errors(cloud: Any, function: str | None = None) -> list[tuple[str, str, str]]:
    """(function, errorType, payload) of every invocation that ended in a function error."""
    with _lock:
        results = list(cloud.results)
    return [
        (name, r.error_type or "", (r.payload or b"")[:300].decode("utf-8", "replace"))
        for name, r in results
        if r.function_error and (function is None or name == function)
    ]


def table_items(cloud: Any, output: str) -> list[dict[str, Any]]:
    from thumbnailr.adapters.dynamodb import from_item

    ddb = cloud.client("dynamodb")
    items, start = [], None
    while True:
        page = ddb.scan(TableName=cloud.outputs[output], ConsistentRead=True,
                        **({"ExclusiveStartKey": start} if start else {}))
        items += [from_item(i) for i in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def quota_used(cloud: Any) -> dict[str, int]:
    return {i["user_id"]: i["used"] for i in table_items(cloud, "QuotaTableName")}


def dead_letters(cloud: Any, wait: float = 0.5) -> list[dict[str, Any]]:
    sqs = cloud.client("sqs")
    url = cloud.outputs["DeadLetterQueueUrl"]
    messages = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                  MessageAttributeNames=["All"], VisibilityTimeout=3600).get("Messages", [])
        if not got:
            if wait <= 0:
                return messages
            time.sleep(min(wait, 0.25))
            wait -= 0.25
            continue
        messages += got


# --------------------------------------------------------------------------- HTTP


class Api:
    """HTTP to the local API (keep-alive), counting every request; 5xx and no answer are losses."""

    def __init__(self, cloud: Any) -> None:
        self.cloud = cloud
        self.base = cloud.api_url
        self.session = requests.Session()

    def request(self, method: str, path: str, *, expect_5xx: bool = False, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 60)
        count("requests")
        try:
            answer = self.session.request(method, self.base + path.lstrip("/"), **kw)
        except requests.RequestException as e:
            lost(f"{method} {path}: no answer ({e!r})")
            raise
        if answer.status_code >= 500 and not expect_5xx:
            lost(f"{method} {path}: {answer.status_code} {answer.text[:200]}")
        return answer

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)


def new_user(cloud: Any, prefix: str = "rel") -> dict[str, str]:
    name = f"{prefix}{next(_users)}-{uuid.uuid4().hex[:6]}"
    cloud.add_user(name, PASSWORD)
    return {"Authorization": cloud.token(name, PASSWORD)}


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 60.0, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


def upload(api: Api, auth: dict[str, str], data: bytes, content_type: str = "image/jpeg",
           filename: str = "photo.jpg") -> str:
    """POST /photos, then the presigned POST over HTTP (S3 in moto): the upload event follows."""
    answer = api.post("photos", json={"content_type": content_type}, headers=auth)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    form = body["upload"]
    count("requests")
    stored = requests.post(form["url"], data=form["fields"], files={"file": (filename, data, content_type)}, timeout=60)
    assert stored.status_code in (200, 201, 204), stored.text
    return body["photo_id"]


def wait_photo(api: Api, auth: dict[str, str], photo_id: str, timeout: float = 60.0) -> dict[str, Any]:
    return poll(lambda: api.get(f"photos/{photo_id}", headers=auth).json(),
                lambda b: b.get("status") != "pending", timeout)


def wait_thumbnail(api: Api, auth: dict[str, str], thumbnail_id: str, timeout: float = 60.0) -> dict[str, Any]:
    return poll(lambda: api.get(f"thumbnails/{thumbnail_id}", headers=auth).json(),
                lambda b: b.get("status") != "pending", timeout)


def check_nothing_pending(cloud: Any, photo_ids: set[str] | None = None) -> list[str]:
    """Records still pending: every thumbnail, and the photos in ``photo_ids`` (those that were uploaded).

    A photo nobody uploaded stays pending by design (its upload URL simply expires). Each one
    found is counted as lost.
    """
    stuck = [f"thumbnail {t['thumbnail_id']}" for t in table_items(cloud, "ThumbnailsTableName") if t["status"] == "pending"]
    if photo_ids is not None:
        stuck += [f"photo {p['photo_id']}" for p in table_items(cloud, "PhotosTableName")
                  if p["status"] == "pending" and p["photo_id"] in photo_ids]
    for what in stuck:
        count("left pending")
        lost(f"{what} left pending")
    return stuck


def check_quota(cloud: Any) -> list[str]:
    """Users whose counter for this month is not the number of their thumbnails of this month that did not
    fail (charged once each, a failed one given back); each one found is a quota mismatch."""
    from thumbnailr.model import now_utc, quota_month

    month = quota_month(now_utc())
    charged: collections.Counter = collections.Counter(
        t["owner"] for t in table_items(cloud, "ThumbnailsTableName")
        if t["quota_month"] == month and t["status"] != "failed")
    used = {i["user_id"]: i["used"] for i in table_items(cloud, "QuotaTableName") if i["month"] == month}
    wrong = [f"{user}: used {used.get(user, 0)}, {charged.get(user, 0)} thumbnails not failed"
             for user in sorted(set(charged) | set(used)) if used.get(user, 0) != charged.get(user, 0)]
    for what in wrong:
        count("quota mismatches")
        LOSSES.append(f"quota mismatch: {what}")
    return wrong


def respec(cloud: Any, name: str, *, environment: dict[str, str] | None = None, **changes: Any) -> None:
    """Change function ``name``'s configuration in the local runtime: on ``$LATEST`` and on each published version,
    since the API calls the function's alias (AutoPublishAlias), whose versions run specs of their own."""
    base = cloud.runtime.spec(name)
    for key in cloud.runtime.functions():
        spec = cloud.runtime.spec(key)
        if key == name or (key.startswith(f"{name}:") and spec.function_name == base.function_name):
            cloud.runtime.register(dataclasses.replace(
                spec, environment={**spec.environment, **(environment or {})}, **changes))
