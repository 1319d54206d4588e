"""The event-driven use cases on fakes: checking uploads, and creating each thumbnail exactly once."""

import io

import pytest
from PIL import Image

from thumbnailr.model import Photo, QuotaCharge, Thumbnail, new_id, photo_key
from thumbnailr.processing import CreateCommand, GaveUp, create_thumbnail, record_upload

from .fakes import FakePhotos, FakeStore, FakeThumbnails

ADA = "user-ada"


def jpeg(width=64, height=48, colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG")
    return out.getvalue()


class TestRecordUpload:
    @pytest.fixture
    def photo(self):
        photos, store = FakePhotos(), FakeStore()
        photo = Photo(photo_id=new_id(), owner=ADA, content_type="image/jpeg")
        photos.add(photo)
        return photos, store, photo

    def test_a_real_jpeg_is_recorded_ready_with_its_size_and_format(self, photo):
        photos, store, p = photo
        store.write(p.object_key, jpeg(64, 48), "image/jpeg")
        assert record_upload(p.object_key, 1000, photos=photos, store=store) == "ready: JPEG 64x48"
        assert (photos.get(p.photo_id).status, photos.get(p.photo_id).width) == ("ready", 64)

    @pytest.mark.parametrize(
        "data, reason",
        [(b"", "not an image"), (b"hello, I am text", "not an image"), (jpeg()[:200], "truncated or corrupt")],
    )
    def test_a_bad_upload_is_rejected_with_its_reason_and_deleted(self, photo, data, reason):
        photos, store, p = photo
        store.write(p.object_key, data, "image/jpeg")
        assert record_upload(p.object_key, len(data), photos=photos, store=store).startswith("rejected")
        assert reason in photos.get(p.photo_id).reason
        assert p.object_key not in store.objects

    def test_a_gif_is_rejected_for_its_format(self, photo):
        photos, store, p = photo
        out = io.BytesIO()
        Image.new("RGB", (8, 8)).save(out, "GIF")
        store.write(p.object_key, out.getvalue(), "image/jpeg")
        record_upload(p.object_key, 100, photos=photos, store=store)
        assert "GIF" in photos.get(p.photo_id).reason

    def test_an_oversized_upload_is_rejected_without_being_read(self, photo):
        photos, store, p = photo
        store.fail_reads = 1  # a read would raise: the size alone must decide
        record_upload(p.object_key, 21 * 1024 * 1024, photos=photos, store=store)
        assert "over the 20971520 byte limit" in photos.get(p.photo_id).reason

    def test_an_object_without_a_photo_record_is_deleted(self):
        store = FakeStore()
        store.write("photos/" + new_id(), jpeg(), "image/jpeg")
        store.write("elsewhere/x", jpeg(), "image/jpeg")
        for key in list(store.objects):
            assert record_upload(key, 10, photos=FakePhotos(), store=store).startswith("deleted")
        assert store.objects == {}

    def test_a_duplicate_event_after_a_rejection_changes_nothing(self, photo):
        photos, store, p = photo
        store.write(p.object_key, b"text", "image/jpeg")
        record_upload(p.object_key, 4, photos=photos, store=store)
        assert record_upload(p.object_key, 4, photos=photos, store=store).startswith("ignored")
        assert photos.get(p.photo_id).status == "rejected"


class TestCreateThumbnail:
    @pytest.fixture
    def job(self):
        thumbnails, photos_store, thumbs_store = FakeThumbnails(), FakeStore(), FakeStore()
        photo_id = new_id()
        photos_store.write(photo_key(photo_id), jpeg(400, 300), "image/jpeg")
        thumbnail = Thumbnail(new_id(), photo_id, ADA, 64, 32, "PNG", quota_month="2026-11")
        thumbnails.add(thumbnail, QuotaCharge(ADA, "2026-11", 100))
        command = CreateCommand.parse(thumbnail.command())

        def run(max_attempts=3):
            return create_thumbnail(
                command, thumbnails=thumbnails, photos_store=photos_store, thumbnails_store=thumbs_store,
                max_attempts=max_attempts,
            )

        return run, thumbnails, photos_store, thumbs_store, thumbnail

    def test_creates_the_thumbnail_in_the_asked_size_and_format_and_marks_it_ready(self, job):
        run, thumbnails, _, thumbs_store, thumbnail = job
        assert run() == "created"
        data, content_type = thumbs_store.objects[thumbnail.object_key]
        image = Image.open(io.BytesIO(data))
        assert (image.format, image.size, content_type) == ("PNG", (64, 32), "image/png")
        assert thumbnails.get(thumbnail.thumbnail_id).status == "ready"

    def test_a_duplicate_command_does_the_work_once(self, job):
        run, _, _, thumbs_store, _ = job
        run()
        assert run() == "ignored: already ready"
        assert thumbs_store.writes == 1

    def test_a_transient_fault_is_raised_for_lambda_to_retry_and_then_succeeds(self, job):
        run, thumbnails, photos_store, _, thumbnail = job
        photos_store.fail_reads = 1
        with pytest.raises(TimeoutError):
            run()
        assert thumbnails.get(thumbnail.thumbnail_id).status == "pending"
        assert run() == "created"

    def test_the_last_attempt_marks_it_failed_refunds_the_quota_and_gives_up(self, job):
        run, thumbnails, photos_store, _, thumbnail = job
        photos_store.fail_reads = 3
        for _ in range(2):
            with pytest.raises(TimeoutError):
                run()
        with pytest.raises(GaveUp):
            run()
        failed = thumbnails.get(thumbnail.thumbnail_id)
        assert (failed.status, failed.reason) == ("failed", "gave up after 3 attempts: TimeoutError")
        assert thumbnails.used[(ADA, "2026-11")] == 0

    def test_a_missing_photo_fails_at_once_without_a_retry(self, job):
        run, thumbnails, photos_store, _, thumbnail = job
        photos_store.objects.clear()
        assert run() == "failed: the photo no longer exists"
        assert thumbnails.get(thumbnail.thumbnail_id).status == "failed"

    def test_a_malformed_command_is_refused(self):
        with pytest.raises(ValueError, match="malformed create command"):
            CreateCommand.parse({"thumbnail_id": "x", "width": "wide"})
