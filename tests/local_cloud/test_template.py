"""The SAM template read offline: parameters, conditions, intrinsics, functions, routes, event sources.

Nothing is started: ``Stack(...).predict()`` records what each resource's Ref/GetAtt would be.
The expectations come from the template itself (parsed here with SAM CLI's YAML loader) wherever
they can, so that changing the app does not mean changing these tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import textwrap
from pathlib import Path

import pytest
from samcli.yamlhelper import yaml_parse

from localcloud.cfn.intrinsics import refs_in
from localcloud.cfn.stack import Stack, TemplateError
from localcloud.cfn.transform import sam_transform
from localcloud.lambda_service.code import host_code_dir

pytestmark = pytest.mark.local_cloud

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "sam-app" / "template.yaml"
SAM = yaml_parse(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("template-cache")


def _stack(cache: Path, dispatch: str, **params: str) -> Stack:
    return Stack(TEMPLATE, parameters={"Dispatch": dispatch, **params}, cache_dir=cache).predict()


@pytest.fixture(scope="module")
def sns(cache: Path) -> Stack:
    return _stack(cache, "sns")


@pytest.fixture(scope="module")
def stream(cache: Path) -> Stack:
    return _stack(cache, "stream")


def _serverless_functions() -> dict[str, dict]:
    return {lid: r for lid, r in SAM["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}


def test_every_function_is_found_with_its_handler_and_settings(sns: Stack) -> None:
    functions = {f.logical_id: f for f in sns.functions()}
    declared = _serverless_functions()
    assert set(functions) == set(declared)
    globals_fn = SAM.get("Globals", {}).get("Function", {})
    for lid, resource in declared.items():
        props, fn = resource["Properties"], functions[lid]
        assert fn.handler == props["Handler"]
        assert fn.memory_mb == int(props.get("MemorySize", globals_fn.get("MemorySize", 128)))
        assert fn.timeout_s == float(props.get("Timeout", globals_fn.get("Timeout", 3)))
        assert fn.runtime == props.get("Runtime", globals_fn.get("Runtime"))
        assert fn.architecture == (props.get("Architectures") or globals_fn.get("Architectures") or ["x86_64"])[0]
        code = (TEMPLATE.parent / props.get("CodeUri", globals_fn.get("CodeUri"))).resolve()
        assert fn.code_uri == code
        module, _, function = fn.handler.rpartition(".")
        source = code / (module.replace(".", "/") + ".py")
        assert source.is_file(), f"{lid}'s handler module {module} is not in {code}"
        assert f"def {function}(" in source.read_text()
        # named as CloudFormation names what a template does not: stack-LogicalId-SUFFIX, at most 64 characters
        assert re.fullmatch(rf"thumbnailr-{lid}-[A-Z0-9]{{12}}", fn.name) and len(fn.name) <= 64
        assert fn.arn == f"arn:aws:lambda:us-east-1:123456789012:function:{fn.name}"


def test_environment_is_resolved_to_strings(sns: Stack, stream: Stack) -> None:
    for stack in (sns, stream):
        for fn in stack.functions():
            assert all(isinstance(v, str) for v in fn.environment.values()), fn.environment
            assert not any(("Ref" in v or "Fn::" in v or "${" in v) for v in fn.environment.values())
            declared = _serverless_functions()[fn.logical_id]["Properties"].get("Environment", {}).get("Variables", {})
            globals_env = SAM.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
            assert set(fn.environment) == set(declared) | set(globals_env)
            for name, value in declared.items():
                if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in stack.resources:
                    assert fn.environment[name] == stack.refs[value["Ref"]]
    outputs = sns.outputs()
    env = {k: v for fn in sns.functions() for k, v in fn.environment.items()}
    assert outputs["PhotosTableName"] in env.values()
    assert outputs["PhotosBucketName"] == "thumbnailr-photos-123456789012-us-east-1"  # Fn::Sub with pseudo params


def test_dispatch_sns_gives_a_subscription_stream_gives_a_mapping(sns: Stack, stream: Stack) -> None:
    assert sns.parameters["Dispatch"] == "sns" and stream.parameters["Dispatch"] == "stream"
    assert sns.conditions == {"DispatchBySns": True, "DispatchByStream": False}
    assert stream.conditions == {"DispatchBySns": False, "DispatchByStream": True}

    [subscription] = sns.sns_subscriptions()
    assert subscription.topic_arn == sns.outputs()["CommandsTopicArn"]
    assert sns.stream_mappings() == []
    assert stream.sns_subscriptions() == []
    [mapping] = stream.stream_mappings()
    assert mapping.function == subscription.function
    assert mapping.event_source_arn == stream.attrs[("ThumbnailsTable", "StreamArn")]
    props = SAM["Resources"][mapping.logical_id]["Properties"]
    assert mapping.batch_size == props["BatchSize"]
    assert mapping.starting_position == props["StartingPosition"]
    assert mapping.maximum_retry_attempts == props["MaximumRetryAttempts"]
    assert mapping.bisect_on_error is props["BisectBatchOnFunctionError"]
    assert mapping.report_batch_item_failures is ("ReportBatchItemFailures" in props["FunctionResponseTypes"])
    assert mapping.filters == [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]]
    assert mapping.on_failure.endswith(":" + stream.outputs()["DeadLetterQueueName"])

    # Fn::If on the environment and AWS::NoValue in a list
    by_name = {f.logical_id: f for f in sns.functions()}
    stream_by_name = {f.logical_id: f for f in stream.functions()}
    topic_users = [lid for lid, f in by_name.items() if f.environment.get("COMMANDS_TOPIC_ARN")]
    assert topic_users and all(stream_by_name[lid].environment["COMMANDS_TOPIC_ARN"] == "" for lid in topic_users)
    assert all(by_name[lid].environment["DISPATCH"] == "sns" for lid in topic_users)


def test_async_config_and_dead_letter_queue(sns: Stack) -> None:
    declared = _serverless_functions()
    for fn in sns.functions():
        props = declared[fn.logical_id]["Properties"]
        invoke_config = props.get("EventInvokeConfig") or {}
        assert fn.async_config.max_retry_attempts == invoke_config.get("MaximumRetryAttempts", 2)
        assert fn.async_config.max_event_age_s == invoke_config.get("MaximumEventAgeInSeconds", 21600)
        if "DeadLetterQueue" in props:
            assert fn.async_config.dead_letter_arn == sns.attrs[("DeadLetterQueue", "Arn")]
        else:
            assert fn.async_config.dead_letter_arn is None


def test_routes_with_their_auth(sns: Stack) -> None:
    routes = {(r.method, r.path): r for r in sns.routes()}
    expected = {}
    default_auth = SAM["Resources"]["ThumbnailApi"]["Properties"]["Auth"]["DefaultAuthorizer"]
    for lid, resource in _serverless_functions().items():
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] == "Api":
                p = event["Properties"]
                authorizer = (p.get("Auth") or {}).get("Authorizer", default_auth)
                # with AutoPublishAlias, SAM points the API at the alias (function:live)
                alias = resource["Properties"].get("AutoPublishAlias")
                target = f"{sns.refs[lid]}:{alias}" if alias else sns.refs[lid]
                expected[(p["Method"].upper(), p["Path"])] = (target, authorizer != "NONE")
    assert {k: (r.function, r.authorized) for k, r in routes.items()} == expected
    assert routes[("GET", "/ping")].authorized is False
    stage = sns.stage("ThumbnailApi")
    assert stage.name == "Prod" and stage.variables == {} and stage.binary_media_types == []
    assert stage.method_settings == [{"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": 50,
                                      "ThrottlingBurstLimit": 100}]
    pool_id, clients = sns.user_pool_for_api()
    assert pool_id == sns.refs["UserPool"] and clients == [sns.refs["UserPoolClient"]]


def test_an_apis_cors_stage_settings_and_binary_media_types(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(textwrap.dedent("""\
        AWSTemplateFormatVersion: "2010-09-09"
        Transform: AWS::Serverless-2016-10-31
        Globals:
          Api:
            Cors: {AllowOrigin: "'https://example.com'", AllowHeaders: "'Content-Type'", MaxAge: "'600'"}
            BinaryMediaTypes: ["image~1png"]
        Resources:
          Api:
            Type: AWS::Serverless::Api
            Properties:
              StageName: dev
              Variables: {color: blue, size: 3}
              MethodSettings:
                - {ResourcePath: "/*", HttpMethod: "*", ThrottlingRateLimit: 5, ThrottlingBurstLimit: 10}
                - {ResourcePath: "/~1hello", HttpMethod: GET, ThrottlingBurstLimit: 2}
          Upper:
            Type: AWS::ApiGateway::Method
            Properties: {RestApiId: !Ref Api, ResourceId: x, HttpMethod: GET}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.13
              Events:
                Get: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /hello, Method: get}}
        """))
    stack = Stack(template, stack_name="teststack", cache_dir=tmp_path / "cache").predict()
    routes = {(r.method, r.path): r for r in stack.routes()}
    assert routes[("GET", "/hello")].function and routes[("GET", "/hello")].mock is None
    preflight = routes[("OPTIONS", "/hello")]  # SAM's Cors: a mock integration
    assert preflight.function is None and preflight.authorized is False
    assert preflight.mock is not None and preflight.mock.status == 200
    assert dict(preflight.mock.headers) == {"Access-Control-Allow-Origin": "https://example.com",
                                            "Access-Control-Allow-Headers": "Content-Type",
                                            "Access-Control-Allow-Methods": "GET,OPTIONS",
                                            "Access-Control-Max-Age": "600"}
    stage = stack.stage("Api")
    assert stage.name == "dev" and stage.variables == {"color": "blue", "size": "3"}
    assert stage.binary_media_types == ["image/png"]
    from localcloud.apigateway.throttle import MethodThrottle

    assert [MethodThrottle.from_setting(m) for m in stage.method_settings] == [
        MethodThrottle("/*", "*", 5.0, 10), MethodThrottle("/hello", "GET", None, 2)]


def test_an_upper_case_aws_proxy_integration_is_served(sns: Stack) -> None:
    from localcloud.cfn import models

    stack = sns
    api = "ThumbnailApi"
    body = stack.properties(api)["Body"]
    original = body["paths"]["/ping"]["get"]["x-amazon-apigateway-integration"]["type"]
    body["paths"]["/ping"]["get"]["x-amazon-apigateway-integration"]["type"] = "AWS_PROXY"
    try:
        assert ("GET", "/ping") in {(r.method, r.path) for r in models.routes(stack)}
    finally:
        body["paths"]["/ping"]["get"]["x-amazon-apigateway-integration"]["type"] = original


def test_s3_notification_with_prefix(sns: Stack) -> None:
    [notification] = sns.s3_notifications()
    assert notification.bucket == sns.outputs()["PhotosBucketName"]
    assert notification.events == ["s3:ObjectCreated:*"]
    assert notification.filter_rules == [{"Name": "prefix", "Value": "photos/"}]
    assert notification.function == sns.refs["PhotoUploadedFunction"]


def test_dependency_order(sns: Stack, stream: Stack) -> None:
    for stack in (sns, stream):
        position = {lid: i for i, lid in enumerate(stack.order)}
        for lid in stack.order:
            for dep in stack.dependencies(lid):
                assert position[dep] < position[lid], (lid, dep)
    assert "CommandsSubscription" in sns.resources and "CommandsSubscription" not in stream.resources
    assert "ThumbnailsStreamMapping" in stream.resources and "ThumbnailsStreamMapping" not in sns.resources


def test_parameters_are_checked(cache: Path) -> None:
    quota = _stack(cache, "sns", MonthlyQuota="3")
    assert {f.environment.get("MONTHLY_QUOTA") for f in quota.functions()} >= {"3"}
    with pytest.raises(TemplateError, match="must be one of sns, stream"):
        Stack(TEMPLATE, parameters={"Dispatch": "carrier-pigeon"}, cache_dir=cache)
    with pytest.raises(TemplateError, match="MinValue"):
        Stack(TEMPLATE, parameters={"MonthlyQuota": "0"}, cache_dir=cache)
    with pytest.raises(TemplateError, match="unknown parameter.*Nope"):
        Stack(TEMPLATE, parameters={"Nope": "1"}, cache_dir=cache)
    # an optional parameter the template does not declare is ignored
    assert Stack(TEMPLATE, optional_parameters={"Undeclared": "x"}, cache_dir=cache).parameters["Dispatch"] == "sns"


def test_intrinsics(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(textwrap.dedent("""\
        AWSTemplateFormatVersion: "2010-09-09"
        Transform: AWS::Serverless-2016-10-31
        Parameters:
          Env: {Type: String, Default: dev, AllowedValues: [dev, prod]}
          Names: {Type: CommaDelimitedList, Default: "a,b,c"}
        Mappings:
          Sizes: {dev: {Memory: 128}, prod: {Memory: 1024}}
        Conditions:
          IsProd: !Equals [!Ref Env, prod]
          IsDev: !Not [!Condition IsProd]
          Both: !And [!Condition IsDev, !Or [!Equals [a, b], !Condition IsDev]]
        Resources:
          Table:
            Type: AWS::DynamoDB::Table
            Properties:
              AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
              KeySchema: [{AttributeName: id, KeyType: HASH}]
              BillingMode: PAY_PER_REQUEST
              StreamSpecification: {StreamViewType: NEW_IMAGE}
          ProdOnly:
            Type: AWS::SQS::Queue
            Condition: IsProd
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.13
              MemorySize: !FindInMap [Sizes, !Ref Env, Memory]
              Environment:
                Variables:
                  LITERAL: !Sub "${!NotAVariable}-${AWS::Region}"
                  STREAM_LABEL: !Select [3, !Split ["/", !GetAtt Table.StreamArn]]
                  JOINED: !Join ["+", !Ref Names]
                  SUB_VARS: !Sub ["${Greeting}, ${Table}", {Greeting: hello}]
                  MAYBE: !If [IsProd, !Ref ProdOnly, "none"]
                  BOTH: !If [Both, "yes", "no"]
                  ARN: !GetAtt Table.Arn
                  STACK: !Sub "${AWS::StackName}/${AWS::AccountId}/${AWS::Partition}/${AWS::URLSuffix}"
        """))
    stack = Stack(template, stack_name="teststack", cache_dir=tmp_path / "cache").predict()
    [fn] = stack.functions()
    table = stack.refs["Table"]
    assert table.startswith("teststack-Table-")
    assert fn.memory_mb == 128
    assert fn.environment == {
        "LITERAL": "${NotAVariable}-us-east-1",
        "STREAM_LABEL": stack.attrs[("Table", "StreamArn")].rsplit("/", 1)[1],
        "JOINED": "a+b+c",
        "SUB_VARS": f"hello, {table}",
        "MAYBE": "none",
        "BOTH": "yes",
        "ARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}",
        "STACK": "teststack/123456789012/aws/amazonaws.com",
    }
    assert "ProdOnly" not in stack.resources
    prod = Stack(template, stack_name="teststack", parameters={"Env": "prod"}, cache_dir=tmp_path / "cache").predict()
    [fn] = prod.functions()
    assert fn.memory_mb == 1024 and fn.environment["MAYBE"] == prod.refs["ProdOnly"]
    assert prod.refs["ProdOnly"].endswith("/teststack-ProdOnly-" + prod.refs["ProdOnly"].rsplit("-", 1)[1])


def _fake_so(path: Path, machine: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5] = 2, 1  # 64-bit, little-endian
    header[18:20] = machine.to_bytes(2, "little")
    path.write_bytes(bytes(header))


def test_code_dir_is_the_build_only_when_built_for_this_machine(tmp_path: Path) -> None:
    import platform

    source = tmp_path / "src"
    source.mkdir()
    host = {"x86_64": 0x3E, "amd64": 0x3E, "aarch64": 0xB7, "arm64": 0xB7}[platform.machine().lower()]
    other = 0xB7 if host == 0x3E else 0x3E
    assert host_code_dir(source, tmp_path / "missing")[0] == source
    foreign = tmp_path / "foreign"
    _fake_so(foreign / "PIL" / "_imaging.cpython-313-linux-gnu.so", other)
    assert host_code_dir(source, foreign)[0] == source
    native = tmp_path / "native"
    _fake_so(native / "PIL" / "_imaging.cpython-313-linux-gnu.so", host)
    assert host_code_dir(source, native)[0] == native
    pure = tmp_path / "pure"
    (pure / "pkg").mkdir(parents=True)
    (pure / "pkg" / "__init__.py").write_text("")
    assert host_code_dir(source, pure)[0] == source  # nothing says what it was built for

    # with sam build's manifest: .aws-sam/build.toml names the architecture of each function's build
    sam = tmp_path / ".aws-sam"
    for name in ("Native", "Foreign"):
        (sam / "build" / name / "pkg").mkdir(parents=True)
    arch_name = {0x3E: "x86_64", 0xB7: "arm64"}
    (sam / "build.toml").write_text(
        f'[function_build_definitions.a]\narchitecture = "{arch_name[host]}"\nfunctions = ["Native"]\n'
        f'[function_build_definitions.b]\narchitecture = "{arch_name[other]}"\nfunctions = ["Foreign"]\n')
    assert host_code_dir(source, sam / "build" / "Native")[0] == sam / "build" / "Native"
    assert host_code_dir(source, sam / "build" / "Foreign")[0] == source


def test_the_repos_build_is_used_only_if_it_loads_here(sns: Stack) -> None:
    build = TEMPLATE.parent / ".aws-sam" / "build"
    for fn in sns.functions():
        chosen, why = host_code_dir(fn.code_uri, build / fn.logical_id)
        assert chosen in (fn.code_uri, build / fn.logical_id), why
        if chosen != fn.code_uri:  # a build for this machine: its Pillow must import here
            assert importlib.util.find_spec("PIL") is not None


def test_a_transformed_template_gives_the_same_stack(sns: Stack) -> None:
    # GIVEN the template transformed by hand (what workshop.artifacts and workshop.iam do)
    translation = sam_transform(SAM, {"Dispatch": "sns"}, code_uri="s3://bucket/code.zip")
    assert translation.template["Resources"]["PingFunction"]["Properties"]["Code"] == {
        "S3Bucket": "bucket", "S3Key": "code.zip"}
    # THEN a stack of it names and wires everything as the stack of the file does
    stack = Stack.from_template(translation.template, parameters={"Dispatch": "sns"}).predict()
    # (a version's logical id ends with a hash of its code, by SAM's design: the code's URI differs here)
    def by_kind(values: dict) -> dict:
        def key(k):
            lid = k if isinstance(k, str) else k[0]
            lid = re.sub(r"Version[0-9a-f]{10}$", "Version<hash>", lid)
            return lid if isinstance(k, str) else (lid, *k[1:])
        return {key(k): v for k, v in values.items()}
    assert by_kind(stack.refs) == by_kind(sns.refs) and by_kind(stack.attrs) == by_kind(sns.attrs)
    assert stack.routes() == sns.routes() and stack.sns_subscriptions() == sns.sns_subscriptions()
    assert stack.physical_name("CommandsTopic") == sns.outputs()["CommandsTopicName"]
    assert stack.physical_name("DeadLetterQueue") == sns.outputs()["DeadLetterQueueName"]
    assert stack.resource_arn("CommandsTopic") == sns.outputs()["CommandsTopicArn"]
    assert stack.resource_arn("PhotosTable") == f"arn:aws:dynamodb:us-east-1:123456789012:table/{sns.refs['PhotosTable']}"


def test_refs_in_follows_the_branch_taken_or_both(sns: Stack, stream: Stack) -> None:
    value = SAM["Resources"]["RequestThumbnailFunction"]["Properties"]["Environment"]["Variables"]
    assert "CommandsTopic" in set(refs_in(value))  # whichever way the Fn::If goes
    assert "CommandsTopic" in set(sns.refs_in(value)) and "CommandsTopic" not in set(stream.refs_in(value))
    assert list(refs_in({"Fn::Sub": ["${A}-${B.Arn}-${!C}-${AWS::Region}", {"A": {"Ref": "D"}}]})) == [
        "D", "B", "AWS::Region"]


def test_the_transform_leaves_the_process_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    before = dict(os.environ)
    translation = sam_transform(SAM, region="cn-north-1")  # the region picks the partition
    assert dict(os.environ) == before
    role = translation.template["Resources"]["PingFunctionRole"]["Properties"]
    assert role["ManagedPolicyArns"] == ["arn:aws-cn:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]
