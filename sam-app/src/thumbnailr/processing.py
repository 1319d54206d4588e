"""The event-driven use cases: checking an uploaded photo and creating a thumbnail."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from thumbnailr import imaging
from thumbnailr.model import MAX_UPLOAD_BYTES, PhotoMissing, Thumbnail, photo_id_from_key, photo_key
from thumbnailr.ports import ObjectStore, PhotoRepository, ThumbnailRepository

log = logging.getLogger(__name__)


def record_upload(key: str, size: int, *, photos: PhotoRepository, store: ObjectStore) -> str:
    """Check an uploaded object and record the photo ready or rejected. Returns what happened.

    S3 delivers each notification at least once, so this may run twice for one upload: it only
    ever moves a photo to the state its object's bytes call for.
    """
    photo_id = photo_id_from_key(key)
    photo = photos.get(photo_id) if photo_id else None
    if photo is None:
        store.delete(key)  # not from our API: do not keep what nobody asked for
        return "deleted: no photo record for this key"
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
    photos.mark_ready(photo.photo_id, info.width, info.height, info.format)
    return f"ready: {info.format} {info.width}x{info.height}"


def _reject(photo_id: str, key: str, reason: str, photos: PhotoRepository, store: ObjectStore) -> str:
    photos.mark_rejected(photo_id, reason)
    store.delete(key)
    return f"rejected: {reason}"


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
        photo = photos_store.read(photo_key(thumbnail.photo_id))
        data = imaging.make_thumbnail(photo, thumbnail.width, thumbnail.height, thumbnail.format)
        thumbnails_store.write(thumbnail.object_key, data, thumbnail.content_type)
    except PhotoMissing:
        return _fail(thumbnails, thumbnail, "the photo no longer exists")
    except imaging.ImageRejected as rejected:
        return _fail(thumbnails, thumbnail, f"the photo cannot be read: {rejected.reason}")
    except Exception as error:
        if attempt < max_attempts:
            log.warning("attempt %d of %d failed, Lambda will retry: %r", attempt, max_attempts, error)
            raise
        _fail(thumbnails, thumbnail, f"gave up after {attempt} attempts: {type(error).__name__}")
        raise GaveUp(f"thumbnail {thumbnail.thumbnail_id}: {error!r}") from error
    if thumbnails.mark_ready(thumbnail.thumbnail_id):
        return "created"
    return "ignored: another delivery finished first"


def _fail(thumbnails: ThumbnailRepository, thumbnail: Thumbnail, reason: str) -> str:
    thumbnails.mark_failed(thumbnail, reason)
    return f"failed: {reason}"
