"""The fixes the local cloud's moto process carries, against that process itself."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from localcloud.sdk import Clients

pytestmark = pytest.mark.local_cloud


def test_a_cancelled_transaction_leaves_the_stream_readable_and_without_its_writes(moto_clients: Clients) -> None:
    ddb, streams = moto_clients("dynamodb"), moto_clients("dynamodbstreams")
    arn = ddb.create_table(
        TableName="rollback", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]
    ddb.put_item(TableName="rollback", Item={"id": {"S": "taken"}})

    with pytest.raises(ClientError, match="TransactionCanceled"):  # the Put applies before the check fails
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": "rollback", "Item": {"id": {"S": "rolled-back"}}}},
            {"Put": {"TableName": "rollback", "Item": {"id": {"S": "taken"}},
                     "ConditionExpression": "attribute_not_exists(id)"}},
        ])
    ddb.put_item(TableName="rollback", Item={"id": {"S": "after"}})

    page = streams.get_records(ShardIterator=iterator)  # the iterator taken before the rollback
    assert [(r["eventName"], r["dynamodb"]["Keys"]["id"]["S"]) for r in page["Records"]] == [
        ("INSERT", "taken"), ("INSERT", "after")]
    assert "Item" not in ddb.get_item(TableName="rollback", Key={"id": {"S": "rolled-back"}})


def test_get_metric_data_gives_percentiles_of_raw_values_only(moto_clients: Clients) -> None:
    from datetime import datetime, timedelta, timezone

    cloudwatch, now = moto_clients("cloudwatch"), datetime.now(timezone.utc)
    cloudwatch.put_metric_data(Namespace="Test", MetricData=[
        {"MetricName": "Latency", "Values": [float(v) for v in range(100, 0, -1)], "Unit": "Milliseconds"},
        {"MetricName": "Summed", "StatisticValues": {"SampleCount": 2, "Sum": 3, "Minimum": 1, "Maximum": 2}}])

    def stat(name: str, statistic: str) -> list[float]:
        [result] = cloudwatch.get_metric_data(
            MetricDataQueries=[{"Id": "q", "MetricStat": {"Metric": {"Namespace": "Test", "MetricName": name},
                                                          "Period": 300, "Stat": statistic}}],
            StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=5))["MetricDataResults"]
        return result["Values"]

    assert stat("Latency", "p50") == [50.0]
    assert stat("Latency", "p99") == [99.0]
    assert stat("Latency", "p99.9") == [100.0]
    assert stat("Latency", "Average") == [50.5]  # the other statistics are moto's own
    assert stat("Summed", "p50") == []  # a statistic set has no percentiles
