"""The Lambda API (localcloud.lambda_service.api + service) through AWS's own clients: boto3's ``lambda`` client
and the AWS CLI, against LambdaApi served alone, over a real LambdaRuntime (and moto's S3 for zips in S3)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.endpoint.moto_process import MotoProcess
from localcloud.http import HttpServer
from localcloud.lambda_service.api import LambdaApi
from localcloud.lambda_service.runtime import LambdaRuntime
from localcloud.lambda_service.service import LambdaService
from localcloud.lambda_service.spec import InvokeRecord
from localcloud.sdk import FAKE_CREDENTIALS, Clients, fake_aws_environment

pytestmark = pytest.mark.local_cloud

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/lambda-role"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

#: answers what it ran as; prints a line so the log has something of its own
APP = '''
import os
import time
TAG = "{tag}"
print("app: imported")

def handler(event, context):
    print("app: handling", TAG)
    if event.get("fail"):
        raise ValueError("asked to fail")
    if event.get("write"):
        with open(event["write"], "w") as f:
            f.write(TAG)
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("noise"):
        print("n" * event["noise"])
    return {{"tag": TAG, "event_keys": sorted(event), "pid": os.getpid(),
             "version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
             "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
             "group": os.environ["AWS_LAMBDA_LOG_GROUP_NAME"],
             "stream": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
             "arn": context.invoked_function_arn}}
'''


def app_zip(tag: str = "v1") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("app.py", APP.format(tag=tag))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def moto(no_real_aws: list[str]) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(FAKE_CREDENTIALS, AWS_DEFAULT_REGION=REGION)
    process = MotoProcess(env)
    try:
        yield f"http://127.0.0.1:{process.wait_ready()}"
    finally:
        process.stop()


@pytest.fixture(scope="module")
def cloud(moto: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """One runtime, service and API server for the module; each test makes functions of its own names."""
    sunk: list[tuple[str, str]] = []  # (log group's function, log stream) of each invocation
    runtime = LambdaRuntime(account_concurrency=110, region=REGION, account_id=ACCOUNT,
                            log_sink=lambda function, lines, stream: sunk.append((function, stream)))
    clients = Clients(moto, REGION)
    service = LambdaService(runtime, clients, code_root=tmp_path_factory.mktemp("code"),
                            region=REGION, account_id=ACCOUNT)
    records: list[InvokeRecord] = []
    service.on_invoked.append(records.append)
    server = HttpServer(LambdaApi(service), name="lambda-api").start()
    url = f"http://127.0.0.1:{server.port}"
    client = boto3.client("lambda", endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
                          aws_secret_access_key="testing",
                          config=Config(retries={"total_max_attempts": 1}, read_timeout=30))
    try:
        yield SimpleNamespace(runtime=runtime, service=service, client=client, url=url, s3=clients("s3"),
                              records=records, sunk=sunk)
    finally:
        server.stop()
        runtime.stop()


def create(cloud: SimpleNamespace, name: str, tag: str = "v1", **kw) -> dict:
    return cloud.client.create_function(FunctionName=name, Runtime="python3.13", Role=ROLE, Handler="app.handler",
                                        Code={"ZipFile": app_zip(tag)}, Timeout=10, **kw)


def invoke(cloud: SimpleNamespace, name: str, event: dict | None = None, **kw) -> tuple[dict, dict]:
    response = cloud.client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kw)
    return response, json.loads(response["Payload"].read())


def error_of(info: pytest.ExceptionInfo) -> tuple[str, int, str]:
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


# ----------------------------------------------------------------------------- create, invoke, logs


def test_create_from_a_zip_and_invoke_with_its_tail_log(cloud: SimpleNamespace) -> None:
    config = create(cloud, "zipped", Environment={"Variables": {"COLOUR": "blue"}})
    assert config["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zipped"
    assert config["Version"] == "$LATEST" and config["State"] == "Active"
    assert config["CodeSize"] == len(app_zip()) and len(base64.b64decode(config["CodeSha256"])) == 32

    response, body = invoke(cloud, "zipped", {"a": 1}, LogType="Tail")
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert body["event_keys"] == ["a"] and body["name"] == "zipped" and body["version"] == "$LATEST"
    assert body["group"] == "/aws/lambda/zipped"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", body["stream"])
    log = base64.b64decode(response["LogResult"]).decode()
    assert re.search(rf"\nEND RequestId: {UUID}\nREPORT RequestId: {UUID}\t.*\tInit Duration: [\d.]+ ms\t\n$", log)
    lines = log.rstrip("\n").split("\n")
    # https://docs.aws.amazon.com/lambda/latest/dg/runtime-management-identify.html
    assert re.fullmatch(r"INIT_START Runtime Version: python:3\.13\.v\d+\tRuntime Version ARN: "
                        rf"arn:aws:lambda:{REGION}::runtime:[0-9a-f]{{64}}", lines[0])  # a cold start, all in 4 KB
    assert "app: imported" in lines and "app: handling v1" in lines
    assert re.fullmatch(rf"START RequestId: {UUID} Version: \$LATEST", lines[lines.index("app: imported") + 1])
    assert re.match(rf"REPORT RequestId: {UUID}\tDuration: ", lines[-1])


def test_the_tail_log_is_the_last_4_kb_and_ends_with_the_report_line(cloud: SimpleNamespace) -> None:
    create(cloud, "noisy")
    response, _ = invoke(cloud, "noisy", {"noise": 10_000}, LogType="Tail")
    log = base64.b64decode(response["LogResult"])
    assert 3000 < len(log) <= 4096
    assert log.decode().rstrip("\n").split("\n")[-1].startswith("REPORT RequestId: ")
    assert "LogResult" not in invoke(cloud, "noisy")[0]  # only with LogType=Tail


def test_what_was_done_to_the_code_is_said_after_init_start(cloud: SimpleNamespace,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from localcloud.lambda_service import code

    seen: list[bool] = []
    monkeypatch.setattr(code, "use_host_native_packages", lambda folder: seen.append((folder / "app.py").exists())
                        or ["Using this machine's Pillow (the package is arm64)"])
    create(cloud, "noted", tag="noted")  # new zip bytes: unpacked (and looked at) once
    assert seen == [True]  # called on the unpacked code
    lines = base64.b64decode(invoke(cloud, "noted", LogType="Tail")[0]["LogResult"]).decode().split("\n")
    assert lines[0].startswith("INIT_START ")
    assert lines[1] == "Using this machine's Pillow (the package is arm64)"


def test_create_from_s3(cloud: SimpleNamespace) -> None:
    cloud.s3.create_bucket(Bucket="artifacts")
    cloud.s3.put_object(Bucket="artifacts", Key="app/v7.zip", Body=app_zip("from-s3"))
    cloud.client.create_function(FunctionName="from-s3", Runtime="python3.13", Role=ROLE, Handler="app.handler",
                                 Code={"S3Bucket": "artifacts", "S3Key": "app/v7.zip"})
    assert invoke(cloud, "from-s3")[1]["tag"] == "from-s3"
    location = cloud.client.get_function(FunctionName="from-s3")["Code"]["Location"]
    assert location.endswith("/artifacts/app/v7.zip")

    with pytest.raises(cloud.client.exceptions.InvalidParameterValueException) as info:
        cloud.client.create_function(FunctionName="no-such-key", Runtime="python3.13", Role=ROLE,
                                     Handler="app.handler", Code={"S3Bucket": "artifacts", "S3Key": "missing.zip"})
    assert "S3 Error Code: NoSuchKey" in error_of(info)[2]
    assert "no-such-key" not in cloud.service.function_names()  # nothing half-made


def test_a_bad_zip_and_an_unsupported_runtime_are_refused(cloud: SimpleNamespace) -> None:
    with pytest.raises(cloud.client.exceptions.InvalidParameterValueException) as info:
        cloud.client.create_function(FunctionName="bad-zip", Runtime="python3.13", Role=ROLE, Handler="app.handler",
                                     Code={"ZipFile": b"not a zip"})
    assert error_of(info)[:2] == ("InvalidParameterValueException", 400)
    assert "Could not unzip uploaded file" in error_of(info)[2]
    with pytest.raises(cloud.client.exceptions.InvalidParameterValueException) as info:
        cloud.client.create_function(FunctionName="node", Runtime="nodejs20.x", Role=ROLE, Handler="index.handler",
                                     Code={"ZipFile": app_zip()})
    assert "nodejs20.x" in error_of(info)[2]
    assert not {"bad-zip", "node"} & set(cloud.service.function_names())


def test_a_raising_handler_is_a_function_error(cloud: SimpleNamespace) -> None:
    create(cloud, "failing")
    response, body = invoke(cloud, "failing", {"fail": True})
    assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "asked to fail"
    record = [r for r in cloud.records if r.function_name == "failing"][-1]
    assert record.error and not record.throttled and record.executed_version == "$LATEST"


def test_event_and_dry_run_invocations(cloud: SimpleNamespace, tmp_path: Path) -> None:
    create(cloud, "eventful")
    marker = tmp_path / "ran"
    response = cloud.client.invoke(FunctionName="eventful", InvocationType="Event",
                                   Payload=json.dumps({"write": str(marker)}).encode())
    assert response["StatusCode"] == 202 and response["Payload"].read() == b""
    deadline = time.monotonic() + 10
    while not marker.exists():
        assert time.monotonic() < deadline, "the Event invocation did not run"
        time.sleep(0.02)
    assert marker.read_text() == "v1"

    before = len(cloud.records)
    assert cloud.client.invoke(FunctionName="eventful", InvocationType="DryRun")["StatusCode"] == 204
    assert len(cloud.records) == before  # a dry run runs nothing
    with pytest.raises(cloud.client.exceptions.ResourceNotFoundException):
        cloud.client.invoke(FunctionName="no-such-function", InvocationType="DryRun")


def test_payload_limits_sync_6_mb_async_1_mb(cloud: SimpleNamespace) -> None:
    create(cloud, "limits")

    def payload(size: int) -> bytes:
        return b'"' + b"x" * (size - 2) + b'"'  # a JSON string of exactly `size` bytes

    for size, kind in ((6 * 1024 * 1024 + 1, "RequestResponse"), (1024 * 1024 + 1, "Event")):
        with pytest.raises(ClientError) as info:
            cloud.client.invoke(FunctionName="limits", InvocationType=kind, Payload=payload(size))
        code, status, message = error_of(info)
        assert (code, status) == ("RequestTooLargeException", 413)
        assert message == f"Request must be smaller than {size - 1} bytes for the InvokeFunction operation"
    # 2 MB: over the async limit only
    assert cloud.client.invoke(FunctionName="limits", Payload=json.dumps({"a": "x" * 2_000_000}).encode())[
        "StatusCode"] == 200
    with pytest.raises(cloud.client.exceptions.InvalidRequestContentException):
        cloud.client.invoke(FunctionName="limits", Payload=b"{not json")


# ----------------------------------------------------------------------------- errors


def test_unknown_function_version_or_alias_is_resource_not_found(cloud: SimpleNamespace) -> None:
    create(cloud, "known")
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function"
    for kwargs, qualified in (({"FunctionName": "unknown"}, "unknown"),
                              ({"FunctionName": "known", "Qualifier": "7"}, "known:7"),
                              ({"FunctionName": "known:nope"}, "known:nope")):
        with pytest.raises(cloud.client.exceptions.ResourceNotFoundException) as info:
            cloud.client.invoke(**kwargs)
        assert error_of(info) == ("ResourceNotFoundException", 404, f"Function not found: {arn}:{qualified}")
    with pytest.raises(cloud.client.exceptions.ResourceNotFoundException):
        cloud.client.get_function(FunctionName="unknown")
    with pytest.raises(cloud.client.exceptions.ResourceNotFoundException):
        cloud.client.get_alias(FunctionName="known", Name="nope")


def test_creating_an_existing_function_is_a_conflict(cloud: SimpleNamespace) -> None:
    create(cloud, "twice")
    with pytest.raises(cloud.client.exceptions.ResourceConflictException) as info:
        create(cloud, "twice", tag="v2")
    assert error_of(info) == ("ResourceConflictException", 409, "Function already exist: twice")
    assert invoke(cloud, "twice")[1]["tag"] == "v1"  # the first one untouched


def test_an_unimplemented_operation_names_itself(cloud: SimpleNamespace) -> None:
    with pytest.raises(ClientError) as info:
        cloud.client.list_layers()
    assert error_of(info) == ("NotImplemented", 501, "The local cloud does not implement Lambda's ListLayers")


# ----------------------------------------------------------------------------- updates, versions, aliases


def test_updated_code_and_configuration_reach_the_next_invoke(cloud: SimpleNamespace) -> None:
    created = create(cloud, "updated")
    _, first = invoke(cloud, "updated")
    config = cloud.client.update_function_code(FunctionName="updated", ZipFile=app_zip("v2"))
    assert config["CodeSha256"] != created["CodeSha256"] and config["RevisionId"] != created["RevisionId"]
    _, second = invoke(cloud, "updated")
    assert second["tag"] == "v2" and second["pid"] != first["pid"]  # a new environment, as after a deploy
    cloud.client.update_function_configuration(FunctionName="updated", Handler="app.handler", Timeout=5)
    assert cloud.client.get_function_configuration(FunctionName="updated")["Timeout"] == 5
    assert invoke(cloud, "updated")[1]["pid"] != second["pid"]


def test_versions_and_an_alias_with_weighted_routing(cloud: SimpleNamespace) -> None:
    create(cloud, "weighted")
    assert cloud.client.publish_version(FunctionName="weighted")["Version"] == "1"
    cloud.client.update_function_code(FunctionName="weighted", ZipFile=app_zip("v2"))
    assert cloud.client.publish_version(FunctionName="weighted", Description="second")["Version"] == "2"
    assert cloud.client.publish_version(FunctionName="weighted")["Version"] == "2"  # nothing changed: no new one
    versions = cloud.client.list_versions_by_function(FunctionName="weighted")["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]
    assert versions[1]["FunctionArn"].endswith(":function:weighted:1")

    alias = cloud.client.create_alias(FunctionName="weighted", Name="live", FunctionVersion="1",
                                      RoutingConfig={"AdditionalVersionWeights": {"2": 0.4}})
    assert alias["AliasArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:weighted:live"
    seen = {"1": 0, "2": 0}
    for _ in range(200):
        response, body = invoke(cloud, "weighted", Qualifier="live")
        assert body["version"] == response["ExecutedVersion"]  # the header says which version ran
        assert body["tag"] == {"1": "v1", "2": "v2"}[body["version"]]
        seen[body["version"]] += 1
    assert 40 <= seen["2"] <= 125, seen  # 80 expected; both versions answer
    records = [r for r in cloud.records if r.function_name == "weighted"][-200:]
    assert {r.resource for r in records} == {"weighted:live"}
    assert {r.executed_version for r in records} == {"1", "2"}

    response, body = invoke(cloud, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:weighted:1", LogType="Tail")
    assert response["ExecutedVersion"] == "1" and body["name"] == "weighted"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[1\][0-9a-f]{32}", body["stream"])
    assert body["arn"].endswith(":function:weighted:1")
    assert cloud.sunk[-1] == ("weighted", body["stream"])  # logs go to /aws/lambda/weighted, not "weighted:1"
    assert re.search(r"^START RequestId: \S+ Version: 1$", base64.b64decode(response["LogResult"]).decode(), re.M)

    cloud.client.update_alias(FunctionName="weighted", Name="live", FunctionVersion="2", RoutingConfig={})
    assert "RoutingConfig" not in cloud.client.get_alias(FunctionName="weighted", Name="live")
    assert {invoke(cloud, "weighted", Qualifier="live")[0]["ExecutedVersion"] for _ in range(10)} == {"2"}
    with pytest.raises(cloud.client.exceptions.ResourceConflictException):
        cloud.client.delete_function(FunctionName="weighted", Qualifier="2")  # the alias points at it
    with pytest.raises(cloud.client.exceptions.InvalidParameterValueException):
        cloud.client.create_alias(FunctionName="weighted", Name="bad", FunctionVersion="$LATEST",
                                  RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}})


def test_reserved_concurrency_zero_throttles(cloud: SimpleNamespace) -> None:
    create(cloud, "throttled")
    put = cloud.client.put_function_concurrency(FunctionName="throttled", ReservedConcurrentExecutions=0)
    assert put["ReservedConcurrentExecutions"] == 0
    assert cloud.client.get_function(FunctionName="throttled")["Concurrency"] == {"ReservedConcurrentExecutions": 0}
    with pytest.raises(cloud.client.exceptions.TooManyRequestsException) as info:
        cloud.client.invoke(FunctionName="throttled")
    assert error_of(info) == ("TooManyRequestsException", 429, "Rate Exceeded.")
    assert info.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert cloud.records[-1].function_name == "throttled" and cloud.records[-1].throttled
    cloud.client.delete_function_concurrency(FunctionName="throttled")
    assert invoke(cloud, "throttled")[0]["StatusCode"] == 200


def test_a_reservation_covers_every_version_of_the_function(cloud: SimpleNamespace) -> None:
    create(cloud, "reserved-one")
    cloud.client.put_function_concurrency(FunctionName="reserved-one", ReservedConcurrentExecutions=1)
    cloud.client.publish_version(FunctionName="reserved-one")  # published after the reservation: under it too
    busy = threading.Thread(target=invoke, args=(cloud, "reserved-one", {"sleep": 1.0}))
    busy.start()
    try:
        deadline = time.monotonic() + 5
        while not any(r.function == "reserved-one" and r.invocations == [] and r.spawned_at
                      for r in cloud.runtime.records()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(cloud.client.exceptions.TooManyRequestsException):
            cloud.client.invoke(FunctionName="reserved-one", Qualifier="1")  # $LATEST has the one execution
    finally:
        busy.join()
    assert invoke(cloud, "reserved-one", Qualifier="1")[0]["StatusCode"] == 200
    cloud.client.delete_function_concurrency(FunctionName="reserved-one")


def test_list_get_delete_and_account_settings(cloud: SimpleNamespace) -> None:
    create(cloud, "listed-a")
    create(cloud, "listed-b", Tags={"team": "thumbnails"})
    names = [f["FunctionName"] for f in cloud.client.list_functions()["Functions"]]
    assert {"listed-a", "listed-b"} <= set(names) and names == sorted(names)
    first = cloud.client.list_functions(MaxItems=1)
    assert len(first["Functions"]) == 1
    second = cloud.client.list_functions(MaxItems=1, Marker=first["NextMarker"])
    assert second["Functions"][0]["FunctionName"] == names[1]
    paged = [f["FunctionName"] for page in cloud.client.get_paginator("list_functions").paginate(
        PaginationConfig={"PageSize": 2}) for f in page["Functions"]]
    assert paged == names

    function = cloud.client.get_function(FunctionName="listed-b")
    assert function["Configuration"]["FunctionName"] == "listed-b" and function["Tags"] == {"team": "thumbnails"}
    assert function["Code"]["RepositoryType"] == "S3" and function["Code"]["Location"]

    cloud.client.put_function_concurrency(FunctionName="listed-a", ReservedConcurrentExecutions=3)
    settings = cloud.client.get_account_settings()
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 110
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 107
    assert settings["AccountUsage"]["FunctionCount"] == len(names)
    with pytest.raises(cloud.client.exceptions.InvalidParameterValueException) as info:  # 110 - 3 - 8 < 100
        cloud.client.put_function_concurrency(FunctionName="listed-b", ReservedConcurrentExecutions=8)
    assert "decreases account's UnreservedConcurrentExecution below its minimum value of [100]" in error_of(info)[2]
    cloud.client.put_function_concurrency(FunctionName="listed-b", ReservedConcurrentExecutions=7)  # 100 left
    cloud.client.delete_function_concurrency(FunctionName="listed-b")

    invoke(cloud, "listed-a")  # a warm environment, to be stopped by the delete
    cloud.client.delete_function(FunctionName="listed-a")
    assert "listed-a" not in cloud.runtime.functions()
    with pytest.raises(cloud.client.exceptions.ResourceNotFoundException):
        cloud.client.get_function(FunctionName="listed-a")
    assert cloud.client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 110


# ----------------------------------------------------------------------------- the AWS CLI


@pytest.mark.skipif(shutil.which("aws", path=str(Path(sys.executable).parent)) is None,
                    reason="the AWS CLI (awscli) is not installed beside this Python")
def test_the_aws_cli_invokes_and_lists(cloud: SimpleNamespace, tmp_path: Path) -> None:
    create(cloud, "cli-fn")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **fake_aws_environment(cloud.url, REGION)}
    aws = str(Path(sys.executable).parent / "aws")
    out = tmp_path / "out.json"
    # CLI v1 sends a blob parameter as given (v2 would want --cli-binary-format raw-in-base64-out)
    done = subprocess.run([aws, "lambda", "invoke", "--function-name", "cli-fn", "--payload", '{"from": "cli"}',
                           "--log-type", "Tail", str(out)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["StatusCode"] == 200 and answer["ExecutedVersion"] == "$LATEST"
    assert "REPORT RequestId" in base64.b64decode(answer["LogResult"]).decode()
    assert json.loads(out.read_text())["event_keys"] == ["from"]

    done = subprocess.run([aws, "lambda", "list-functions", "--output", "json"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "cli-fn" in [f["FunctionName"] for f in json.loads(done.stdout)["Functions"]]

    done = subprocess.run([aws, "lambda", "invoke", "--function-name", "cli-missing", str(out)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "ResourceNotFoundException" in done.stderr
