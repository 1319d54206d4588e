"""The app's IAM policies, offline: what SAM grants each function, what it is given, and a tiny evaluator.

Pure functions on the template, no AWS calls::

    from workshop import iam

    template = iam.load_template()                     # sam-app/template.yaml, short forms (!Ref...) read
    cfn = iam.expand(template, "sns")                  # the plain CloudFormation SAM makes of it
    stack = iam.Stack(cfn, "sns")                      # resolves Ref/GetAtt/Sub... into ARNs
    iam.granted(cfn, stack, "GetPhotoFunction")        # [(action, resource ARN), ...] its role allows
    iam.given(template, stack, "GetPhotoFunction")     # ARNs it is given (environment, triggers, DLQ)
    iam.overreach(template, "sns")                     # {function: [(action, resource)]} beyond that
    iam.allowed(iam.app_policies()["GetPhotoFunction"], "dynamodb:GetItem", stack.arn("PhotosTable"))

ARNs are those of a stack named ``thumbnailr`` in account 123456789012, us-east-1; a table's name
is ``thumbnailr-<LogicalId>`` (CloudFormation would add a random suffix). ``allowed`` is IAM's
evaluation reduced to identity policies: an explicit Deny wins, then an Allow, else denied.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "ACCOUNT",
    "PSEUDO",
    "REGION",
    "STACK",
    "Stack",
    "access",
    "allowed",
    "app_policies",
    "expand",
    "functions",
    "given",
    "granted",
    "load_template",
    "overreach",
    "role_policies",
]

ACCOUNT, REGION, STACK = "123456789012", "us-east-1", "thumbnailr"
PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::StackName": STACK, "AWS::Partition": "aws",
          "AWS::URLSuffix": "amazonaws.com"}
TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "sam-app" / "template.yaml"


# --------------------------------------------------------------------------- the template, expanded


def load_template(path: str | os.PathLike[str] | None = None) -> dict:
    """The SAM template as a dict (``!Ref`` and the other short forms become ``{"Ref": ...}``)."""
    from samcli.yamlhelper import yaml_parse

    return yaml_parse(Path(path or TEMPLATE_PATH).read_text())


class _NoManagedPolicies:
    def load(self) -> dict:
        return {}


@contextlib.contextmanager
def _region() -> Iterator[None]:
    # samtranslator asks boto3 for the region to pick the partition; give it one if none is set
    if os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION"):
        yield
        return
    os.environ["AWS_DEFAULT_REGION"] = REGION
    try:
        yield
    finally:
        os.environ.pop("AWS_DEFAULT_REGION", None)


def expand(template: dict, dispatch: str) -> dict:
    """The plain CloudFormation SAM makes of the template (offline: CodeUri only needs to look like S3)."""
    from samtranslator.translator.transform import transform

    # its metrics are never published offline, and it says so (a warning) after each translation
    logging.getLogger("samtranslator.metrics").setLevel(logging.ERROR)
    template = copy.deepcopy(template)
    template["Globals"]["Function"]["CodeUri"] = "s3://workshop/code.zip"
    with _region():
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

    def resolve(self, value: Any, local: dict | None = None) -> Any:
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
    """The logical ids of the template's functions, in template order."""
    return [k for k, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]


# --------------------------------------------------------------------------- what a function is granted


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def role_policies(cfn: dict, stack: Stack, function: str) -> list[dict]:
    """The policy documents of the function's role, conditions applied, every Resource resolved to ARNs."""
    documents = []
    for policy in cfn["Resources"][f"{function}Role"]["Properties"].get("Policies", []):
        if "Fn::If" in policy:
            policy = stack.resolve(policy)
            if policy == {"Ref": "AWS::NoValue"} or not isinstance(policy, dict) or "PolicyDocument" not in policy:
                continue
        statements = [
            {**statement, "Action": _as_list(statement["Action"]),
             "Resource": [stack.resolve(r) for r in _as_list(statement["Resource"])]}
            for statement in policy["PolicyDocument"]["Statement"]
        ]
        documents.append({"Version": "2012-10-17", "Statement": statements})
    return documents


def granted(cfn: dict, stack: Stack, function: str) -> list[tuple[str, str]]:
    """(action, resource ARN) pairs the function's role allows."""
    pairs = []
    for document in role_policies(cfn, stack, function):
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow"
            pairs += [(a, r) for a in statement["Action"] for r in statement["Resource"]]
    return pairs


def app_policies(dispatch: str = "sns", template: dict | None = None) -> dict[str, list[dict]]:
    """Each function's policy documents, as SAM expands the app's template (for ``allowed``)."""
    template = template if template is not None else load_template()
    cfn = expand(template, dispatch)
    stack = Stack(cfn, dispatch)
    return {function: role_policies(cfn, stack, function) for function in functions(template)}


#: Action names (after "service:") that only read; every other action counts as a write.
READ_VERBS = ("Get", "List", "Scan", "Query", "BatchGet", "Describe", "ConditionCheck")


def access(pairs: Iterable[tuple[str, str]], arn: str) -> str:
    """"R", "W", "RW" or "": what (action, resource) pairs allow on ``arn`` or anything under it."""
    kinds = set()
    for action, resource in pairs:
        if _matches(resource, arn, True) or resource.startswith(arn + "/"):
            kinds.add("R" if action.split(":")[-1].startswith(READ_VERBS) else "W")
    return "".join(sorted(kinds))


# --------------------------------------------------------------------------- what a function is given


def _logical_ids(value: Any) -> set[str]:
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
    for resource in template["Resources"].values():  # triggers declared as plain resources
        p = resource.get("Properties", {})
        if {"Ref": function} in (p.get("FunctionName"),) or p.get("Endpoint") == {"Fn::GetAtt": [function, "Arn"]}:
            ids |= _logical_ids(p.get("EventSourceArn")) | _logical_ids(p.get("TopicArn"))
    # names built with Fn::Sub (the photos bucket, to avoid a circular dependency) count as that resource
    resolved = {stack.resolve(v) for v in variables.values()}
    ids |= {lid for lid in stack.resources if lid in template["Resources"] and stack.name(lid) in resolved}
    return {stack.arn(lid) for lid in ids if lid in stack.resources and lid not in PSEUDO}


def overreach(template: dict, dispatch: str) -> dict[str, list[tuple[str, str]]]:
    """{function: [(action, resource)]} granted beyond what it is given, or with a wildcard action."""
    cfn = expand(template, dispatch)
    stack = Stack(cfn, dispatch)
    found = {}
    for function in functions(template):
        own = given(template, stack, function)
        bad = [
            (action, resource)
            for action, resource in granted(cfn, stack, function)
            if "*" in action.split(":")[-1][:1] or not any(resource == arn or resource.startswith(arn + "/") for arn in own)
        ]
        if bad:
            found[function] = bad
    return found


# --------------------------------------------------------------------------- a tiny evaluator


def _matches(pattern: str, value: str, case_sensitive: bool) -> bool:
    # IAM wildcards are only * and ?: a "[" is a literal character, not fnmatch's set
    pattern = pattern.replace("[", "[[]")
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _statements(policies: dict | Iterable[dict]) -> Iterator[dict]:
    for policy in [policies] if isinstance(policies, dict) else policies:
        if "Statement" in policy:
            yield from _as_list(policy["Statement"])
        else:  # a bare statement
            yield policy


def allowed(policies: dict | Iterable[dict], action: str, resource_arn: str) -> bool:
    """Whether identity policies allow ``action`` (e.g. ``"s3:GetObject"``) on ``resource_arn``.

    ``policies``: a policy document, a statement, or a list of either. A statement applies when one of
    its ``Action`` patterns matches the action (case-insensitively) and one of its ``Resource``
    patterns matches the ARN; ``*`` and ``?`` are wildcards. An explicit Deny wins over any Allow;
    with no Allow, the answer is no (IAM's implicit deny).
    """
    verdict = False
    for statement in _statements(policies):
        if not any(_matches(p, action, False) for p in _as_list(statement.get("Action", []))):
            continue
        if not any(_matches(p, resource_arn, True) for p in _as_list(statement.get("Resource", []))):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            verdict = True
    return verdict
