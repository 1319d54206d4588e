"""Each function's IAM policy, as SAM expands it, reaches only the resources that function is given.

"Given" means named in its environment variables, or its own event source and dead-letter queue.
A statement naming another function's table, bucket, topic or queue, or "*", fails the test.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

TEMPLATE = yaml_parse((Path(__file__).resolve().parents[2] / "sam-app" / "template.yaml").read_text())
ACCOUNT, REGION, STACK = "123456789012", "us-east-1", "thumbnailr"
PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::StackName": STACK, "AWS::Partition": "aws",
          "AWS::URLSuffix": "amazonaws.com"}


class _NoManagedPolicies:
    def load(self):
        return {}


def expand(template: dict, dispatch: str) -> dict:
    """The plain CloudFormation SAM makes of the template (offline: CodeUri only needs to look like S3)."""
    template = copy.deepcopy(template)
    template["Globals"]["Function"]["CodeUri"] = "s3://workshop/code.zip"
    return transform(template, {"Dispatch": dispatch}, _NoManagedPolicies())


class Stack:
    """Resolves the intrinsics a policy uses into concrete ARNs, for a stack named `thumbnailr`."""

    def __init__(self, template: dict, dispatch: str):
        self.resources = template["Resources"]
        self.conditions = {"DispatchBySns": dispatch == "sns", "DispatchByStream": dispatch == "stream"}

    def name(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties", {})
        for key in ("BucketName", "TopicName", "QueueName"):
            if key in props:
                return self.resolve(props[key])
        return f"{STACK}-{logical_id}"

    def arn(self, logical_id: str) -> str:
        kind, name = self.resources[logical_id]["Type"], self.name(logical_id)
        return {
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
        }.get(kind, f"arn:aws:other:::{logical_id}")

    def resolve(self, value, local: dict | None = None):
        local = local or {}
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return [self.resolve(v, local) for v in value]
        if len(value) != 1 or not next(iter(value)).startswith(("Ref", "Fn::")):
            return value  # not an intrinsic: a policy document, resolved statement by statement later
        (fn, arg), = value.items()
        if fn == "Ref":
            if arg in PSEUDO:
                return PSEUDO[arg]
            if arg not in self.resources:  # a parameter
                return f"<{arg}>"
            return self.arn(arg) if self.resources[arg]["Type"] == "AWS::SNS::Topic" else self.name(arg)
        if fn == "Fn::GetAtt":
            logical_id, attribute = arg
            if attribute == "StreamArn":
                return f"{self.arn(logical_id)}/stream/2026-01-01T00:00:00.000"
            return self.arn(logical_id) if attribute == "Arn" else self.name(logical_id)
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            variables = {k: self.resolve(v) for k, v in variables.items()}
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(
                variables.get(m.group(1)) or PSEUDO.get(m.group(1)) or self.resolve({"Ref": m.group(1)})), text)
        if fn == "Fn::If":
            condition, when_true, when_false = arg
            return self.resolve(when_true if self.conditions[condition] else when_false)
        if fn == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(index)]
        if fn == "Fn::Split":
            separator, text = arg
            return self.resolve(text).split(separator)
        raise ValueError(f"unexpected intrinsic {fn}")


def functions(template: dict) -> list[str]:
    return [k for k, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]


def granted(cfn: dict, stack: Stack, function: str) -> list[tuple[str, str]]:
    """(action, resource ARN) pairs the function's role allows."""
    pairs = []
    for policy in cfn["Resources"][f"{function}Role"]["Properties"].get("Policies", []):
        if "Fn::If" in policy:
            policy = stack.resolve(policy)
            if policy == {"Ref": "AWS::NoValue"} or not isinstance(policy, dict) or "PolicyDocument" not in policy:
                continue
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            pairs += [(a, stack.resolve(r)) for a in actions for r in resources]
    return pairs


def _logical_ids(value) -> set[str]:
    """Logical ids an intrinsic value refers to (Ref, GetAtt, or a resource's own Sub-built name)."""
    found = set()
    if isinstance(value, dict):
        for fn, arg in value.items():
            if fn == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif fn == "Fn::GetAtt":
                found.add(arg[0])
            else:
                found |= _logical_ids(arg)
    elif isinstance(value, list):
        for item in value:
            found |= _logical_ids(item)
    return found


def given(template: dict, stack: Stack, function: str) -> set[str]:
    """ARNs of what the function is given: its environment's resources, its triggers and its dead-letter queue."""
    props = template["Resources"][function]["Properties"]
    variables = props.get("Environment", {}).get("Variables", {})
    ids = _logical_ids(variables) | _logical_ids(props.get("DeadLetterQueue", {}))
    for event in props.get("Events", {}).values():
        ids |= _logical_ids(event.get("Properties", {}).get("Bucket"))
    for logical_id, resource in template["Resources"].items():  # triggers declared as plain resources
        p = resource.get("Properties", {})
        if {"Ref": function} in (p.get("FunctionName"),) or p.get("Endpoint") == {"Fn::GetAtt": [function, "Arn"]}:
            ids |= _logical_ids(p.get("EventSourceArn")) | _logical_ids(p.get("TopicArn"))
    # names built with Fn::Sub (the photos bucket, to avoid a circular dependency) count as that resource
    resolved = {stack.resolve(v) for v in variables.values()}
    ids |= {lid for lid in stack.resources if lid in template["Resources"] and stack.name(lid) in resolved}
    return {stack.arn(lid) for lid in ids if lid in stack.resources and lid not in PSEUDO}


def overreach(template: dict, dispatch: str) -> dict[str, list[tuple[str, str]]]:
    cfn = expand(template, dispatch)
    stack = Stack(cfn, dispatch)
    found = {}
    for function in functions(template):
        allowed = given(template, stack, function)
        bad = [
            (action, resource)
            for action, resource in granted(cfn, stack, function)
            if "*" in action.split(":")[-1][:1] or not any(resource == arn or resource.startswith(arn + "/") for arn in allowed)
        ]
        if bad:
            found[function] = bad
    return found


@pytest.mark.parametrize("dispatch", ["sns", "stream"])
def test_no_function_reaches_beyond_its_own_resources(dispatch, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    assert overreach(TEMPLATE, dispatch) == {}


def test_every_function_is_given_something_except_ping(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    stack = Stack(expand(TEMPLATE, "sns"), "sns")
    empty = [f for f in functions(TEMPLATE) if not given(TEMPLATE, stack, f)]
    assert empty == ["PingFunction"]


def test_a_policy_on_another_functions_table_is_caught(monkeypatch):
    # GIVEN the photo-reading function also granted the quota table, which its code never uses
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    widened = copy.deepcopy(TEMPLATE)
    widened["Resources"]["GetPhotoFunction"]["Properties"]["Policies"].append(
        {"DynamoDBCrudPolicy": {"TableName": {"Ref": "QuotaTable"}}}
    )
    # THEN the check names that function and that table
    found = overreach(widened, "sns")
    assert list(found) == ["GetPhotoFunction"]
    assert all(resource.endswith("table/thumbnailr-QuotaTable") or "QuotaTable/" in resource for _, resource in found["GetPhotoFunction"])


def test_a_wildcard_resource_is_caught(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    widened = copy.deepcopy(TEMPLATE)
    widened["Resources"]["PingFunction"]["Properties"]["Policies"] = [
        {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    ]
    assert overreach(widened, "sns") == {"PingFunction": [("s3:GetObject", "*")]}
