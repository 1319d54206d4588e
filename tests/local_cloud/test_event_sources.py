"""Event sources as Lambda runs them: async retries and dead-letter queues, S3 and SNS event shapes,
DynamoDB stream batches (bisect, partial failures, OnFailure records), event filtering.

Toy functions (tests/local_cloud/handlers/flaky.py) are registered in the session's cloud next to
the app's; each writes every event it gets to its RECORD_FILE, so retries can be counted.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from localcloud.event_sources.filters import matches_filter
from localcloud.event_sources.shapes import s3_lambda_record, sns_lambda_event
from localcloud.lambda_service.spec import FunctionSpec
from localcloud.cfn.stack import AsyncConfig, S3NotificationModel, SnsSubscriptionModel, StreamMappingModel

pytestmark = pytest.mark.local_cloud

HANDLERS = Path(__file__).resolve().parent / "handlers"


def _toy(cloud: Any, handler: str, tmp_path: Path, **spec: Any) -> tuple[str, Path]:
    name = f"Toy{handler.title().replace('_', '')}{uuid.uuid4().hex[:6]}"
    record = tmp_path / f"{name}.jsonl"
    cloud.runtime.register(FunctionSpec(name=name, handler=f"flaky.{handler}", code_dir=HANDLERS,
                                        environment={"RECORD_FILE": str(record)}, timeout_s=10, **spec))
    return name, record


def _seen(record: Path) -> list[Any]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def _queue(cloud: Any) -> tuple[str, str]:
    sqs = cloud.client("sqs")
    url = sqs.create_queue(QueueName=f"test-dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _receive(cloud: Any, url: str, count: int = 1, timeout: float = 20.0) -> list[dict]:
    sqs, got = cloud.client("sqs"), []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                   MessageAttributeNames=["All"]).get("Messages", [])
    return got


def _wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


# --------------------------------------------------------------------------- asynchronous invocation


def test_async_failure_is_retried_twice_then_sent_to_the_dead_letter_queue(sns_cloud: Any, tmp_path: Path) -> None:
    name, record = _toy(sns_cloud, "always_fail", tmp_path)
    dlq_url, dlq_arn = _queue(sns_cloud)
    sns_cloud.event_sources.async_invoker.configure(name, AsyncConfig(max_retry_attempts=2, dead_letter_arn=dlq_arn))
    event = {"order": 42, "note": "fails every time"}
    started = time.monotonic()
    sns_cloud.invoke_async(name, event)

    messages = _receive(sns_cloud, dlq_url)
    assert len(messages) == 1
    assert json.loads(messages[0]["Body"]) == event  # the event itself, as Lambda sends it to a DLQ
    attributes = messages[0]["MessageAttributes"]
    assert attributes["ErrorCode"] == {"StringValue": "200", "DataType": "Number"}
    assert "always fails (invocation 3)" in attributes["ErrorMessage"]["StringValue"]
    assert len(attributes["RequestID"]["StringValue"]) == 36
    assert _seen(record) == [event, event, event]  # 1 + MaximumRetryAttempts
    assert time.monotonic() - started >= sum(sns_cloud.retry_delays)  # the retries waited
    outcome = [h for h in sns_cloud.event_sources.async_invoker.history if h["function"] == name]
    assert [(h["outcome"], h["attempts"], h["condition"]) for h in outcome] == [("failed", 3, "RetriesExhausted")]


def test_async_retry_that_succeeds_goes_to_on_success_not_the_dlq(sns_cloud: Any, tmp_path: Path) -> None:
    name, record = _toy(sns_cloud, "fail_first", tmp_path)
    dlq_url, dlq_arn = _queue(sns_cloud)
    ok_url, ok_arn = _queue(sns_cloud)
    sns_cloud.event_sources.async_invoker.configure(
        name, AsyncConfig(max_retry_attempts=2, dead_letter_arn=dlq_arn, on_success=ok_arn))
    sns_cloud.invoke_async(name, {"failures": 1})
    [message] = _receive(sns_cloud, ok_url)
    invocation_record = json.loads(message["Body"])
    assert invocation_record["requestContext"]["condition"] == "Success"
    assert invocation_record["requestContext"]["approximateInvokeCount"] == 2
    assert invocation_record["requestPayload"] == {"failures": 1}
    assert invocation_record["responsePayload"] == {"invocation": 2}
    assert len(_seen(record)) == 2
    assert _receive(sns_cloud, dlq_url, timeout=1.0) == []


def test_async_on_failure_destination_gets_an_invocation_record(sns_cloud: Any, tmp_path: Path) -> None:
    name, _ = _toy(sns_cloud, "always_fail", tmp_path)
    url, arn = _queue(sns_cloud)
    sns_cloud.event_sources.async_invoker.configure(name, AsyncConfig(max_retry_attempts=0, on_failure=arn))
    sns_cloud.invoke_async(name, {"x": 1})
    [message] = _receive(sns_cloud, url)
    record = json.loads(message["Body"])
    assert record["version"] == "1.0"
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestContext"]["functionArn"].endswith(f":function:{name}:$LATEST")
    assert record["requestPayload"] == {"x": 1}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["responsePayload"]["errorType"] == "RuntimeError"


def test_throttled_async_invocations_are_retried_without_counting(sns_cloud: Any, tmp_path: Path) -> None:
    name, record = _toy(sns_cloud, "slow_record", tmp_path, reserved_concurrency=1)
    sns_cloud.event_sources.async_invoker.configure(name, AsyncConfig(max_retry_attempts=0))
    for i in range(3):  # three at once, one environment allowed: two are throttled, and wait their turn
        sns_cloud.invoke_async(name, {"i": i, "seconds": 0.3})
    def outcomes() -> list[str]:
        return [h["outcome"] for h in sns_cloud.event_sources.async_invoker.history if h["function"] == name]

    _wait_for(lambda: len(outcomes()) == 3)
    assert outcomes() == ["success"] * 3
    assert sorted(e["i"] for e in _seen(record)) == [0, 1, 2]
    assert len([r for r in sns_cloud.runtime.records() if r.function == name]) == 1


def test_the_apps_worker_has_the_templates_async_config(sns_cloud: Any) -> None:
    functions = {f.name: f for f in sns_cloud.stack.functions()}
    dead_lettered = [f for f in functions.values() if f.async_config.dead_letter_arn]
    assert dead_lettered, "the template gives a function a DeadLetterQueue"
    for fn in dead_lettered:
        config = sns_cloud.event_sources.async_invoker.configs[fn.name]
        assert config == fn.async_config
        assert config.dead_letter_arn.endswith(":" + sns_cloud.outputs["DeadLetterQueueName"])


# --------------------------------------------------------------------------- S3 and SNS shapes


def test_s3_notification_event_shape_and_prefix_filter(sns_cloud: Any, tmp_path: Path) -> None:
    name, record = _toy(sns_cloud, "record", tmp_path)
    bucket = f"test-bucket-{uuid.uuid4().hex[:8]}"
    s3 = sns_cloud.client("s3")
    s3.create_bucket(Bucket=bucket)
    sns_cloud.event_sources.add_s3_notifications(bucket, [S3NotificationModel(
        bucket=bucket, bucket_logical_id="TestBucket", function=name, events=["s3:ObjectCreated:*"],
        filter_rules=[{"Name": "prefix", "Value": "in/"}], id="TestNotification")])
    s3.put_object(Bucket=bucket, Key="out/ignored.txt", Body=b"no")
    s3.put_object(Bucket=bucket, Key="in/a photo+1.jpg", Body=b"12345")
    _wait_for(lambda: len(_seen(record)) >= 1)
    assert sns_cloud.wait_idle(10)
    [event] = _seen(record)
    [rec] = event["Records"]
    assert rec["eventVersion"] == "2.1"
    assert rec["eventSource"] == "aws:s3"
    assert rec["awsRegion"] == "us-east-1"
    assert rec["eventName"] == "ObjectCreated:Put"
    assert rec["s3"]["s3SchemaVersion"] == "1.0"
    assert rec["s3"]["configurationId"] == "TestNotification"
    assert rec["s3"]["bucket"]["name"] == bucket
    assert rec["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{bucket}"
    assert rec["s3"]["object"]["key"] == "in/a+photo%2B1.jpg"  # URL-encoded, as S3 sends keys
    assert rec["s3"]["object"]["size"] == 5
    assert rec["s3"]["object"]["eTag"] and rec["s3"]["object"]["sequencer"]
    assert {"userIdentity", "requestParameters", "responseElements", "eventTime"} <= set(rec)


def test_sns_event_shape_and_filter_policy(sns_cloud: Any, tmp_path: Path) -> None:
    name, record = _toy(sns_cloud, "record", tmp_path)
    sns = sns_cloud.client("sns")
    topic = sns.create_topic(Name=f"test-topic-{uuid.uuid4().hex[:8]}")["TopicArn"]
    sub_arn = f"{topic}:{uuid.uuid4()}"
    sns_cloud.event_sources.add_sns_subscription(SnsSubscriptionModel(
        logical_id=f"TestSub{uuid.uuid4().hex[:6]}", arn=sub_arn, topic_arn=topic, function=name,
        filter_policy={"kind": ["wanted"]}))
    sns.publish(TopicArn=topic, Message="skip me", MessageAttributes={"kind": {"DataType": "String", "StringValue": "other"}})
    sns.publish(TopicArn=topic, Message='{"hello": "world"}', Subject="greeting",
                MessageAttributes={"kind": {"DataType": "String", "StringValue": "wanted"}})
    _wait_for(lambda: len(_seen(record)) >= 1)
    assert sns_cloud.wait_idle(10)
    [event] = _seen(record)
    [rec] = event["Records"]
    assert rec["EventSource"] == "aws:sns"
    assert rec["EventVersion"] == "1.0"
    assert rec["EventSubscriptionArn"] == sub_arn
    message = rec["Sns"]
    assert set(message) == {"Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp", "SignatureVersion",
                            "Signature", "SigningCertUrl", "UnsubscribeUrl", "MessageAttributes"}
    assert (message["Type"], message["TopicArn"], message["Subject"]) == ("Notification", topic, "greeting")
    assert message["Message"] == '{"hello": "world"}'
    assert message["MessageAttributes"] == {"kind": {"Type": "String", "Value": "wanted"}}
    assert sub_arn in message["UnsubscribeUrl"]


def test_shape_helpers() -> None:
    record = s3_lambda_record({"eventName": "ObjectCreated:Post",
                               "s3": {"bucket": {"name": "b"}, "object": {"key": "photos%2Fa+b.jpg", "size": 3}}})
    assert record["s3"]["object"]["key"] == "photos/a+b.jpg"
    assert record["eventVersion"] == "2.1" and record["eventSource"] == "aws:s3"
    event = sns_lambda_event({"Type": "Notification", "MessageId": "m", "TopicArn": "t", "Message": "x",
                              "Timestamp": "now", "SigningCertURL": "https://cert"}, "t:sub", "http://localhost:1")
    assert event["Records"][0]["Sns"]["Subject"] is None
    assert event["Records"][0]["Sns"]["SigningCertUrl"] == "https://cert"
    assert event["Records"][0]["Sns"]["MessageAttributes"] == {}


# --------------------------------------------------------------------------- DynamoDB streams


def _stream_table(cloud: Any, items: list[dict]) -> str:
    ddb = cloud.client("dynamodb")
    table = f"test-stream-{uuid.uuid4().hex[:8]}"
    arn = ddb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]["LatestStreamArn"]
    for item in items:
        ddb.put_item(TableName=table, Item=item)
    return arn


def _items(poison: set[int], count: int = 4) -> list[dict]:
    return [{"id": {"S": f"item{i}"}, **({"poison": {"BOOL": True}} if i in poison else {})} for i in range(1, count + 1)]


def test_stream_batch_bisected_retried_then_on_failure(sns_cloud: Any, tmp_path: Path) -> None:
    name, record = _toy(sns_cloud, "stream_all_or_nothing", tmp_path)
    dlq_url, dlq_arn = _queue(sns_cloud)
    stream_arn = _stream_table(sns_cloud, _items(poison={3}))
    poller = sns_cloud.event_sources.add_stream_mapping(StreamMappingModel(
        logical_id="TestBisect", uuid=str(uuid.uuid4()), function=name, event_source_arn=stream_arn,
        starting_position="TRIM_HORIZON", batch_size=4, maximum_retry_attempts=1, bisect_on_error=True,
        on_failure=dlq_arn))
    [message] = _receive(sns_cloud, dlq_url)
    _wait_for(lambda: len(_seen(record)) >= 6 and len(poller.invocations) >= 6)
    seqs = _seen(record)[0]  # the first batch: all four records, in order
    assert len(seqs) == 4
    s1, s2, s3, s4 = seqs
    # [1 2 3 4] fails -> split: [1 2] ok, [3 4] fails -> split: [3] fails, retried once, fails: skipped; [4] ok
    assert _seen(record) == [[s1, s2, s3, s4], [s1, s2], [s3, s4], [s3], [s3], [s4]]
    assert [i["outcome"] for i in poller.invocations] == ["error", "ok", "error", "error", "error", "ok"]

    failure = json.loads(message["Body"])
    from aws_lambda_powertools.utilities.parser.models.dynamodb import DynamoDBStreamLambdaOnFailureDestinationModel

    DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(failure)  # the shape Lambda sends
    info = failure["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (s3, s3, 1)
    assert info["streamArn"] == stream_arn
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 2
    assert failure["responseContext"]["functionError"] == "Unhandled"
    assert "Records" not in failure  # metadata about the batch, not the records


def test_stream_report_batch_item_failures_retries_from_the_first_failure(sns_cloud: Any, tmp_path: Path) -> None:
    name, record = _toy(sns_cloud, "stream_partial", tmp_path)
    dlq_url, dlq_arn = _queue(sns_cloud)
    stream_arn = _stream_table(sns_cloud, _items(poison={3}, count=5))
    sns_cloud.event_sources.add_stream_mapping(StreamMappingModel(
        logical_id="TestPartial", uuid=str(uuid.uuid4()), function=name, event_source_arn=stream_arn,
        starting_position="TRIM_HORIZON", batch_size=4, maximum_retry_attempts=2, bisect_on_error=True,
        report_batch_item_failures=True, on_failure=dlq_arn))
    [message] = _receive(sns_cloud, dlq_url)
    _wait_for(lambda: len(_seen(record)) >= 4)
    s1, s2, s3, s4 = _seen(record)[0]
    # a partial failure resumes at the failed record, not halved: [3 4] retried twice, then skipped; then [5]
    assert _seen(record)[:3] == [[s1, s2, s3, s4], [s3, s4], [s3, s4]]
    assert len(_seen(record)[3]) == 1 and _seen(record)[3][0] > s4
    info = json.loads(message["Body"])["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (s3, s4, 2)
    assert json.loads(message["Body"])["requestContext"]["approximateInvokeCount"] == 3
    assert "functionError" not in json.loads(message["Body"])["responseContext"]


def test_stream_filter_criteria_drop_records_before_the_function(sns_cloud: Any, tmp_path: Path) -> None:
    name, record = _toy(sns_cloud, "record", tmp_path)
    stream_arn = _stream_table(sns_cloud, [])
    sns_cloud.event_sources.add_stream_mapping(StreamMappingModel(
        logical_id="TestFilter", uuid=str(uuid.uuid4()), function=name, event_source_arn=stream_arn,
        starting_position="LATEST", batch_size=10, filters=[{"eventName": ["INSERT"]}]))
    ddb = sns_cloud.client("dynamodb")
    table = stream_arn.split("/")[1]
    ddb.put_item(TableName=table, Item={"id": {"S": "a"}, "v": {"N": "1"}, "b": {"B": b"\x00\x01"}})
    ddb.put_item(TableName=table, Item={"id": {"S": "a"}, "v": {"N": "2"}})  # MODIFY: filtered out
    ddb.put_item(TableName=table, Item={"id": {"S": "b"}, "v": {"N": "3"}})
    _wait_for(lambda: sum(len(e["Records"]) for e in _seen(record)) >= 2)
    assert sns_cloud.wait_idle(10)
    records = [r for e in _seen(record) for r in e["Records"]]
    assert [(r["eventName"], r["dynamodb"]["Keys"]) for r in records] == [
        ("INSERT", {"id": {"S": "a"}}), ("INSERT", {"id": {"S": "b"}})]
    first = records[0]
    assert (first["eventSource"], first["eventVersion"], first["eventSourceARN"]) == ("aws:dynamodb", "1.1", stream_arn)
    assert first["dynamodb"]["NewImage"]["b"] == {"B": "AAE="}  # binary as base64, as in Lambda's JSON
    assert isinstance(first["dynamodb"]["ApproximateCreationDateTime"], float)
    assert first["dynamodb"]["StreamViewType"] == "NEW_IMAGE"


def test_filter_patterns() -> None:
    event = {"eventName": "INSERT", "dynamodb": {"NewImage": {"status": {"S": "pending"}, "n": {"N": "5"}}},
             "tags": ["a", "b"]}
    assert matches_filter({"eventName": ["INSERT"]}, event)
    assert not matches_filter({"eventName": ["MODIFY", "REMOVE"]}, event)
    assert matches_filter({"dynamodb": {"NewImage": {"status": {"S": ["pending"]}}}}, event)
    assert matches_filter({"dynamodb": {"NewImage": {"status": {"S": [{"prefix": "pend"}]}}}}, event)
    assert matches_filter({"eventName": [{"anything-but": ["REMOVE"]}]}, event)
    assert not matches_filter({"eventName": [{"anything-but": "INSERT"}]}, event)
    assert matches_filter({"dynamodb": {"NewImage": {"n": {"N": [{"numeric": [">", 1, "<=", 5]}]}}}}, {
        "dynamodb": {"NewImage": {"n": {"N": 5}}}})
    assert matches_filter({"missing": [{"exists": False}]}, event)
    assert not matches_filter({"eventName": [{"exists": False}]}, event)
    assert matches_filter({"tags": ["b"]}, event)
    assert matches_filter({"eventName": [{"equals-ignore-case": "insert"}]}, event)
    assert not matches_filter({"dynamodb": {"OldImage": {"status": {"S": ["x"]}}}}, event)


# --------------------------------------------------------------------------- schedules and the internal pollers


def _schedule_template(expression: str, **rule: Any) -> dict:
    from localcloud.cfn.transform import sam_transform

    sam = {"AWSTemplateFormatVersion": "2010-09-09", "Transform": "AWS::Serverless-2016-10-31", "Resources": {
        "Fn": {"Type": "AWS::Serverless::Function", "Properties": {
            "Handler": "index.handler", "Runtime": "python3.13", "InlineCode": "def handler(e, c): return e",
            "Events": {"Tick": {"Type": "Schedule", "Properties": {"Schedule": expression, **rule}}}}}}}
    return sam_transform(sam, {}).template


def test_a_sam_schedule_becomes_a_rule_run_on_a_scaled_minute() -> None:
    from localcloud.cfn.stack import Stack
    from localcloud.event_sources.schedules import ScheduleRunner

    stack = Stack.from_template(_schedule_template("rate(5 minutes)"), stack_name="sched").predict()
    [rule] = stack.schedules()
    assert (rule.rate_minutes, rule.enabled, rule.input) == (5, True, None)
    assert rule.functions == [str(stack.refs["Fn"])]
    sent: list[tuple[str, Any]] = []
    runner = ScheduleRunner([rule], lambda fn, event: sent.append((fn, event)), minute_s=0.02,
                            region="us-east-1", account_id="123456789012")
    assert runner.period_s(rule) == pytest.approx(0.1)
    runner.start()
    _wait_for(lambda: len(sent) >= 2, timeout=5)
    runner.stop()
    fn, event = sent[0]
    assert fn == rule.functions[0]
    assert (event["source"], event["detail-type"], event["resources"], event["detail"]) == (
        "aws.events", "Scheduled Event", [rule.arn], {})


@pytest.mark.parametrize("expression, reason", [("cron(0 12 * * ? *)", "rate("), ("rate(1 fortnight)", "rate(")])
def test_a_schedule_the_local_cloud_cannot_run_is_refused(expression: str, reason: str) -> None:
    from localcloud.cfn.stack import Stack

    stack = Stack.from_template(_schedule_template(expression), stack_name="sched").predict()
    assert stack.schedules() == []
    [(lid, why)] = stack.refused
    assert lid.startswith("Fn") and reason in why


def test_an_internal_poller_deletes_a_message_only_once_it_was_handled(sns_cloud: Any) -> None:
    import threading

    from localcloud.event_sources.sources import _QueuePoller

    sqs = sns_cloud.client("sqs")
    url = sqs.create_queue(QueueName=f"test-poll-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="fails twice")
    calls: list[str] = []

    def handle(body: str) -> None:
        calls.append(body)
        if len(calls) <= 2:
            raise RuntimeError("not now")

    stopped = threading.Event()
    poller = _QueuePoller("test", sns_cloud.client, url, handle, stopped, max_receives=5)
    poller.thread.start()
    try:
        _wait_for(lambda: len(calls) >= 3, timeout=20)  # back after 1 s, then 2 s: not deleted on failure
        _wait_for(lambda: int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                              ["ApproximateNumberOfMessages"]) == 0, timeout=5)
        time.sleep(1.5)
        assert calls == ["fails twice"] * 3  # handled once it succeeded, then deleted: never again
    finally:
        stopped.set()
        poller.thread.join(5)


# --------------------------------------------------------------------------- the event sources' metrics in CloudWatch


def _lambda_metric(cloud: Any, metric: str, function: str, stat: str = "Sum") -> float | None:
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    [result] = cloud.client("cloudwatch").get_metric_data(
        MetricDataQueries=[{"Id": "m", "MetricStat": {"Period": 600, "Stat": stat, "Metric": {
            "Namespace": "AWS/Lambda", "MetricName": metric,
            "Dimensions": [{"Name": "FunctionName", "Value": function}]}}}],
        StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=5))["MetricDataResults"]
    return sum(result["Values"]) if result["Values"] else None


def test_an_async_event_given_up_counts_as_received_aged_dropped_and_its_lost_deliveries(sns_cloud: Any,
                                                                                        tmp_path: Path) -> None:
    name, record = _toy(sns_cloud, "always_fail", tmp_path)
    gone = f"arn:aws:sqs:{sns_cloud.region}:123456789012:no-such-queue-{uuid.uuid4().hex[:6]}"
    sns_cloud.event_sources.async_invoker.configure(
        name, AsyncConfig(max_retry_attempts=1, dead_letter_arn=gone, on_failure=gone))
    sns_cloud.invoke_async(name, {"x": 1})
    _wait_for(lambda: any(h["function"] == name for h in sns_cloud.event_sources.async_invoker.history))
    expected = {("AsyncEventsReceived", "Sum"): 1.0, ("AsyncEventAge", "SampleCount"): 2.0,  # one per attempt
                ("AsyncEventsDropped", "Sum"): 1.0, ("DeadLetterErrors", "Sum"): 1.0,
                ("DestinationDeliveryFailures", "Sum"): 1.0}
    _wait_for(lambda: {k: _lambda_metric(sns_cloud, *k[:1], name, k[1]) for k in expected} == expected)
    assert _lambda_metric(sns_cloud, "AsyncEventAge", name, "Maximum") >= sum(sns_cloud.retry_delays[:1]) * 1000


def test_a_stream_batch_reports_the_age_of_its_last_record(sns_cloud: Any, tmp_path: Path) -> None:
    name, record = _toy(sns_cloud, "stream_all_or_nothing", tmp_path)
    stream_arn = _stream_table(sns_cloud, _items(poison=set()))
    time.sleep(0.5)  # the records are half a second old when the mapping reads them
    sns_cloud.event_sources.add_stream_mapping(StreamMappingModel(
        logical_id="TestAge", uuid=str(uuid.uuid4()), function=name, event_source_arn=stream_arn,
        starting_position="TRIM_HORIZON", batch_size=10, maximum_retry_attempts=0))
    _wait_for(lambda: _lambda_metric(sns_cloud, "IteratorAge", name, "SampleCount") == 1.0)
    assert 400 <= _lambda_metric(sns_cloud, "IteratorAge", name, "Maximum") < 20_000
