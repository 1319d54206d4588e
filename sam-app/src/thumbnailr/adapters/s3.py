"""Photos and thumbnails as S3 objects, and presigned URLs to move them without passing through Lambda."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from thumbnailr.model import PhotoMissing
from thumbnailr.ports import ObjectStore


class S3ObjectStore(ObjectStore):
    def __init__(self, client, bucket: str):
        self._client = client
        self._bucket = bucket

    def read(self, key: str) -> bytes:
        try:
            return self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise PhotoMissing(key) from error
            raise

    def write(self, key: str, data: bytes, content_type: str) -> None:
        self._client.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)

    def write_new(self, key: str, data: bytes, content_type: str) -> bool:
        # S3 conditional write: https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type, IfNoneMatch="*")
        except ClientError as error:
            if error.response["Error"]["Code"] in ("PreconditionFailed", "412"):
                return False
            raise  # ConditionalRequestConflict (409, a concurrent write) included: retried by Lambda
        return True

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self._bucket, Key=key)

    def presign_get(self, key: str, expires_in: int) -> str:
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
        )

    def presign_post(self, key: str, content_type: str, max_bytes: int, expires_in: int) -> dict[str, Any]:
        return self._client.generate_presigned_post(
            Bucket=self._bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in,
        )
