"""The API's use cases: plain functions over the ports. Nothing here imports Pillow or boto3."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from thumbnailr.model import (
    MAX_UPLOAD_BYTES,
    NotFound,
    NotReady,
    Photo,
    QuotaCharge,
    Thumbnail,
    is_id,
    new_id,
    parse_thumbnail_request,
    parse_upload_request,
    quota_month,
)
from thumbnailr.ports import CommandDispatcher, ObjectStore, PhotoRepository, ThumbnailRepository

UPLOAD_EXPIRES_IN = 300
DOWNLOAD_EXPIRES_IN = 300
# Lambda gives up on an async event after MaximumEventAgeInSeconds (900 s in the template), so a
# thumbnail still pending well after that will never be made.
PENDING_DEADLINE = timedelta(minutes=20)


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
) -> Thumbnail:
    spec = parse_thumbnail_request(body)
    photo = get_photo(owner, spec.photo_id, photos)
    if photo.status != "ready":
        detail = f": {photo.reason}" if photo.reason else ""
        raise NotReady(f"photo is {photo.status}{detail}")
    thumbnail = Thumbnail(
        thumbnail_id=new_id(),
        photo_id=photo.photo_id,
        owner=owner,
        width=spec.width,
        height=spec.height,
        format=spec.format,
        quota_month=quota_month(now),
    )
    thumbnails.add(thumbnail, QuotaCharge(owner, thumbnail.quota_month, monthly_quota))
    try:
        dispatcher.send(thumbnail.command())
    except Exception:
        # nothing will make it: say so on the record and give the quota back, then let the caller answer 5xx
        thumbnails.mark_failed(thumbnail, "the create command could not be sent")
        raise
    return thumbnail


def get_thumbnail(
    owner: str,
    thumbnail_id: str,
    *,
    thumbnails: ThumbnailRepository,
    store: ObjectStore,
    now: datetime,
) -> dict[str, Any]:
    thumbnail = thumbnails.get(thumbnail_id) if is_id(thumbnail_id) else None
    if thumbnail is None or thumbnail.owner != owner:
        raise NotFound("thumbnail not found")
    if thumbnail.status == "pending" and now - datetime.fromisoformat(thumbnail.created_at) > PENDING_DEADLINE:
        thumbnail.status = "failed"
        thumbnail.reason = "not created in time; the command is in the dead-letter queue"
    url = store.presign_get(thumbnail.object_key, DOWNLOAD_EXPIRES_IN) if thumbnail.status == "ready" else None
    return thumbnail.public(url)
