"""The whole app over HTTP, as a learner's client uses it: sign in, upload, wait, thumbnails, download.

Only HTTP to the local API and to the presigned S3 URLs (``requests``); Cognito sign-in through
the cloud's helpers (boto3 against moto's Cognito, as the Amplify/boto3 client of a learner
would). Runs in both dispatch modes: SNS and the thumbnails table's DynamoDB stream.
"""

from __future__ import annotations

import io
import itertools
import uuid
from typing import Any

import pytest
import requests
from PIL import Image

from benchmarks.photos import encode, realistic_photo
from workshop.lab import poll as _poll

pytestmark = pytest.mark.local_cloud

PASSWORD = "Passw0rd!"
_users = itertools.count()


def _user(cloud: Any) -> dict[str, str]:
    name = f"learner{next(_users)}-{uuid.uuid4().hex[:6]}"
    cloud.add_user(name, PASSWORD)
    return {"Authorization": cloud.token(name, PASSWORD)}


def _upload_photo(cloud: Any, auth: dict[str, str], seed: int = 1) -> str:
    """POST /photos, then the presigned POST (multipart form: its fields, then the file); wait until ready."""
    api = cloud.api_url
    answer = requests.post(f"{api}photos", json={"content_type": "image/jpeg"}, headers=auth, timeout=30)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    upload = body["upload"]
    assert upload["url"].startswith(cloud.endpoint_url)  # http://127.0.0.1:<endpoint port>: usable from here
    photo = encode(realistic_photo(1200, 800, seed=seed), "JPEG", quality=88)
    stored = requests.post(upload["url"], data=upload["fields"],
                           files={"file": ("photo.jpg", photo, "image/jpeg")}, timeout=30)
    assert stored.status_code in (200, 201, 204), stored.text
    photo_id = body["photo_id"]
    state = _poll(lambda: requests.get(f"{api}photos/{photo_id}", headers=auth, timeout=30).json(),
                  lambda b: b.get("status") != "pending")
    assert state == {"photo_id": photo_id, "status": "ready", "width": 1200, "height": 800, "format": "JPEG",
                     "reason": None}
    return photo_id


@pytest.fixture(params=["sns", "stream"])
def cloud(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(f"{request.param}_cloud")


def test_the_whole_flow_over_http(cloud: Any) -> None:
    api = cloud.api_url
    assert requests.get(f"{api}ping", timeout=30).json() == {"ok": True}
    auth = _user(cloud)
    photo_id = _upload_photo(cloud, auth)

    requested = {}
    for fmt, size in (("JPEG", (320, 240)), ("PNG", (128, 128)), ("WEBP", (200, 300))):
        answer = requests.post(f"{api}thumbnails", headers=auth, timeout=30,
                               json={"photo_id": photo_id, "width": size[0], "height": size[1], "format": fmt})
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "pending"
        requested[answer.json()["thumbnail_id"]] = (fmt, size)

    for thumbnail_id, (fmt, size) in requested.items():
        body = _poll(lambda tid=thumbnail_id: requests.get(f"{api}Prod/thumbnails/{tid}", headers=auth, timeout=30).json(),
                     lambda b: b.get("status") != "pending")
        assert body["status"] == "ready", body
        assert body["url"].startswith(cloud.endpoint_url)
        download = requests.get(body["url"], timeout=30)
        assert download.status_code == 200
        image = Image.open(io.BytesIO(download.content))
        assert (image.format, image.size) == (fmt, size)
    assert cloud.outputs["Dispatch"] == cloud.dispatch


def test_no_token_is_401(sns_cloud: Any) -> None:
    answer = requests.post(f"{sns_cloud.api_url}photos", json={"content_type": "image/jpeg"}, timeout=30)
    assert answer.status_code == 401
    assert answer.json() == {"message": "Unauthorized"}
    forged = requests.get(f"{sns_cloud.api_url}photos/{'0' * 32}", headers={"Authorization": "not.a.token"}, timeout=30)
    assert forged.status_code == 401


def test_another_users_photo_is_404(sns_cloud: Any) -> None:
    owner, other = _user(sns_cloud), _user(sns_cloud)
    answer = requests.post(f"{sns_cloud.api_url}photos", json={"content_type": "image/png"}, headers=owner, timeout=30)
    photo_id = answer.json()["photo_id"]
    assert requests.get(f"{sns_cloud.api_url}photos/{photo_id}", headers=owner, timeout=30).status_code == 200
    theirs = requests.get(f"{sns_cloud.api_url}photos/{photo_id}", headers=other, timeout=30)
    assert theirs.status_code == 404
    assert theirs.json() == {"message": "photo not found"}


def test_the_apps_presigned_form_is_enforced_as_s3_enforces_it(sns_cloud: Any) -> None:
    """The app's own form, changed as an attacker would, is refused (403, nothing stored); as given, it is taken."""
    auth, api, s3 = _user(sns_cloud), sns_cloud.api_url, sns_cloud.client("s3")
    mine = requests.post(f"{api}photos", json={"content_type": "image/jpeg"}, headers=auth, timeout=30).json()
    other = requests.post(f"{api}photos", json={"content_type": "image/jpeg"}, headers=_user(sns_cloud),
                          timeout=30).json()
    form, photo = mine["upload"], encode(realistic_photo(64, 48, seed=3), "JPEG", quality=80)
    bucket = sns_cloud.outputs["PhotosBucketName"]

    def send(**changes: str) -> requests.Response:
        return requests.post(form["url"], data={**form["fields"], **changes},
                             files={"file": ("p.jpg", photo, "image/jpeg")}, timeout=30)

    for changes in ({"key": f"photos/{other['photo_id']}"}, {"key": "uploads/evil.html"},
                    {"Content-Type": "text/html"}):
        answer = send(**changes)
        assert answer.status_code == 403 and b"<Code>AccessDenied</Code>" in answer.content, (changes, answer.text)
    for key in (f"photos/{other['photo_id']}", "uploads/evil.html", form["fields"]["key"]):
        assert s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount") == 0  # nothing stored
    assert send().status_code == 204


def test_monthly_quota(stream_cloud: Any) -> None:
    """stream_cloud runs with MonthlyQuota=3 (a template parameter override)."""
    api = stream_cloud.api_url
    auth = _user(stream_cloud)
    photo_id = _upload_photo(stream_cloud, auth, seed=7)
    codes = [
        requests.post(f"{api}thumbnails", headers=auth, timeout=30,
                      json={"photo_id": photo_id, "width": 64, "height": 64, "format": "PNG"}).status_code
        for _ in range(4)
    ]
    assert codes == [202, 202, 202, 429]


def test_a_burst_of_500_is_answered_with_the_templates_throttling(sns_cloud: Any) -> None:
    """500 new connections at once on GET /ping: each gets an answer, 200 or the stage's 429 (burst 100, 50/s)."""
    import http.client
    import socket
    import threading
    import time

    port = sns_cloud.gateway.port
    time.sleep(2.1)  # the bucket full again (earlier tests' requests)
    barrier = threading.Barrier(500)
    answers: list[tuple[int, bytes]] = []
    failures: list[str] = []

    def one() -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                barrier.wait(30)
                sock.sendall(b"GET /Prod/ping HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                answer = http.client.HTTPResponse(sock)
                answer.begin()
                answers.append((answer.status, answer.read()))
        except (OSError, threading.BrokenBarrierError) as e:  # a reset, a refused connection, a time-out
            failures.append(repr(e))

    started = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(500)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert failures == [] and len(answers) == 500
    statuses = [status for status, _ in answers]
    assert set(statuses) == {200, 429}
    assert 100 <= statuses.count(200) <= 100 + 50 * elapsed + 1
    assert {body for status, body in answers if status == 429} == {b'{"message": "Too Many Requests"}'}
