"""Photos, thumbnails and the monthly quota in DynamoDB."""

from __future__ import annotations

import time
from dataclasses import asdict, fields
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from thumbnailr.model import Photo, QuotaCharge, QuotaExceeded, Thumbnail
from thumbnailr.ports import PhotoRepository, ThumbnailRepository

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
QUOTA_RECORD_TTL = 400 * 24 * 3600  # a month's counter is kept a little over a year, then DynamoDB drops it


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    # DynamoDB numbers come back as Decimal; every number we store is a whole number
    return int(value) if type(value).__name__ == "Decimal" else value


def _build(cls, item: dict[str, Any]):
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in from_item(item).items() if k in known})


def _condition_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


def _cancelled(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "TransactionCanceledException"


def _scan(client, table: str, condition: str, names: dict[str, str], values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item matching ``condition``. A scan: the sweep runs every few minutes over one table, and
    a workshop's tables are small (at scale, a sparse index on pending items would serve it)."""
    items, start = [], None
    while True:
        page = client.scan(TableName=table, FilterExpression=condition, ExpressionAttributeNames=names,
                           ExpressionAttributeValues=to_item(values), ConsistentRead=True,
                           **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


class DynamoPhotoRepository(PhotoRepository):
    def __init__(self, client, table_name: str):
        self._client = client
        self._table = table_name

    def add(self, photo: Photo) -> None:
        self._client.put_item(
            TableName=self._table,
            Item=to_item(asdict(photo)),
            ConditionExpression="attribute_not_exists(photo_id)",
        )

    def get(self, photo_id: str) -> Photo | None:
        item = self._client.get_item(TableName=self._table, Key=to_item({"photo_id": photo_id}), ConsistentRead=True)
        return _build(Photo, item["Item"]) if "Item" in item else None

    def mark_ready(self, photo_id: str, width: int, height: int, format: str) -> bool:
        return self._settle(photo_id, {"status": "ready", "width": width, "height": height, "format": format}, remove=["reason"])

    def mark_rejected(self, photo_id: str, reason: str) -> bool:
        return self._settle(photo_id, {"status": "rejected", "reason": reason}, remove=["width", "height", "format"])

    def pending_since(self, before: str) -> list[Photo]:
        return [_build(Photo, item) for item in _scan(
            self._client, self._table, "#status = :pending AND created_at < :before",
            {"#status": "status"}, {":pending": "pending", ":before": before})]

    def _settle(self, photo_id: str, values: dict[str, Any], remove: list[str]) -> bool:
        """pending -> a final state (ready and rejected are never changed again); False if it was not pending."""
        names = {f"#{k}": k for k in [*values, *remove]}
        expression = "SET " + ", ".join(f"#{k} = :{k}" for k in values) + " REMOVE " + ", ".join(f"#{k}" for k in remove)
        try:
            self._client.update_item(
                TableName=self._table,
                Key=to_item({"photo_id": photo_id}),
                UpdateExpression=expression,
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_item({**{f":{k}": v for k, v in values.items()}, ":pending": "pending"}),
            )
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise
        return True


class DynamoThumbnailRepository(ThumbnailRepository):
    """Thumbnails and the quota they spend, kept consistent with DynamoDB transactions."""

    def __init__(self, client, thumbnails_table: str, quota_table: str | None = None):
        self._client = client
        self._table = thumbnails_table
        self._quota_table = quota_table

    @property
    def _quota(self) -> str:
        if not self._quota_table:
            raise RuntimeError("this function was not given the quota table (QUOTA_TABLE)")
        return self._quota_table

    def add(self, thumbnail: Thumbnail, charge: QuotaCharge) -> Thumbnail:
        # One transaction: the quota counter goes up only if it is under the limit, and only together
        # with the pending thumbnail. No read-modify-write, so concurrent requests cannot overspend.
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {"Update": {
                        "TableName": self._quota,
                        "Key": to_item({"user_id": charge.user_id, "month": charge.month}),
                        "UpdateExpression": "ADD used :one SET expires_at = if_not_exists(expires_at, :ttl)",
                        "ConditionExpression": "attribute_not_exists(used) OR used < :limit",
                        "ExpressionAttributeValues": to_item(
                            {":one": 1, ":limit": charge.limit, ":ttl": int(time.time()) + QUOTA_RECORD_TTL}
                        ),
                    }},
                    {"Put": {
                        "TableName": self._table,
                        "Item": to_item(asdict(thumbnail)),
                        "ConditionExpression": "attribute_not_exists(thumbnail_id)",
                    }},
                ]
            )
        except ClientError as error:
            if not _cancelled(error):
                raise
            # the id is taken (a replayed Idempotency-Key): that thumbnail is the answer, even at full quota
            existing = self.get(thumbnail.thumbnail_id)
            if existing is not None:
                return existing
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                raise QuotaExceeded(f"monthly quota of {charge.limit} thumbnails reached for {charge.month}") from error
            raise
        return thumbnail

    def get(self, thumbnail_id: str) -> Thumbnail | None:
        item = self._client.get_item(TableName=self._table, Key=to_item({"thumbnail_id": thumbnail_id}), ConsistentRead=True)
        return _build(Thumbnail, item["Item"]) if "Item" in item else None

    def start_attempt(self, thumbnail_id: str) -> int:
        result = self._client.update_item(
            TableName=self._table,
            Key=to_item({"thumbnail_id": thumbnail_id}),
            UpdateExpression="ADD attempts :one",
            ConditionExpression="attribute_exists(thumbnail_id)",
            ExpressionAttributeValues=to_item({":one": 1}),
            ReturnValues="UPDATED_NEW",
        )
        return from_item(result["Attributes"])["attempts"]

    def mark_ready(self, thumbnail_id: str) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=to_item({"thumbnail_id": thumbnail_id}),
                UpdateExpression="SET #status = :ready",
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item({":ready": "ready", ":pending": "pending"}),
            )
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise
        return True

    def mark_failed(self, thumbnail_id: str, reason: str) -> bool:
        # the failure alone: a refund that cannot apply must not cancel it (they were one transaction once)
        try:
            self._client.update_item(
                TableName=self._table,
                Key=to_item({"thumbnail_id": thumbnail_id}),
                UpdateExpression="SET #status = :failed, reason = :reason, refund = :due",
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item(
                    {":failed": "failed", ":pending": "pending", ":reason": reason, ":due": "due"}),
            )
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise
        return True

    def refund(self, thumbnail: Thumbnail) -> str:
        # The refund marks itself done in the same transaction as the counter goes down: once, exactly.
        key = to_item({"thumbnail_id": thumbnail.thumbnail_id})
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {"Update": {
                        "TableName": self._table,
                        "Key": key,
                        "UpdateExpression": "SET refund = :done",
                        "ConditionExpression": "refund = :due",
                        "ExpressionAttributeValues": to_item({":done": "done", ":due": "due"}),
                    }},
                    {"Update": {
                        "TableName": self._quota,
                        "Key": to_item({"user_id": thumbnail.owner, "month": thumbnail.quota_month}),
                        "UpdateExpression": "ADD used :minus_one",
                        "ConditionExpression": "used > :zero",
                        "ExpressionAttributeValues": to_item({":minus_one": -1, ":zero": 0}),
                    }},
                ]
            )
        except ClientError as error:
            if not _cancelled(error):
                raise
            current = self.get(thumbnail.thumbnail_id)
            if current is None or current.refund != "due":
                return "already"
            # the counter is at 0 (reset by an operator, or gone): nothing to give back, and never below 0
            try:
                self._client.update_item(
                    TableName=self._table, Key=key, UpdateExpression="SET refund = :skipped",
                    ConditionExpression="refund = :due",
                    ExpressionAttributeValues=to_item({":skipped": "skipped: the counter was at 0", ":due": "due"}),
                )
            except ClientError as again:
                if _condition_failed(again):
                    return "already"
                raise
            return "skipped"
        return "done"

    def unsettled(self, before: str) -> list[Thumbnail]:
        return [_build(Thumbnail, item) for item in _scan(
            self._client, self._table, "(#status = :pending AND created_at < :before) OR refund = :due",
            {"#status": "status"}, {":pending": "pending", ":before": before, ":due": "due"})]
