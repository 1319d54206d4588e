"""The event-driven use cases on fakes: checking uploads, and creating each thumbnail exactly once."""

import io

import pytest
from PIL import Image

from thumbnailr.model import Photo, QuotaCharge, Thumbnail, new_id, original_key
from thumbnailr.processing import CreateCommand, GaveUp, create_thumbnail, record_upload, settle
from thumbnailr.services import fail_thumbnail

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
        assert set(store.objects) == {p.original_key}  # the checked bytes, kept apart from the upload form's key

    def test_a_second_upload_to_a_ready_photo_is_removed_and_the_photo_stays(self, photo):
        photos, store, p = photo
        first = jpeg(64, 48)
        store.write(p.object_key, first, "image/jpeg")
        record_upload(p.object_key, 1000, photos=photos, store=store)
        store.write(p.object_key, b"not a photo at all", "image/jpeg")  # the form, reused
        assert record_upload(p.object_key, 18, photos=photos, store=store).startswith("ignored: the photo is already ready")
        assert photos.get(p.photo_id).status == "ready" and photos.get(p.photo_id).width == 64
        assert store.objects == {p.original_key: (first, "image/jpeg")}

    def test_two_uploads_checked_at_once_keep_the_first_bytes_kept_and_the_record_follows_them(self, photo):
        photos, store, p = photo
        store.write(p.original_key, jpeg(30, 20), "image/jpeg")  # the other upload's check got there first
        store.write(p.object_key, jpeg(64, 48), "image/jpeg")
        assert record_upload(p.object_key, 1000, photos=photos, store=store) == "ready: JPEG 30x20"
        assert p.object_key not in store.objects

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
        photos_store.write(original_key(photo_id), jpeg(400, 300), "image/jpeg")
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
        assert run() == "failed: the photo no longer exists (refund done)"
        assert thumbnails.get(thumbnail.thumbnail_id).status == "failed"

    def test_a_thumbnail_failed_meanwhile_keeps_no_object(self, job):
        run, thumbnails, _, thumbs_store, thumbnail = job
        real_mark_ready = thumbnails.mark_ready

        def swept_first(thumbnail_id):  # the sweep failed it while the worker was making it
            thumbnails.mark_failed(thumbnail_id, "not created in time")
            return real_mark_ready(thumbnail_id)

        thumbnails.mark_ready = swept_first
        assert run().startswith("ignored: it was failed meanwhile")
        assert thumbs_store.objects == {}

    def test_a_malformed_command_is_refused(self):
        with pytest.raises(ValueError, match="malformed create command"):
            CreateCommand.parse({"thumbnail_id": "x", "width": "wide"})


class TestFailAndRefund:
    @pytest.fixture
    def charged(self):
        thumbnails = FakeThumbnails()
        thumbnail = Thumbnail(new_id(), new_id(), ADA, 64, 32, "PNG", quota_month="2026-11")
        thumbnails.add(thumbnail, QuotaCharge(ADA, "2026-11", 100))
        return thumbnails, thumbnail

    def test_a_failure_gives_back_one_unit_once(self, charged):
        thumbnails, thumbnail = charged
        assert fail_thumbnail(thumbnails, thumbnail, "boom") == "failed: boom (refund done)"
        assert fail_thumbnail(thumbnails, thumbnail, "boom again").startswith("ignored: already failed")
        assert thumbnails.used[(ADA, "2026-11")] == 0

    def test_a_failure_is_recorded_even_when_the_counter_was_reset(self, charged):
        thumbnails, thumbnail = charged
        thumbnails.used[(ADA, "2026-11")] = 0  # an operator reset the counter
        assert fail_thumbnail(thumbnails, thumbnail, "boom") == "failed: boom (refund skipped)"
        item = thumbnails.get(thumbnail.thumbnail_id)
        assert (item.status, item.reason) == ("failed", "boom")
        assert thumbnails.used[(ADA, "2026-11")] == 0  # never below zero

    def test_a_refund_left_due_by_a_crash_is_given_by_the_next_attempt_or_the_sweep(self, charged):
        thumbnails, thumbnail = charged
        thumbnails.mark_failed(thumbnail.thumbnail_id, "boom")  # ... and the process died before the refund
        settle(thumbnails=thumbnails, photos=FakePhotos(), photos_store=FakeStore(), thumbnails_store=FakeStore(),
               before="2000-01-01")
        assert thumbnails.used[(ADA, "2026-11")] == 0 and thumbnails.get(thumbnail.thumbnail_id).refund == "done"


class TestSettle:
    def test_the_sweep_fails_old_pending_thumbnails_and_rejects_old_pending_photos(self):
        thumbnails, photos, photos_store, thumbs_store = FakeThumbnails(), FakePhotos(), FakeStore(), FakeStore()
        old, new = "2026-11-01T00:00:00+00:00", "2026-11-02T00:00:00+00:00"
        stuck = Thumbnail(new_id(), new_id(), ADA, 8, 8, "PNG", quota_month="2026-11", created_at=old)
        fresh = Thumbnail(new_id(), new_id(), ADA, 8, 8, "PNG", quota_month="2026-11", created_at=new)
        for t in (stuck, fresh):
            thumbnails.add(t, QuotaCharge(ADA, "2026-11", 100))
        thumbs_store.write(stuck.object_key, b"half", "image/png")  # a worker wrote it, then died
        uploaded = Photo(new_id(), ADA, "image/jpeg", created_at=old)
        never = Photo(new_id(), ADA, "image/jpeg", created_at=old)
        waiting = Photo(new_id(), ADA, "image/jpeg", created_at=new)
        for p in (uploaded, never, waiting):
            photos.add(p)
        photos_store.write(uploaded.object_key, b"...", "image/jpeg")
        counts = settle(thumbnails=thumbnails, photos=photos, photos_store=photos_store, thumbnails_store=thumbs_store,
                        before="2026-11-01T12:00:00+00:00")
        assert counts == {"thumbnails_failed": 1, "refunds": 0, "photos_rejected": 2}
        assert (thumbnails.get(stuck.thumbnail_id).status, thumbnails.get(fresh.thumbnail_id).status) == ("failed", "pending")
        assert thumbnails.used[(ADA, "2026-11")] == 1 and thumbs_store.objects == {}
        assert photos.get(uploaded.photo_id).reason == "the photo could not be checked in time"
        assert photos.get(never.photo_id).reason == "no photo was uploaded in time"
        assert photos.get(waiting.photo_id).status == "pending" and photos_store.objects == {}
