"""The API's use cases: plain functions over the ports. Nothing here imports Pillow or boto3."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from thumbnailr.model import (
    MAX_UPLOAD_BYTES,
    IdempotencyKeyReused,
    NotFound,
    NotReady,
    Photo,
    QuotaCharge,
    Thumbnail,
    is_id,
    keyed_id,
    new_id,
    parse_idempotency_key,
    parse_thumbnail_request,
    parse_upload_request,
    quota_month,
    request_hash,
)
from thumbnailr.ports import CommandDispatcher, ObjectStore, PhotoRepository, ThumbnailRepository

UPLOAD_EXPIRES_IN = 300
DOWNLOAD_EXPIRES_IN = 300

log = logging.getLogger(__name__)


def request_upload(owner: str, body: Any, photos: PhotoRepository, store: ObjectStore) -> dict[str, Any]:
    content_type = parse_upload_request(body)
    photo = Photo(photo_id=new_id(), owner=owner, content_type=content_type)
    photos.add(photo)
    upload = store.presign_post(photo.object_key, content_type, MAX_UPLOAD_BYTES, UPLOAD_EXPIRES_IN)
    return {"photo_id": photo.photo_id, "upload": upload, "expires_in": UPLOAD_EXPIRES_IN}


def get_photo(owner: str, photo_id: str, photos: PhotoRepository) -> Photo:
    photo = photos.get(photo_id) if is_id(photo_id) else None
    # someone else's photo is answered exactly like a missing one: ids must not leak
    if photo is None or photo.owner != owner:
        raise NotFound("photo not found")
    return photo


def request_thumbnail(
    owner: str,
    body: Any,
    *,
    photos: PhotoRepository,
    thumbnails: ThumbnailRepository,
    dispatcher: CommandDispatcher,
    monthly_quota: int,
    now: datetime,
    idempotency_key: str | None = None,
    correlation_id: str | None = None,
) -> Thumbnail:
    """Spend one unit and record a pending thumbnail, then send its create command.

    With an ``idempotency_key`` the thumbnail's id comes from the owner and the key, so a retry of the same
    request (its first answer lost, or sent twice at once) finds the same thumbnail and spends nothing more;
    the same key for another request is IdempotencyKeyReused.
    """
    spec = parse_thumbnail_request(body)
    key = parse_idempotency_key(idempotency_key)
    fingerprint = request_hash(spec) if key else None
    thumbnail_id = keyed_id(owner, key) if key else new_id()
    if key and (earlier := thumbnails.get(thumbnail_id)) is not None:
        return _replayed(earlier, fingerprint, dispatcher)
    photo = get_photo(owner, spec.photo_id, photos)
    if photo.status != "ready":
        detail = f": {photo.reason}" if photo.reason else ""
        raise NotReady(f"photo is {photo.status}{detail}")
    thumbnail = Thumbnail(
        thumbnail_id=thumbnail_id,
        photo_id=photo.photo_id,
        owner=owner,
        width=spec.width,
        height=spec.height,
        format=spec.format,
        quota_month=quota_month(now),
        request_hash=fingerprint,
        correlation_id=correlation_id,
    )
    stored = thumbnails.add(thumbnail, QuotaCharge(owner, thumbnail.quota_month, monthly_quota))
    if stored is not thumbnail:  # the same key, at the same moment: the other request recorded it
        return _replayed(stored, fingerprint, dispatcher)
    try:
        dispatcher.send(thumbnail.command())
    except Exception:
        # nothing will make it: say so on the record and give the quota back, then let the caller answer 5xx.
        # Unless the command did go (only its answer was lost) and the worker already settled it.
        if fail_thumbnail(thumbnails, thumbnail, "the create command could not be sent").startswith("failed"):
            raise
        return thumbnails.get(thumbnail.thumbnail_id) or thumbnail
    return thumbnail


def _replayed(earlier: Thumbnail, fingerprint: str | None, dispatcher: CommandDispatcher) -> Thumbnail:
    if earlier.request_hash != fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was already used for a different request")
    if earlier.status == "pending" and earlier.attempts == 0:
        # the first request may have died before its command went: send it again (the worker does it once)
        dispatcher.send(earlier.command())
    return earlier


def get_thumbnail(
    owner: str,
    thumbnail_id: str,
    *,
    thumbnails: ThumbnailRepository,
    store: ObjectStore,
) -> dict[str, Any]:
    thumbnail = thumbnails.get(thumbnail_id) if is_id(thumbnail_id) else None
    if thumbnail is None or thumbnail.owner != owner:
        raise NotFound("thumbnail not found")
    url = store.presign_get(thumbnail.object_key, DOWNLOAD_EXPIRES_IN) if thumbnail.status == "ready" else None
    return thumbnail.public(url)


def fail_thumbnail(thumbnails: ThumbnailRepository, thumbnail: Thumbnail, reason: str) -> str:
    """Mark a pending thumbnail failed, then give its unit back. Two steps, each checked and each safe to run
    again: the failure is recorded even when the refund cannot apply, and the refund happens once
    (``settle`` retries one left due by a crash in between)."""
    if not thumbnails.mark_failed(thumbnail.thumbnail_id, reason):
        current = thumbnails.get(thumbnail.thumbnail_id)
        if current is None or current.status != "failed" or current.refund != "due":
            return f"ignored: already {current.status if current else 'gone'}"
        thumbnail = current
    refunded = thumbnails.refund(thumbnail)
    if refunded == "skipped":
        log.warning("thumbnail %s failed; its unit could not be given back (the counter is at 0)", thumbnail.thumbnail_id)
    return f"failed: {reason} (refund {refunded})"
