"""schemathesis against the local API, with the OpenAPI document exported from the template
(``workshop.openapi``): for every operation, generated requests (valid and invalid ones) never get a
5xx, and every answer matches the documented schema of its status.

Bounded: 25 examples per operation and generation mode, no deadline. Every request counts in the
reliability summary; a 5xx is also recorded as lost.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.reliability import harness
from tests.reliability.harness import REPO
from workshop.openapi import export

pytestmark = pytest.mark.local_cloud

MAX_EXAMPLES = 25
TEMPLATE = REPO / "sam-app" / "template.yaml"


@pytest.fixture(scope="module")
def cloud() -> Any:
    with harness.local_cloud(dispatch="sns") as cloud:
        yield cloud


@pytest.fixture(scope="module")
def token(cloud: Any) -> str:
    return harness.new_user(cloud, "openapi")["Authorization"]


@pytest.fixture(scope="module")
def session() -> Any:
    with requests.Session() as session:
        yield session


# Exported at import (pytest parametrizes at collection, before the cloud and its port exist), with a
# placeholder server; each call goes to the module's cloud (base_url). schemathesis.pytest.from_fixture
# would export it from the running cloud, but its lazy loader sets Function._nodeid, which pytest 9 lacks.
schema = schemathesis.openapi.from_dict(export(TEMPLATE, "http://127.0.0.1:3000/"))


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_no_5xx_and_every_answer_matches_the_schema(case: Any, cloud: Any, token: str, session: Any) -> None:
    harness.count("requests")
    harness.count("inputs")
    try:
        response = case.call(base_url=cloud.api_url, session=session, headers={"Authorization": token}, timeout=60)
    except requests.RequestException as e:
        harness.lost(f"{case.method} {case.formatted_path}: no answer ({e!r})")
        raise
    if response.status_code >= 500:
        harness.lost(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


def test_the_success_answers_match_the_schema(cloud: Any, token: str) -> None:
    """What random requests rarely reach (a ready photo, 202, 409, a ready thumbnail with its URL),
    walked through on purpose, each answer validated against the exported document."""
    from benchmarks.photos import encode, realistic_photo

    api, auth = harness.Api(cloud), {"Authorization": token}

    def checked(method: str, template: str, path: str, status: int, **kw: Any) -> dict:
        kw.setdefault("headers", auth)
        answer = api.request(method, path, **kw)
        assert answer.status_code == status, (method, path, answer.status_code, answer.text[:300])
        schema[template][method].validate_response(answer)
        return answer.json()

    photo_id = harness.upload(api, auth, encode(realistic_photo(64, 48, seed=7), "JPEG"))
    assert harness.wait_photo(api, auth, photo_id)["status"] == "ready"
    checked("GET", "/photos/{photo_id}", f"photos/{photo_id}", 200)
    waiting = checked("POST", "/photos", "photos", 201, json={"content_type": "image/png"})["photo_id"]
    checked("GET", "/photos/{photo_id}", f"photos/{waiting}", 200)
    checked("POST", "/thumbnails", "thumbnails", 409, json={"photo_id": waiting, "width": 8, "height": 8, "format": "PNG"})
    accepted = checked("POST", "/thumbnails", "thumbnails", 202,
                       json={"photo_id": photo_id, "width": 16, "height": 12, "format": "WEBP"})
    checked("GET", "/thumbnails/{thumbnail_id}", f"thumbnails/{accepted['thumbnail_id']}", 200)
    assert harness.wait_thumbnail(api, auth, accepted["thumbnail_id"])["status"] == "ready"
    ready = checked("GET", "/thumbnails/{thumbnail_id}", f"thumbnails/{accepted['thumbnail_id']}", 200)
    assert ready["url"].startswith("http")
    keyed = {"photo_id": photo_id, "width": 10, "height": 10, "format": "PNG"}
    first = checked("POST", "/thumbnails", "thumbnails", 202, json=keyed, headers={**auth, "Idempotency-Key": "walk"})
    again = checked("POST", "/thumbnails", "thumbnails", 202, json=keyed, headers={**auth, "Idempotency-Key": "walk"})
    assert again["thumbnail_id"] == first["thumbnail_id"]
    checked("POST", "/thumbnails", "thumbnails", 422, json={**keyed, "width": 11}, headers={**auth, "Idempotency-Key": "walk"})
    checked("GET", "/ping", "ping", 200)
