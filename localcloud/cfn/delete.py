"""Deleting a stack's resources from moto, one at a time (``localcloud.cfn.deployer`` orders them), and what a
stack's deletion leaves.

A bucket is emptied first; a resource already deleted by hand is skipped, as CloudFormation skips it.
Functions, roles, permissions and the API live in the local runtime, not in moto: nothing is deleted here for
them. ``delete_leftovers`` removes what Lambda and the local cloud made outside the stack: the queues behind S3
notifications and SNS subscriptions, the CloudWatch alarms on the stack's functions and their log groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from localcloud.cfn.stack import Stack
from localcloud.sdk import Clients

__all__ = ["delete_leftovers", "delete_resource"]

#: (resource type or kind, its name, what was done), one per thing deleted
Row = tuple[str, str, str]


def delete_resource(stack: Stack, clients: Clients, lid: str) -> Row | None:
    """Delete resource ``lid`` from moto (a bucket emptied first); None when nothing of it lives there."""
    rtype, ref = stack.resource_type(lid), stack.refs.get(lid)
    if ref is None:
        return None
    try:
        return _delete_resource(stack, clients, lid, rtype, ref)
    except Exception as error:  # noqa: BLE001 - deleted by hand already: CloudFormation skips it too
        if not _is_not_found(error):
            raise
        return rtype, _short(rtype, lid, ref), "already gone"


def delete_leftovers(stack: Stack, clients: Clients, internal_queues: Sequence[str] = ()) -> list[Row]:
    """What a stack's deletion leaves on AWS, deleted too: the local cloud's queues behind its event sources
    (``internal_queues``, in the order they were made), the alarms on its functions and their log groups."""
    done = _delete_queues(clients("sqs"), reversed(internal_queues))
    functions = {fn.name for fn in stack.functions()}
    # alarms may name a function as Lambda does or as the runtime runs it (the workshop's stack: its logical id)
    done += _delete_alarms(clients("cloudwatch"), functions | {fn.logical_id for fn in stack.functions()})
    done += _delete_log_groups(clients("logs"), functions)
    return done


def _delete_resource(stack: Stack, clients: Clients, lid: str, rtype: str, ref: str) -> Row | None:
    name = _short(rtype, lid, ref)
    if rtype == "AWS::S3::Bucket":
        emptied = _empty_bucket(clients("s3"), ref)
        clients("s3").delete_bucket(Bucket=ref)
        return rtype, name, f"deleted ({emptied} objects first)"
    if rtype == "AWS::DynamoDB::Table":
        clients("dynamodb").delete_table(TableName=ref)
    elif rtype == "AWS::SNS::Subscription":
        clients("sns").unsubscribe(SubscriptionArn=ref)
        return rtype, name, "unsubscribed"
    elif rtype == "AWS::SNS::Topic":
        clients("sns").delete_topic(TopicArn=ref)
    elif rtype == "AWS::SQS::Queue":
        clients("sqs").delete_queue(QueueUrl=ref)
    elif rtype == "AWS::Cognito::UserPoolClient":
        pool = stack.properties(lid).get("UserPoolId")
        clients("cognito-idp").delete_user_pool_client(UserPoolId=pool, ClientId=ref)
    elif rtype == "AWS::Cognito::UserPool":
        clients("cognito-idp").delete_user_pool(UserPoolId=ref)
    elif rtype == "AWS::Logs::LogGroup":
        clients("logs").delete_log_group(logGroupName=ref)
    elif rtype == "AWS::CloudWatch::Alarm":
        clients("cloudwatch").delete_alarms(AlarmNames=[ref])
    else:
        return None  # nothing of it lives in moto (functions, roles, permissions, the API: the runtime's)
    return rtype, name, "deleted"


def _empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object (and object version) of ``bucket``; returns how many."""
    count = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        items = [{"Key": o["Key"], "VersionId": o["VersionId"]}
                 for o in (page.get("Versions") or []) + (page.get("DeleteMarkers") or [])]
        for i in range(0, len(items), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": items[i:i + 1000], "Quiet": True})
        count += len(page.get("Versions") or [])
    return count


def _delete_queues(sqs: Any, names: Iterable[str]) -> list[Row]:
    done = []
    for name in names:
        try:
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])
            done.append(("local cloud queue", name, "deleted"))
        except sqs.exceptions.QueueDoesNotExist:
            pass
    return done


def _delete_alarms(cloudwatch: Any, functions: set[str]) -> list[Row]:
    done = []
    for alarm in cloudwatch.describe_alarms().get("MetricAlarms") or []:
        watched = {d["Value"] for d in alarm.get("Dimensions") or [] if d["Name"] == "FunctionName"}
        if watched & functions:
            cloudwatch.delete_alarms(AlarmNames=[alarm["AlarmName"]])
            done.append(("alarm", alarm["AlarmName"], "deleted"))
    return done


def _delete_log_groups(logs: Any, functions: set[str]) -> list[Row]:
    done = []
    groups = [g["logGroupName"] for page in logs.get_paginator("describe_log_groups").paginate(
        logGroupNamePrefix="/aws/lambda/") for g in page.get("logGroups") or []]
    for group in groups:
        if group[len("/aws/lambda/"):].split(":", 1)[0] in functions:  # Function or Function:N (a version)
            logs.delete_log_group(logGroupName=group)
            done.append(("log group", group, "deleted"))
    return done


def _is_not_found(error: Exception) -> bool:
    code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
    return any(word in code for word in ("NotFound", "NoSuch", "NonExistent", "DoesNotExist"))


def _short(rtype: str, lid: str, ref: str) -> str:
    """A resource's name for a table: bucket and table names, a topic's or queue's last part, else its logical id."""
    if rtype in ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::Logs::LogGroup"):
        return ref
    if rtype == "AWS::SNS::Topic":
        return ref.rsplit(":", 1)[-1]
    if rtype == "AWS::SQS::Queue":
        return ref.rsplit("/", 1)[-1]
    return lid
