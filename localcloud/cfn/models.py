"""What the local cloud runs, read from a stack's resolved resources: functions, API routes, event sources.

Each reader takes a ``Stack`` whose resources are recorded (made, or ``predict()``-ed) and gives plain
dataclasses: ``functions`` (with their async invocation settings), ``routes`` (Lambda proxy methods of
REST APIs, with their auth), ``user_pool_for_api``, ``s3_notifications``, ``sns_subscriptions`` (Lambda
protocol only), ``stream_mappings`` (DynamoDB streams only) and ``schedules`` (EventBridge rules on a rate). What the local cloud cannot run as AWS would
(another kind of authorizer or event source, a target outside the stack) is refused (``Stack.refuse``: the
deployer fails the deploy, naming the resource); a non-proxy integration is left out with a warning. A function is named as Lambda names it (``FunctionModel.name``), and what an
event source or a route invokes is that name, with the qualifier of the alias or version it points to.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localcloud.cfn.intrinsics import as_str
from localcloud.cfn.names import suffix

if TYPE_CHECKING:
    from localcloud.cfn.stack import Stack

__all__ = [
    "AsyncConfig",
    "FunctionModel",
    "RouteModel",
    "MockModel",
    "S3NotificationModel",
    "ScheduleModel",
    "StageModel",
    "SnsSubscriptionModel",
    "StreamMappingModel",
    "function_for",
    "invoke_target",
    "functions",
    "routes",
    "s3_notifications",
    "schedules",
    "sns_subscriptions",
    "stage",
    "stream_mappings",
    "user_pool_for_api",
]


@dataclass
class AsyncConfig:
    """How Lambda handles a function's asynchronous invocations (EventInvokeConfig + DeadLetterConfig)."""

    max_retry_attempts: int = 2
    max_event_age_s: int = 21600
    dead_letter_arn: str | None = None
    on_failure: str | None = None
    on_success: str | None = None


@dataclass
class FunctionModel:
    logical_id: str
    name: str  # the function's name in Lambda (FunctionName, or CloudFormation's stack-LogicalId-SUFFIX)
    arn: str
    handler: str
    runtime: str
    architecture: str  # "arm64" | "x86_64"
    code_uri: Path | None  # the template's folder for the code (None: not local)
    environment: dict[str, str]
    memory_mb: int = 128
    timeout_s: float = 3.0
    reserved_concurrency: int | None = None
    async_config: AsyncConfig = field(default_factory=AsyncConfig)


@dataclass(frozen=True)
class MockModel:
    """A MOCK integration's default response: status, the static headers of its responseParameters, body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: str


@dataclass(frozen=True)
class RouteModel:
    method: str
    path: str
    function: str | None  # what it invokes: the function's name, or name:qualifier (None: a mock)
    authorized: bool
    api: str = ""  # the RestApi's logical id
    mock: MockModel | None = None


@dataclass(frozen=True)
class StageModel:
    """What a REST API's stage and the API itself set for the local API."""

    name: str = "Prod"
    variables: dict[str, str] = field(default_factory=dict)
    method_settings: list[dict[str, Any]] = field(default_factory=list)  # the stage's MethodSettings
    binary_media_types: list[str] = field(default_factory=list)  # the RestApi's, "~1" read as "/"


@dataclass
class S3NotificationModel:
    bucket: str  # the bucket's name
    bucket_logical_id: str
    function: str  # what it invokes (as RouteModel.function)
    events: list[str]
    filter_rules: list[dict[str, str]]  # S3 API form: [{"Name": "prefix", "Value": "photos/"}]
    id: str


@dataclass
class SnsSubscriptionModel:
    logical_id: str
    arn: str
    topic_arn: str
    function: str  # what it invokes (as RouteModel.function)
    filter_policy: dict | None = None
    filter_policy_scope: str | None = None


@dataclass
class StreamMappingModel:
    logical_id: str
    uuid: str
    function: str  # what it invokes (as RouteModel.function)
    event_source_arn: str
    starting_position: str = "LATEST"
    batch_size: int = 100
    maximum_retry_attempts: int = -1
    maximum_record_age_s: int = -1
    bisect_on_error: bool = False
    filters: list[dict] = field(default_factory=list)
    report_batch_item_failures: bool = False
    on_failure: str | None = None
    enabled: bool = True
    maximum_batching_window_s: float = 0.0


# --------------------------------------------------------------------------- functions


def function_for(stack: Stack, target: Any) -> str | None:
    """The logical id of the function a name or ARN (Ref/GetAtt of a function, of its version or alias) points to."""
    name, _ = _function_name_from_arn(target)
    if isinstance(name, str) and ":" in name and not name.startswith("arn:"):
        name = name.split(":", 1)[0]  # Lambda's "name:qualifier" (a version or an alias)
    for lid in stack.of_type("AWS::Lambda::Function"):
        if name in (lid, stack.refs.get(lid)):
            return lid
    return None


def invoke_target(stack: Stack, target: Any) -> str | None:
    """What to invoke for a reference to a function of this stack: its name, with ``:qualifier`` when the
    reference is to a version or an alias (SAM's ``AutoPublishAlias`` points every event at the alias)."""
    lid = function_for(stack, target)
    if lid is None:
        return None
    _, qualifier = _function_name_from_arn(target)
    name = str(stack.refs.get(lid, lid))
    return f"{name}:{qualifier}" if qualifier else name


def _function_name_from_arn(arn: Any) -> tuple[str, str | None]:
    # arn:aws:lambda:region:acct:function:NAME[:qualifier]
    parts = str(arn).split(":")
    if len(parts) >= 7 and parts[2] == "lambda" and parts[5] == "function":
        return parts[6], (parts[7] if len(parts) > 7 else None)
    return str(arn), None


def functions(stack: Stack) -> list[FunctionModel]:
    configs: dict[str, dict] = {}
    for lid in stack.of_type("AWS::Lambda::EventInvokeConfig"):
        props = stack.properties(lid)
        fn = function_for(stack, props.get("FunctionName"))
        if fn is not None:
            configs[fn] = props
    return [_function(stack, lid, configs.get(lid, {})) for lid in stack.of_type("AWS::Lambda::Function")]


def _function(stack: Stack, lid: str, invoke_config: dict[str, Any]) -> FunctionModel:
    props = stack.properties(lid)
    destinations = invoke_config.get("DestinationConfig") or {}
    reserved = props.get("ReservedConcurrentExecutions")
    name = str(stack.refs.get(lid, lid))
    return FunctionModel(
        logical_id=lid,
        name=name,
        arn=stack.attrs.get((lid, "Arn")) or stack.arn("lambda", f"function:{name}"),
        handler=str(props.get("Handler", "")),
        runtime=str(props.get("Runtime", "python3.13")),
        architecture=str((props.get("Architectures") or ["x86_64"])[0]),
        code_uri=stack.code_uris.get(lid),
        environment={k: as_str(v) for k, v in ((props.get("Environment") or {}).get("Variables") or {}).items()},
        memory_mb=int(props.get("MemorySize", 128)),
        timeout_s=float(props.get("Timeout", 3)),
        reserved_concurrency=int(reserved) if reserved is not None else None,
        async_config=AsyncConfig(
            max_retry_attempts=int(invoke_config.get("MaximumRetryAttempts", 2)),
            max_event_age_s=int(invoke_config.get("MaximumEventAgeInSeconds", 21600)),
            dead_letter_arn=(props.get("DeadLetterConfig") or {}).get("TargetArn"),
            on_failure=(destinations.get("OnFailure") or {}).get("Destination"),
            on_success=(destinations.get("OnSuccess") or {}).get("Destination"),
        ),
    )


# --------------------------------------------------------------------------- the REST API


def stage(stack: Stack, api_lid: str) -> StageModel:
    """The REST API's (first) stage: its name, Variables and MethodSettings, and the API's BinaryMediaTypes."""
    api = stack.properties(api_lid)
    body = api.get("Body") if isinstance(api.get("Body"), dict) else {}
    binary = api.get("BinaryMediaTypes") or body.get("x-amazon-apigateway-binary-media-types") or []
    binary_types = [str(t).replace("~1", "/") for t in binary]
    for lid in stack.of_type("AWS::ApiGateway::Stage"):
        props = stack.properties(lid)
        if props.get("RestApiId") == stack.refs.get(api_lid):
            variables = props.get("Variables") or {}
            return StageModel(name=str(props.get("StageName") or "Prod"),
                              variables={str(k): as_str(v) for k, v in variables.items()},
                              method_settings=[m for m in props.get("MethodSettings") or [] if isinstance(m, dict)],
                              binary_media_types=binary_types)
    return StageModel(binary_media_types=binary_types)


def _mock(integration: dict[str, Any]) -> MockModel:
    """The default response of a MOCK integration, as SAM's ``Cors`` writes it: static header values in quotes."""
    responses = integration.get("responses") or {}
    response = responses.get("default") or next(iter(responses.values()), {}) or {}
    headers = []
    for name, value in (response.get("responseParameters") or {}).items():
        name, value = str(name), str(value)
        if name.startswith("method.response.header.") and len(value) >= 2 and value[0] == value[-1] == "'":
            headers.append((name.removeprefix("method.response.header."), value[1:-1]))
    templates = response.get("responseTemplates") or {}
    body = str(templates.get("application/json") or next(iter(templates.values()), "") or "")
    return MockModel(int(response.get("statusCode") or 200), tuple(headers), body)


def _security_definitions(body: dict[str, Any]) -> dict[str, Any]:
    return body.get("securityDefinitions") or (body.get("components") or {}).get("securitySchemes") or {}


def routes(stack: Stack) -> list[RouteModel]:
    """Every REST API method that integrates with a function (Lambda proxy), with its auth."""
    out: list[RouteModel] = []
    for api in stack.of_type("AWS::ApiGateway::RestApi"):
        body = stack.properties(api).get("Body")
        if not isinstance(body, dict):
            if stack.properties(api).get("BodyS3Location"):
                stack.refuse(api, "an API defined in S3 (DefinitionUri) is not read by the local cloud: "
                                  "define it in the template (DefinitionBody, or the functions' Api events)")
            continue
        definitions = _security_definitions(body)
        default_security = body.get("security")
        for path, methods in (body.get("paths") or {}).items():
            for method, op in (methods or {}).items():
                if not isinstance(op, dict):
                    continue
                integration = op.get("x-amazon-apigateway-integration") or {}
                kind = str(integration.get("type", "")).lower()  # API Gateway takes AWS_PROXY and aws_proxy
                verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                if kind == "mock":
                    authorized = _authorized(stack, op.get("security", default_security), definitions, api, method, path)
                    if authorized is not None:
                        out.append(RouteModel(verb, path, None, authorized, api, _mock(integration)))
                    continue
                if kind != "aws_proxy":
                    if integration:
                        stack.warn(f"{api}: {method.upper()} {path} is a {integration.get('type')} integration; "
                                   "the local API serves Lambda proxy integrations only: the route is left out")
                    continue
                uri = str(integration.get("uri", ""))
                match = re.search(r"functions/(arn:[^/]+)/invocations", uri)
                fn = invoke_target(stack, match.group(1)) if match else None
                if fn is None:
                    stack.refuse(api, f"{method.upper()} {path} integrates with {uri!r}, not a function of this "
                                      "stack: the local cloud cannot invoke it")
                    continue
                authorized = _authorized(stack, op.get("security", default_security), definitions, api, method, path)
                if authorized is None:
                    continue
                out.append(RouteModel(verb, path, fn, authorized, api))
    return out


def _authorized(stack: Stack, security: Any, definitions: dict, api: str, method: str, path: str) -> bool | None:
    """Whether a method needs a Cognito token: False (no auth), True, None (an authorizer not emulated)."""
    if not security:
        return False
    kinds = set()
    for requirement in security:
        for name in requirement or {}:
            if name == "NONE":
                kinds.add("none")
                continue
            definition = definitions.get(name) or {}
            kind = definition.get("x-amazon-apigateway-authtype") or \
                (definition.get("x-amazon-apigateway-authorizer") or {}).get("type") or name
            kinds.add(str(kind).lower())
    if kinds <= {"none"}:
        return False
    if "cognito_user_pools" in kinds:
        return True
    stack.refuse(api, f"{method.upper()} {path} uses a {'/'.join(sorted(kinds))} authorizer, which the local "
                      "API does not emulate (Cognito user pools only)")
    return None


def user_pool_for_api(stack: Stack) -> tuple[str, list[str]] | None:
    """(user pool id, its app client ids) of the Cognito authorizer, or None."""
    pool_ids: list[str] = []
    for api in stack.of_type("AWS::ApiGateway::RestApi"):
        for definition in _security_definitions(stack.properties(api).get("Body") or {}).values():
            authorizer = definition.get("x-amazon-apigateway-authorizer") or {}
            if authorizer.get("type") == "cognito_user_pools":
                for arn in authorizer.get("providerARNs") or []:
                    pool_ids.append(str(arn).rsplit("/", 1)[-1])
    if not pool_ids:
        return None
    pool_id = pool_ids[0]
    clients = [
        stack.refs[lid]
        for lid in stack.of_type("AWS::Cognito::UserPoolClient")
        if stack.properties(lid).get("UserPoolId") == pool_id and lid in stack.refs
    ]
    return pool_id, clients


# --------------------------------------------------------------------------- event sources


def s3_notifications(stack: Stack) -> list[S3NotificationModel]:
    out = []
    for lid in stack.of_type("AWS::S3::Bucket"):
        props = stack.properties(lid)
        for i, cfg in enumerate((props.get("NotificationConfiguration") or {}).get("LambdaConfigurations") or []):
            fn = invoke_target(stack, cfg.get("Function"))
            if fn is None:
                stack.refuse(lid, f"a notification targets {cfg.get('Function')!r}, not a function of this stack: "
                                  "the local cloud cannot invoke it")
                continue
            function_lid = function_for(stack, cfg.get("Function"))
            rules = ((cfg.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
            out.append(
                S3NotificationModel(
                    bucket=stack.refs.get(lid) or props.get("BucketName"),
                    bucket_logical_id=lid,
                    function=fn,
                    events=[cfg["Event"]],
                    filter_rules=[{"Name": r["Name"], "Value": r["Value"]} for r in rules],
                    id=f"{function_lid}-{i}",
                )
            )
    return out


def sns_subscriptions(stack: Stack) -> list[SnsSubscriptionModel]:
    out = []
    for lid in stack.of_type("AWS::SNS::Subscription"):
        props = stack.properties(lid)
        if str(props.get("Protocol", "")).lower() != "lambda":
            continue
        fn = invoke_target(stack, props.get("Endpoint"))
        if fn is None:
            stack.refuse(lid, f"subscribes {props.get('Endpoint')!r}, not a function of this stack: the local "
                              "cloud cannot invoke it")
            continue
        policy = props.get("FilterPolicy")
        if isinstance(policy, str):
            policy = json.loads(policy)
        out.append(
            SnsSubscriptionModel(
                logical_id=lid,
                arn=stack.refs.get(lid) or f"{props['TopicArn']}:{lid}",
                topic_arn=props["TopicArn"],
                function=fn,
                filter_policy=policy,
                filter_policy_scope=props.get("FilterPolicyScope"),
            )
        )
    for lid in stack.of_type("AWS::SNS::Topic"):  # subscriptions inline in the topic
        for i, sub in enumerate(stack.properties(lid).get("Subscription") or []):
            if str(sub.get("Protocol", "")).lower() != "lambda":
                continue
            fn = invoke_target(stack, sub.get("Endpoint"))
            if fn is not None:
                topic = stack.refs[lid]
                out.append(SnsSubscriptionModel(f"{lid}Subscription{i}", f"{topic}:{suffix(lid, str(i))}", topic, fn))
    return out


def stream_mappings(stack: Stack) -> list[StreamMappingModel]:
    out = []
    for lid in stack.of_type("AWS::Lambda::EventSourceMapping"):
        props = stack.properties(lid)
        source = str(props.get("EventSourceArn", ""))
        fn = invoke_target(stack, props.get("FunctionName"))
        if fn is None:
            stack.refuse(lid, f"maps to {props.get('FunctionName')!r}, not a function of this stack: the local "
                              "cloud cannot invoke it")
            continue
        if ":dynamodb:" not in source or "/stream/" not in source:
            stack.refuse(lid, f"event source {source!r} is not a DynamoDB stream; the local cloud polls "
                              "DynamoDB streams only")
            continue
        out.append(_stream_mapping(stack, lid, props, fn, source))
    return out


def _stream_mapping(stack: Stack, lid: str, props: dict[str, Any], fn: str, source: str) -> StreamMappingModel:
    filters = []
    for f in (props.get("FilterCriteria") or {}).get("Filters") or []:
        pattern = f.get("Pattern")
        filters.append(json.loads(pattern) if isinstance(pattern, str) else pattern)
    return StreamMappingModel(
        logical_id=lid,
        uuid=stack.refs.get(lid) or str(uuid.uuid4()),
        function=fn,
        event_source_arn=source,
        starting_position=str(props.get("StartingPosition", "LATEST")),
        batch_size=int(props.get("BatchSize", 100)),
        maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
        maximum_record_age_s=int(props.get("MaximumRecordAgeInSeconds", -1)),
        bisect_on_error=as_str(props.get("BisectBatchOnFunctionError", False)) == "true",
        filters=filters,
        report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
        on_failure=((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"),
        enabled=as_str(props.get("Enabled", True)) == "true",
        maximum_batching_window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
    )


@dataclass
class ScheduleModel:
    """An EventBridge rule that runs on a ``rate(...)`` schedule and invokes functions of the stack."""

    logical_id: str
    name: str
    arn: str
    expression: str
    rate_minutes: float  # the period, in minutes
    functions: list[str]  # what it invokes (as RouteModel.function)
    input: str | None = None  # the targets' Input (JSON), else EventBridge's "Scheduled Event"
    enabled: bool = True


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_RATE_MINUTES = {"minute": 1, "hour": 60, "day": 1440}


def schedules(stack: Stack) -> list[ScheduleModel]:
    """Every ``AWS::Events::Rule`` with a schedule (SAM's ``Schedule`` event); a rule that matches events
    (``EventPattern``), a ``cron(...)`` schedule or a target that is not a function of this stack is refused."""
    out = []
    for lid in stack.of_type("AWS::Events::Rule"):
        props = stack.properties(lid)
        expression = str(props.get("ScheduleExpression") or "")
        if props.get("EventPattern") is not None or not expression:
            stack.refuse(lid, "an EventBridge rule on an event pattern is not run by the local cloud "
                              "(schedule rules with rate(...) are)")
            continue
        rate = _RATE.match(expression.strip())
        if rate is None:
            stack.refuse(lid, f"schedule {expression!r} is not run by the local cloud: use rate(N minutes|hours|days)")
            continue
        targets = []
        inputs = set()
        for target in props.get("Targets") or []:
            fn = invoke_target(stack, target.get("Arn"))
            if fn is None or set(target) - {"Arn", "Id", "Input"}:
                stack.refuse(lid, f"target {target.get('Id')!r} is not a function of this stack invoked with a "
                                  "plain or constant input: the local cloud cannot run it")
                continue
            targets.append(fn)
            inputs.add(target.get("Input"))
        if len(inputs) > 1:
            stack.refuse(lid, "targets with different inputs are not run by the local cloud")
            continue
        name = str(stack.refs.get(lid) or props.get("Name") or lid)
        out.append(ScheduleModel(
            logical_id=lid, name=name, arn=stack.arn("events", f"rule/{name}"), expression=expression,
            rate_minutes=int(rate.group(1)) * _RATE_MINUTES[rate.group(2).rstrip("s")], functions=targets,
            input=next(iter(inputs), None), enabled=str(props.get("State", "ENABLED")).upper() == "ENABLED",
        ))
    return out
