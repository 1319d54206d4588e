"""The local cloud is one AWS endpoint: AWS's own clients (boto3, the AWS CLI, SAM CLI) see its Lambda and CloudFormation.

Every call here goes through ``AWS_ENDPOINT_URL`` with AWS's clients only: nothing of the local cloud's
Python API is used to check what happened.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud import fake_aws_environment

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _cli(cloud: Any, *args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """``aws ...`` or ``sam ...`` aimed at ``cloud`` (fake credentials, no profile, no telemetry)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(fake_aws_environment(cloud.endpoint_url, cloud.region))
    env.update({"SAM_CLI_TELEMETRY": "0", "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"})
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


# --------------------------------------------------------------------------- the workshop's own stack


def test_the_workshop_stack_is_a_cloudformation_stack_with_lambda_functions(sns_cloud: Any) -> None:
    cfn, lam = sns_cloud.client("cloudformation"), sns_cloud.client("lambda")
    [stack] = cfn.describe_stacks(StackName="thumbnailr")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["ApiUrl"].startswith(sns_cloud.api_url.rstrip("/"))  # the local API, not execute-api
    functions = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                 for r in cfn.list_stack_resources(StackName="thumbnailr")["StackResourceSummaries"]
                 if r["ResourceType"] == "AWS::Lambda::Function"}
    assert functions["PingFunction"].startswith("thumbnailr-PingFunction-")  # named as CloudFormation names it
    listed = {f["FunctionName"] for f in lam.get_paginator("list_functions").paginate().build_full_result()["Functions"]}
    assert set(functions.values()) <= listed

    answer = lam.invoke(FunctionName=functions["PingFunction"], Payload=b"{}", LogType="Tail")
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    assert json.loads(json.loads(answer["Payload"].read())["body"]) == {"ok": True}
    tail = base64.b64decode(answer["LogResult"]).decode()
    assert tail.rstrip("\n").splitlines()[-1].startswith("REPORT RequestId: ")
    # its logs where Lambda puts them: /aws/lambda/<physical name>, one stream per execution environment
    logs = sns_cloud.client("logs")
    group = f"/aws/lambda/{functions['PingFunction']}"

    def streams() -> list[str]:
        return [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]]

    deadline = time.monotonic() + 10
    while not streams() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(s.count("/") == 3 and "[$LATEST]" in s for s in streams()), streams()


def test_lambda_errors_are_aws_errors_and_harm_nothing(sns_cloud: Any) -> None:
    lam = sns_cloud.client("lambda")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="no-such-function", Payload=b"{}")
    ping = sns_cloud.function_name("PingFunction")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName=ping, Qualifier="7", Payload=b"{}")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_alias(FunctionName=ping, Name="nope")
    with pytest.raises(lam.exceptions.RequestTooLargeException):
        lam.invoke(FunctionName=ping, Payload=json.dumps({"x": "a" * (6 * 1024 * 1024)}).encode())
    with pytest.raises(lam.exceptions.RequestTooLargeException):
        lam.invoke(FunctionName=ping, InvocationType="Event", Payload=json.dumps({"x": "a" * (1024 * 1024)}).encode())
    assert lam.invoke(FunctionName=ping, Payload=b"{}")["StatusCode"] == 200  # still serving


def test_an_event_invoke_is_queued_and_runs(sns_cloud: Any) -> None:
    lam, logs = sns_cloud.client("lambda"), sns_cloud.client("logs")
    ping = sns_cloud.function_name("PingFunction")
    since = int(time.time() * 1000)
    answer = lam.invoke(FunctionName=ping, InvocationType="Event", Payload=b'{"marker": "queued"}')
    assert answer["StatusCode"] == 202 and answer["Payload"].read() == b""
    assert lam.invoke(FunctionName=ping, InvocationType="DryRun")["StatusCode"] == 204

    def reports() -> list:
        return logs.filter_log_events(logGroupName=f"/aws/lambda/{ping}", filterPattern="REPORT",
                                      startTime=since)["events"]

    deadline = time.monotonic() + 15
    while not reports() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(reports()) == 1  # it ran, once; the dry run did not
    # as CloudWatch records them: START and END end in a newline, REPORT in a tab and a newline
    [report] = reports()
    events = logs.get_log_events(logGroupName=f"/aws/lambda/{ping}", logStreamName=report["logStreamName"],
                                 startTime=since)["events"]
    messages = [e["message"] for e in events]
    request_id = report["message"].split()[2]
    assert f"START RequestId: {request_id} Version: $LATEST\n" in messages
    assert f"END RequestId: {request_id}\n" in messages
    assert report["message"].startswith(f"REPORT RequestId: {request_id}\tDuration: ")
    assert report["message"].endswith(" MB\t\n") or report["message"].endswith(" ms\t\n")


def test_the_aws_cli_and_sam_cli_see_the_stack(sns_cloud: Any, tmp_path: Path) -> None:
    listed = _cli(sns_cloud, "aws", "lambda", "list-functions", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    ping = sns_cloud.function_name("PingFunction")
    assert ping in {f["FunctionName"] for f in json.loads(listed.stdout)["Functions"]}
    out = tmp_path / "out.json"
    invoked = _cli(sns_cloud, "aws", "lambda", "invoke", "--function-name", ping, str(out))
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(out.read_text())["statusCode"] == 200

    outputs = _cli(sns_cloud, "sam", "list", "stack-outputs", "--stack-name", "thumbnailr", "--output", "json")
    assert outputs.returncode == 0, outputs.stderr
    assert {o["OutputKey"] for o in json.loads(outputs.stdout)} >= {"ApiUrl"}
    resources = _cli(sns_cloud, "sam", "list", "resources", "--stack-name", "thumbnailr", "--output", "json",
                     cwd=REPO / "sam-app")
    assert resources.returncode == 0, resources.stderr
    assert ping in {r["PhysicalResourceId"] for r in json.loads(resources.stdout)}

    remote = _cli(sns_cloud, "sam", "remote", "invoke", "PingFunction", "--stack-name", "thumbnailr",
                  "--event", "{}", "--output", "json")
    assert remote.returncode == 0, remote.stderr
    assert json.loads(json.loads(remote.stdout)["Payload"])["statusCode"] == 200
    logs = _cli(sns_cloud, "sam", "logs", "-n", "PingFunction", "--stack-name", "thumbnailr", "-s", "10min ago")
    assert logs.returncode == 0, logs.stderr
    assert "REPORT RequestId" in logs.stdout


# --------------------------------------------------------------------------- another SAM app, deployed by SAM CLI

HELLO_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  HelloFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      Runtime: python3.13
      AutoPublishAlias: live
      DeploymentPreference:
        Type: Canary10Percent5Minutes
        Alarms: [!Ref HelloErrors]
      Events:
        Hello:
          Type: Api
          Properties: {Path: /hello, Method: get}
  HelloErrors:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/Lambda
      MetricName: Errors
      Dimensions:
        - {Name: FunctionName, Value: !Ref HelloFunction}
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanOrEqualToThreshold
      TreatMissingData: notBreaching
Outputs:
  HelloApi:
    Value: !Sub "https://${ServerlessRestApi}.execute-api.${AWS::Region}.amazonaws.com/Prod/hello"
"""

HANDLER = """\
def handler(event, context):
    {body}
    return {{"statusCode": 200, "body": "{answer}"}}
"""


def _write_app(folder: Path, answer: str, body: str = "pass") -> None:
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "template.yaml").write_text(HELLO_TEMPLATE)
    (folder / "src" / "app.py").write_text(HANDLER.format(answer=answer, body=body))


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture(scope="module")
def fast_cloud(no_real_aws: list[str]) -> Any:
    """A local cloud whose CodeDeploy and CloudWatch minutes last 0.5 s (a 5-minute canary: 2.5 s)."""
    from localcloud import LocalCloud

    cloud = LocalCloud(REPO / "sam-app" / "template.yaml", port=0, control=False, minute_s=0.5)
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()


def test_sam_deploy_updates_rolls_back_on_alarm_and_sam_delete_leaves_nothing(fast_cloud: Any, tmp_path: Path) -> None:
    app = tmp_path / "hello"
    _write_app(app, "v1")
    deploy = ("sam", "deploy", "--stack-name", "hello", "--resolve-s3", "--no-confirm-changeset",
              "--no-fail-on-empty-changeset", "--capabilities", "CAPABILITY_IAM", "--region", fast_cloud.region)
    first = _cli(fast_cloud, *deploy, cwd=app)
    assert first.returncode == 0, first.stdout + first.stderr
    cfn = fast_cloud.client("cloudformation")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="hello")["Stacks"][0]["Outputs"]}
    url = outputs["HelloApi"]
    assert _get(url) == (200, "v1")

    again = _cli(fast_cloud, *deploy, cwd=app)  # nothing changed: a no-op
    assert again.returncode == 0 and "No changes to deploy" in again.stdout + again.stderr, again.stdout + again.stderr

    # a client's keep-alive connection, open across the update: API Gateway keeps answering on it
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)

    def on_the_open_connection() -> tuple[int, str]:
        connection.request("GET", parts.path)
        answer = connection.getresponse()
        return answer.status, answer.read().decode()

    assert on_the_open_connection() == (200, "v1")
    _write_app(app, "v2")
    second = _cli(fast_cloud, *deploy, cwd=app)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _get(url) == (200, "v2")
    assert on_the_open_connection() == (200, "v2")
    connection.close()
    lam = fast_cloud.client("lambda")
    function = cfn.describe_stack_resource(StackName="hello", LogicalResourceId="HelloFunction")[
        "StackResourceDetail"]["PhysicalResourceId"]
    assert lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"] == "2"

    # a version that fails: its canary's errors set off the alarm, CodeDeploy moves traffic back, the stack rolls back
    _write_app(app, "v3", body='raise RuntimeError("v3 is broken")')
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            _get(url)
            time.sleep(0.01)

    caller = threading.Thread(target=traffic, daemon=True)
    caller.start()
    try:
        third = _cli(fast_cloud, *deploy, cwd=app)
    finally:
        stop.set()
        caller.join()
    assert third.returncode != 0, third.stdout
    [stack] = cfn.describe_stacks(StackName="hello")["Stacks"]
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    reasons = " ".join(e.get("ResourceStatusReason", "") for e in cfn.describe_stack_events(StackName="hello")["StackEvents"])
    assert "HelloErrors" in reasons
    assert lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"] == "2"
    assert all(_get(url) == (200, "v2") for _ in range(20))

    deleted = _cli(fast_cloud, "sam", "delete", "--stack-name", "hello", "--no-prompts", "--region", fast_cloud.region,
                   cwd=app)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    with pytest.raises(ClientError, match="does not exist"):
        cfn.describe_stacks(StackName="hello")
    names = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
    assert not any(n.startswith("hello-") for n in names)


# --------------------------------------------------------------------------- what is refused, and how


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("index.py", source)
    return buffer.getvalue()


def _wait(cfn: Any, name: str, done: tuple[str, ...]) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        [stack] = cfn.describe_stacks(StackName=name)["Stacks"]
        if stack["StackStatus"] in done:
            return stack
        time.sleep(0.1)
    raise AssertionError(f"{name} stayed {stack['StackStatus']}")


def test_an_unsupported_resource_type_fails_the_create_with_its_reason(fast_cloud: Any) -> None:
    cfn = fast_cloud.client("cloudformation")
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"},
                              "Cluster": {"Type": "AWS::ECS::Cluster"}}}
    cfn.create_stack(StackName="unsupported", TemplateBody=json.dumps(template))
    stack = _wait(cfn, "unsupported", ("ROLLBACK_COMPLETE", "CREATE_COMPLETE"))
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    failed = [e for e in cfn.describe_stack_events(StackName="unsupported")["StackEvents"]
              if e["ResourceStatus"] == "CREATE_FAILED"]
    assert failed[0]["LogicalResourceId"] == "Cluster"
    assert "AWS::ECS::Cluster is not supported" in failed[0]["ResourceStatusReason"]
    queues = fast_cloud.client("sqs").list_queues(QueueNamePrefix="unsupported-").get("QueueUrls", [])
    assert queues == []  # nothing made
    cfn.delete_stack(StackName="unsupported")


def test_an_event_source_the_local_cloud_cannot_poll_is_refused_not_dropped(fast_cloud: Any) -> None:
    cfn = fast_cloud.client("cloudformation")
    template = {"Transform": "AWS::Serverless-2016-10-31", "Resources": {
        "Jobs": {"Type": "AWS::SQS::Queue"},
        "Worker": {"Type": "AWS::Serverless::Function", "Properties": {
            "InlineCode": "def handler(event, context):\n    return None\n", "Handler": "index.handler",
            "Runtime": "python3.13",
            "Events": {"Job": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["Jobs", "Arn"]}}}}}}}}
    cfn.create_stack(StackName="sqs-worker", TemplateBody=json.dumps(template),
                     Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"])
    stack = _wait(cfn, "sqs-worker", ("ROLLBACK_COMPLETE", "CREATE_COMPLETE"))
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    [failed] = [e for e in cfn.describe_stack_events(StackName="sqs-worker")["StackEvents"]
                if e["ResourceStatus"] == "CREATE_FAILED"]
    assert failed["LogicalResourceId"] == "WorkerJob"  # SAM's event source mapping
    assert "not a DynamoDB stream" in failed["ResourceStatusReason"]
    lam = fast_cloud.client("lambda")
    assert not any(f["FunctionName"].startswith("sqs-worker-") for f in lam.list_functions()["Functions"])
    cfn.delete_stack(StackName="sqs-worker")


def test_a_template_that_fails_the_transform_fails_its_change_set(fast_cloud: Any) -> None:
    cfn = fast_cloud.client("cloudformation")
    broken = {"Transform": "AWS::Serverless-2016-10-31",
              "Resources": {"Fn": {"Type": "AWS::Serverless::Function", "Properties": {"Runtime": "python3.13"}}}}
    made = cfn.create_change_set(StackName="broken", ChangeSetName="one", ChangeSetType="CREATE",
                                 TemplateBody=json.dumps(broken), Capabilities=["CAPABILITY_IAM"])
    with pytest.raises(Exception):
        cfn.get_waiter("change_set_create_complete").wait(ChangeSetName=made["Id"], WaiterConfig={"Delay": 1})
    described = cfn.describe_change_set(ChangeSetName=made["Id"])
    assert described["Status"] == "FAILED" and "Fn" in described["StatusReason"]


def test_create_function_with_a_zip_then_invoke_through_the_cli(fast_cloud: Any, tmp_path: Path) -> None:
    lam = fast_cloud.client("lambda")
    lam.create_function(FunctionName="echo", Runtime="python3.13", Handler="index.handler",
                        Role="arn:aws:iam::123456789012:role/echo",
                        Code={"ZipFile": _zip("def handler(event, context):\n    return event\n")})
    out = tmp_path / "out.json"
    invoked = _cli(fast_cloud, "aws", "lambda", "invoke", "--function-name", "echo", "--payload", '{"a": 1}',
                   str(out))  # AWS CLI v1 sends --payload as it is
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(out.read_text()) == {"a": 1}
    lam.delete_function(FunctionName="echo")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName="echo")


# --------------------------------------------------------------------------- any SAM app; code built for another CPU

OTHER_APP = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  ZippedFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: zipped.zip, Handler: app.handler, Runtime: python3.13}
  PlainFunction:
    Type: AWS::Lambda::Function
    Properties:
      Code: plain/
      Handler: app.handler
      Runtime: python3.13
      Role: arn:aws:iam::123456789012:role/plain
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: dev
      DefinitionBody:
        openapi: "3.0.1"
        info: {title: other, version: "1"}
        paths:
          /plain:
            get:
              x-amazon-apigateway-integration:
                type: AWS_PROXY
                httpMethod: POST
                uri: !Sub "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${PlainFunction.Arn}/invocations"
"""


def test_another_sam_app_runs_zip_code_plain_functions_and_upper_case_proxy_routes(tmp_path: Path,
                                                                                    no_real_aws: list[str]) -> None:
    from localcloud import LocalCloud

    app = tmp_path / "other"
    (app / "plain").mkdir(parents=True)
    (app / "plain" / "app.py").write_text(
        "def handler(event, context):\n    return {'statusCode': 200, 'body': 'plain ' + event['path']}\n")
    with zipfile.ZipFile(app / "zipped.zip", "w") as z:
        z.writestr("app.py", "def handler(event, context):\n    return 'zipped'\n")
    (app / "template.yaml").write_text(OTHER_APP)
    with LocalCloud(app / "template.yaml", port=0, control=False, stack_name="other") as cloud:
        lam = cloud.client("lambda")
        zipped = cloud.function_name("ZippedFunction")
        assert json.loads(lam.invoke(FunctionName=zipped)["Payload"].read()) == "zipped"
        assert _get(cloud.api_url + "dev/plain") == (200, "plain /plain")
        kinds = {r["LogicalResourceId"]: r["ResourceType"] for r in
                 cloud.client("cloudformation").list_stack_resources(StackName="other")["StackResourceSummaries"]}
        assert kinds["PlainFunction"] == kinds["ZippedFunction"] == "AWS::Lambda::Function"


def _elf(machine: int) -> bytes:
    """The 20 bytes of an ELF header that say which CPU a shared object is for (e_machine at offset 18)."""
    return b"\x7fELF\x02\x01\x01" + b"\0" * 11 + machine.to_bytes(2, "little")


def test_a_package_built_for_another_cpu_runs_with_this_machines_native_packages(fast_cloud: Any) -> None:
    """sam build makes arm64 packages: their Pillow cannot load here; the function runs with this machine's."""
    import PIL

    foreign = 0x3E if os.uname().machine in ("aarch64", "arm64") else 0xB7  # x86-64 on arm, AArch64 elsewhere
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("index.py", "import PIL\n\ndef handler(event, context):\n    return PIL.__file__\n")
        z.writestr("PIL/__init__.py", "raise ImportError('the package built for another CPU was imported')\n")
        z.writestr("PIL/_imaging.cpython-313-linux-gnu.so", _elf(foreign))
        z.writestr(f"pillow-{PIL.__version__}.dist-info/RECORD",
                   "PIL/__init__.py,,\nPIL/_imaging.cpython-313-linux-gnu.so,,\npillow.libs/libjpeg.so,,\n")
        z.writestr("pillow.libs/libjpeg.so", _elf(foreign))
    lam = fast_cloud.client("lambda")
    lam.create_function(FunctionName="foreign-pillow", Runtime="python3.13", Handler="index.handler",
                        Role="arn:aws:iam::123456789012:role/x", Architectures=["arm64"],
                        Code={"ZipFile": buffer.getvalue()})
    answer = lam.invoke(FunctionName="foreign-pillow", LogType="Tail")
    assert "FunctionError" not in answer, answer["Payload"].read()
    assert json.loads(answer["Payload"].read()) == PIL.__file__  # this machine's Pillow
    log = base64.b64decode(answer["LogResult"]).decode()
    assert f"PIL (pillow {PIL.__version__}) is built for" in log and "runs the function with its own pillow" in log
    lam.delete_function(FunctionName="foreign-pillow")


def test_sam_deploy_of_the_workshop_app_itself_as_a_second_stack(fast_cloud: Any) -> None:
    """`sam deploy` of sam-app (its `sam build` output when there is one: arm64) runs here, then `sam delete`."""
    deploy = _cli(fast_cloud, "sam", "deploy", "--stack-name", "thumbnailr-2", "--resolve-s3", "--capabilities",
                  "CAPABILITY_IAM", "--no-confirm-changeset", "--region", fast_cloud.region, cwd=REPO / "sam-app")
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    cfn, lam = fast_cloud.client("cloudformation"), fast_cloud.client("lambda")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="thumbnailr-2")["Stacks"][0]["Outputs"]}
    assert _get(outputs["ApiUrl"] + "ping")[0] == 200
    worker = cfn.describe_stack_resource(StackName="thumbnailr-2", LogicalResourceId="CreateThumbnailFunction")[
        "StackResourceDetail"]["PhysicalResourceId"]
    answer = lam.invoke(FunctionName=worker, Payload=b'{"Records": []}', LogType="Tail")
    assert "FunctionError" not in answer, answer["Payload"].read()
    built = REPO / "sam-app" / ".aws-sam" / "build" / "CreateThumbnailFunction" / "PIL"
    foreign = built.is_dir() and "aarch64" not in os.uname().machine and "arm64" not in os.uname().machine
    if foreign:  # sam build made arm64 Pillow: the function says it runs with this machine's
        assert "is built for aarch64" in base64.b64decode(answer["LogResult"]).decode()
    deleted = _cli(fast_cloud, "sam", "delete", "--stack-name", "thumbnailr-2", "--no-prompts", "--region",
                   fast_cloud.region, cwd=REPO / "sam-app")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert not any(f["FunctionName"].startswith("thumbnailr-2-") for f in lam.list_functions()["Functions"])
