"""Hostile and odd photo files through the real flow: presigned POST over HTTP, the S3 event, the
upload function; then thumbnails of the ones accepted, downloaded from their presigned URLs.

Each file is rejected with a clear reason, or becomes ready with the right size and format and then
makes correct thumbnails (size, format, upright, colours). No function crashes (no function error
in the runtime's results), no record is left pending.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from PIL import Image

from tests.reliability import corpus, harness

pytestmark = pytest.mark.local_cloud

SAMPLES = corpus.build()


@pytest.fixture(scope="module")
def cloud() -> Any:
    with harness.local_cloud(dispatch="sns", parameters={"MonthlyQuota": "1000"}) as cloud:
        yield cloud


@pytest.fixture(scope="module")
def outcomes(cloud: Any) -> dict[str, Any]:
    """Every sample uploaded (2 at a time: each more costs one more cold start per function), then its thumbnails asked for and downloaded."""
    api = harness.Api(cloud)
    auth = harness.new_user(cloud)

    def run(sample: corpus.Sample) -> dict[str, Any]:
        harness.count("inputs")
        photo_id = harness.upload(api, auth, sample.data, sample.content_type, f"{sample.name}.img")
        state = harness.wait_photo(api, auth, photo_id)
        thumbs = []
        if state.get("status") == "ready":
            for thumb in sample.thumbs:
                answer = api.post("thumbnails", headers=auth, json={
                    "photo_id": photo_id, "width": thumb.width, "height": thumb.height, "format": thumb.format})
                assert answer.status_code == 202, answer.text
                body = harness.wait_thumbnail(api, auth, answer.json()["thumbnail_id"])
                data = requests.get(body["url"], timeout=30).content if body.get("status") == "ready" else None
                thumbs.append((thumb, body, data))
        return {"photo_id": photo_id, "state": state, "thumbs": thumbs}

    with ThreadPoolExecutor(2) as pool:
        results = dict(zip([s.name for s in SAMPLES], pool.map(run, SAMPLES), strict=True))
    cloud.wait_idle(10)
    return results


def test_the_corpus_is_big_and_varied() -> None:
    assert len(SAMPLES) >= 30
    assert {s.expect for s in SAMPLES} == {"rejected", "ready", "either"}


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_each_file_is_rejected_clearly_or_makes_correct_thumbnails(outcomes: dict[str, Any], sample: corpus.Sample) -> None:
    outcome = outcomes[sample.name]
    state = outcome["state"]
    assert state["status"] in ("ready", "rejected"), f"{sample.name} left {state}"
    if sample.expect != "either":
        assert state["status"] == sample.expect, state
    if state["status"] == "rejected":
        assert isinstance(state["reason"], str) and 5 <= len(state["reason"]) <= 200, state
        if sample.reason:
            assert sample.reason in state["reason"], state
        assert (state["width"], state["height"], state["format"]) == (None, None, None)
        return
    assert state["reason"] is None
    if sample.info:
        assert (state["width"], state["height"], state["format"]) == sample.info
    assert len(outcome["thumbs"]) == len(sample.thumbs)
    for thumb, body, data in outcome["thumbs"]:
        assert body["status"] == "ready", body
        assert (body["width"], body["height"], body["format"]) == (thumb.width, thumb.height, thumb.format)
        image = Image.open(io.BytesIO(data))
        assert (image.format, image.size) == (thumb.format, (thumb.width, thumb.height))
        assert not {"exif", "icc_profile", "xmp"} & set(image.info)
        if thumb.check:
            thumb.check(data)


def test_no_function_crashed_and_nothing_is_left_pending(cloud: Any, outcomes: dict[str, Any]) -> None:
    assert harness.function_errors(cloud) == []
    names = {name for name, _ in cloud.results}
    assert {"PhotoUploadedFunction", "CreateThumbnailFunction"} <= names
    uploaded = {o["photo_id"] for o in outcomes.values()}
    assert harness.check_nothing_pending(cloud, uploaded) == []
    # a rejected photo's object is removed; a ready one's is kept
    s3 = cloud.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=cloud.outputs["PhotosBucketName"]).get("Contents", [])}
    for outcome in outcomes.values():
        # a ready photo is kept at its own key (the upload key is emptied); a rejected one is gone
        assert (f"originals/{outcome['photo_id']}" in keys) == (outcome["state"]["status"] == "ready")
        assert f"photos/{outcome['photo_id']}" not in keys
