"""The API's use cases on in-memory fakes: validation, ownership, readiness, the quota."""

from datetime import datetime, timedelta, timezone

import pytest

from thumbnailr import services
from thumbnailr.model import (
    InvalidRequest,
    NotFound,
    NotReady,
    Photo,
    QuotaExceeded,
    new_id,
    parse_thumbnail_request,
    quota_month,
)

from .fakes import FakeDispatcher, FakePhotos, FakeStore, FakeThumbnails

ADA, BOB = "user-ada", "user-bob"
NOV = datetime(2026, 11, 26, 20, 0, tzinfo=timezone.utc)


@pytest.fixture
def world():
    photos, thumbnails, dispatcher = FakePhotos(), FakeThumbnails(), FakeDispatcher()
    photo = Photo(photo_id=new_id(), owner=ADA, content_type="image/jpeg", status="ready", width=400, height=300, format="JPEG")
    photos.add(photo)
    return photos, thumbnails, dispatcher, photo


def request(world, owner=ADA, now=NOV, quota=100, **body):
    photos, thumbnails, dispatcher, photo = world
    body = {"photo_id": photo.photo_id, "width": 128, "height": 128, "format": "PNG", **body}
    return services.request_thumbnail(
        owner, body, photos=photos, thumbnails=thumbnails, dispatcher=dispatcher, monthly_quota=quota, now=now
    )


class TestThumbnailRequestValidation:
    @pytest.mark.parametrize(
        "body, message",
        [
            ([], "JSON object"),
            ({"width": 1, "height": 1, "format": "PNG"}, "photo_id is required"),
            ({"photo_id": "x", "width": 0, "height": 1, "format": "PNG"}, "width must be"),
            ({"photo_id": "x", "width": 1, "height": 2049, "format": "PNG"}, "height must be"),
            ({"photo_id": "x", "width": -5, "height": 1, "format": "PNG"}, "width must be"),
            ({"photo_id": "x", "width": 1.5, "height": 1, "format": "PNG"}, "width must be"),
            ({"photo_id": "x", "width": True, "height": 1, "format": "PNG"}, "width must be"),
            ({"photo_id": "x", "width": "64", "height": 1, "format": "PNG"}, "width must be"),
            ({"photo_id": "x", "width": 1, "height": 1, "format": "GIF"}, "format must be one of JPEG, PNG, WEBP"),
            ({"photo_id": "x", "width": 1, "height": 1, "format": "PNG", "admin": True}, "unknown field"),
            ({"photo_id": 7, "width": 1, "height": 1, "format": "PNG"}, "photo_id must be"),
        ],
    )
    def test_bad_requests_are_refused_with_a_message_naming_the_problem(self, body, message):
        with pytest.raises(InvalidRequest, match=message):
            parse_thumbnail_request(body)

    def test_sizes_at_both_limits_and_a_lowercase_format_are_accepted(self):
        spec = parse_thumbnail_request({"photo_id": "x", "width": 1, "height": 2048, "format": "webp"})
        assert (spec.width, spec.height, spec.format) == (1, 2048, "WEBP")


class TestRequestThumbnail:
    def test_records_a_pending_thumbnail_and_sends_its_command(self, world):
        _, thumbnails, dispatcher, photo = world
        thumbnail = request(world, width=300, height=200, format="JPEG")
        assert thumbnails.get(thumbnail.thumbnail_id).status == "pending"
        assert dispatcher.sent == [thumbnail.command()]
        assert dispatcher.sent[0] | {} == {
            "thumbnail_id": thumbnail.thumbnail_id, "photo_id": photo.photo_id, "owner": ADA,
            "width": 300, "height": 200, "format": "JPEG",
        }

    def test_another_users_photo_is_not_found(self, world):
        with pytest.raises(NotFound, match="photo not found"):
            request(world, owner=BOB)

    def test_a_photo_still_uploading_is_not_ready(self, world):
        photos, _, _, photo = world
        photos.items[photo.photo_id].status = "pending"
        with pytest.raises(NotReady, match="photo is pending"):
            request(world)

    def test_a_rejected_photo_is_not_ready_and_says_why(self, world):
        photos, _, _, photo = world
        photos.items[photo.photo_id].status = "pending"
        assert photos.mark_rejected(photo.photo_id, "not an image")
        with pytest.raises(NotReady, match="rejected: not an image"):
            request(world)

    def test_the_quota_refuses_the_request_past_the_limit_and_sends_nothing(self, world):
        _, _, dispatcher, _ = world
        for _ in range(3):
            request(world, quota=3)
        with pytest.raises(QuotaExceeded):
            request(world, quota=3)
        assert len(dispatcher.sent) == 3

    def test_a_new_month_starts_at_zero(self, world):
        for _ in range(3):
            request(world, quota=3)
        december = NOV + timedelta(days=5)
        assert request(world, quota=3, now=december).quota_month == "2026-12"

    def test_a_failed_dispatch_marks_the_thumbnail_failed_and_refunds_the_quota(self, world):
        photos, thumbnails, _, photo = world
        world = (photos, thumbnails, FakeDispatcher(fail=True), photo)
        with pytest.raises(ConnectionError):
            request(world, quota=1)
        [failed] = thumbnails.items.values()
        assert (failed.status, failed.reason) == ("failed", "the create command could not be sent")
        assert thumbnails.used[(ADA, "2026-11")] == 0

    def test_a_dispatch_whose_answer_was_lost_after_the_worker_finished_answers_the_thumbnail(self, world):
        photos, thumbnails, _, photo = world

        class DeliveredThenLost(FakeDispatcher):
            def send(self, command):  # SNS took it and the worker made it, but the answer never came back
                thumbnails.mark_ready(command["thumbnail_id"])
                raise ConnectionError("read timeout")

        thumbnail = request((photos, thumbnails, DeliveredThenLost(), photo))
        assert thumbnails.get(thumbnail.thumbnail_id).status == "ready"
        assert thumbnails.used[(ADA, "2026-11")] == 1


class TestIdempotencyKey:
    def keyed(self, world, key="order-42", **body):
        photos, thumbnails, dispatcher, photo = world
        body = {"photo_id": photo.photo_id, "width": 128, "height": 128, "format": "PNG", **body}
        return services.request_thumbnail(ADA, body, photos=photos, thumbnails=thumbnails, dispatcher=dispatcher,
                                          monthly_quota=100, now=NOV, idempotency_key=key)

    def test_the_same_key_and_body_answer_the_same_thumbnail_and_charge_once(self, world):
        _, thumbnails, dispatcher, _ = world
        first, again = self.keyed(world), self.keyed(world)
        assert first.thumbnail_id == again.thumbnail_id
        assert thumbnails.used[(ADA, "2026-11")] == 1 and len(thumbnails.items) == 1

    def test_a_replay_of_a_request_whose_command_never_went_sends_it(self, world):
        _, thumbnails, dispatcher, _ = world
        first = self.keyed(world)
        dispatcher.sent.clear()  # as if the first request died after recording it
        self.keyed(world)
        assert [c["thumbnail_id"] for c in dispatcher.sent] == [first.thumbnail_id]
        thumbnails.start_attempt(first.thumbnail_id)
        dispatcher.sent.clear()
        self.keyed(world)  # the worker has it: nothing more is sent
        assert dispatcher.sent == []

    def test_the_same_key_with_another_body_is_refused(self, world):
        from thumbnailr.model import IdempotencyKeyReused

        self.keyed(world)
        with pytest.raises(IdempotencyKeyReused):
            self.keyed(world, width=64)

    def test_keys_are_per_user_and_different_keys_make_different_thumbnails(self, world):
        assert self.keyed(world, key="a").thumbnail_id != self.keyed(world, key="b").thumbnail_id
        from thumbnailr.model import keyed_id

        assert keyed_id(ADA, "a") != keyed_id(BOB, "a")

    @pytest.mark.parametrize("key", ["", "has space", "x" * 256, "é"])
    def test_a_malformed_key_is_refused(self, world, key):
        with pytest.raises(InvalidRequest, match="Idempotency-Key"):
            self.keyed(world, key=key)


class TestQuotaMonth:
    def test_the_month_is_taken_in_utc(self):
        just_before_new_year_in_athens = datetime(2027, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
        assert quota_month(just_before_new_year_in_athens) == "2026-12"


class TestGetThumbnail:
    def test_a_ready_thumbnail_comes_with_a_download_url_and_no_reason(self, world):
        _, thumbnails, _, _ = world
        thumbnail = request(world)
        thumbnails.mark_ready(thumbnail.thumbnail_id)
        body = services.get_thumbnail(ADA, thumbnail.thumbnail_id, thumbnails=thumbnails, store=FakeStore())
        assert body["status"] == "ready"
        assert body["url"].endswith(f"{thumbnail.thumbnail_id}.png?expires=300")
        assert "reason" not in body

    def test_a_pending_thumbnail_has_no_url(self, world):
        _, thumbnails, _, _ = world
        thumbnail = request(world)
        body = services.get_thumbnail(ADA, thumbnail.thumbnail_id, thumbnails=thumbnails, store=FakeStore())
        assert body["status"] == "pending" and "url" not in body

    @pytest.mark.parametrize("thumbnail_id", ["nope", "../../etc/passwd", ""])
    def test_malformed_ids_are_not_found(self, world, thumbnail_id):
        with pytest.raises(NotFound):
            services.get_thumbnail(ADA, thumbnail_id, thumbnails=FakeThumbnails(), store=FakeStore())

    def test_another_users_thumbnail_is_not_found(self, world):
        _, thumbnails, _, _ = world
        thumbnail = request(world)
        with pytest.raises(NotFound):
            services.get_thumbnail(BOB, thumbnail.thumbnail_id, thumbnails=thumbnails, store=FakeStore())


class TestRequestUpload:
    def test_records_a_pending_photo_and_returns_a_presigned_post_for_its_key(self):
        photos, store = FakePhotos(), FakeStore()
        answer = services.request_upload(ADA, {"content_type": "image/png"}, photos, store)
        assert photos.get(answer["photo_id"]).status == "pending"
        assert answer["upload"]["fields"]["key"] == f"photos/{answer['photo_id']}"
        assert answer["expires_in"] == 300

    @pytest.mark.parametrize("body", [{}, {"content_type": "image/gif"}, {"content_type": "image/jpeg", "x": 1}, "jpeg"])
    def test_an_unsupported_content_type_is_refused(self, body):
        with pytest.raises(InvalidRequest):
            services.request_upload(ADA, body, FakePhotos(), FakeStore())
