"""What the core needs from the outside world. Adapters implement these for AWS; tests use fakes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from thumbnailr.model import Photo, QuotaCharge, Thumbnail


class PhotoRepository(ABC):
    @abstractmethod
    def add(self, photo: Photo) -> None: ...

    @abstractmethod
    def get(self, photo_id: str) -> Photo | None: ...

    @abstractmethod
    def mark_ready(self, photo_id: str, width: int, height: int, format: str) -> bool:
        """pending -> ready; False if it was not pending (ready and rejected are final)."""

    @abstractmethod
    def mark_rejected(self, photo_id: str, reason: str) -> bool:
        """pending -> rejected with a reason; False if it was not pending."""

    @abstractmethod
    def pending_since(self, before: str) -> list[Photo]:
        """Photos still pending that were recorded before ``before`` (an ISO timestamp)."""


class ThumbnailRepository(ABC):
    @abstractmethod
    def add(self, thumbnail: Thumbnail, charge: QuotaCharge) -> Thumbnail:
        """Record a pending thumbnail and spend one unit of quota, both or neither; QuotaExceeded past the limit.

        Returns the thumbnail stored under its id: ``thumbnail``, or the one already there (nothing spent).
        """

    @abstractmethod
    def get(self, thumbnail_id: str) -> Thumbnail | None: ...

    @abstractmethod
    def start_attempt(self, thumbnail_id: str) -> int:
        """Count one more attempt at creating a pending thumbnail; returns the count."""

    @abstractmethod
    def mark_ready(self, thumbnail_id: str) -> bool:
        """pending -> ready; False if it was not pending (a duplicate got there first)."""

    @abstractmethod
    def mark_failed(self, thumbnail_id: str, reason: str) -> bool:
        """pending -> failed with a reason and its refund due; False if it was not pending."""

    @abstractmethod
    def refund(self, thumbnail: Thumbnail) -> str:
        """Give back the unit a failed thumbnail spent, once: "done", "already" (done before) or "skipped" (the
        counter was at 0: a reset or a new counter). Never cancels the failure, never takes the counter below 0."""

    @abstractmethod
    def unsettled(self, before: str) -> list[Thumbnail]:
        """Thumbnails pending since before ``before`` (an ISO timestamp), and failed ones whose refund is due."""


class ObjectStore(ABC):
    @abstractmethod
    def read(self, key: str) -> bytes:
        """The object's bytes; PhotoMissing if there is no such object."""

    @abstractmethod
    def write(self, key: str, data: bytes, content_type: str) -> None: ...

    @abstractmethod
    def write_new(self, key: str, data: bytes, content_type: str) -> bool:
        """Write ``data`` only if ``key`` holds nothing yet; False (and nothing written) if it does."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def presign_get(self, key: str, expires_in: int) -> str: ...

    @abstractmethod
    def presign_post(self, key: str, content_type: str, max_bytes: int, expires_in: int) -> dict[str, Any]:
        """A browser-style upload form: {"url", "fields"}, whose policy pins the key, type and size."""


class CommandDispatcher(ABC):
    @abstractmethod
    def send(self, command: dict[str, Any]) -> None: ...


class NoDispatch(CommandDispatcher):
    """Dispatch by the thumbnails table's stream: writing the pending thumbnail already sent the command."""

    def send(self, command: dict[str, Any]) -> None:
        return None
