"""The app's handlers on moto: resources built from template.yaml's own properties, so they cannot drift."""

from __future__ import annotations

import importlib
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from samcli.yamlhelper import yaml_parse

from thumbnailr import bootstrap

APP = Path(__file__).resolve().parents[2] / "sam-app"
EVENTS = APP / "events"
STACK, ACCOUNT, REGION = "thumbnailr", "123456789012", "us-east-1"
TEMPLATE = yaml_parse((APP / "template.yaml").read_text())


def load_event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def _sub(text: str) -> str:
    pseudo = {"AWS::StackName": STACK, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws"}
    return re.sub(r"\$\{([^}]+)\}", lambda m: pseudo.get(m.group(1), m.group(0)), text)


def physical_names() -> dict[str, str]:
    """A name for every resource, as a stack named `thumbnailr` would get."""
    names = {}
    for logical_id, resource in TEMPLATE["Resources"].items():
        props = resource.get("Properties", {})
        explicit = props.get("BucketName") or props.get("TopicName") or props.get("QueueName")
        names[logical_id] = _sub(explicit["Fn::Sub"]) if explicit else f"{STACK}-{logical_id}"
    return names


@dataclass
class Stack:
    names: dict[str, str]
    parameters: dict[str, str]
    topic_arn: str
    queue_url: str  # an SQS queue subscribed to the commands topic, to see what was published

    def environment(self, function: str) -> dict[str, str]:
        """The function's environment variables as the template defines them, resolved for this stack."""
        variables = TEMPLATE["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
        return {name: self.resolve(value) for name, value in variables.items()}

    def resolve(self, value) -> str:
        if isinstance(value, str):
            return value
        if "Ref" in value:
            return self.parameters.get(value["Ref"]) or (
                self.topic_arn if value["Ref"] == "CommandsTopic" else self.names[value["Ref"]]
            )
        if "Fn::Sub" in value:
            return _sub(value["Fn::Sub"])
        if "Fn::If" in value:
            condition, when_true, when_false = value["Fn::If"]
            wanted = {"DispatchBySns": "sns", "DispatchByStream": "stream"}[condition]
            return self.resolve(when_true if self.parameters["Dispatch"] == wanted else when_false)
        raise ValueError(f"cannot resolve {value!r}")


def _create(resource_type: str, props: dict, name: str, clients) -> None:
    if resource_type == "AWS::DynamoDB::Table":
        args = {k: props[k] for k in ("AttributeDefinitions", "KeySchema", "BillingMode")}
        if "StreamSpecification" in props:
            args["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        clients["dynamodb"].create_table(TableName=name, **args)
    elif resource_type == "AWS::S3::Bucket":
        clients["s3"].create_bucket(Bucket=name)
    elif resource_type == "AWS::SQS::Queue":
        clients["sqs"].create_queue(QueueName=name)


@pytest.fixture
def stack(request, monkeypatch):
    """Every table, bucket and queue of the template in moto, the commands topic feeding an SQS queue."""
    parameters = {name: str(p.get("Default")) for name, p in TEMPLATE["Parameters"].items()}
    parameters.update(getattr(request, "param", {}))
    with mock_aws():
        clients = {s: boto3.client(s, region_name=REGION) for s in ("dynamodb", "s3", "sqs", "sns")}
        names = physical_names()
        for logical_id, resource in TEMPLATE["Resources"].items():
            _create(resource["Type"], resource.get("Properties", {}), names[logical_id], clients)
        topic_arn = clients["sns"].create_topic(Name=names["CommandsTopic"])["TopicArn"]
        queue_url = clients["sqs"].create_queue(QueueName="published-commands")["QueueUrl"]
        queue_arn = clients["sqs"].get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        clients["sns"].subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn,
                                 Attributes={"RawMessageDelivery": "true"})
        bootstrap.reset()
        yield Stack(names, parameters, topic_arn, queue_url)
        bootstrap.reset()


@pytest.fixture
def invoke(stack, monkeypatch, lambda_context):
    """Call a function's handler with its own environment from the template, as Lambda would."""

    def call(function: str, event: dict):
        props = TEMPLATE["Resources"][function]["Properties"]
        for other in TEMPLATE["Resources"]:  # each call sees only its own function's variables
            if TEMPLATE["Resources"][other]["Type"] == "AWS::Serverless::Function":
                for name in stack.environment(other):
                    monkeypatch.delenv(name, raising=False)
        for name, value in stack.environment(function).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "thumbnailr")
        bootstrap.reset()
        module_name, handler_name = props["Handler"].rsplit(".", 1)
        return getattr(importlib.import_module(module_name), handler_name)(event, lambda_context)

    return call


@pytest.fixture
def lambda_context():
    class Context:
        function_name = "thumbnailr-test"
        function_version = "$LATEST"
        memory_limit_in_mb = 256
        invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:thumbnailr-test"
        log_group_name = "/aws/lambda/thumbnailr-test"
        log_stream_name = "2026/11/26/[$LATEST]0123456789abcdef"

        def __init__(self):
            self.aws_request_id = str(uuid.uuid4())

        def get_remaining_time_in_millis(self) -> int:
            return 10_000

    return Context()
