"""CloudFormation's control plane, locally: stacks, change sets, statuses and events, resources made by a Deployer.

``CloudFormationService`` keeps what CloudFormation keeps (stacks by name and by stack id, their
change sets, templates as submitted and as processed, parameters, outputs, resources and events) and
moves stacks through CloudFormation's statuses; a ``Deployer`` makes, updates and deletes the
resources. Its methods take and return boto3's ``cloudformation`` shapes (``params`` as the request,
the result minus ``ResponseMetadata``), so ``localcloud.cfn.api`` is only a codec::

    cfn = CloudFormationService(deployer, clients, region="us-east-1", account_id="123456789012")
    cs = cfn.create_change_set({"StackName": "app", "ChangeSetName": "c1", "ChangeSetType": "CREATE",
                                "TemplateBody": text, "Capabilities": ["CAPABILITY_IAM"]})
    cfn.execute_change_set({"ChangeSetName": cs["Id"]})
    cfn.describe_stacks({"StackName": "app"})["Stacks"][0]["StackStatus"]   # 'CREATE_COMPLETE'

Executions and deletions run in a background thread, as CloudFormation's do; the call that starts
one waits up to ``settle_s`` for it, so a client that polls every 30 s (SAM CLI's delete waiter,
boto3's default waiters) sees a quick deploy finished at its first poll.
Statuses: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/view-stack-events.html
and https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_Stack.html
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from localcloud.cfn.errors import TemplateError
from localcloud.cfn.transform import parse, sam_transform
from localcloud.sdk import Clients

__all__ = [
    "NO_CHANGES",
    "CloudFormationError",
    "CloudFormationService",
    "DeployFailed",
    "DeployedStack",
    "Deployer",
    "ResourceEvent",
]

log = logging.getLogger(__name__)

#: DescribeChangeSet's StatusReason for a change set that changes nothing (SAM CLI matches this text)
NO_CHANGES = "The submitted information didn't contain changes. Submit different information to create a change set."
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
STACK_TYPE = "AWS::CloudFormation::Stack"
#: statuses from which a stack can be updated (UpdateStack, an UPDATE change set)
_UPDATABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE",
              "IMPORT_ROLLBACK_COMPLETE"}
_IAM_TYPES = {"AWS::IAM::Role": "RoleName", "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
              "AWS::IAM::User": "UserName", "AWS::IAM::Group": "GroupName",
              "AWS::IAM::InstanceProfile": "InstanceProfileName", "AWS::IAM::Policy": None,
              "AWS::IAM::AccessKey": None, "AWS::IAM::UserToGroupAddition": None}
#: properties whose change replaces the resource (its name), for a change set's Replacement column
_NAME_PROPERTIES = {"FunctionName", "TableName", "BucketName", "TopicName", "QueueName", "RoleName",
                    "StreamName", "UserPoolName", "Name"}


@dataclass
class ResourceEvent:
    """One resource's status change, as the deployer reports it."""

    logical_id: str
    resource_type: str
    status: str  # CREATE_IN_PROGRESS | CREATE_COMPLETE | CREATE_FAILED | UPDATE_* | DELETE_*
    physical_id: str = ""
    reason: str = ""


@dataclass
class DeployedStack:
    """What a deploy made: resources {logical id: (type, physical id)}, outputs, parameters (NoEcho as ****)."""

    resources: dict[str, tuple[str, str]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    state: Any = None  # the deployer's own, handed back to it at the next update, rollback or delete


class DeployFailed(Exception):
    """A resource could not be made; raised by the deployer after it undid its own partial work.

    ``partial``: what exists now (for ``Deployer.rollback`` after a failed update), when the deployer knows.
    """

    def __init__(self, logical_id: str, reason: str, partial: DeployedStack | None = None) -> None:
        super().__init__(f"{logical_id}: {reason}")
        self.logical_id, self.reason, self.partial = logical_id, reason, partial


Emit = Callable[[ResourceEvent], None]


class Deployer(Protocol):
    """Makes a stack's resources; the service keeps the statuses and events."""

    def deploy(self, stack_name: str, stack_id: str, template: dict, parameters: dict[str, str],
               previous: DeployedStack | None, emit: Emit) -> DeployedStack:
        """Create (``previous`` None) or update to ``template`` (plain CloudFormation); DeployFailed if it cannot."""

    def rollback(self, stack_name: str, failed: DeployedStack | None, previous: DeployedStack | None,
                 emit: Emit) -> None:
        """After DeployFailed in an update: restore ``previous``."""

    def delete(self, stack_name: str, deployed: DeployedStack, emit: Emit) -> None:
        """Delete every resource of ``deployed``; DeployFailed if one cannot be."""


class CloudFormationError(Exception):
    """An error CloudFormation's API answers with: its code (``ValidationError``...), message, HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _invalid(message: str) -> CloudFormationError:
    return CloudFormationError("ValidationError", message)


@dataclass
class _Template:
    body: str  # as submitted (GetTemplate Original)
    original: dict
    processed: dict | None = None  # plain CloudFormation (None: the transform failed)

    @property
    def transforms(self) -> list[str]:
        value = self.original.get("Transform") or []
        return [value] if isinstance(value, str) else list(value)


@dataclass
class _Resource:
    logical_id: str
    resource_type: str
    physical_id: str
    status: str
    timestamp: dt.datetime
    reason: str = ""


@dataclass
class _ChangeSet:
    name: str
    id: str
    stack: _Stack
    type: str  # CREATE | UPDATE
    template: _Template
    values: dict[str, str]  # every declared parameter's value (given, previous or default)
    given: list[dict]
    capabilities: list[str]
    description: str
    tags: list[dict]
    created: dt.datetime
    status: str = "CREATE_COMPLETE"
    execution_status: str = "AVAILABLE"
    reason: str = ""
    changes: list[dict] = field(default_factory=list)


@dataclass
class _Stack:
    name: str
    id: str
    created: dt.datetime
    status: str = "REVIEW_IN_PROGRESS"
    reason: str = ""
    updated: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    template: _Template | None = None
    values: dict[str, str] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    tags: list[dict] = field(default_factory=list)
    deployed: DeployedStack | None = None
    change_set_id: str = ""
    events: list[dict] = field(default_factory=list)  # oldest first
    resources: dict[str, _Resource] = field(default_factory=dict)
    change_sets: dict[str, _ChangeSet] = field(default_factory=dict)  # by id
    worker: threading.Thread | None = None
    failed_logical_id: str = ""

    @property
    def busy(self) -> bool:
        return self.status.endswith("_IN_PROGRESS") and self.status != "REVIEW_IN_PROGRESS"


class CloudFormationService:
    """Stacks and change sets of one region and account, deployed by ``deployer``."""

    def __init__(self, deployer: Deployer, clients: Clients, *, region: str = "us-east-1",
                 account_id: str = "123456789012", settle_s: float = 10.0) -> None:
        """``clients``: for ``TemplateURL``s (``clients("s3")``); ``settle_s``: how long an Execute or
        Delete call waits for its work before answering (0: not at all)."""
        self.deployer = deployer
        self.clients = clients
        self.region = region
        self.account_id = account_id
        self.settle_s = settle_s
        self._lock = threading.RLock()
        self._by_name: dict[str, _Stack] = {}  # stacks not deleted
        self._by_id: dict[str, _Stack] = {}  # every stack, deleted ones too (as AWS, by id only)
        self._last_time = dt.datetime.fromtimestamp(0, dt.UTC)

    # ================================================================= change sets

    def create_change_set(self, params: Mapping[str, Any]) -> dict:
        """A change set of a new (CREATE) or existing (UPDATE) stack, computed at once: CREATE_COMPLETE or FAILED.
        https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateChangeSet.html"""
        name, cs_name = _required(params, "StackName"), _required(params, "ChangeSetName")
        cs_type = params.get("ChangeSetType") or "UPDATE"
        if cs_type not in ("CREATE", "UPDATE"):
            raise _invalid(f"ChangeSetType {cs_type} is not supported by the local cloud (CREATE or UPDATE)")
        with self._lock:
            stack = self._active(name)
            if cs_type == "CREATE" and stack is not None and stack.status != "REVIEW_IN_PROGRESS":
                raise CloudFormationError("AlreadyExistsException", f"Stack [{name}] already exists")
            if cs_type == "UPDATE":
                if stack is None:
                    raise _invalid(f"Stack [{name}] does not exist")
                self._check_updatable(stack)
            if stack is not None and any(c.name == cs_name for c in stack.change_sets.values()):
                raise CloudFormationError("AlreadyExistsException", f"ChangeSet [{cs_name}] already exists")
            previous = stack.template if stack is not None else None
            previous_values = dict(stack.values) if stack is not None else {}
        template = self._template_of(params, previous)
        values = _parameter_values(template.original, params.get("Parameters") or [], previous_values,
                                   creating=cs_type == "CREATE")
        reason = self._process(template, values)
        if not reason:
            _check_capabilities(template.processed or {}, params.get("Capabilities") or [])
        with self._lock:
            stack = self._active(name)
            if stack is None:
                stack = self._new_stack(name)
            cs = _ChangeSet(
                name=cs_name, id=self._arn(f"changeSet/{cs_name}/{uuid.uuid4()}"), stack=stack, type=cs_type,
                template=template, values=values, given=list(params.get("Parameters") or []),
                capabilities=list(params.get("Capabilities") or []), description=params.get("Description") or "",
                tags=list(params.get("Tags") or []), created=self._now())
            if reason:
                cs.status, cs.execution_status, cs.reason = "FAILED", "UNAVAILABLE", reason
            else:
                self._plan(cs)
            stack.change_sets[cs.id] = cs
            return {"Id": cs.id, "StackId": stack.id}

    def describe_change_set(self, params: Mapping[str, Any]) -> dict:
        with self._lock:
            cs = self._change_set(params)
            stack = cs.stack
            out = {
                "ChangeSetName": cs.name, "ChangeSetId": cs.id, "StackId": stack.id, "StackName": stack.name,
                "Parameters": self._parameter_list(cs.template, cs.values),
                "CreationTime": cs.created, "ExecutionStatus": cs.execution_status, "Status": cs.status,
                "NotificationARNs": [], "RollbackConfiguration": {}, "Capabilities": cs.capabilities,
                "Tags": cs.tags, "Changes": cs.changes, "IncludeNestedStacks": False,
            }
            if cs.description:
                out["Description"] = cs.description
            if cs.reason:
                out["StatusReason"] = cs.reason
            return out

    def execute_change_set(self, params: Mapping[str, Any]) -> dict:
        """Start the change set's create or update in the background (waits up to ``settle_s`` for it)."""
        with self._lock:
            cs = self._change_set(params)
            worker = self._start_execution(cs)
            worker.start()
        worker.join(self.settle_s)
        return {}

    def delete_change_set(self, params: Mapping[str, Any]) -> dict:
        with self._lock:
            cs = self._change_set(params)
            if cs.execution_status == "EXECUTE_IN_PROGRESS":
                raise CloudFormationError(
                    "InvalidChangeSetStatus",
                    f"Cannot delete ChangeSet [{cs.id}] in its current status of [{cs.execution_status}]")
            del cs.stack.change_sets[cs.id]
        return {}

    def list_change_sets(self, params: Mapping[str, Any]) -> dict:
        with self._lock:
            stack = self._stack(_required(params, "StackName"))
            summaries = []
            for cs in stack.change_sets.values():
                summary = {"StackId": stack.id, "StackName": stack.name, "ChangeSetId": cs.id,
                           "ChangeSetName": cs.name, "ExecutionStatus": cs.execution_status, "Status": cs.status,
                           "CreationTime": cs.created, "IncludeNestedStacks": False}
                if cs.reason:
                    summary["StatusReason"] = cs.reason
                if cs.description:
                    summary["Description"] = cs.description
                summaries.append(summary)
            return {"Summaries": summaries}

    # ================================================================= stacks without change sets

    def create_stack(self, params: Mapping[str, Any]) -> dict:
        """CreateStack: a CREATE change set made and executed at once (a transform needs CAPABILITY_AUTO_EXPAND)."""
        return self._direct(params, "CREATE")

    def update_stack(self, params: Mapping[str, Any]) -> dict:
        return self._direct(params, "UPDATE")

    def _direct(self, params: Mapping[str, Any], cs_type: str) -> dict:
        _required(params, "StackName")
        if not params.get("UsePreviousTemplate") and self._template_of(params, None).transforms and "CAPABILITY_AUTO_EXPAND" not in (params.get("Capabilities") or []):
            # https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStack.html (Capabilities)
            raise CloudFormationError("InsufficientCapabilitiesException",
                                      "Requires capabilities : [CAPABILITY_AUTO_EXPAND]")
        cs_params = {k: v for k, v in params.items() if k in (
            "StackName", "TemplateBody", "TemplateURL", "UsePreviousTemplate", "Parameters", "Capabilities", "Tags")}
        cs_params.update(ChangeSetName=f"direct-{uuid.uuid4().hex[:12]}", ChangeSetType=cs_type)
        created = self.create_change_set(cs_params)
        with self._lock:
            cs = self._by_id[created["StackId"]].change_sets[created["Id"]]
            if cs.status == "FAILED":
                del cs.stack.change_sets[cs.id]
                if cs.type == "CREATE" and not cs.stack.change_sets and cs.stack.status == "REVIEW_IN_PROGRESS":
                    self._forget(cs.stack)
                # https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_UpdateStack.html
                raise _invalid("No updates are to be performed." if cs.reason == NO_CHANGES else cs.reason)
            worker = self._start_execution(cs)
            worker.start()
        worker.join(self.settle_s)
        return {"StackId": created["StackId"]}

    def deploy(self, stack_name: str, template: Mapping[str, Any], parameters: Mapping[str, str] | None = None,
               ) -> DeployedStack:
        """Create or update ``stack_name`` to ``template`` in this thread, the same way as a change set;
        its DeployedStack, or DeployFailed (after the rollback) / CloudFormationError."""
        with self._lock:
            stack = self._active(stack_name)
            cs_type = "UPDATE" if stack is not None and stack.status != "REVIEW_IN_PROGRESS" else "CREATE"
        created = self.create_change_set({
            "StackName": stack_name, "ChangeSetName": f"local-{uuid.uuid4().hex[:12]}", "ChangeSetType": cs_type,
            "TemplateBody": json.dumps(template, indent=2),
            "Parameters": [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in (parameters or {}).items()],
            "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]})
        with self._lock:
            stack = self._by_id[created["StackId"]]
            cs = stack.change_sets[created["Id"]]
            if cs.status == "FAILED":
                del stack.change_sets[cs.id]
                if cs.reason == NO_CHANGES and stack.deployed is not None:
                    return stack.deployed
                raise _invalid(cs.reason)
            self._start_execution(cs)
        self._run_execution(cs)  # here, not under the lock: readers see the statuses as it goes
        with self._lock:
            if stack.status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE") or stack.deployed is None:
                raise DeployFailed(stack.failed_logical_id, stack.reason or stack.status)
            return stack.deployed

    def delete_stack(self, params: Mapping[str, Any]) -> dict:
        """DELETE_IN_PROGRESS, the deployer deletes, DELETE_COMPLETE; an unknown stack is no error (as AWS).
        https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DeleteStack.html"""
        name = _required(params, "StackName")
        with self._lock:
            stack = self._by_id.get(name) if name.startswith("arn:") else self._by_name.get(name)
            if stack is None or stack.status in ("DELETE_COMPLETE", "DELETE_IN_PROGRESS"):
                return {}
            if stack.busy:
                raise _invalid(f"Stack [{stack.name}] cannot be deleted while in status {stack.status}")
            stack.status, stack.reason = "DELETE_IN_PROGRESS", ""
            self._stack_event(stack, "DELETE_IN_PROGRESS", "User Initiated")
            stack.worker = worker = threading.Thread(target=self._run_delete, args=(stack,),
                                                     name=f"cfn-delete-{stack.name}", daemon=True)
            worker.start()
        worker.join(self.settle_s)
        return {}

    # ================================================================= reading stacks

    def describe_stacks(self, params: Mapping[str, Any]) -> dict:
        with self._lock:
            name = params.get("StackName")
            stacks = [self._stack(name)] if name else list(self._by_name.values())
            return {"Stacks": [self._describe(s) for s in stacks]}

    def list_stacks(self, params: Mapping[str, Any]) -> dict:
        """Every stack, deleted ones too (AWS lists them for 90 days), optionally of the statuses given."""
        wanted = set(params.get("StackStatusFilter") or [])
        with self._lock:
            summaries = []
            for stack in reversed(list(self._by_id.values())):
                if wanted and stack.status not in wanted:
                    continue
                described = self._describe(stack)
                summary = {k: described[k] for k in ("StackId", "StackName", "CreationTime", "LastUpdatedTime",
                                                     "DeletionTime", "StackStatus", "StackStatusReason",
                                                     "DriftInformation") if k in described}
                if "Description" in described:
                    summary["TemplateDescription"] = described["Description"]
                summaries.append(summary)
            return {"StackSummaries": summaries}

    def list_exports(self, params: Mapping[str, Any]) -> dict:
        """The outputs with an ``Export`` name, of every stack not deleted."""
        with self._lock:
            return {"Exports": [{"ExportingStackId": stack.id, "Name": o["ExportName"], "Value": o["OutputValue"]}
                                for stack in self._by_name.values()
                                for o in self._describe(stack).get("Outputs", []) if "ExportName" in o]}

    def describe_stack_events(self, params: Mapping[str, Any]) -> dict:
        """Newest first, as CloudFormation lists them."""
        with self._lock:
            stack = self._stack(_required(params, "StackName"))
            return {"StackEvents": [dict(e) for e in reversed(stack.events)]}

    def describe_stack_resource(self, params: Mapping[str, Any]) -> dict:
        with self._lock:
            stack = self._stack(_required(params, "StackName"))
            lid = _required(params, "LogicalResourceId")
            resource = stack.resources.get(lid)
            if resource is None:
                raise _invalid(f"Resource {lid} does not exist for stack {stack.name}")
            detail = {**self._resource_summary(resource), "StackName": stack.name, "StackId": stack.id}
            metadata = ((stack.template.processed or {}).get("Resources", {}).get(lid, {}).get("Metadata")
                        if stack.template else None)
            if metadata is not None:
                detail["Metadata"] = json.dumps(metadata)
            return {"StackResourceDetail": detail}

    def describe_stack_resources(self, params: Mapping[str, Any]) -> dict:
        with self._lock:
            name, physical = params.get("StackName"), params.get("PhysicalResourceId")
            if name:
                stack = self._stack(name)
            elif physical:
                stack = next((s for s in self._by_name.values()
                              if any(r.physical_id == physical for r in s.resources.values())), None)
                if stack is None:
                    raise _invalid(f"Stack for {physical} does not exist")
            else:
                raise _invalid("Either StackName or PhysicalResourceId must be specified.")
            out = []
            for r in stack.resources.values():
                if params.get("LogicalResourceId") not in (None, r.logical_id):
                    continue
                if physical and not name and r.physical_id != physical:
                    continue
                summary = self._resource_summary(r)
                summary["Timestamp"] = summary.pop("LastUpdatedTimestamp")
                out.append({**summary, "StackName": stack.name, "StackId": stack.id})
            return {"StackResources": out}

    def list_stack_resources(self, params: Mapping[str, Any]) -> dict:
        with self._lock:
            stack = self._stack(_required(params, "StackName"))
            return {"StackResourceSummaries": [self._resource_summary(r) for r in stack.resources.values()]}

    def get_template(self, params: Mapping[str, Any]) -> dict:
        """The template as submitted (``Original``, the default) or after its transforms (``Processed``)."""
        with self._lock:
            stack = self._stack(_required(params, "StackName"))
            template = stack.template
            if params.get("ChangeSetName"):
                template = self._change_set({**params, "StackName": stack.id}).template
        stage = params.get("TemplateStage") or "Original"
        if template is None:
            return {"TemplateBody": "", "StagesAvailable": []}
        stages = ["Original", "Processed"] if template.processed is not None else ["Original"]
        if stage == "Processed" and template.processed is not None:
            body = json.dumps(template.processed, indent=2)
        else:
            body = template.body
        return {"TemplateBody": body, "StagesAvailable": stages}

    def get_template_summary(self, params: Mapping[str, Any]) -> dict:
        """Parameters, capabilities, resource types... of a template, or of a stack's.
        https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_GetTemplateSummary.html"""
        if params.get("StackName"):
            with self._lock:
                template = self._stack(params["StackName"]).template
            if template is None:
                raise _invalid(f"Stack with id {params['StackName']} has no template yet")
        else:
            template = self._template_of(params, None)
        original = template.original
        declared = original.get("Parameters") or {}
        parameters = []
        for key, spec in declared.items():
            item: dict[str, Any] = {"ParameterKey": key, "ParameterType": str(spec.get("Type", "String")),
                                    "NoEcho": _true(spec.get("NoEcho")), "ParameterConstraints": {}}
            if "Default" in spec:
                item["DefaultValue"] = _as_str(spec["Default"])
            if spec.get("Description"):
                item["Description"] = str(spec["Description"])
            if spec.get("AllowedValues"):
                item["ParameterConstraints"] = {"AllowedValues": [_as_str(v) for v in spec["AllowedValues"]]}
            parameters.append(item)
        out: dict[str, Any] = {
            "Parameters": parameters,
            "ResourceTypes": sorted({r.get("Type", "") for r in (original.get("Resources") or {}).values()
                                     if isinstance(r, dict)}),
            "DeclaredTransforms": template.transforms,
            "Capabilities": [], "ResourceIdentifierSummaries": [],
        }
        if original.get("AWSTemplateFormatVersion"):
            out["Version"] = str(original["AWSTemplateFormatVersion"])
        if original.get("Description"):
            out["Description"] = str(original["Description"])
        if original.get("Metadata") is not None:
            out["Metadata"] = json.dumps(original["Metadata"])
        needed, types = _capabilities_needed(template.processed or original)
        if needed:
            out["Capabilities"] = [needed]
            out["CapabilitiesReason"] = f"The following resource(s) require capabilities: [{', '.join(types)}]"
        return out

    def validate_template(self, params: Mapping[str, Any]) -> dict:
        summary = self.get_template_summary({k: v for k, v in params.items() if k != "StackName"})
        out = {k: summary[k] for k in ("Description", "Capabilities", "CapabilitiesReason", "DeclaredTransforms")
               if k in summary}
        out["Parameters"] = [{k: p[k] for k in ("ParameterKey", "DefaultValue", "NoEcho", "Description") if k in p}
                             for p in summary["Parameters"]]
        return out

    # ================================================================= the engine

    def _start_execution(self, cs: _ChangeSet) -> threading.Thread:
        """(under the lock) Check that ``cs`` can run now and mark it running; the thread that will run it."""
        stack = cs.stack
        if cs.status != "CREATE_COMPLETE" or cs.execution_status != "AVAILABLE":
            raise CloudFormationError(
                "InvalidChangeSetStatus",
                f"ChangeSet [{cs.id}] cannot be executed in its current status of [{cs.status}]"
                if cs.status != "CREATE_COMPLETE" else
                f"ChangeSet [{cs.id}] cannot be executed in its current execution status of [{cs.execution_status}]")
        if cs.type == "UPDATE":
            self._check_updatable(stack)
        elif stack.status != "REVIEW_IN_PROGRESS":
            raise _invalid(f"Stack:{stack.id} is in {stack.status} state and can not be updated.")
        cs.execution_status = "EXECUTE_IN_PROGRESS"
        # executing a change set deletes the stack's other change sets: they no longer apply
        # https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ExecuteChangeSet.html
        stack.change_sets = {cs.id: cs}
        op = cs.type
        stack.status, stack.reason, stack.failed_logical_id = f"{op}_IN_PROGRESS", "", ""
        if op == "UPDATE":
            stack.updated = self._now()
        self._stack_event(stack, stack.status, "User Initiated")
        worker = threading.Thread(target=self._run_execution, args=(cs,), name=f"cfn-{op.lower()}-{stack.name}",
                                  daemon=True)
        stack.worker = worker
        return worker

    def _run_execution(self, cs: _ChangeSet) -> None:
        stack, op = cs.stack, cs.type
        previous = stack.deployed
        emit = self._emitter(stack)
        try:
            deployed = self.deployer.deploy(stack.name, stack.id, copy.deepcopy(cs.template.processed or {}),
                                            dict(cs.values), previous, emit)
        except DeployFailed as e:
            self._deploy_failed(cs, e, previous, emit)
            return
        except Exception as e:  # a deployer's bug: the stack says so instead of hanging
            log.exception("the deployer failed on stack %s", stack.name)
            with self._lock:
                cs.execution_status = "EXECUTE_FAILED"
                stack.status = "ROLLBACK_FAILED" if op == "CREATE" else "UPDATE_ROLLBACK_FAILED"
                stack.reason = f"Internal failure: {e}"
                self._stack_event(stack, stack.status, stack.reason)
            return
        with self._lock:
            stack.deployed, stack.template, stack.values = deployed, cs.template, dict(cs.values)
            stack.capabilities, stack.tags, stack.change_set_id = cs.capabilities, cs.tags, cs.id
            cs.execution_status = "EXECUTE_COMPLETE"
            self._settle_resources(stack, deployed, f"{op}_COMPLETE")
            if op == "UPDATE":
                stack.status = "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
                self._stack_event(stack, stack.status)
            stack.status = f"{op}_COMPLETE"
            self._stack_event(stack, stack.status)

    def _deploy_failed(self, cs: _ChangeSet, e: DeployFailed, previous: DeployedStack | None, emit: Emit) -> None:
        """The failed resource's event (if the deployer gave none), then CloudFormation's rollback statuses."""
        stack, op = cs.stack, cs.type
        with self._lock:
            cs.execution_status = "EXECUTE_FAILED"
            stack.failed_logical_id = e.logical_id
            reported = stack.status in ("ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS")
            rtype = ((cs.template.processed or {}).get("Resources", {}).get(e.logical_id) or {}).get("Type", "")
        if not reported:
            emit(ResourceEvent(e.logical_id, rtype, f"{op}_FAILED", reason=e.reason))
        if op == "CREATE":
            with self._lock:
                stack.template, stack.values, stack.change_set_id = cs.template, dict(cs.values), cs.id
                stack.status = "ROLLBACK_COMPLETE"
                self._stack_event(stack, stack.status)
            return
        try:
            self.deployer.rollback(stack.name, e.partial, previous, emit)
        except Exception as err:  # noqa: BLE001 - DeployFailed or a bug: the rollback did not finish
            log.warning("rollback of stack %s failed: %s", stack.name, err)
            with self._lock:
                stack.status = "UPDATE_ROLLBACK_FAILED"
                stack.reason = f"The following resource(s) failed to update: [{getattr(err, 'logical_id', '')}]. "
                self._stack_event(stack, stack.status, stack.reason)
            return
        with self._lock:
            if previous is not None:
                self._settle_resources(stack, previous, "UPDATE_COMPLETE")
            for status in ("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"):
                stack.status = status
                self._stack_event(stack, status)

    def _run_delete(self, stack: _Stack) -> None:
        emit = self._emitter(stack)
        try:
            if stack.deployed is not None:
                self.deployer.delete(stack.name, stack.deployed, emit)
        except Exception as e:  # noqa: BLE001 - DeployFailed, or a deployer's bug
            lid = getattr(e, "logical_id", "")
            with self._lock:
                stack.status = "DELETE_FAILED"
                stack.reason = f"The following resource(s) failed to delete: [{lid}]. " if lid else f"{e}"
                self._stack_event(stack, stack.status, stack.reason)
            return
        with self._lock:
            stack.status, stack.deployed, stack.deleted_at = "DELETE_COMPLETE", None, self._now()
            stack.change_sets.clear()
            for r in stack.resources.values():
                r.status = "DELETE_COMPLETE"
            self._stack_event(stack, "DELETE_COMPLETE")
            self._forget(stack)

    def _emitter(self, stack: _Stack) -> Emit:
        """The ``emit`` a deployer reports to: each event recorded; the first failure starts the rollback."""
        def emit(event: ResourceEvent) -> None:
            with self._lock:
                now = self._now()
                resource = stack.resources.get(event.logical_id)
                if resource is None:
                    resource = stack.resources[event.logical_id] = _Resource(
                        event.logical_id, event.resource_type, event.physical_id, event.status, now)
                resource.status, resource.timestamp, resource.reason = event.status, now, event.reason
                resource.resource_type = event.resource_type or resource.resource_type
                resource.physical_id = event.physical_id or resource.physical_id
                self._event(stack, event.logical_id, resource.physical_id, resource.resource_type, event.status,
                            event.reason, now)
                if event.status.endswith("_FAILED") and stack.status in ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS"):
                    verb = event.status.split("_", 1)[0].lower()
                    stack.failed_logical_id = event.logical_id
                    if stack.status == "CREATE_IN_PROGRESS":
                        stack.status = "ROLLBACK_IN_PROGRESS"
                        stack.reason = (f"The following resource(s) failed to {verb}: [{event.logical_id}]. "
                                        "Rollback requested by user.")
                    else:
                        stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
                        stack.reason = f"The following resource(s) failed to {verb}: [{event.logical_id}]. "
                    self._stack_event(stack, stack.status, stack.reason)
        return emit

    def _settle_resources(self, stack: _Stack, deployed: DeployedStack, status: str) -> None:
        """(under the lock) The stack's resources are ``deployed``'s: new ones added, gone ones dropped."""
        now = self._now()
        for lid in [lid for lid in stack.resources if lid not in deployed.resources]:
            del stack.resources[lid]
        for lid, (rtype, physical) in deployed.resources.items():
            resource = stack.resources.get(lid)
            if resource is None:
                stack.resources[lid] = _Resource(lid, rtype, physical, status, now)
            else:
                resource.resource_type, resource.physical_id = rtype, physical or resource.physical_id
                if not resource.status.endswith("_COMPLETE") or resource.status.startswith("DELETE"):
                    resource.status, resource.reason = status, ""

    # ================================================================= templates, parameters, changes

    def _template_of(self, params: Mapping[str, Any], previous: _Template | None) -> _Template:
        """The template a request gives: TemplateBody, TemplateURL (fetched from the local S3) or the previous one."""
        body, url = params.get("TemplateBody"), params.get("TemplateURL")
        if params.get("UsePreviousTemplate"):
            if previous is None:
                raise _invalid("UsePreviousTemplate is only allowed for a stack that has a template")
            return _Template(previous.body, copy.deepcopy(previous.original))
        if bool(body) == bool(url):
            raise _invalid("Specify exactly one of TemplateBody or TemplateUrl.")
        if url:
            body = self._fetch_template(url)
        try:
            original = parse(body)
        except TemplateError as e:
            raise _invalid(f"Template format error: {_plain(str(e))}") from None
        return _Template(body, original)

    def _fetch_template(self, url: str) -> str:
        bucket, key = _s3_location(url)
        try:
            answer = self.clients("s3").get_object(Bucket=bucket, Key=key)
        except Exception as e:  # noqa: BLE001 - botocore's ClientError, or the local S3 not answering
            code = getattr(e, "response", {}).get("Error", {}).get("Message") or str(e)
            raise _invalid(f"S3 error: {code}") from None
        return answer["Body"].read().decode("utf-8")

    def _process(self, template: _Template, values: Mapping[str, str]) -> str:
        """Run the template's transforms into ``template.processed``; the change set's failure reason, or ''."""
        transforms = template.transforms
        unknown = [t for t in transforms if t != SAM_TRANSFORM]
        if unknown:
            return f"The local cloud does not run the transform(s) {', '.join(unknown)}; only {SAM_TRANSFORM}."
        if not transforms:
            template.processed = copy.deepcopy(template.original)
            return ""
        try:
            template.processed = sam_transform(template.original, values, region=self.region).template
        except TemplateError as e:
            causes = str(e).removeprefix("the SAM template is invalid: ").split("; ")
            # what CloudFormation says of a template the SAM translator refuses
            return (f"Transform {SAM_TRANSFORM} failed with: Invalid Serverless Application Specification "
                    f"document. Number of errors found: {len(causes)}. " + " ".join(causes))
        return ""

    def _plan(self, cs: _ChangeSet) -> None:
        """(under the lock) The change set's Changes, or FAILED with NO_CHANGES when it changes nothing."""
        new = (cs.template.processed or {}).get("Resources") or {}
        stack = cs.stack
        old_template = (stack.template.processed or {}) if cs.type == "UPDATE" and stack.template else {}
        old = old_template.get("Resources") or {}
        changed_values = {k for k in set(cs.values) | set(stack.values)
                          if cs.type == "UPDATE" and cs.values.get(k) != stack.values.get(k)}
        changes = []
        for lid, resource in new.items():
            rtype = resource.get("Type", "")
            if lid not in old:
                changes.append(_change("Add", lid, rtype))
                continue
            before = old[lid]
            if _canonical(before) == _canonical(resource) and not (_names_in(resource) & changed_values):
                continue
            physical = stack.resources[lid].physical_id if lid in stack.resources else ""
            replace = before.get("Type") != rtype or any(
                (before.get("Properties") or {}).get(p) != (resource.get("Properties") or {}).get(p)
                for p in _NAME_PROPERTIES)
            changes.append(_change("Modify", lid, rtype, physical, "True" if replace else "False"))
        for lid, resource in old.items():
            if lid not in new:
                physical = stack.resources[lid].physical_id if lid in stack.resources else ""
                changes.append(_change("Remove", lid, resource.get("Type", ""), physical))
        cs.changes = changes
        if cs.type == "UPDATE" and not changes and not changed_values and \
                _canonical(old_template) == _canonical(cs.template.processed or {}):
            cs.status, cs.execution_status, cs.reason = "FAILED", "UNAVAILABLE", NO_CHANGES

    def _parameter_list(self, template: _Template | None, values: Mapping[str, str]) -> list[dict]:
        declared = (template.original.get("Parameters") or {}) if template else {}
        return [{"ParameterKey": k, "ParameterValue": "****" if _true((declared.get(k) or {}).get("NoEcho")) else v}
                for k, v in values.items()]

    # ================================================================= lookups and records

    def deployed(self, stack_name: str) -> DeployedStack | None:
        """What the stack ``stack_name`` runs now (its last deploy that completed), or None."""
        with self._lock:
            stack = self._active(stack_name)
            return stack.deployed if stack is not None else None

    def deployed_stacks(self) -> list[DeployedStack]:
        """Every stack's last completed deploy (to stop what they run)."""
        with self._lock:
            return [s.deployed for s in self._by_name.values() if s.deployed is not None]

    def _active(self, name: str) -> _Stack | None:
        if name.startswith("arn:"):
            stack = self._by_id.get(name)
            return stack if stack is not None and stack.status != "DELETE_COMPLETE" else None
        return self._by_name.get(name)

    def _stack(self, name: str) -> _Stack:
        """A stack by name (not deleted) or by stack id (deleted ones too), else AWS's ValidationError."""
        stack = self._by_id.get(name) if name.startswith("arn:") else self._by_name.get(name)
        if stack is None:
            raise _invalid(f"Stack with id {name} does not exist")
        return stack

    def _change_set(self, params: Mapping[str, Any]) -> _ChangeSet:
        ref = _required(params, "ChangeSetName")
        if ref.startswith("arn:"):
            for stack in self._by_id.values():
                if ref in stack.change_sets:
                    return stack.change_sets[ref]
        elif params.get("StackName"):
            stack = self._active(params["StackName"])
            if stack is None:
                raise _invalid(f"Stack [{params['StackName']}] does not exist")
            for cs in stack.change_sets.values():
                if cs.name == ref:
                    return cs
        else:
            raise _invalid("StackName must be specified if ChangeSetName is not specified as an ARN.")
        raise CloudFormationError("ChangeSetNotFound", f"ChangeSet [{ref}] does not exist", 404)

    def _check_updatable(self, stack: _Stack) -> None:
        if stack.status not in _UPDATABLE:
            raise _invalid(f"Stack:{stack.id} is in {stack.status} state and can not be updated.")

    def _new_stack(self, name: str) -> _Stack:
        stack = _Stack(name=name, id=self._arn(f"stack/{name}/{uuid.uuid4()}"), created=self._now())
        self._by_name[name] = stack
        self._by_id[stack.id] = stack
        self._stack_event(stack, "REVIEW_IN_PROGRESS", "User Initiated")
        return stack

    def _forget(self, stack: _Stack) -> None:
        """By name a deleted stack is gone; by id it is still described (DELETE_COMPLETE), as AWS's are."""
        if self._by_name.get(stack.name) is stack:
            del self._by_name[stack.name]
        if stack.status == "REVIEW_IN_PROGRESS":
            self._by_id.pop(stack.id, None)

    def _describe(self, stack: _Stack) -> dict:
        out: dict[str, Any] = {
            "StackId": stack.id, "StackName": stack.name, "CreationTime": stack.created,
            "StackStatus": stack.status, "DisableRollback": False, "NotificationARNs": [],
            "RollbackConfiguration": {}, "Capabilities": stack.capabilities, "Tags": stack.tags,
            "EnableTerminationProtection": False, "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"},
            "Parameters": self._parameter_list(stack.template, stack.values),
        }
        if stack.change_set_id:
            out["ChangeSetId"] = stack.change_set_id
        if stack.reason:
            out["StackStatusReason"] = stack.reason
        if stack.updated:
            out["LastUpdatedTime"] = stack.updated
        if stack.deleted_at:
            out["DeletionTime"] = stack.deleted_at
        template = (stack.template.processed or stack.template.original) if stack.template else {}
        if template.get("Description"):
            out["Description"] = str(template["Description"])
        if stack.deployed is not None and stack.deployed.outputs:
            declared = template.get("Outputs") or {}
            outputs = []
            for key, value in stack.deployed.outputs.items():
                item = {"OutputKey": key, "OutputValue": _as_str(value)}
                spec = declared.get(key) or {}
                if isinstance(spec.get("Description"), str):
                    item["Description"] = spec["Description"]
                export = self._plain_value((spec.get("Export") or {}).get("Name"), stack)
                if export:
                    item["ExportName"] = export
                outputs.append(item)
            out["Outputs"] = outputs
        return out

    def _plain_value(self, value: Any, stack: _Stack) -> str:
        """A string, a Ref to a parameter or pseudo parameter, or a Fn::Sub of those (an export's name); else ''."""
        known = {**stack.values, "AWS::StackName": stack.name, "AWS::StackId": stack.id, "AWS::Region": self.region,
                 "AWS::AccountId": self.account_id}
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and isinstance(value.get("Ref"), str):
            return known.get(value["Ref"], "")
        if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
            text = value["Fn::Sub"]
            names = re.findall(r"\$\{([^!}][^}]*)\}", text)
            if all(n in known for n in names):
                return re.sub(r"\$\{([^!}][^}]*)\}", lambda m: known[m.group(1)], text)
        return ""

    @staticmethod
    def _resource_summary(r: _Resource) -> dict:
        out = {"LogicalResourceId": r.logical_id, "PhysicalResourceId": r.physical_id,
               "ResourceType": r.resource_type, "LastUpdatedTimestamp": r.timestamp, "ResourceStatus": r.status,
               "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"}}
        if r.reason:
            out["ResourceStatusReason"] = r.reason
        return out

    def _stack_event(self, stack: _Stack, status: str, reason: str = "") -> None:
        self._event(stack, stack.name, stack.id, STACK_TYPE, status, reason, self._now())

    def _event(self, stack: _Stack, lid: str, physical: str, rtype: str, status: str, reason: str,
               at: dt.datetime) -> None:
        event = {"StackId": stack.id, "EventId": str(uuid.uuid4()) if lid == stack.name else
                 f"{lid}-{status}-{at.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z",
                 "StackName": stack.name, "LogicalResourceId": lid, "PhysicalResourceId": physical,
                 "ResourceType": rtype, "Timestamp": at, "ResourceStatus": status}
        if reason:
            event["ResourceStatusReason"] = reason
        stack.events.append(event)

    def _now(self) -> dt.datetime:
        """Now, at least 1 ms after the last time given: events are told apart by their (ms) timestamps."""
        now = dt.datetime.now(dt.UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if now <= self._last_time:
            now = self._last_time + dt.timedelta(milliseconds=1)
        self._last_time = now
        return now

    def _arn(self, resource: str) -> str:
        partition = "aws-cn" if self.region.startswith("cn-") else "aws"
        return f"arn:{partition}:cloudformation:{self.region}:{self.account_id}:{resource}"


# ===================================================================== helpers


def _required(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if not value:
        # the message AWS's request validation gives for a missing member
        raise _invalid(f"1 validation error detected: Value null at '{name[:1].lower() + name[1:]}' "
                       "failed to satisfy constraint: Member must not be null")
    return str(value)


def _parameter_values(template: Mapping[str, Any], given: list[Mapping[str, Any]], previous: Mapping[str, str],
                      *, creating: bool) -> dict[str, str]:
    """Every declared parameter's value (given, previous with UsePreviousValue, or default), checked as AWS does."""
    from localcloud.cfn.intrinsics import parameter_values

    declared = template.get("Parameters") or {}
    values: dict[str, str] = {}
    for p in given:
        key = p.get("ParameterKey", "")
        if p.get("UsePreviousValue"):
            if creating or key not in previous:
                raise _invalid(f"Invalid input for parameter key {key}. Cannot specify usePreviousValue as true "
                               "for a parameter key not in the previous template")
            values[key] = previous[key]
        else:
            values[key] = _as_str(p.get("ParameterValue", ""))
    unknown = [k for k in values if k not in declared]
    if unknown:
        raise _invalid(f"Parameters: [{', '.join(unknown)}] do not exist in the template")
    missing = [k for k, spec in declared.items() if k not in values and "Default" not in (spec or {})]
    if missing:
        raise _invalid(f"Parameters: [{', '.join(missing)}] must have values")
    try:
        parameter_values(declared, values)  # AllowedValues, patterns, numbers
    except TemplateError as e:
        raise _invalid(_plain(str(e))) from None
    return {k: values[k] if k in values else _as_str(spec["Default"]) for k, spec in declared.items()}


def _capabilities_needed(template: Mapping[str, Any]) -> tuple[str, list[str]]:
    """(CAPABILITY_NAMED_IAM, CAPABILITY_IAM or '', the IAM resource types that need it) of ``template``."""
    needed, types = "", set()
    for resource in (template.get("Resources") or {}).values():
        rtype = resource.get("Type") if isinstance(resource, dict) else None
        if rtype in _IAM_TYPES:
            types.add(rtype)
            name_prop = _IAM_TYPES[rtype]
            if name_prop and (resource.get("Properties") or {}).get(name_prop):
                needed = "CAPABILITY_NAMED_IAM"
            elif not needed:
                needed = "CAPABILITY_IAM"
    return needed, sorted(types)


def _check_capabilities(template: Mapping[str, Any], given: list[str]) -> None:
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/control-access-with-iam.html#using-iam-capabilities
    needed, _ = _capabilities_needed(template)
    if needed == "CAPABILITY_NAMED_IAM" and needed not in given or \
            needed == "CAPABILITY_IAM" and not ({"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"} & set(given)):
        raise CloudFormationError("InsufficientCapabilitiesException", f"Requires capabilities : [{needed}]")


def _s3_location(url: str) -> tuple[str, str]:
    """(bucket, key) of an S3 URL: virtual-hosted (bucket.s3.region.amazonaws.com/key) or path style
    (s3.region.amazonaws.com/bucket/key, or any endpoint such as http://127.0.0.1:4566/bucket/key).
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html"""
    parts = urlsplit(url)
    host, path = parts.hostname or "", unquote(parts.path.lstrip("/"))
    if parts.scheme not in ("http", "https") or not path:
        raise _invalid("TemplateURL must be a supported URL.")
    if ".s3." in f".{host}" and not host.startswith("s3.") and not host.startswith("s3-"):
        return host.split(".s3", 1)[0], path
    bucket, _, key = path.partition("/")
    if not key:
        raise _invalid("TemplateURL must be a supported URL.")
    return bucket, key


def _change(action: str, lid: str, rtype: str, physical: str = "", replacement: str = "") -> dict:
    change: dict[str, Any] = {"Action": action, "LogicalResourceId": lid, "ResourceType": rtype,
                              "Scope": ["Properties"] if action == "Modify" else [], "Details": []}
    if physical:
        change["PhysicalResourceId"] = physical
    if replacement:
        change["Replacement"] = replacement
    return {"Type": "Resource", "ResourceChange": change}


def _names_in(value: Any) -> set[str]:
    """Every name a value refers to by Ref or in a Fn::Sub string (parameters among them)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::Sub":
                text = v[0] if isinstance(v, list) and v else v
                if isinstance(text, str):
                    found.update(m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text))
                found |= _names_in(v)
            else:
                found |= _names_in(v)
    elif isinstance(value, list):
        for v in value:
            found |= _names_in(v)
    return found


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_as_str(v) for v in value)
    return str(value)


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _plain(message: str) -> str:
    return message[:1].upper() + message[1:]
