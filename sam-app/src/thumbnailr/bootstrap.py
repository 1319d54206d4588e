"""Wiring: AWS clients and adapters, built once per execution environment from the environment variables.

Everything is built on first use and then cached, so an execution environment pays for a client
once, and tests can aim the whole app at moto and call ``reset()`` between cases.
"""

from __future__ import annotations

import functools
import os

import boto3
from botocore.config import Config

from thumbnailr.ports import CommandDispatcher, NoDispatch

# Standard retry mode backs off on throttling and 5xx; short timeouts keep a stuck call from
# eating the whole Lambda timeout.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


@functools.cache
def client(service: str):
    config = _CONFIG
    if service == "s3":
        # SigV4 presigned URLs (SigV2 is deprecated); path-style when aimed at a local endpoint,
        # whose host name cannot take a bucket name in front of it
        style = "path" if os.environ.get("AWS_ENDPOINT_URL") else "auto"
        config = config.merge(Config(signature_version="s3v4", s3={"addressing_style": style}))
    return boto3.session.Session().client(service, config=config)


def env(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError:
        raise RuntimeError(f"environment variable {name} is not set: the template passes it to this function") from None


@functools.cache
def photos():
    from thumbnailr.adapters.dynamodb import DynamoPhotoRepository

    return DynamoPhotoRepository(client("dynamodb"), env("PHOTOS_TABLE"))


@functools.cache
def thumbnails():
    from thumbnailr.adapters.dynamodb import DynamoThumbnailRepository

    # only the functions that spend or refund quota are given its table
    return DynamoThumbnailRepository(client("dynamodb"), env("THUMBNAILS_TABLE"), os.environ.get("QUOTA_TABLE"))


@functools.cache
def photos_store():
    from thumbnailr.adapters.s3 import S3ObjectStore

    return S3ObjectStore(client("s3"), env("PHOTOS_BUCKET"))


@functools.cache
def thumbnails_store():
    from thumbnailr.adapters.s3 import S3ObjectStore

    return S3ObjectStore(client("s3"), env("THUMBNAILS_BUCKET"))


@functools.cache
def dispatcher() -> CommandDispatcher:
    if env("DISPATCH") == "stream":
        return NoDispatch()
    from thumbnailr.adapters.sns import SnsCommandDispatcher

    return SnsCommandDispatcher(client("sns"), env("COMMANDS_TOPIC_ARN"))


def monthly_quota() -> int:
    return int(env("MONTHLY_QUOTA"))


def max_attempts() -> int:
    return int(os.environ.get("MAX_ATTEMPTS", "3"))


def pending_deadline_s() -> int:
    """How long a thumbnail or photo may stay pending before the sweep ends it (the template sets it)."""
    return int(os.environ.get("PENDING_DEADLINE_SECONDS", "1200"))


def reset() -> None:
    """Forget every client and adapter (tests call this when they change the environment)."""
    for built in (client, photos, thumbnails, photos_store, thumbnails_store, dispatcher):
        built.cache_clear()
