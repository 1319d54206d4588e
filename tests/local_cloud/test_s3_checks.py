"""S3's checks in front of moto's S3 (localcloud.endpoint.s3_checks): a presigned POST's policy, a presigned URL's
expiry and signature, refused with S3's XML errors and statuses, and nothing stored when refused.

Forms and URLs are made by boto3 (as the app makes them) and sent by ``requests`` (as a browser or a learner's
client sends them), through the local cloud's endpoint to a real moto server.
"""

from __future__ import annotations

import base64
import json
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from types import SimpleNamespace

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.endpoint.moto_process import MotoProcess
from localcloud.endpoint.router import Endpoint
from localcloud.sdk import FAKE_CREDENTIALS

pytestmark = pytest.mark.local_cloud

REGION = "us-east-1"
BUCKET = "photos-bucket"
JPEG = b"\xff\xd8\xff\xe0" + b"x" * 200


@pytest.fixture(scope="module")
def s3(no_real_aws: list[str]) -> Iterator[SimpleNamespace]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(FAKE_CREDENTIALS, AWS_DEFAULT_REGION=REGION)
    moto = MotoProcess(env)
    endpoint = Endpoint(f"http://127.0.0.1:{moto.wait_ready()}").start()
    try:
        session = boto3.session.Session(aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                                        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"], region_name=REGION)
        v4 = session.client("s3", endpoint_url=endpoint.url,  # as the app's functions make them
                            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
        v2 = session.client("s3", endpoint_url=endpoint.url)  # boto3's default presigning: SigV2
        v4.create_bucket(Bucket=BUCKET)
        v4.create_bucket(Bucket="other-bucket")
        yield SimpleNamespace(v4=v4, v2=v2, url=endpoint.url)
    finally:
        endpoint.stop()
        moto.stop()


def app_form(s3: SimpleNamespace, key: str, *, client: str = "v4", expires_in: int = 300,
             conditions: list | None = None, fields: dict | None = None) -> dict:
    """A presigned POST as the app makes it: this key, image/jpeg, 1 byte to 1 KB."""
    return getattr(s3, client).generate_presigned_post(
        Bucket=BUCKET, Key=key, Fields={"Content-Type": "image/jpeg", **(fields or {})},
        Conditions=[{"Content-Type": "image/jpeg"}, ["content-length-range", 1, 1024], *(conditions or [])],
        ExpiresIn=expires_in)


def post(form: dict, data: bytes = JPEG, url: str | None = None, **changes: str) -> requests.Response:
    fields = {**form["fields"], **changes}
    return requests.post(url or form["url"], data=fields, files={"file": ("p.jpg", data, "image/jpeg")}, timeout=30)


def error(answer: requests.Response) -> dict[str, str]:
    assert answer.headers["Content-Type"] == "application/xml"
    return {child.tag: child.text or "" for child in ET.fromstring(answer.content)}


def stored(s3: SimpleNamespace, key: str, bucket: str = BUCKET) -> bool:
    try:
        s3.v4.head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        assert e.response["Error"]["Code"] == "404"
        return False
    return True


# --------------------------------------------------------------------------- presigned POST policies


@pytest.mark.parametrize("client", ["v4", "v2"])
def test_the_unchanged_form_is_accepted(s3: SimpleNamespace, client: str) -> None:
    form = app_form(s3, f"photos/ok-{client}", client=client)
    answer = post(form)
    assert answer.status_code == 204, answer.text
    head = s3.v4.head_object(Bucket=BUCKET, Key=f"photos/ok-{client}")
    assert head["ContentType"] == "image/jpeg" and head["ContentLength"] == len(JPEG)


@pytest.mark.parametrize("client", ["v4", "v2"])
def test_another_key_is_refused(s3: SimpleNamespace, client: str) -> None:
    form = app_form(s3, "photos/mine", client=client)
    answer = post(form, key="photos/someone-elses")
    assert answer.status_code == 403
    assert error(answer)["Code"] == "AccessDenied"
    assert error(answer)["Message"] == ('Invalid according to Policy: Policy Condition failed: '
                                        '["eq", "$key", "photos/mine"]')
    assert not stored(s3, "photos/someone-elses") and not stored(s3, "photos/mine")


def test_a_key_outside_the_prefix_is_refused(s3: SimpleNamespace) -> None:
    form = app_form(s3, "photos/${filename}")  # boto3 makes this a starts-with condition
    assert ["starts-with", "$key", "photos/"] in json.loads(base64.b64decode(form["fields"]["policy"]))["conditions"]
    answer = post(form, key="uploads/evil.html")
    assert answer.status_code == 403
    assert error(answer)["Message"].endswith('Policy Condition failed: ["starts-with", "$key", "photos/"]')
    assert not stored(s3, "uploads/evil.html")
    assert post(form, key="photos/fine.jpg").status_code == 204  # within the prefix


def test_another_content_type_is_refused(s3: SimpleNamespace) -> None:
    form = app_form(s3, "photos/typed")
    answer = post(form, **{"Content-Type": "text/html"})
    assert answer.status_code == 403
    assert error(answer)["Message"].endswith('Policy Condition failed: ["eq", "$Content-Type", "image/jpeg"]')
    assert not stored(s3, "photos/typed")


@pytest.mark.parametrize("client", ["v4", "v2"])
def test_a_policy_rewritten_under_the_old_signature_is_refused(s3: SimpleNamespace, client: str) -> None:
    form = app_form(s3, "photos/forever", client=client)
    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    policy["expiration"] = "2099-01-01T00:00:00Z"
    answer = post(form, policy=base64.b64encode(json.dumps(policy).encode()).decode())
    assert answer.status_code == 403
    assert error(answer)["Code"] == "SignatureDoesNotMatch"
    assert not stored(s3, "photos/forever")


def test_an_expired_policy_is_refused(s3: SimpleNamespace) -> None:
    form = app_form(s3, "photos/late", expires_in=-5)  # signed, but its expiration has passed
    answer = post(form)
    assert answer.status_code == 403
    assert error(answer)["Message"] == "Invalid according to Policy: Policy expired."
    assert not stored(s3, "photos/late")


@pytest.mark.parametrize(("data", "code", "limit"), [(b"x" * 1025, "EntityTooLarge", "MaxSizeAllowed"),
                                                      (b"", "EntityTooSmall", "MinSizeAllowed")])
def test_a_file_out_of_the_content_length_range_is_refused(s3: SimpleNamespace, data: bytes, code: str,
                                                            limit: str) -> None:
    form = app_form(s3, f"photos/{code}")
    answer = post(form, data=data)
    assert answer.status_code == 400
    found = error(answer)
    assert found["Code"] == code and found["ProposedSize"] == str(len(data))
    assert found[limit] == ("1024" if limit == "MaxSizeAllowed" else "1")
    assert not stored(s3, f"photos/{code}")
    assert post(form, data=b"x" * 1024).status_code == 204  # the upper bound is allowed


def test_every_form_field_must_be_covered_by_a_condition(s3: SimpleNamespace) -> None:
    form = app_form(s3, "photos/extra")
    answer = post(form, **{"x-amz-meta-owner": "mallory"})
    assert answer.status_code == 403
    assert error(answer)["Message"] == "Invalid according to Policy: Extra input fields: x-amz-meta-owner"
    assert not stored(s3, "photos/extra")
    assert post(form, **{"x-ignore-note": "anything"}).status_code == 204  # exempt, as S3 documents


def test_an_x_amz_field_and_success_action_status_are_conditions_too(s3: SimpleNamespace) -> None:
    form = app_form(s3, "photos/status", fields={"success_action_status": "201"},
                    conditions=[{"success_action_status": "201"}])
    assert post(form, **{"x-amz-date": "20990101T000000Z"}).status_code == 403  # signed fields are conditions
    answer = post(form, success_action_status="200")
    assert answer.status_code == 403
    assert error(answer)["Message"].endswith('["eq", "$success_action_status", "201"]')
    assert not stored(s3, "photos/status")
    assert post(form).status_code == 201  # the form as given: S3's 201 with its XML


def test_the_bucket_is_a_condition(s3: SimpleNamespace) -> None:
    form = app_form(s3, "photos/elsewhere")
    answer = post(form, url=f"{s3.url}/other-bucket")
    assert answer.status_code == 403
    assert error(answer)["Message"].endswith(f'["eq", "$bucket", "{BUCKET}"]')
    assert not stored(s3, "photos/elsewhere", bucket="other-bucket")


def test_a_form_without_a_policy_is_an_anonymous_upload_and_refused(s3: SimpleNamespace) -> None:
    answer = requests.post(f"{s3.url}/{BUCKET}", data={"key": "photos/anon", "Content-Type": "image/jpeg"},
                           files={"file": ("p.jpg", JPEG, "image/jpeg")}, timeout=30)
    assert answer.status_code == 403 and error(answer)["Code"] == "AccessDenied"
    assert not stored(s3, "photos/anon")


# --------------------------------------------------------------------------- presigned URLs


def test_a_presigned_get_works_until_it_expires(s3: SimpleNamespace) -> None:
    s3.v4.put_object(Bucket=BUCKET, Key="thumbs/a b+é.png", Body=b"png")
    url = s3.v4.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "thumbs/a b+é.png"},
                                       ExpiresIn=1)
    short = s3.v2.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "thumbs/a b+é.png"},
                                         ExpiresIn=1)
    assert requests.get(url, timeout=30).content == b"png"
    assert requests.get(short, timeout=30).content == b"png"
    # tampering, checked on a URL that cannot expire meanwhile (a slow machine takes more than 1 s)
    lasting = s3.v4.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "thumbs/a b+é.png"},
                                           ExpiresIn=600)
    lengthened = lasting.replace("X-Amz-Expires=600", "X-Amz-Expires=3600")
    tampered = requests.get(lengthened, timeout=30)
    assert tampered.status_code == 403 and error(tampered)["Code"] == "SignatureDoesNotMatch"
    other = requests.get(lasting.replace("a%20b", "a%20c"), timeout=30)
    assert other.status_code == 403 and error(other)["Code"] == "SignatureDoesNotMatch"
    time.sleep(2.1)  # X-Amz-Date is to the second
    for expired in (url, short):
        answer = requests.get(expired, timeout=30)
        assert answer.status_code == 403, answer.text
        assert error(answer)["Code"] == "AccessDenied" and error(answer)["Message"] == "Request has expired"


def test_an_expired_presigned_put_stores_nothing(s3: SimpleNamespace) -> None:
    url = s3.v4.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "thumbs/put"}, ExpiresIn=1)
    time.sleep(2.1)
    answer = requests.put(url, data=b"late", timeout=30)
    assert answer.status_code == 403 and error(answer)["Message"] == "Request has expired"
    assert error(answer)["X-Amz-Expires"] == "1"
    assert not stored(s3, "thumbs/put")
    fresh = s3.v4.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "thumbs/put"}, ExpiresIn=60)
    assert requests.put(fresh, data=b"in time", timeout=30).status_code == 200
    assert s3.v4.get_object(Bucket=BUCKET, Key="thumbs/put")["Body"].read() == b"in time"


def test_a_week_is_the_longest_a_presigned_url_lasts(s3: SimpleNamespace) -> None:
    url = s3.v4.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "x"}, ExpiresIn=60)
    answer = requests.get(url.replace("X-Amz-Expires=60", "X-Amz-Expires=604801"), timeout=30)
    assert answer.status_code == 400 and error(answer)["Code"] == "AuthorizationQueryParametersError"
