"""The local CloudFormation API, through boto3's own cloudformation client and SAM CLI itself.

``CloudFormationApi`` is served alone on an ``HttpServer`` (port 0) over a ``CloudFormationService``
whose resources are "made" by ``FakeDeployer``: it records each resource with the physical id and
outputs ``Stack.from_template(...).predict()`` gives, and can be told to fail a logical id. moto
(in its own process) is the S3 that TemplateURLs and ``sam deploy``'s uploads go to.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

from localcloud.cfn.api import CloudFormationApi
from localcloud.cfn.service import (
    NO_CHANGES,
    CloudFormationService,
    DeployedStack,
    DeployFailed,
    ResourceEvent,
)
from localcloud.cfn.stack import Stack
from localcloud.endpoint.moto_process import MotoProcess
from localcloud.endpoint.router import Endpoint
from localcloud.http import HttpServer
from localcloud.sdk import FAKE_CREDENTIALS, Clients

pytestmark = pytest.mark.local_cloud

SAM = Path(sys.executable).parent / "sam"  # the SAM CLI installed beside this Python
REGION = "us-east-1"
FAST = {"Delay": 0.1, "MaxAttempts": 100}

TEMPLATE = textwrap.dedent("""\
    AWSTemplateFormatVersion: "2010-09-09"
    Transform: AWS::Serverless-2016-10-31
    Description: greets
    Parameters:
      Greeting:
        Type: String
        Default: hello
        AllowedValues: [hello, hi]
      Secret:
        Type: String
        NoEcho: true
        Default: s3cr3t
    Resources:
      HelloFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: s3://code-bucket/hello.zip
          Handler: app.handler
          Runtime: python3.13
          Environment:
            Variables:
              GREETING: !Ref Greeting
      Notes:
        Type: AWS::SNS::Topic
    Outputs:
      HelloArn:
        Description: the function
        Value: !GetAtt HelloFunction.Arn
      TopicArn:
        Value: !Ref Notes
        Export:
          Name: !Sub "${AWS::StackName}-notes"
    """)


class FakeDeployer:
    """Records resources as Stack.predict() names them; ``fail[lid] = reason`` makes ``lid`` fail;
    while ``gate`` is set and cleared, a deploy waits for it."""

    def __init__(self) -> None:
        self.fail: dict[str, str] = {}
        self.gate: threading.Event | None = None
        self.deleted: list[str] = []
        self.templates: list[dict] = []  # every template deploy() was given
        self.quiet = False  # raise DeployFailed without emitting the failure
        self.crash = False  # fail with a bug (RuntimeError), not DeployFailed

    def deploy(self, stack_name: str, stack_id: str, template: dict, parameters: dict[str, str],
               previous: DeployedStack | None, emit: Any) -> DeployedStack:
        self.templates.append(template)
        if self.gate is not None:
            self.gate.wait(10)
        stack = Stack.from_template(template, parameters=parameters, stack_name=stack_name).predict()
        before = previous.state if previous else {}
        made: dict[str, tuple[str, str]] = {}
        for lid in stack.order:
            rtype = stack.resource_type(lid)
            if lid in before and before[lid] == stack.properties(lid):
                made[lid] = previous.resources[lid]
                continue
            verb = "UPDATE" if lid in before else "CREATE"
            emit(ResourceEvent(lid, rtype, f"{verb}_IN_PROGRESS"))
            if lid in self.fail:
                if self.crash:
                    raise RuntimeError(self.fail[lid])
                if not self.quiet:
                    emit(ResourceEvent(lid, rtype, f"{verb}_FAILED", reason=self.fail[lid]))
                if previous is None:  # a create undoes its own work before it says it failed
                    self._delete(made, emit)
                raise DeployFailed(lid, self.fail[lid], DeployedStack(made))
            physical = str(stack.refs[lid])
            emit(ResourceEvent(lid, rtype, f"{verb}_COMPLETE", physical))
            made[lid] = (rtype, physical)
        gone = {lid: r for lid, r in (previous.resources if previous else {}).items() if lid not in made}
        self._delete(gone, emit)
        masked = {k: "****" if (template["Parameters"][k].get("NoEcho")) else v for k, v in parameters.items()}
        return DeployedStack(made, {k: str(v) for k, v in stack.outputs().items()}, masked,
                             state={lid: stack.properties(lid) for lid in stack.order})

    def rollback(self, stack_name: str, failed: DeployedStack | None, previous: DeployedStack | None,
                 emit: Any) -> None:
        for lid, (rtype, physical) in (previous.resources if previous else {}).items():
            if failed is not None and failed.resources.get(lid) != (rtype, physical) or lid in self.fail:
                emit(ResourceEvent(lid, rtype, "UPDATE_IN_PROGRESS", physical))
                emit(ResourceEvent(lid, rtype, "UPDATE_COMPLETE", physical))

    def delete(self, stack_name: str, deployed: DeployedStack, emit: Any) -> None:
        self._delete(deployed.resources, emit)

    def _delete(self, resources: dict[str, tuple[str, str]], emit: Any) -> None:
        for lid, (rtype, physical) in reversed(list(resources.items())):
            emit(ResourceEvent(lid, rtype, "DELETE_IN_PROGRESS", physical))
            emit(ResourceEvent(lid, rtype, "DELETE_COMPLETE", physical))
            self.deleted.append(lid)


# ----------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    moto = MotoProcess({**os.environ, **FAKE_CREDENTIALS})
    try:
        yield f"http://127.0.0.1:{moto.wait_ready()}"
    finally:
        moto.stop()


@pytest.fixture
def deployer() -> FakeDeployer:
    return FakeDeployer()


def _serve(service: CloudFormationService) -> HttpServer:
    return HttpServer(CloudFormationApi(service), port=0, name="cloudformation").start()


@pytest.fixture
def service(deployer: FakeDeployer, moto_url: str) -> CloudFormationService:
    # settle_s=0: every call answers at once, so the waiters have statuses to wait through
    return CloudFormationService(deployer, Clients(moto_url, REGION), region=REGION, account_id="123456789012",
                                 settle_s=0)


@pytest.fixture
def cfn(service: CloudFormationService) -> Iterator[Any]:
    server = _serve(service)
    try:
        yield _client("cloudformation", f"http://127.0.0.1:{server.port}")
    finally:
        server.stop()


def _client(name: str, url: str) -> Any:
    return boto3.client(name, endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _create(cfn: Any, stack: str, body: str = TEMPLATE, **params: Any) -> dict:
    """A CREATE change set, waited for."""
    out = cfn.create_change_set(StackName=stack, ChangeSetName="c1", ChangeSetType="CREATE", TemplateBody=body,
                                Capabilities=["CAPABILITY_IAM"], **params)
    cfn.get_waiter("change_set_create_complete").wait(ChangeSetName=out["Id"], StackName=stack, WaiterConfig=FAST)
    return out


def _deployed(cfn: Any, stack: str, **params: Any) -> dict:
    """A stack created from TEMPLATE (change set, execute, waiter)."""
    out = _create(cfn, stack, **params)
    cfn.execute_change_set(ChangeSetName=out["Id"])
    cfn.get_waiter("stack_create_complete").wait(StackName=stack, WaiterConfig=FAST)
    return cfn.describe_stacks(StackName=stack)["Stacks"][0]


def _update(cfn: Any, stack: str, body: str = TEMPLATE, name: str = "c2", **params: Any) -> dict:
    out = cfn.create_change_set(StackName=stack, ChangeSetName=name, ChangeSetType="UPDATE", TemplateBody=body,
                                Capabilities=["CAPABILITY_IAM"], **params)
    try:
        cfn.get_waiter("change_set_create_complete").wait(ChangeSetName=out["Id"], WaiterConfig=FAST)
    except botocore.exceptions.WaiterError:
        pass  # the caller looks at the change set's status
    return cfn.describe_change_set(ChangeSetName=out["Id"])


def _statuses(cfn: Any, stack: str) -> list[tuple[str, str]]:
    """(logical id, status) of every event, oldest first."""
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    return [(e["LogicalResourceId"], e["ResourceStatus"]) for e in reversed(events)]


def _aws_error(excinfo: pytest.ExceptionInfo) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


# ----------------------------------------------------------------- change sets


class TestCreateChangeSet:
    def test_a_sam_template_is_transformed_and_every_resource_is_an_add(self, cfn: Any) -> None:
        # WHEN a CREATE change set is made of a SAM template
        out = _create(cfn, "greeter")
        # THEN it lists the transform's resources, and the stack waits for review
        cs = cfn.describe_change_set(ChangeSetName="c1", StackName="greeter")
        assert (cs["Status"], cs["ExecutionStatus"], cs["ChangeSetId"]) == ("CREATE_COMPLETE", "AVAILABLE", out["Id"])
        adds = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"]["ResourceType"] for c in cs["Changes"]
                if c["ResourceChange"]["Action"] == "Add"}
        assert adds == {"HelloFunction": "AWS::Lambda::Function", "HelloFunctionRole": "AWS::IAM::Role",
                        "Notes": "AWS::SNS::Topic"}
        assert {p["ParameterKey"]: p["ParameterValue"] for p in cs["Parameters"]} == {
            "Greeting": "hello", "Secret": "****"}
        stack = cfn.describe_stacks(StackName="greeter")["Stacks"][0]
        assert stack["StackStatus"] == "REVIEW_IN_PROGRESS" and stack["StackId"] == out["StackId"]
        assert re.fullmatch(r"arn:aws:cloudformation:us-east-1:123456789012:stack/greeter/[0-9a-f-]{36}",
                            out["StackId"])
        assert [s["ChangeSetName"] for s in cfn.list_change_sets(StackName="greeter")["Summaries"]] == ["c1"]
        # a stack under review takes more CREATE change sets, not UPDATE ones
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            _update(cfn, "greeter")
        assert _aws_error(excinfo) == (
            "ValidationError", f"Stack:{out['StackId']} is in REVIEW_IN_PROGRESS state and can not be updated.")
        second = cfn.create_change_set(StackName="greeter", ChangeSetName="c2", ChangeSetType="CREATE",
                                       TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
        assert second["StackId"] == out["StackId"]
        with pytest.raises(cfn.exceptions.AlreadyExistsException):
            _create(cfn, "greeter")  # c1 again
        # executing one change set drops the others
        cfn.execute_change_set(ChangeSetName="c2", StackName="greeter")
        cfn.get_waiter("stack_create_complete").wait(StackName="greeter", WaiterConfig=FAST)
        assert [(s["ChangeSetName"], s["ExecutionStatus"]) for s in
                cfn.list_change_sets(StackName="greeter")["Summaries"]] == [("c2", "EXECUTE_COMPLETE")]

    def test_iam_resources_need_a_capability(self, cfn: Any) -> None:
        with pytest.raises(cfn.exceptions.InsufficientCapabilitiesException) as excinfo:
            cfn.create_change_set(StackName="greeter", ChangeSetName="c1", ChangeSetType="CREATE",
                                  TemplateBody=TEMPLATE)
        assert _aws_error(excinfo)[1] == "Requires capabilities : [CAPABILITY_IAM]"

    def test_a_template_the_transform_refuses_fails_the_change_set_with_its_reason(self, cfn: Any) -> None:
        bad = TEMPLATE.replace("Runtime: python3.13", "Runtime: python3.13\n      Events: {E: {Type: Nope}}")
        out = cfn.create_change_set(StackName="greeter", ChangeSetName="c1", ChangeSetType="CREATE",
                                    TemplateBody=bad, Capabilities=["CAPABILITY_IAM"])
        with pytest.raises(botocore.exceptions.WaiterError):
            cfn.get_waiter("change_set_create_complete").wait(ChangeSetName=out["Id"], WaiterConfig=FAST)
        cs = cfn.describe_change_set(ChangeSetName=out["Id"])
        assert cs["Status"] == "FAILED" and cs["ExecutionStatus"] == "UNAVAILABLE"
        assert cs["StatusReason"].startswith(
            "Transform AWS::Serverless-2016-10-31 failed with: Invalid Serverless Application Specification "
            "document. Number of errors found: 1. Resource with id [HelloFunction] is invalid.")
        with pytest.raises(cfn.exceptions.InvalidChangeSetStatusException):
            cfn.execute_change_set(ChangeSetName=out["Id"])

    def test_parameters_are_checked_as_cloudformation_does(self, cfn: Any) -> None:
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            _create(cfn, "greeter", Parameters=[{"ParameterKey": "Colour", "ParameterValue": "red"}])
        assert _aws_error(excinfo) == ("ValidationError", "Parameters: [Colour] do not exist in the template")
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            _create(cfn, "greeter", Parameters=[{"ParameterKey": "Greeting", "ParameterValue": "yo"}])
        assert _aws_error(excinfo)[0] == "ValidationError" and "Greeting" in _aws_error(excinfo)[1]

    def test_a_template_that_is_not_yaml_is_a_format_error(self, cfn: Any) -> None:
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            _create(cfn, "greeter", body="Resources: [unclosed")
        code, message = _aws_error(excinfo)
        assert code == "ValidationError" and message.startswith("Template format error: ")

    def test_a_template_url_is_read_from_the_local_s3_in_either_url_style(self, cfn: Any, moto_url: str) -> None:
        s3 = _client("s3", moto_url)
        s3.create_bucket(Bucket="templates")
        s3.put_object(Bucket="templates", Key="app/greeter.yaml", Body=TEMPLATE.encode())
        for i, url in enumerate([f"{moto_url}/templates/app/greeter.yaml",
                                 "https://templates.s3.us-east-1.amazonaws.com/app/greeter.yaml",
                                 "https://s3.amazonaws.com/templates/app/greeter.yaml"]):
            out = cfn.create_change_set(StackName=f"from-url-{i}", ChangeSetName="c1", ChangeSetType="CREATE",
                                        TemplateURL=url, Capabilities=["CAPABILITY_IAM"])
            cs = cfn.describe_change_set(ChangeSetName=out["Id"])
            assert cs["Status"] == "CREATE_COMPLETE", url
            assert cfn.get_template(StackName=f"from-url-{i}", ChangeSetName="c1")["TemplateBody"] == TEMPLATE
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            cfn.create_change_set(StackName="nowhere", ChangeSetName="c1", ChangeSetType="CREATE",
                                  TemplateURL=f"{moto_url}/templates/missing.yaml")
        assert _aws_error(excinfo)[0] == "ValidationError" and _aws_error(excinfo)[1].startswith("S3 error: ")

    def test_a_second_change_set_while_the_stack_is_in_progress_is_refused(
            self, cfn: Any, deployer: FakeDeployer) -> None:
        # GIVEN a create that is still running
        deployer.gate = threading.Event()
        out = _create(cfn, "greeter")
        cfn.execute_change_set(ChangeSetName=out["Id"])
        try:
            assert cfn.describe_stacks(StackName="greeter")["Stacks"][0]["StackStatus"] == "CREATE_IN_PROGRESS"
            # WHEN another change set is made, or the same one executed again
            with pytest.raises(botocore.exceptions.ClientError) as excinfo:
                _update(cfn, "greeter")
            # THEN CloudFormation's answers
            assert _aws_error(excinfo) == (
                "ValidationError", f"Stack:{out['StackId']} is in CREATE_IN_PROGRESS state and can not be updated.")
            with pytest.raises(cfn.exceptions.InvalidChangeSetStatusException):
                cfn.execute_change_set(ChangeSetName=out["Id"])
            with pytest.raises(botocore.exceptions.ClientError, match="cannot be deleted while in status"):
                cfn.delete_stack(StackName="greeter")
        finally:
            deployer.gate.set()
        cfn.get_waiter("stack_create_complete").wait(StackName="greeter", WaiterConfig=FAST)


# ----------------------------------------------------------------- stacks


class TestCreate:
    def test_a_created_stack_has_its_outputs_parameters_resources_and_events(self, cfn: Any) -> None:
        stack = _deployed(cfn, "greeter", Parameters=[{"ParameterKey": "Greeting", "ParameterValue": "hi"}])
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        expected = Stack.from_template(_processed(cfn, "greeter"), parameters={"Greeting": "hi"},
                                       stack_name="greeter").predict()
        assert {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]} == {
            "HelloArn": f"arn:aws:lambda:us-east-1:123456789012:function:{expected.refs['HelloFunction']}",
            "TopicArn": expected.refs["Notes"]}
        assert [o.get("Description") for o in stack["Outputs"]] == ["the function", None]
        assert cfn.list_exports()["Exports"] == [
            {"ExportingStackId": stack["StackId"], "Name": "greeter-notes", "Value": expected.refs["Notes"]}]
        assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]} == {
            "Greeting": "hi", "Secret": "****"}
        assert stack["Description"] == "greets" and stack["Capabilities"] == ["CAPABILITY_IAM"]
        assert stack["EnableTerminationProtection"] is False  # sam delete reads it
        # events: newest first, the stack's own CREATE_COMPLETE on top
        events = cfn.describe_stack_events(StackName="greeter")["StackEvents"]
        assert events[0]["LogicalResourceId"] == "greeter" and events[0]["ResourceStatus"] == "CREATE_COMPLETE"
        assert events[0]["PhysicalResourceId"] == stack["StackId"]
        assert events[0]["ResourceType"] == "AWS::CloudFormation::Stack"
        assert [e["Timestamp"] for e in events] == sorted((e["Timestamp"] for e in events), reverse=True)
        assert len({e["Timestamp"] for e in events}) == len(events)  # SAM CLI tells new events by their time
        statuses = _statuses(cfn, "greeter")
        assert statuses[:2] == [("greeter", "REVIEW_IN_PROGRESS"), ("greeter", "CREATE_IN_PROGRESS")]
        assert statuses.index(("HelloFunctionRole", "CREATE_COMPLETE")) < statuses.index(
            ("HelloFunction", "CREATE_IN_PROGRESS"))
        # resources, three ways
        summaries = {r["LogicalResourceId"]: r for r in
                     cfn.list_stack_resources(StackName="greeter")["StackResourceSummaries"]}
        assert set(summaries) == {"HelloFunction", "HelloFunctionRole", "Notes"}
        assert summaries["HelloFunction"]["PhysicalResourceId"] == expected.refs["HelloFunction"]
        assert summaries["Notes"]["PhysicalResourceId"] == expected.refs["Notes"]
        assert {r["ResourceStatus"] for r in summaries.values()} == {"CREATE_COMPLETE"}
        detail = cfn.describe_stack_resource(StackName="greeter", LogicalResourceId="Notes")["StackResourceDetail"]
        assert (detail["ResourceType"], detail["StackId"]) == ("AWS::SNS::Topic", stack["StackId"])
        resources = cfn.describe_stack_resources(StackName=stack["StackId"], LogicalResourceId="HelloFunction")
        assert [r["ResourceType"] for r in resources["StackResources"]] == ["AWS::Lambda::Function"]
        by_physical = cfn.describe_stack_resources(PhysicalResourceId=expected.refs["HelloFunction"])["StackResources"]
        assert [r["StackName"] for r in by_physical] == ["greeter"]
        with pytest.raises(botocore.exceptions.ClientError, match="Resource Nope does not exist for stack greeter"):
            cfn.describe_stack_resource(StackName="greeter", LogicalResourceId="Nope")

    def test_the_template_is_kept_as_submitted_and_as_processed(self, cfn: Any) -> None:
        _deployed(cfn, "greeter")
        original = cfn.get_template(StackName="greeter")
        assert original["TemplateBody"] == TEMPLATE and original["StagesAvailable"] == ["Original", "Processed"]
        processed = cfn.get_template(StackName="greeter", TemplateStage="Processed")["TemplateBody"]
        assert isinstance(processed, dict)  # JSON text: boto3 hands it over parsed
        assert processed["Resources"]["HelloFunction"]["Type"] == "AWS::Lambda::Function"
        assert "Transform" not in processed
        summary = cfn.get_template_summary(StackName="greeter")
        assert [(p["ParameterKey"], p.get("DefaultValue"), p["NoEcho"]) for p in summary["Parameters"]] == [
            ("Greeting", "hello", False), ("Secret", "s3cr3t", True)]
        assert summary["Parameters"][0]["ParameterConstraints"] == {"AllowedValues": ["hello", "hi"]}
        assert summary["DeclaredTransforms"] == ["AWS::Serverless-2016-10-31"]
        assert summary["Capabilities"] == ["CAPABILITY_IAM"] and summary["Version"] == "2010-09-09"
        assert summary["CapabilitiesReason"] == "The following resource(s) require capabilities: [AWS::IAM::Role]"
        assert cfn.validate_template(TemplateBody=TEMPLATE)["Description"] == "greets"

    def test_a_failed_create_is_rolled_back(self, cfn: Any, deployer: FakeDeployer) -> None:
        # GIVEN a function that cannot be made
        deployer.fail["HelloFunction"] = "Resource handler returned message: \"no such runtime\""
        out = _create(cfn, "greeter")
        cfn.execute_change_set(ChangeSetName=out["Id"])
        # WHEN the create is waited for, THEN the waiter fails and the stack is ROLLBACK_COMPLETE
        with pytest.raises(botocore.exceptions.WaiterError, match="ROLLBACK_COMPLETE"):
            cfn.get_waiter("stack_create_complete").wait(StackName="greeter", WaiterConfig=FAST)
        stack = cfn.describe_stacks(StackName="greeter")["Stacks"][0]
        reason = "The following resource(s) failed to create: [HelloFunction]. Rollback requested by user."
        assert (stack["StackStatus"], stack["StackStatusReason"]) == ("ROLLBACK_COMPLETE", reason)
        events = cfn.describe_stack_events(StackName="greeter")["StackEvents"]
        failed = [e for e in events if e["ResourceStatus"] == "CREATE_FAILED"]
        assert [(e["LogicalResourceId"], e["ResourceStatusReason"]) for e in failed] == [
            ("HelloFunction", deployer.fail["HelloFunction"])]
        assert [e.get("ResourceStatusReason") for e in events if e["ResourceStatus"] == "ROLLBACK_IN_PROGRESS"] == [
            reason]
        assert "HelloFunctionRole" in deployer.deleted
        # a stack that never got made cannot be updated, only deleted
        with pytest.raises(botocore.exceptions.ClientError, match="is in ROLLBACK_COMPLETE state and can not be"):
            _update(cfn, "greeter")
        cfn.delete_stack(StackName="greeter")
        cfn.get_waiter("stack_delete_complete").wait(StackName="greeter", WaiterConfig=FAST)

    def test_a_failure_the_deployer_does_not_report_is_reported_for_it(
            self, cfn: Any, deployer: FakeDeployer) -> None:
        deployer.fail["Notes"], deployer.quiet = "topic quota", True
        cfn.execute_change_set(ChangeSetName=_create(cfn, "greeter")["Id"])
        with pytest.raises(botocore.exceptions.WaiterError):
            cfn.get_waiter("stack_create_complete").wait(StackName="greeter", WaiterConfig=FAST)
        assert _statuses(cfn, "greeter")[-3:] == [
            ("Notes", "CREATE_FAILED"), ("greeter", "ROLLBACK_IN_PROGRESS"), ("greeter", "ROLLBACK_COMPLETE")]
        failed = cfn.describe_stack_resource(StackName="greeter", LogicalResourceId="Notes")["StackResourceDetail"]
        assert (failed["ResourceStatus"], failed["ResourceStatusReason"]) == ("CREATE_FAILED", "topic quota")

    def test_a_deployer_that_crashes_leaves_the_stack_failed_with_the_reason(
            self, cfn: Any, deployer: FakeDeployer) -> None:
        deployer.fail["Notes"], deployer.crash = "a bug", True
        cfn.execute_change_set(ChangeSetName=_create(cfn, "greeter")["Id"])
        with pytest.raises(botocore.exceptions.WaiterError, match="ROLLBACK_FAILED"):
            cfn.get_waiter("stack_create_complete").wait(StackName="greeter", WaiterConfig=FAST)
        assert cfn.describe_stacks(StackName="greeter")["Stacks"][0]["StackStatusReason"] == \
            "Internal failure: a bug"

    def test_list_stacks_shows_deleted_stacks_too(self, cfn: Any) -> None:
        _deployed(cfn, "greeter")
        _deployed(cfn, "other")
        cfn.delete_stack(StackName="other")
        cfn.get_waiter("stack_delete_complete").wait(StackName="other", WaiterConfig=FAST)
        listed = {s["StackName"]: s for s in cfn.list_stacks()["StackSummaries"]}
        assert (listed["greeter"]["StackStatus"], listed["other"]["StackStatus"]) == (
            "CREATE_COMPLETE", "DELETE_COMPLETE")
        assert listed["greeter"]["TemplateDescription"] == "greets"
        only = cfn.list_stacks(StackStatusFilter=["CREATE_COMPLETE"])["StackSummaries"]
        assert [s["StackName"] for s in only] == ["greeter"]

    def test_an_unknown_stack_does_not_exist(self, cfn: Any) -> None:
        for call in (cfn.describe_stacks, cfn.describe_stack_events, cfn.list_stack_resources, cfn.get_template):
            with pytest.raises(botocore.exceptions.ClientError) as excinfo:
                call(StackName="nope")
            assert _aws_error(excinfo) == ("ValidationError", "Stack with id nope does not exist")
            assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        with pytest.raises(cfn.exceptions.ChangeSetNotFoundException):
            cfn.describe_change_set(ChangeSetName="arn:aws:cloudformation:us-east-1:123456789012:changeSet/x/y")

    def test_an_operation_it_does_not_implement_is_an_aws_shaped_error(self, cfn: Any) -> None:
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            cfn.describe_stack_drift_detection_status(StackDriftDetectionId="x")
        assert _aws_error(excinfo) == ("NotImplemented",
                                       "The local cloud does not implement DescribeStackDriftDetectionStatus")
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
        conn = http.client.HTTPConnection("127.0.0.1", int(cfn.meta.endpoint_url.rsplit(":", 1)[1]))
        conn.request("POST", "/", "Action=Nope&Version=2010-05-15",
                     {"Content-Type": "application/x-www-form-urlencoded"})
        answer = conn.getresponse()
        assert answer.status == 400 and b"<Code>InvalidAction</Code>" in answer.read()
        conn.close()


def _processed(cfn: Any, stack: str) -> dict:
    return cfn.get_template(StackName=stack, TemplateStage="Processed")["TemplateBody"]


class TestUpdate:
    def test_an_update_with_changes_modifies_what_changed(self, cfn: Any) -> None:
        created = _deployed(cfn, "greeter")
        # WHEN a parameter the function uses changes and a resource is added
        body = TEMPLATE.replace("  Notes:\n", "  More:\n    Type: AWS::SQS::Queue\n  Notes:\n")
        cs = _update(cfn, "greeter", body, Parameters=[{"ParameterKey": "Greeting", "ParameterValue": "hi"},
                                                       {"ParameterKey": "Secret", "UsePreviousValue": True}])
        # THEN the change set says so, resource by resource
        assert cs["Status"] == "CREATE_COMPLETE"
        changes = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in cs["Changes"]}
        assert {lid: c["Action"] for lid, c in changes.items()} == {"HelloFunction": "Modify", "More": "Add"}
        assert changes["HelloFunction"]["PhysicalResourceId"].startswith("greeter-HelloFunction-")
        assert changes["HelloFunction"]["Replacement"] == "False"
        cfn.execute_change_set(ChangeSetName=cs["ChangeSetId"])
        cfn.get_waiter("stack_update_complete").wait(StackName="greeter", WaiterConfig=FAST)
        stack = cfn.describe_stacks(StackName="greeter")["Stacks"][0]
        assert stack["StackStatus"] == "UPDATE_COMPLETE" and stack["LastUpdatedTime"] > created["CreationTime"]
        assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["Greeting"] == "hi"
        statuses = _statuses(cfn, "greeter")
        tail = statuses[statuses.index(("greeter", "UPDATE_IN_PROGRESS")):]
        assert ("HelloFunction", "UPDATE_COMPLETE") in tail and ("More", "CREATE_COMPLETE") in tail
        assert tail[-2:] == [("greeter", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"), ("greeter", "UPDATE_COMPLETE")]
        assert ("Notes", "UPDATE_IN_PROGRESS") not in tail
        # AND a resource taken out of the template is a Remove
        cs = _update(cfn, "greeter", TEMPLATE, name="c3", Parameters=[{"ParameterKey": "Greeting",
                                                                       "ParameterValue": "hi"}])
        assert [(c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"]) for c in cs["Changes"]] \
            == [("Remove", "More")]

    def test_an_update_without_changes_fails_with_cloudformations_words(self, cfn: Any) -> None:
        _deployed(cfn, "greeter")
        out = cfn.create_change_set(StackName="greeter", ChangeSetName="same", TemplateBody=TEMPLATE,
                                    Capabilities=["CAPABILITY_IAM"])
        with pytest.raises(botocore.exceptions.WaiterError) as excinfo:
            cfn.get_waiter("change_set_create_complete").wait(ChangeSetName=out["Id"], WaiterConfig=FAST)
        assert excinfo.value.last_response["Status"] == "FAILED"
        assert excinfo.value.last_response["StatusReason"] == NO_CHANGES
        assert NO_CHANGES == ("The submitted information didn't contain changes. "
                              "Submit different information to create a change set.")
        with pytest.raises(botocore.exceptions.ClientError, match="No updates are to be performed."):
            cfn.update_stack(StackName="greeter", TemplateBody=TEMPLATE,
                             Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"])

    def test_a_failed_update_is_rolled_back_to_the_previous_stack(self, cfn: Any, deployer: FakeDeployer) -> None:
        before = _deployed(cfn, "greeter")
        deployer.fail["HelloFunction"] = "the new code is too big"
        cs = _update(cfn, "greeter", Parameters=[{"ParameterKey": "Greeting", "ParameterValue": "hi"}])
        cfn.execute_change_set(ChangeSetName=cs["ChangeSetId"])
        with pytest.raises(botocore.exceptions.WaiterError, match="UPDATE_ROLLBACK_COMPLETE"):
            cfn.get_waiter("stack_update_complete").wait(StackName="greeter", WaiterConfig=FAST)
        stack = cfn.describe_stacks(StackName="greeter")["Stacks"][0]
        assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
        assert stack["StackStatusReason"] == "The following resource(s) failed to update: [HelloFunction]. "
        assert stack["Outputs"] == before["Outputs"] and stack["Parameters"] == before["Parameters"]
        statuses = _statuses(cfn, "greeter")
        tail = statuses[statuses.index(("greeter", "UPDATE_IN_PROGRESS")):]
        assert tail[:3] == [("greeter", "UPDATE_IN_PROGRESS"), ("HelloFunction", "UPDATE_IN_PROGRESS"),
                            ("HelloFunction", "UPDATE_FAILED")]
        assert ("greeter", "UPDATE_ROLLBACK_IN_PROGRESS") in tail
        assert tail[-2:] == [("greeter", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"),
                             ("greeter", "UPDATE_ROLLBACK_COMPLETE")]
        # the stack can be updated again
        deployer.fail.clear()
        assert _update(cfn, "greeter", name="c3", Parameters=[
            {"ParameterKey": "Greeting", "ParameterValue": "hi"}])["Status"] == "CREATE_COMPLETE"


class TestDelete:
    def test_a_deleted_stack_is_gone_by_name_and_kept_by_id(self, cfn: Any, deployer: FakeDeployer) -> None:
        stack_id = _deployed(cfn, "greeter")["StackId"]
        cfn.delete_stack(StackName="greeter")
        cfn.get_waiter("stack_delete_complete").wait(StackName="greeter", WaiterConfig=FAST)
        assert set(deployer.deleted) == {"HelloFunction", "HelloFunctionRole", "Notes"}
        with pytest.raises(botocore.exceptions.ClientError, match="Stack with id greeter does not exist"):
            cfn.describe_stacks(StackName="greeter")
        gone = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
        assert gone["StackStatus"] == "DELETE_COMPLETE" and "DeletionTime" in gone
        assert _statuses(cfn, stack_id)[-1] == ("greeter", "DELETE_COMPLETE")
        assert "greeter" not in [s["StackName"] for s in cfn.describe_stacks()["Stacks"]]
        cfn.delete_stack(StackName="greeter")  # deleting what is not there is no error, as in AWS
        # the name can be used again
        assert _deployed(cfn, "greeter")["StackId"] != stack_id


class TestDirect:
    def test_create_stack_and_deploy_run_the_same_engine(self, service: CloudFormationService, cfn: Any) -> None:
        with pytest.raises(cfn.exceptions.InsufficientCapabilitiesException, match="CAPABILITY_AUTO_EXPAND"):
            cfn.create_stack(StackName="direct", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
        cfn.create_stack(StackName="direct", TemplateBody=TEMPLATE,
                         Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"])
        cfn.get_waiter("stack_create_complete").wait(StackName="direct", WaiterConfig=FAST)
        # deploy(): synchronous, for the local cloud's own stack
        plain = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": {"T": {"Value": {"Ref": "Topic"}}}}
        deployed = service.deploy("own", plain)
        assert deployed.resources["Topic"][0] == "AWS::SNS::Topic"
        assert cfn.describe_stacks(StackName="own")["Stacks"][0]["Outputs"][0]["OutputValue"] == \
            deployed.resources["Topic"][1]
        assert service.deploy("own", plain) is deployed  # nothing changed: nothing done


# ----------------------------------------------------------------- SAM CLI


@pytest.mark.skipif(not SAM.exists(), reason="SAM CLI is not installed in the venv")
def test_sam_cli_deploys_lists_and_deletes_a_stack(moto_url: str, deployer: FakeDeployer, tmp_path: Path) -> None:
    # GIVEN the endpoint (CloudFormation here, S3 in moto), a bucket and a one-function SAM app
    service = CloudFormationService(deployer, Clients(moto_url, REGION), region=REGION, account_id="123456789012")
    router = Endpoint(moto_url, {"cloudformation": CloudFormationApi(service)}).start()  # S3 etc. to moto
    try:
        url = router.url
        _client("s3", moto_url).create_bucket(Bucket="sam-artifacts")
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "app.py").write_text("def handler(event, context):\n    return {'ok': True}\n")
        (tmp_path / "template.yaml").write_text(textwrap.dedent("""\
            Transform: AWS::Serverless-2016-10-31
            Resources:
              PingFunction:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: src/
                  Handler: app.handler
                  Runtime: python3.13
            Outputs:
              PingArn:
                Value: !GetAtt PingFunction.Arn
            """))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(FAKE_CREDENTIALS, AWS_ENDPOINT_URL=url, AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION,
                   AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, SAM_CLI_TELEMETRY="0",
                   SAM_CLI_POLL_DELAY="0.2", HOME=str(tmp_path))

        def sam(*args: str) -> str:
            done = subprocess.run([str(SAM), *args], check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == 0, f"sam {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
            return done.stdout + done.stderr

        deploy = ("deploy", "--stack-name", "ping", "--s3-bucket", "sam-artifacts", "--capabilities",
                  "CAPABILITY_IAM", "--no-confirm-changeset", "--no-fail-on-empty-changeset", "--region", REGION)
        # WHEN it is deployed
        first = sam(*deploy)
        # THEN SAM CLI saw the change set, the events and the outputs
        assert "Successfully created/updated stack - ping in us-east-1" in first, first
        assert "PingFunction" in first and "AWS::Lambda::Function" in first
        assert "arn:aws:lambda:us-east-1:123456789012:function:ping-" in first.replace("\n", "").replace(" ", "")
        assert re.search(r"CREATE_COMPLETE\s+AWS::CloudFormation::S\s+ping", first), first  # its events table
        # the template came by TemplateURL from the bucket, with the function's code uploaded there
        code = deployer.templates[-1]["Resources"]["PingFunction"]["Properties"]["Code"]
        assert code["S3Bucket"] == "sam-artifacts"
        assert _client("s3", moto_url).head_object(Bucket="sam-artifacts", Key=code["S3Key"])["ContentLength"] > 0
        stack = _client("cloudformation", url).describe_stacks(StackName="ping")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        # AND deployed again unchanged, there is nothing to do
        again = sam(*deploy)
        assert "No changes to deploy. Stack ping is up to date" in again, again
        outputs = json.loads(sam("list", "stack-outputs", "--stack-name", "ping", "--output", "json",
                                 "--region", REGION))
        [output] = outputs
        assert output["OutputKey"] == "PingArn" and re.fullmatch(
            r"arn:aws:lambda:us-east-1:123456789012:function:ping-PingFunction-[A-Z0-9]{12}", output["OutputValue"])
        resources = json.loads(sam("list", "resources", "--stack-name", "ping", "--output", "json",
                                   "--region", REGION))
        physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}["PingFunction"]
        assert output["OutputValue"].endswith(f":function:{physical}")
        # AND deleted, it is gone
        sam("delete", "--stack-name", "ping", "--no-prompts", "--region", REGION)
        with pytest.raises(botocore.exceptions.ClientError, match="Stack with id ping does not exist"):
            _client("cloudformation", url).describe_stacks(StackName="ping")
        assert "PingFunction" in deployer.deleted
    finally:
        router.stop()
