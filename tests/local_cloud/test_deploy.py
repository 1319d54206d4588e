"""workshop.deploy: CodeDeploy's schedules, and what a stack leaves in an account."""

from __future__ import annotations

import pytest

from workshop import deploy


def test_schedules_of_the_predefined_configurations() -> None:
    assert deploy.traffic_schedule("Canary10Percent5Minutes") == [(0.0, 0.1), (5.0, 1.0)]
    linear = deploy.traffic_schedule("Linear10PercentEvery1Minute")
    assert len(linear) == 10 and linear[0] == (0.0, 0.1) and linear[-1] == (9.0, 1.0)
    assert deploy.traffic_schedule("AllAtOnce") == [(0.0, 1.0)]
    with pytest.raises(ValueError, match="unknown deployment preference"):
        deploy.traffic_schedule("Canary10PercentSoon")


def test_leftovers_are_the_stacks_own_and_the_notebooks_functions(sns_cloud: object) -> None:
    # GIVEN the app's stack, and a bucket and a table of someone else's in the same account
    s3, ddb = sns_cloud.client("s3"), sns_cloud.client("dynamodb")
    s3.create_bucket(Bucket="someone-elses-bucket")
    ddb.create_table(TableName="someone-elses-table", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    try:
        found = deploy.leftovers(sns_cloud)
        # THEN the stack's resources are listed by kind, and the others' are not
        outputs = sns_cloud.outputs
        assert outputs["PhotosBucketName"] in found["buckets"] and "someone-elses-bucket" not in found["buckets"]
        assert outputs["PhotosTableName"] in found["tables"] and "someone-elses-table" not in found["tables"]
        assert outputs["CommandsTopicName"] in found["topics"]
        assert outputs["DeadLetterQueueName"] in found["queues"]
        assert sns_cloud.function_name("PingFunction") in found["functions"]
        assert all(name.startswith("thumbnailr-") for kind in found for name in found[kind]
                   if kind not in ("log groups", "functions"))
        # AND a stack that is not there has nothing left
        assert deploy.leftovers(sns_cloud, stack_name="no-such-stack") == {}
    finally:
        s3.delete_bucket(Bucket="someone-elses-bucket")
        ddb.delete_table(TableName="someone-elses-table")
