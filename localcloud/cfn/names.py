"""Physical names, ids and ARNs of a stack's resources, as CloudFormation makes them, without AWS.

A name the template gives is used; otherwise ``<stack>-<LogicalId>-<SUFFIX>`` (lower case for
buckets), with a suffix derived from the stack name and logical id instead of a random one, so that
names are the same at every ``up``. Functions are the exception: locally a function's name is its
logical id (as with ``sam local invoke PingFunction``), so its log group is ``/aws/lambda/<LogicalId>``.
``Names.predicted`` gives what a resource's ``Ref`` and ``Fn::GetAtt`` would be (placeholders for the
ids AWS makes up); provisioning replaces them with moto's answers where moto makes the resource.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ARN_ATTRIBUTE", "NAME_ATTRIBUTE", "Names", "suffix"]

#: The attribute that holds a resource's name where its ``Ref`` gives something else (an ARN, a URL).
NAME_ATTRIBUTE = {"AWS::SNS::Topic": "TopicName", "AWS::SQS::Queue": "QueueName"}
#: The attribute that holds a resource's ARN where it is not ``Arn``.
ARN_ATTRIBUTE = {"AWS::SNS::Topic": "TopicArn"}

#: (names, logical id, resolved properties) -> (what Ref gives, {attribute: what Fn::GetAtt gives})
_Predictor = Callable[["Names", str, Mapping[str, Any]], tuple[Any, dict[str, Any]]]


def suffix(*parts: str, length: int = 12) -> str:
    """A CloudFormation-like physical-id suffix (``1A2B3C4D5E6F``), stable for the same inputs."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return base64.b32encode(digest).decode().rstrip("=")[:length].replace("=", "A")


class Names:
    """How one stack (name, region, account) names its resources."""

    def __init__(self, stack_name: str, region: str, account_id: str) -> None:
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
        self.url_suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
        self.stack_id = (
            f"arn:{self.partition}:cloudformation:{region}:{account_id}:stack/{stack_name}/"
            f"{uuid.uuid5(uuid.NAMESPACE_URL, f'{account_id}/{region}/{stack_name}')}"
        )

    def pseudo_parameters(self) -> dict[str, Any]:
        """What ``AWS::StackName``, ``AWS::Region``... give in this stack (``AWS::NoValue`` aside)."""
        return {
            "AWS::StackName": self.stack_name,
            "AWS::AccountId": self.account_id,
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": self.url_suffix,
            "AWS::StackId": self.stack_id,
            "AWS::NotificationARNs": [],
        }

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (f"arn:{self.partition}:{service}:{self.region if region else ''}:"
                f"{self.account_id if account else ''}:{resource}")

    def generated_name(self, lid: str, *, lower: bool = False, max_length: int = 255) -> str:
        """CloudFormation's name for a resource the template does not name: ``stack-LogicalId-SUFFIX``."""
        tail = suffix(self.stack_name, lid)
        head = f"{self.stack_name}-{lid}"[: max_length - len(tail) - 1]
        name = f"{head}-{tail}"
        return name.lower() if lower else name

    def predicted(self, rtype: str, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        """What ``Ref``/``Fn::GetAtt`` would give for resource ``lid`` of type ``rtype`` with (resolved)
        properties ``props``, computed without AWS."""
        predictor = _PREDICTORS.get(rtype)
        if predictor is None:
            return self.generated_name(lid), {}
        return predictor(self, lid, props)

    def stable_id(self, lid: str) -> str:
        """A UUID for resource ``lid`` that is the same at every ``up`` (where AWS makes up a random one)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.stack_id}/{lid}"))


# --------------------------------------------------------------------------- one predictor per type


def _table(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    name = props.get("TableName") or names.generated_name(lid)
    arn = names.arn("dynamodb", f"table/{name}")
    attrs = {"Arn": arn}
    if (props.get("StreamSpecification") or {}).get("StreamViewType"):
        attrs["StreamArn"] = f"{arn}/stream/1970-01-01T00:00:00.000"
    return name, attrs


def _bucket(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    name = props.get("BucketName") or names.generated_name(lid, lower=True, max_length=63)
    region, url_suffix = names.region, names.url_suffix
    return name, {
        "Arn": names.arn("s3", name, region=False, account=False),
        "DomainName": f"{name}.s3.{url_suffix}",
        "RegionalDomainName": f"{name}.s3.{region}.{url_suffix}",
        "DualStackDomainName": f"{name}.s3.dualstack.{region}.{url_suffix}",
        "WebsiteURL": f"http://{name}.s3-website-{region}.{url_suffix}",
    }


def _topic(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    name = props.get("TopicName") or names.generated_name(lid, max_length=256)
    if str(props.get("FifoTopic")).lower() == "true" and not name.endswith(".fifo"):
        name += ".fifo"
    arn = names.arn("sns", name)
    return arn, {"TopicArn": arn, "TopicName": name}


def _queue(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    name = props.get("QueueName") or names.generated_name(lid, max_length=80)
    if str(props.get("FifoQueue")).lower() == "true" and not name.endswith(".fifo"):
        name = name[:75] + ".fifo"
    url = f"https://sqs.{names.region}.{names.url_suffix}/{names.account_id}/{name}"
    return url, {"Arn": names.arn("sqs", name), "QueueName": name, "QueueUrl": url}


def _user_pool(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    pool_id = f"{names.region}_{suffix(names.stack_name, lid, length=9)}"
    provider = f"cognito-idp.{names.region}.{names.url_suffix}/{pool_id}"
    return pool_id, {
        "Arn": names.arn("cognito-idp", f"userpool/{pool_id}"),
        "ProviderName": provider,
        "ProviderURL": f"https://{provider}",
        "UserPoolId": pool_id,
    }


def _user_pool_client(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    client_id = suffix(names.stack_name, lid, length=26).lower()
    return client_id, {"ClientId": client_id, "Name": props.get("ClientName", lid)}


def _function(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    # Lambda's names are at most 64 characters: CloudFormation's generated one is cut to fit
    name = props.get("FunctionName") or names.generated_name(lid, max_length=64)
    return name, {"Arn": names.arn("lambda", f"function:{name}"), "SnapStartResponse": {}}


def _version(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    # a stack's first version of a function is 1 (a prediction: a deployed stack records the real number)
    function = str(props.get("FunctionName", "")).rsplit(":", 1)[-1]
    arn = names.arn("lambda", f"function:{function}:1")
    return arn, {"Version": "1", "FunctionArn": arn}


def _alias(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    function = str(props.get("FunctionName", "")).rsplit(":", 1)[-1]
    arn = names.arn("lambda", f"function:{function}:{props.get('Name', lid)}")
    return arn, {"AliasArn": arn}


def _role(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    name = props.get("RoleName") or names.generated_name(lid, max_length=64)
    return name, {"Arn": names.arn("iam", f"role/{name}", region=False), "RoleId": "AROA" + suffix(lid, length=17)}


def _rest_api(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    api_id = suffix(names.stack_name, lid, length=10).lower()
    return api_id, {"RootResourceId": suffix(api_id, "root", length=10).lower(), "RestApiId": api_id}


def _stage(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    return props.get("StageName") or lid, {}


def _deployment(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    return suffix(names.stack_name, lid, length=6).lower(), {}


def _event_source_mapping(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    esm = names.stable_id(lid)
    return esm, {"Id": esm}


def _subscription(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    topic = props.get("TopicArn") or names.arn("sns", "topic")
    return f"{topic}:{names.stable_id(lid)}", {}


def _log_group(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    name = props.get("LogGroupName") or names.generated_name(lid, max_length=512)
    return name, {"Arn": names.arn("logs", f"log-group:{name}:*")}


def _rule(names: Names, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    name = props.get("Name") or names.generated_name(lid, max_length=64)
    return name, {"Arn": names.arn("events", f"rule/{name}")}


_PREDICTORS: dict[str, _Predictor] = {
    "AWS::DynamoDB::Table": _table,
    "AWS::S3::Bucket": _bucket,
    "AWS::SNS::Topic": _topic,
    "AWS::SQS::Queue": _queue,
    "AWS::Cognito::UserPool": _user_pool,
    "AWS::Cognito::UserPoolClient": _user_pool_client,
    "AWS::Lambda::Function": _function,
    "AWS::Lambda::Version": _version,
    "AWS::Lambda::Alias": _alias,
    "AWS::IAM::Role": _role,
    "AWS::ApiGateway::RestApi": _rest_api,
    "AWS::ApiGateway::Stage": _stage,
    "AWS::ApiGateway::Deployment": _deployment,
    "AWS::Lambda::EventSourceMapping": _event_source_mapping,
    "AWS::SNS::Subscription": _subscription,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::Events::Rule": _rule,
}
