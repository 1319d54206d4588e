"""The domain: photos, thumbnails, the monthly quota and the errors the API answers with. No AWS here."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

# Kept here rather than imported from imaging, so the API handlers never import Pillow at init.
THUMBNAIL_FORMATS = ("JPEG", "PNG", "WEBP")
MAX_THUMBNAIL_SIDE = 2048
UPLOAD_CONTENT_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
THUMBNAIL_CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
THUMBNAIL_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}

PHOTO_STATUSES = ("pending", "ready", "rejected")
THUMBNAIL_STATUSES = ("pending", "ready", "failed")
ID_PATTERN = r"^[0-9a-f]{32}$"  # what new_id makes

_ID = re.compile(ID_PATTERN)


class DomainError(Exception):
    """An error the caller can act on, with a message for them."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidRequest(DomainError):
    """The request is malformed or out of bounds."""


class Unauthorized(DomainError):
    """There is no signed-in caller."""


class NotFound(DomainError):
    """No such photo or thumbnail, or it is someone else's."""


class NotReady(DomainError):
    """The photo is not ready to make thumbnails of."""


class QuotaExceeded(DomainError):
    """The caller's monthly quota is spent."""


class IdempotencyKeyReused(DomainError):
    """An Idempotency-Key the caller already used for a different request."""


class PhotoMissing(Exception):
    """The photo's object is gone from storage: retrying will not bring it back."""


def new_id() -> str:
    return uuid.uuid4().hex


def keyed_id(owner: str, idempotency_key: str) -> str:
    """The thumbnail id an owner's Idempotency-Key names: the same key always names the same thumbnail, so a
    retried request finds what the first one made (even when the first one's answer was lost)."""
    return hashlib.sha256(f"{owner}\0{idempotency_key}".encode()).hexdigest()[:32]


def is_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID.match(value))


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def quota_month(moment: datetime) -> str:
    """The quota period a moment falls in: its calendar month in UTC, e.g. "2026-11"."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m")


@dataclass(frozen=True)
class QuotaCharge:
    """One thumbnail charged to a user's counter for one month, refused past ``limit``."""

    user_id: str
    month: str
    limit: int


@dataclass
class Photo:
    photo_id: str
    owner: str
    content_type: str
    status: str = "pending"  # one of PHOTO_STATUSES
    width: int | None = None
    height: int | None = None
    format: str | None = None
    reason: str | None = None
    created_at: str = field(default_factory=lambda: now_utc().isoformat())

    @property
    def object_key(self) -> str:
        return photo_key(self.photo_id)

    @property
    def original_key(self) -> str:
        return original_key(self.photo_id)

    def public(self) -> dict[str, Any]:
        return {
            "photo_id": self.photo_id,
            "status": self.status,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "reason": self.reason,
        }


def photo_key(photo_id: str) -> str:
    """Where the photo is uploaded: an inbox, which a reused upload form can write again."""
    return f"photos/{photo_id}"


def original_key(photo_id: str) -> str:
    """Where the photo is kept once checked: written once, by the check, never by an upload form."""
    return f"originals/{photo_id}"


def photo_id_from_key(key: str) -> str | None:
    prefix, _, photo_id = key.partition("/")
    return photo_id if prefix == "photos" and is_id(photo_id) else None


@dataclass(frozen=True)
class ThumbnailSpec:
    photo_id: str
    width: int
    height: int
    format: str


@dataclass
class Thumbnail:
    thumbnail_id: str
    photo_id: str
    owner: str
    width: int
    height: int
    format: str
    quota_month: str
    status: str = "pending"  # one of THUMBNAIL_STATUSES
    reason: str | None = None
    attempts: int = 0
    created_at: str = field(default_factory=lambda: now_utc().isoformat())
    request_hash: str | None = None  # what an Idempotency-Key was first used for
    refund: str | None = None  # once failed: "due", then "done" or "skipped: ..." (see ThumbnailRepository.refund)
    correlation_id: str | None = None  # the id of the request that asked for it, for following it in the logs

    @property
    def object_key(self) -> str:
        return f"thumbnails/{self.thumbnail_id}.{THUMBNAIL_EXTENSIONS[self.format]}"

    @property
    def content_type(self) -> str:
        return THUMBNAIL_CONTENT_TYPES[self.format]

    def command(self) -> dict[str, Any]:
        """The "create thumbnail" command the worker receives (by SNS or by the table's stream)."""
        return {
            "thumbnail_id": self.thumbnail_id,
            "photo_id": self.photo_id,
            "owner": self.owner,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            **({"correlation_id": self.correlation_id} if self.correlation_id else {}),
        }

    def public(self, url: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "thumbnail_id": self.thumbnail_id,
            "photo_id": self.photo_id,
            "status": self.status,
            "width": self.width,
            "height": self.height,
            "format": self.format,
        }
        if url:
            body["url"] = url
        if self.status == "failed":
            body["reason"] = self.reason
        return body


def parse_upload_request(body: Any) -> str:
    """The content type of a requested upload, or InvalidRequest."""
    _require_object(body, allowed={"content_type"})
    content_type = body.get("content_type")
    if not isinstance(content_type, str) or content_type not in UPLOAD_CONTENT_TYPES:  # a list is unhashable
        raise InvalidRequest(f"content_type must be one of {', '.join(sorted(UPLOAD_CONTENT_TYPES))}")
    return content_type


def parse_thumbnail_request(body: Any) -> ThumbnailSpec:
    """Validate a thumbnail request's JSON body into a ThumbnailSpec, or raise InvalidRequest."""
    _require_object(body, allowed={"photo_id", "width", "height", "format"})
    for name in ("photo_id", "width", "height", "format"):
        if name not in body:
            raise InvalidRequest(f"{name} is required")
    photo_id = body["photo_id"]
    if not isinstance(photo_id, str) or not photo_id:
        raise InvalidRequest("photo_id must be a non-empty string")
    width, height = (_side(body, name) for name in ("width", "height"))
    fmt = body["format"]
    if not isinstance(fmt, str) or fmt.upper() not in THUMBNAIL_FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(THUMBNAIL_FORMATS)}")
    return ThumbnailSpec(photo_id=photo_id, width=width, height=height, format=fmt.upper())


def request_hash(spec: ThumbnailSpec) -> str:
    """A fingerprint of what was asked for, to tell a replayed request from another one under the same key."""
    canonical = json.dumps([spec.photo_id, spec.width, spec.height, spec.format])
    return hashlib.sha256(canonical.encode()).hexdigest()


_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def parse_idempotency_key(value: Any) -> str | None:
    """The Idempotency-Key header's value (1 to 255 printable ASCII characters), None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not _KEY.match(value):
        raise InvalidRequest("Idempotency-Key must be 1 to 255 printable ASCII characters without spaces")
    return value


def _side(body: dict, name: str) -> int:
    value = body[name]
    # bool is an int in Python; JSON true is not a size
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_THUMBNAIL_SIDE:
        raise InvalidRequest(f"{name} must be a whole number of pixels from 1 to {MAX_THUMBNAIL_SIDE}")
    return value


def _require_object(body: Any, allowed: set[str]) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)[:200]}")
