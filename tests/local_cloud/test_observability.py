"""Observability as on AWS, through the endpoint with boto3: Lambda's metrics, alarms on them, metrics embedded in
log lines (EMF), and one request followed through the app's functions by its correlation id."""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from tests.reliability import harness

pytestmark = pytest.mark.local_cloud

ROLE = "arn:aws:iam::123456789012:role/observed"
TOY = '''
import json

def handler(event, context):
    for line in event.get("lines", []):
        print(line)
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"ok": True}
'''


@pytest.fixture(scope="module")
def cloud(no_real_aws: list[str]) -> Iterator[Any]:
    """The app in a local cloud whose CloudWatch minute lasts 1 s (an alarm's 60 s period: 1 s)."""
    from tests.local_cloud.conftest import _cloud

    yield from _cloud(control=False, minute_s=1.0)


def _toy(cloud: Any) -> str:
    name = f"observed-{uuid.uuid4().hex[:8]}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", TOY)
    lam = cloud.client("lambda")
    lam.create_function(FunctionName=name, Runtime="python3.13", Handler="index.handler", Role=ROLE,
                        Code={"ZipFile": buffer.getvalue()}, Timeout=10)
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    return name


def _invoke(cloud: Any, name: str, qualifier: str | None = None, **event: Any) -> dict:
    return cloud.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode(),
                                         **({"Qualifier": qualifier} if qualifier else {}))


def _total(cloud: Any, metric: str, dimensions: dict[str, str], namespace: str = "AWS/Lambda",
           stat: str = "Sum") -> float | None:
    """``stat`` of the metric over the last 5 minutes, for exactly these dimensions (as CloudWatch matches them)."""
    now = datetime.now(timezone.utc)
    [result] = cloud.client("cloudwatch").get_metric_data(
        MetricDataQueries=[{"Id": "m", "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": metric,
                       "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]},
            "Period": 600, "Stat": stat}}],
        StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=5))["MetricDataResults"]
    return sum(result["Values"]) if result["Values"] else None


def _eventually(read: Any, expected: Any, timeout: float = 20.0) -> None:
    value = harness.poll(read, lambda v: v == expected, timeout=timeout, interval=0.2)
    assert value == expected


def test_invocations_errors_and_throttles_are_counted_per_function_and_alias(cloud: Any) -> None:
    name = _toy(cloud)
    for fail in (False, True, False, True, False):  # N = 5, k = 2
        _invoke(cloud, name, "live", fail=fail)
    function, alias = {"FunctionName": name}, {"FunctionName": name, "Resource": f"{name}:live"}
    for dimensions in (function, alias):
        _eventually(lambda d=dimensions: _total(cloud, "Invocations", d), 5.0)
        _eventually(lambda d=dimensions: _total(cloud, "Errors", d), 2.0)
    assert _total(cloud, "Duration", function, stat="p99") > 0  # durations are raw values: percentiles work

    lam = cloud.client("lambda")
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(lam.exceptions.TooManyRequestsException) as refused:
        _invoke(cloud, name)
    sent = refused.value.response["ResponseMetadata"]["RetryAttempts"] + 1  # boto3 retries a throttle itself
    _eventually(lambda: _total(cloud, "Throttles", function), float(sent))
    _eventually(lambda: _total(cloud, "Invocations", function), 5.0)  # a throttled request is not an invocation


def test_an_errors_alarm_goes_to_alarm_after_a_failing_call_and_back_to_ok(cloud: Any) -> None:
    name, cloudwatch = _toy(cloud), cloud.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=f"{name}-errors", Namespace="AWS/Lambda", MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": name}], Statistic="Sum", Period=60, EvaluationPeriods=1,
        Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching")

    def state() -> str:
        return cloudwatch.describe_alarms(AlarmNames=[f"{name}-errors"])["MetricAlarms"][0]["StateValue"]

    _invoke(cloud, name, fail=True)
    _eventually(state, "ALARM")
    _eventually(state, "OK")  # one quiet period later (a minute lasts 1 s here)


def test_an_emf_line_becomes_its_metric_and_a_broken_one_stays_a_plain_log_line(cloud: Any) -> None:
    name = _toy(cloud)
    namespace = f"Toy{uuid.uuid4().hex[:6]}"
    good = json.dumps({"_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [
        {"Namespace": namespace, "Dimensions": [["service", "format"]], "Metrics": [{"Name": "Made", "Unit": "Count"}]}]},
        "service": "toy", "format": "PNG", "Made": 3})
    broken = [good[:40], good.replace('"Made": 3', '"Made": "three"'), good + " and text after it"]
    _invoke(cloud, name, lines=[*broken, good])
    _eventually(lambda: _total(cloud, "Made", {"service": "toy", "format": "PNG"}, namespace), 3.0)

    logs = cloud.client("logs")
    messages = harness.poll(
        lambda: [e["message"].rstrip("\n") for e in logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]],
        lambda found: all(line in found for line in [*broken, good]), timeout=20)
    assert all(line in messages for line in broken)  # kept as they were, and the pipeline went on


def test_the_worker_logs_the_correlation_id_of_the_request_that_asked_for_the_thumbnail(cloud: Any) -> None:
    from benchmarks.photos import encode, realistic_photo

    api, auth = harness.Api(cloud), harness.new_user(cloud, "traced")
    photo_id = harness.upload(api, auth, encode(realistic_photo(120, 90, seed=8), "JPEG"))
    assert harness.wait_photo(api, auth, photo_id)["status"] == "ready"
    answer = requests.post(f"{cloud.api_url}thumbnails", headers=auth, timeout=30,
                           json={"photo_id": photo_id, "width": 32, "height": 32, "format": "PNG"})
    assert answer.status_code == 202, answer.text
    request_id = answer.headers["x-amzn-RequestId"]  # API Gateway's id of the request, as the client sees it
    assert harness.wait_thumbnail(api, auth, answer.json()["thumbnail_id"])["status"] == "ready"

    logs = cloud.client("logs")
    worker = f"/aws/lambda/{cloud.function_name('CreateThumbnailFunction')}"

    def correlated(group: str) -> list[dict]:
        events = logs.filter_log_events(logGroupName=group, filterPattern=f'"{request_id}"')["events"]
        return [json.loads(e["message"]) for e in events if e["message"].startswith("{")]

    lines = harness.poll(lambda: correlated(worker), bool, timeout=20)
    assert {line["message"] for line in lines} >= {"create command handled"}
    assert {line["correlation_id"] for line in lines} == {request_id}
    requester = f"/aws/lambda/{cloud.function_name('RequestThumbnailFunction')}"
    assert "thumbnail requested" in {line.get("message") for line in correlated(requester)}

    # and the app's own metrics, from the EMF lines Powertools printed
    _eventually(lambda: (_total(cloud, "ThumbnailsRequested", {"format": "PNG", "service": "thumbnailr"},
                                "Thumbnailr") or 0) >= 1, True)
    _eventually(lambda: (_total(cloud, "ThumbnailsCreated", {"format": "PNG", "service": "thumbnailr"},
                                "Thumbnailr") or 0) >= 1, True)
    _eventually(lambda: (_total(cloud, "PhotosUploaded", {"service": "thumbnailr"}, "Thumbnailr") or 0) >= 1, True)
