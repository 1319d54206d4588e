"""Every route and event of the app, through its real handler, on moto, with the events SAM generates."""

from __future__ import annotations

import copy
import io
import json
import threading
from datetime import datetime, timezone

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from PIL import Image

from thumbnailr.adapters.s3 import S3ObjectStore
from thumbnailr.model import new_id

from unit.test_imaging import jpeg_declaring, png_declaring

from .conftest import REGION, load_event

ADA, BOB = "0d3f9a1e-ada0-4c55-9a00-000000000001", "0d3f9a1e-b0b0-4c55-9a00-000000000002"


def api_event(name: str, user: str | None = ADA, body=None, path: dict | None = None, raw_body: str | None = None) -> dict:
    event = copy.deepcopy(load_event(name))
    if user is None:
        event["requestContext"].pop("authorizer", None)
    else:
        event["requestContext"]["authorizer"]["claims"]["sub"] = user
    if body is not None:
        event["body"] = json.dumps(body)
    if raw_body is not None:
        event["body"] = raw_body
    if path is not None:
        event["pathParameters"] = path
    return event


def answer(response: dict) -> tuple[int, dict]:
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def jpeg(width=320, height=240, colour=(30, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=90)
    return out.getvalue()


def s3_event(bucket: str, key: str, size: int) -> dict:
    event = copy.deepcopy(load_event("photo_uploaded"))
    event["Records"][0]["s3"]["bucket"]["name"] = bucket
    event["Records"][0]["s3"]["object"].update(key=key, size=size)
    return event


def upload(stack, invoke, data: bytes, user=ADA, content_type="image/jpeg") -> str:
    """POST /photos, put the bytes where the presigned POST points, deliver the S3 event: the photo id."""
    status, body = answer(invoke("CreateUploadFunction", api_event("create_upload", user, {"content_type": content_type})))
    assert status == 201
    key = body["upload"]["fields"]["key"]
    bucket = stack.names["PhotosBucket"]
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=key, Body=data)
    invoke("PhotoUploadedFunction", s3_event(bucket, key, len(data)))
    return body["photo_id"]


def request_thumbnail(invoke, photo_id, user=ADA, **overrides):
    body = {"photo_id": photo_id, "width": 64, "height": 64, "format": "PNG", **overrides}
    return answer(invoke("RequestThumbnailFunction", api_event("request_thumbnail", user, body)))


def emf_lines(printed: str) -> list[dict]:
    """The metric lines (CloudWatch's Embedded Metric Format) a handler printed, with Powertools Metrics."""
    return [json.loads(line) for line in printed.splitlines() if line.startswith("{") and '"_aws"' in line]


def published_commands(stack) -> list[dict]:
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def sns_event(command: dict) -> dict:
    event = copy.deepcopy(load_event("create_thumbnail_sns"))
    event["Records"][0]["Sns"]["Message"] = json.dumps(command)
    return event


def stream_event(stack, thumbnail_id: str) -> dict:
    """The INSERT record the thumbnails table's stream carries for this thumbnail."""
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    arn = boto3.client("dynamodb", region_name=REGION).describe_table(
        TableName=stack.names["ThumbnailsTable"])["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = [r for r in streams.get_records(ShardIterator=iterator)["Records"]
               if r["dynamodb"]["Keys"]["thumbnail_id"]["S"] == thumbnail_id and r["eventName"] == "INSERT"]
    template = load_event("create_thumbnail_stream")["Records"][0]
    return {"Records": [{**template, **r, "eventSourceARN": arn} for r in records]}


def thumbnail_state(invoke, thumbnail_id, user=ADA):
    return answer(invoke("GetThumbnailFunction", api_event("get_thumbnail", user, path={"thumbnail_id": thumbnail_id})))


class TestPing:
    def test_answers_ok_without_a_user(self, invoke):
        assert answer(invoke("PingFunction", load_event("ping"))) == (200, {"ok": True})


class TestPhotos:
    def test_an_upload_hands_out_a_presigned_post_limited_in_size_and_type(self, stack, invoke):
        status, body = answer(invoke("CreateUploadFunction", api_event("create_upload", body={"content_type": "image/png"})))
        assert status == 201 and set(body) == {"photo_id", "upload", "expires_in"}
        fields = body["upload"]["fields"]
        assert fields["key"] == f"photos/{body['photo_id']}" and fields["Content-Type"] == "image/png"
        policy = json.loads(__import__("base64").b64decode(fields["policy"]))
        assert ["content-length-range", 1, 20 * 1024 * 1024] in policy["conditions"]
        assert {"Content-Type": "image/png"} in policy["conditions"]

    @pytest.mark.parametrize("raw", ['{"content_type": "image/gif"}', "{not json", "[]", ""])
    def test_a_bad_upload_request_is_a_400_with_a_message(self, invoke, stack, raw):
        status, body = answer(invoke("CreateUploadFunction", api_event("create_upload", raw_body=raw)))
        assert status == 400 and body["message"]

    def test_a_request_without_a_user_is_a_401(self, invoke, stack):
        status, body = answer(invoke("CreateUploadFunction", api_event("create_upload", user=None)))
        assert (status, body) == (401, {"message": "Unauthorized"})

    def test_an_uploaded_jpeg_becomes_ready_with_its_size(self, stack, invoke):
        photo_id = upload(stack, invoke, jpeg(320, 240))
        status, body = answer(invoke("GetPhotoFunction", api_event("get_photo", path={"photo_id": photo_id})))
        assert status == 200
        assert body == {"photo_id": photo_id, "status": "ready", "width": 320, "height": 240, "format": "JPEG", "reason": None}

    def test_an_uploaded_text_file_is_rejected_and_removed(self, stack, invoke):
        photo_id = upload(stack, invoke, b"definitely not a photo")
        status, body = answer(invoke("GetPhotoFunction", api_event("get_photo", path={"photo_id": photo_id})))
        assert (status, body["status"], body["reason"]) == (200, "rejected", "not an image")
        listing = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=stack.names["PhotosBucket"])
        assert listing.get("KeyCount", 0) == 0

    def test_another_users_photo_and_an_unknown_one_are_404(self, stack, invoke):
        photo_id = upload(stack, invoke, jpeg())
        for user, pid in ((BOB, photo_id), (ADA, new_id())):
            status, body = answer(invoke("GetPhotoFunction", api_event("get_photo", user, path={"photo_id": pid})))
            assert (status, body) == (404, {"message": "photo not found"})


class TestRequestThumbnail:
    def test_a_request_is_accepted_recorded_and_published(self, stack, invoke):
        photo_id = upload(stack, invoke, jpeg())
        status, body = request_thumbnail(invoke, photo_id, width=100, height=50, format="WEBP")
        assert status == 202 and body["status"] == "pending"
        [command] = published_commands(stack)
        # the correlation id is API Gateway's id of the request, carried to the worker
        request_id = load_event("request_thumbnail")["requestContext"]["requestId"]
        assert command == {"thumbnail_id": body["thumbnail_id"], "photo_id": photo_id, "owner": ADA,
                           "width": 100, "height": 50, "format": "WEBP", "correlation_id": request_id}
        assert thumbnail_state(invoke, body["thumbnail_id"])[1]["status"] == "pending"

    @pytest.mark.parametrize("overrides", [{"width": 0}, {"height": 4096}, {"format": "BMP"}, {"extra": 1}])
    def test_bad_input_is_a_400(self, stack, invoke, overrides):
        photo_id = upload(stack, invoke, jpeg())
        status, body = request_thumbnail(invoke, photo_id, **overrides)
        assert status == 400 and body["message"]
        assert published_commands(stack) == []

    def test_a_photo_of_another_user_is_404_and_a_rejected_one_409(self, stack, invoke):
        photo_id = upload(stack, invoke, jpeg())
        assert request_thumbnail(invoke, photo_id, user=BOB) == (404, {"message": "photo not found"})
        rejected = upload(stack, invoke, b"GIF89a but not really")
        status, body = request_thumbnail(invoke, rejected)
        assert status == 409 and body["message"].startswith("photo is rejected")

    def test_a_photo_still_uploading_is_409(self, stack, invoke):
        _, body = answer(invoke("CreateUploadFunction", api_event("create_upload", body={"content_type": "image/jpeg"})))
        assert request_thumbnail(invoke, body["photo_id"]) == (409, {"message": "photo is pending"})


@pytest.mark.parametrize("stack", [{"MonthlyQuota": "5"}], indirect=True)
class TestQuota:
    @pytest.fixture
    def dynamodb_serialises_writes(self, monkeypatch):
        """DynamoDB applies each write to an item atomically; moto in-process does not, so make it.

        Each call becomes atomic, as on DynamoDB, and nothing more: a read-modify-write quota (two calls)
        can still interleave between its read and its write and overspend, so this test would catch it.
        """
        from moto.dynamodb.models import DynamoDBBackend

        lock = threading.RLock()
        for name in ("update_item", "put_item", "transact_write_items", "get_item"):
            original = getattr(DynamoDBBackend, name)

            def atomic(self, *args, _original=original, **kwargs):
                with lock:
                    return _original(self, *args, **kwargs)

            monkeypatch.setattr(DynamoDBBackend, name, atomic)

    def test_the_quota_is_exact_under_concurrent_requests(self, stack, invoke, dynamodb_serialises_writes):
        photo_id = upload(stack, invoke, jpeg())
        statuses, lock, start = [], threading.Lock(), threading.Barrier(8)

        def client():
            start.wait()
            for _ in range(2):
                status, _ = request_thumbnail(invoke, photo_id)
                with lock:
                    statuses.append(status)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(statuses) == [202] * 5 + [429] * 11
        month = datetime.now(timezone.utc).strftime("%Y-%m")
        item = boto3.client("dynamodb", region_name=REGION).get_item(
            TableName=stack.names["QuotaTable"], Key={"user_id": {"S": ADA}, "month": {"S": month}})["Item"]
        assert item["used"] == {"N": "5"}

    def test_past_the_quota_is_a_429_and_a_new_month_starts_at_zero(self, stack, invoke, monkeypatch):
        photo_id = upload(stack, invoke, jpeg())
        import thumbnailr.handlers.request_thumbnail as handler

        monkeypatch.setattr(handler, "now_utc", lambda: datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc))
        assert [request_thumbnail(invoke, photo_id)[0] for _ in range(6)] == [202] * 5 + [429]
        assert request_thumbnail(invoke, photo_id)[1]["message"] == "monthly quota of 5 thumbnails reached for 2026-12"
        monkeypatch.setattr(handler, "now_utc", lambda: datetime(2027, 1, 1, 0, 0, tzinfo=timezone.utc))
        assert request_thumbnail(invoke, photo_id)[0] == 202

    def test_a_refusal_is_counted_in_the_apps_metrics(self, stack, invoke, monkeypatch, capsys):
        photo_id = upload(stack, invoke, jpeg())
        for _ in range(5):
            request_thumbnail(invoke, photo_id)
        capsys.readouterr()
        assert request_thumbnail(invoke, photo_id)[0] == 429
        assert [line["QuotaRefusals"] for line in emf_lines(capsys.readouterr().out) if "QuotaRefusals" in line] == [[1.0]]

    def test_users_have_separate_quotas(self, stack, invoke):
        ada_photo, bob_photo = upload(stack, invoke, jpeg()), upload(stack, invoke, jpeg(), user=BOB)
        assert [request_thumbnail(invoke, ada_photo)[0] for _ in range(6)][-1] == 429
        assert request_thumbnail(invoke, bob_photo, user=BOB)[0] == 202


class TestCreateThumbnail:
    def requested(self, stack, invoke, **overrides) -> tuple[str, dict]:
        photo_id = upload(stack, invoke, jpeg(400, 300))
        _, body = request_thumbnail(invoke, photo_id, **overrides)
        [command] = published_commands(stack)
        return body["thumbnail_id"], command

    @pytest.mark.parametrize("fmt, pil_format", [("JPEG", "JPEG"), ("PNG", "PNG"), ("WEBP", "WEBP")])
    def test_the_sns_command_makes_the_thumbnail_and_a_presigned_url_serves_it(self, stack, invoke, fmt, pil_format):
        thumbnail_id, command = self.requested(stack, invoke, width=120, height=90, format=fmt)
        assert invoke("CreateThumbnailFunction", sns_event(command)) == {"outcomes": ["created"]}
        status, body = thumbnail_state(invoke, thumbnail_id)
        assert status == 200 and body["status"] == "ready" and "X-Amz-Expires=300" in body["url"]
        key = body["url"].split("?")[0].split(".amazonaws.com/")[-1]
        data = boto3.client("s3", region_name=REGION).get_object(Bucket=stack.names["ThumbnailsBucket"], Key=key)["Body"].read()
        image = Image.open(io.BytesIO(data))
        assert (image.format, image.size) == (pil_format, (120, 90))

    def test_a_duplicated_command_does_the_work_once(self, stack, invoke, monkeypatch):
        thumbnail_id, command = self.requested(stack, invoke)
        writes = []
        original = S3ObjectStore.write
        monkeypatch.setattr(S3ObjectStore, "write", lambda self, *a: (writes.append(a[0]), original(self, *a)))
        for _ in range(3):
            assert invoke("CreateThumbnailFunction", sns_event(command)) == {"outcomes": ["created"]}
        assert len(writes) == 1

    def test_a_fault_on_the_last_attempt_marks_it_failed_refunds_and_raises_for_the_dead_letter_queue(self, stack, invoke, monkeypatch):
        thumbnail_id, command = self.requested(stack, invoke)
        monkeypatch.setattr("thumbnailr.adapters.s3.S3ObjectStore.write", lambda *a: (_ for _ in ()).throw(ConnectionError("S3 down")))
        with pytest.raises(ConnectionError):
            invoke("CreateThumbnailFunction", sns_event(command))
        with pytest.raises(ConnectionError):
            invoke("CreateThumbnailFunction", sns_event(command))
        with pytest.raises(Exception, match="thumbnail .*S3 down"):
            invoke("CreateThumbnailFunction", sns_event(command))
        status, body = thumbnail_state(invoke, thumbnail_id)
        assert (body["status"], body["reason"]) == ("failed", "gave up after 3 attempts: ConnectionError")
        month = datetime.now(timezone.utc).strftime("%Y-%m")
        used = boto3.client("dynamodb", region_name=REGION).get_item(
            TableName=stack.names["QuotaTable"], Key={"user_id": {"S": ADA}, "month": {"S": month}})["Item"]["used"]
        assert used == {"N": "0"}

    def test_the_metrics_of_attempts_that_raise_are_printed_all_the_same(self, stack, invoke, monkeypatch, capsys):
        _, command = self.requested(stack, invoke)
        monkeypatch.setattr("thumbnailr.adapters.s3.S3ObjectStore.write", lambda *a: (_ for _ in ()).throw(ConnectionError("S3 down")))
        capsys.readouterr()
        for _ in range(3):  # two retried attempts, then the last one gives up
            with pytest.raises(Exception, match="S3 down"):
                invoke("CreateThumbnailFunction", sns_event(command))
        printed = emf_lines(capsys.readouterr().out)
        assert sum(sum(line["WorkerAttempts"]) for line in printed if "WorkerAttempts" in line) == 3
        assert [(line["format"], line["ThumbnailsFailed"]) for line in printed if "ThumbnailsFailed" in line] == [
            (command["format"], [1.0])]

    @pytest.mark.parametrize("stack", [{"Dispatch": "stream"}], indirect=True)
    def test_in_stream_mode_nothing_is_published_and_the_stream_record_makes_it_once(self, stack, invoke):
        photo_id = upload(stack, invoke, jpeg(400, 300))
        _, body = request_thumbnail(invoke, photo_id, width=32, height=32, format="JPEG")
        assert published_commands(stack) == []
        event = stream_event(stack, body["thumbnail_id"])
        assert len(event["Records"]) == 1
        assert invoke("CreateThumbnailFunction", event) == {"batchItemFailures": []}
        assert invoke("CreateThumbnailFunction", event) == {"batchItemFailures": []}  # a replayed batch
        assert thumbnail_state(invoke, body["thumbnail_id"])[1]["status"] == "ready"

    @pytest.mark.parametrize("stack", [{"Dispatch": "stream"}], indirect=True)
    def test_a_failing_stream_record_is_reported_so_only_it_is_retried(self, stack, invoke, monkeypatch):
        photo_id = upload(stack, invoke, jpeg())
        bad = request_thumbnail(invoke, photo_id)[1]["thumbnail_id"]
        good = request_thumbnail(invoke, photo_id)[1]["thumbnail_id"]
        event = {"Records": stream_event(stack, bad)["Records"] + stream_event(stack, good)["Records"]}
        original = S3ObjectStore.write

        def write(self, key, *rest):
            if bad in key:
                raise ConnectionError("S3 down")
            return original(self, key, *rest)

        monkeypatch.setattr(S3ObjectStore, "write", write)
        result = invoke("CreateThumbnailFunction", event)
        assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}]}
        assert thumbnail_state(invoke, good)[1]["status"] == "ready"
        # when every record fails, Powertools raises so that Lambda retries the whole batch
        with pytest.raises(BatchProcessingError, match="All records failed"):
            invoke("CreateThumbnailFunction", {"Records": event["Records"][:1]})


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (30, 20)).save(out, "GIF")
    return out.getvalue()


class TestUploadRejections:
    @pytest.mark.parametrize(
        "make, reason",
        [
            (lambda: b"", "not an image"),
            (lambda: b"%PDF-1.7 not a photo", "not an image"),
            (_gif, "format GIF is not allowed (JPEG, PNG, WEBP)"),
            (lambda: png_declaring(8000, 6000), "image is 48.0 megapixels, over the 40 megapixel limit"),
            (lambda: png_declaring(20_000, 20_000), "image is 400.0 megapixels, over the 40 megapixel limit"),
            (lambda: jpeg_declaring(20_000, 20_000), "image is 400.0 megapixels, over the 40 megapixel limit"),
            (lambda: jpeg()[:300], "image is truncated or corrupt"),
        ],
        ids=["empty", "pdf", "gif", "48-megapixels", "png-bomb", "jpeg-bomb", "truncated"],
    )
    def test_each_rejection_reason_is_recorded_and_the_upload_removed(self, stack, invoke, make, reason):
        photo_id = upload(stack, invoke, make())
        status, body = answer(invoke("GetPhotoFunction", api_event("get_photo", path={"photo_id": photo_id})))
        assert (status, body["status"], body["reason"]) == (200, "rejected", reason)
        listing = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=stack.names["PhotosBucket"])
        assert listing.get("KeyCount", 0) == 0
