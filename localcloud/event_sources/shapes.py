"""The events Lambda gets from S3, SNS and DynamoDB streams, as ``sam local generate-event`` prints them."""

from __future__ import annotations

import base64
import datetime as _dt
import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus, unquote_plus

log = logging.getLogger(__name__)


def s3_lambda_record(record: Mapping[str, Any], *, source_ip: str = "127.0.0.1") -> dict[str, Any]:
    """moto's S3 event record, completed into the record Lambda gets from S3 (event version 2.1)."""
    rec = json.loads(json.dumps(record))
    rec.setdefault("eventVersion", "2.1")
    rec.setdefault("eventSource", "aws:s3")
    rec.setdefault("userIdentity", {"principalId": "AWS:AIDAWORKSHOPLOCALUSER"})
    rec.setdefault("requestParameters", {"sourceIPAddress": source_ip})
    rec.setdefault("responseElements", {
        "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
        "x-amz-id-2": base64.b64encode(uuid.uuid4().bytes * 2).decode(),
    })
    s3 = rec.setdefault("s3", {})
    s3.setdefault("s3SchemaVersion", "1.0")
    s3.setdefault("bucket", {}).setdefault("ownerIdentity", {"principalId": "A3WORKSHOPLOCAL"})
    obj = s3.setdefault("object", {})
    if "key" in obj:
        # S3 URL-encodes the key in notifications ("a b.jpg" -> "a+b.jpg"), keeping "/" (moto encodes it too)
        obj["key"] = quote_plus(unquote_plus(obj["key"]), safe="/")
    obj.setdefault("sequencer", f"{time.time_ns() // 1000:016X}")
    return rec


def sns_lambda_event(envelope: Mapping[str, Any], subscription_arn: str, endpoint_url: str) -> dict[str, Any]:
    """An SNS HTTP/SQS envelope (raw delivery off) -> the event SNS gives a subscribed function."""
    unsubscribe = envelope.get("UnsubscribeURL") or envelope.get("UnsubscribeUrl") or \
        f"{endpoint_url.rstrip('/')}/?Action=Unsubscribe&SubscriptionArn={subscription_arn}"
    if "SubscriptionArn=" in unsubscribe:
        unsubscribe = unsubscribe.split("SubscriptionArn=")[0] + f"SubscriptionArn={subscription_arn}"
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": envelope.get("Type", "Notification"),
                    "MessageId": envelope.get("MessageId"),
                    "TopicArn": envelope.get("TopicArn"),
                    "Subject": envelope.get("Subject") or None,
                    "Message": envelope.get("Message"),
                    "Timestamp": envelope.get("Timestamp"),
                    "SignatureVersion": envelope.get("SignatureVersion", "1"),
                    "Signature": envelope.get("Signature", ""),
                    "SigningCertUrl": envelope.get("SigningCertURL") or envelope.get("SigningCertUrl", ""),
                    "UnsubscribeUrl": unsubscribe,
                    "MessageAttributes": envelope.get("MessageAttributes") or {},
                },
            }
        ]
    }


def _attribute_json(value: Any) -> Any:
    """boto3's parsed AttributeValue back to DynamoDB JSON (bytes -> base64)."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {k: _attribute_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_attribute_json(v) for v in value]
    return value


def dynamodb_stream_record(record: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A ``GetRecords`` record (as boto3 parses it) -> the record Lambda puts in a stream event."""
    dynamodb = dict(record.get("dynamodb") or {})
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, _dt.datetime):
        dynamodb["ApproximateCreationDateTime"] = float(int(created.timestamp()))
    for key in ("Keys", "NewImage", "OldImage"):
        if key in dynamodb:
            dynamodb[key] = _attribute_json(dynamodb[key])
    out = {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if record.get("userIdentity"):
        out["userIdentity"] = record["userIdentity"]
    return out
