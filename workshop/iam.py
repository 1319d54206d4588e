"""The app's IAM policies, offline: what SAM grants each function, what it is given, and a tiny evaluator.

Pure functions on the template, no AWS calls::

    from workshop import iam

    template = iam.load_template()                     # sam-app/template.yaml, short forms (!Ref...) read
    cfn = iam.expand(template, "sns")                  # the plain CloudFormation SAM makes of it
    stack = iam.Stack(cfn, "sns")                      # its names and ARNs, Ref/GetAtt/Sub... resolved
    iam.granted(cfn, stack, "GetPhotoFunction")        # [(action, resource ARN), ...] its role allows
    iam.given(template, stack, "GetPhotoFunction")     # ARNs it is given (environment, triggers, DLQ)
    iam.overreach(template, "sns")                     # {function: [(action, resource)]} beyond that
    iam.allowed(iam.app_policies()["GetPhotoFunction"], "dynamodb:GetItem", stack.arn("PhotosTable"))

The expansion, the intrinsics and the names are the local cloud's CloudFormation engine's: ARNs are
those of a stack named ``thumbnailr`` in account 123456789012, us-east-1, and a table's name is
``thumbnailr-<LogicalId>-<SUFFIX>`` as CloudFormation makes it (a stable suffix instead of a random
one). ``allowed`` is IAM's evaluation reduced to identity policies: an explicit Deny wins, then an
Allow, else denied.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "ACCOUNT",
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
TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "sam-app" / "template.yaml"


# --------------------------------------------------------------------------- the template, expanded


def load_template(path: str | os.PathLike[str] | None = None) -> dict:
    """The SAM template as a dict (``!Ref`` and the other short forms become ``{"Ref": ...}``)."""
    from localcloud import read_template

    return read_template(path or TEMPLATE_PATH)


def expand(template: dict, dispatch: str) -> dict:
    """The plain CloudFormation SAM makes of the template with ``Dispatch=dispatch`` (offline)."""
    from localcloud import sam_transform

    return sam_transform(template, {"Dispatch": dispatch}, region=REGION).template


class Stack:
    """The expanded template deployed (in thought) as the stack ``thumbnailr``: its resources' names and ARNs."""

    def __init__(self, template: dict, dispatch: str) -> None:
        from localcloud import Stack as CloudFormationStack

        self.engine = CloudFormationStack.from_template(
            template, parameters={"Dispatch": dispatch}, stack_name=STACK, region=REGION, account_id=ACCOUNT
        ).predict()
        self.resources = self.engine.resources  # those whose condition holds

    def name(self, logical_id: str) -> str:
        """The resource's name (a table's, a bucket's, a topic's...)."""
        return self.engine.physical_name(logical_id)

    def arn(self, logical_id: str) -> str:
        return self.engine.resource_arn(logical_id)

    def resolve(self, value: Any) -> Any:
        """``value`` with its intrinsics (Ref, Fn::GetAtt, Fn::Sub, Fn::If...) resolved in this stack."""
        return self.engine.resolve(value)


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
        policy = stack.resolve(policy)  # None where an Fn::If gives AWS::NoValue
        if not isinstance(policy, dict) or "PolicyDocument" not in policy:
            continue
        statements = [
            {**statement, "Action": _as_list(statement["Action"]), "Resource": _as_list(statement["Resource"])}
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


def given(template: dict, stack: Stack, function: str) -> set[str]:
    """ARNs of what the function is given: its environment's resources, its triggers, its dead-letter queue and
    its asynchronous invocations' destinations."""
    refs_in = stack.engine.refs_in  # logical ids a value refers to, in the Fn::If branches taken
    props = template["Resources"][function]["Properties"]
    variables = props.get("Environment", {}).get("Variables", {})
    ids = {*refs_in(variables), *refs_in(props.get("DeadLetterQueue", {})),
           *refs_in(props.get("EventInvokeConfig", {}).get("DestinationConfig", {}))}
    for event in props.get("Events", {}).values():
        ids |= set(refs_in(event.get("Properties", {}).get("Bucket")))
    for lid, resource in template["Resources"].items():  # triggers declared as plain resources
        p = resource.get("Properties", {})
        if lid in stack.resources and function in refs_in([p.get("FunctionName"), p.get("Endpoint")]):
            ids |= set(refs_in([p.get("EventSourceArn"), p.get("TopicArn")]))
    # names built with Fn::Sub (the photos bucket, to avoid a circular dependency) count as that resource
    resolved = {stack.resolve(v) for v in variables.values()}
    ids |= {lid for lid in stack.resources if lid in template["Resources"] and stack.name(lid) in resolved}
    return {stack.arn(lid) for lid in ids if lid in stack.resources}


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
