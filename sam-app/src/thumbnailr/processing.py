"""The event-driven use cases: checking an uploaded photo and creating a thumbnail."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from thumbnailr import imaging
from thumbnailr.model import MAX_UPLOAD_BYTES, PhotoMissing, original_key, photo_id_from_key, photo_key
from thumbnailr.ports import ObjectStore, PhotoRepository, ThumbnailRepository
from thumbnailr.services import fail_thumbnail

log = logging.getLogger(__name__)


def record_upload(key: str, size: int, *, photos: PhotoRepository, store: ObjectStore) -> str:
    """Check an uploaded object and record the photo ready or rejected. Returns what happened.

    The upload lands in an inbox key (``photo_key``) that its presigned form can write again for 5 minutes;
    the checked bytes are copied, once, to the photo's own key (``original_key``), and only those are ever
    made into thumbnails. A photo that is ready or rejected stays so: a later upload to its inbox is removed.
    S3 delivers each notification at least once, so this may run twice for one upload, or beside the check
    of a second upload: the first bytes written to the original key win, and the record follows them.
    """
    photo_id = photo_id_from_key(key)
    photo = photos.get(photo_id) if photo_id else None
    if photo is None:
        store.delete(key)  # not from our API: do not keep what nobody asked for
        return "deleted: no photo record for this key"
    if photo.status != "pending":
        store.delete(key)
        return f"ignored: the photo is already {photo.status}; this upload is removed"
    if size > MAX_UPLOAD_BYTES:
        return _reject(photo.photo_id, key, f"file is {size} bytes, over the {MAX_UPLOAD_BYTES} byte limit", photos, store)
    try:
        data = store.read(key)
    except PhotoMissing:
        return "ignored: the object is gone (a duplicate event after a rejection)"
    try:
        info = imaging.inspect_image(data)
    except imaging.ImageRejected as rejected:
        return _reject(photo.photo_id, key, rejected.reason, photos, store)
    if not store.write_new(photo.original_key, data, photo.content_type):
        # another check (a retry, or a second upload's) kept its bytes first: they are the photo
        info = imaging.inspect_image(store.read(photo.original_key))
    marked = photos.mark_ready(photo.photo_id, info.width, info.height, info.format)
    store.delete(key)
    return f"ready: {info.format} {info.width}x{info.height}" if marked else "ignored: the photo was settled meanwhile"


def _reject(photo_id: str, key: str, reason: str, photos: PhotoRepository, store: ObjectStore) -> str:
    marked = photos.mark_rejected(photo_id, reason)
    store.delete(key)
    return f"rejected: {reason}" if marked else "ignored: the photo was settled meanwhile"


@dataclass(frozen=True)
class CreateCommand:
    thumbnail_id: str
    photo_id: str
    width: int
    height: int
    format: str

    @classmethod
    def parse(cls, message: dict[str, Any]) -> "CreateCommand":
        try:
            return cls(
                thumbnail_id=str(message["thumbnail_id"]),
                photo_id=str(message["photo_id"]),
                width=int(message["width"]),
                height=int(message["height"]),
                format=str(message["format"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"malformed create command: {error!r}") from error


class GaveUp(Exception):
    """The last attempt failed: the thumbnail is marked failed, and the event goes to the dead-letter queue."""


def create_thumbnail(
    command: CreateCommand,
    *,
    thumbnails: ThumbnailRepository,
    photos_store: ObjectStore,
    thumbnails_store: ObjectStore,
    max_attempts: int,
) -> str:
    """Make one thumbnail, exactly once. Returns what happened; raises to have Lambda retry.

    Permanent failures (the photo is gone or cannot be decoded) mark the thumbnail failed at once.
    Anything else is taken as transient and re-raised so Lambda retries, until the last attempt,
    which marks it failed and raises GaveUp so the event lands in the dead-letter queue.
    """
    thumbnail = thumbnails.get(command.thumbnail_id)
    if thumbnail is None:
        return "ignored: unknown thumbnail"
    if thumbnail.status != "pending":
        return f"ignored: already {thumbnail.status}"  # a duplicate delivery
    attempt = thumbnails.start_attempt(thumbnail.thumbnail_id)
    try:
        photo = photos_store.read(original_key(thumbnail.photo_id))
        data = imaging.make_thumbnail(photo, thumbnail.width, thumbnail.height, thumbnail.format)
        thumbnails_store.write(thumbnail.object_key, data, thumbnail.content_type)
    except PhotoMissing:
        return fail_thumbnail(thumbnails, thumbnail, "the photo no longer exists")
    except imaging.ImageRejected as rejected:
        return fail_thumbnail(thumbnails, thumbnail, f"the photo cannot be read: {rejected.reason}")
    except Exception as error:
        if attempt < max_attempts:
            log.warning("attempt %d of %d failed, Lambda will retry: %r", attempt, max_attempts, error)
            raise
        fail_thumbnail(thumbnails, thumbnail, f"gave up after {attempt} attempts: {type(error).__name__}")
        raise GaveUp(f"thumbnail {thumbnail.thumbnail_id}: {error!r}") from error
    if thumbnails.mark_ready(thumbnail.thumbnail_id):
        return "created"
    now = thumbnails.get(thumbnail.thumbnail_id)
    if now is not None and now.status == "failed":  # given up meanwhile (the sweep): a failed one has no object
        thumbnails_store.delete(thumbnail.object_key)
        return "ignored: it was failed meanwhile; its object is removed"
    return "ignored: another delivery finished first"


# --------------------------------------------------------------------------- settling what is left in between


def settle(*, thumbnails: ThumbnailRepository, photos: PhotoRepository, photos_store: ObjectStore,
           thumbnails_store: ObjectStore, before: str) -> dict[str, int]:
    """The sweep: end everything left in between since before ``before`` (an ISO timestamp, the deadline).

    A thumbnail still pending then will not be made any more (Lambda gave up on its event, or its command was
    never sent): failed, its unit given back; a failed one whose refund is still due gets it. A photo still
    pending is rejected: its check never finished, or nothing was uploaded before the form expired.
    """
    counts = {"thumbnails_failed": 0, "refunds": 0, "photos_rejected": 0}
    for thumbnail in thumbnails.unsettled(before):
        if thumbnail.status == "pending":
            if fail_thumbnail(thumbnails, thumbnail, "not created in time").startswith("failed"):
                thumbnails_store.delete(thumbnail.object_key)  # a worker may have written it before giving up
                counts["thumbnails_failed"] += 1
        elif thumbnail.status == "failed" and thumbnail.refund == "due":
            thumbnails.refund(thumbnail)
            counts["refunds"] += 1
    for photo in photos.pending_since(before):
        uploaded = photos_store.exists(photo.object_key)
        reason = "the photo could not be checked in time" if uploaded else "no photo was uploaded in time"
        if reject_photo(photo.photo_id, reason, photos=photos, store=photos_store):
            counts["photos_rejected"] += 1
    return counts


def reject_photo(photo_id: str, reason: str, *, photos: PhotoRepository, store: ObjectStore) -> bool:
    """Reject a pending photo and remove what was uploaded for it; False if it was settled already."""
    if not photos.mark_rejected(photo_id, reason):
        store.delete(photo_key(photo_id))  # an upload that came after it was settled
        return False
    store.delete(photo_key(photo_id))
    store.delete(original_key(photo_id))
    return True
