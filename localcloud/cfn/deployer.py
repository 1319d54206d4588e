"""The CloudFormation engine's hands: it makes, updates, rolls back and deletes a stack's resources in the local cloud.

``CloudFormationService`` (``localcloud.cfn.service``) keeps the stacks, change sets and events; it calls a
``CloudDeployer`` to do the work:

* **Resources.** moto-backed ones through ``localcloud.cfn.provision``; functions, versions and aliases in the
  local Lambda service (``LambdaService``), with their code from S3 (a packaged template, ``sam deploy``), a
  ``ZipFile``, or a local folder (the workshop's own stack, ``code_dirs``). A type the local cloud cannot
  make is refused before anything is made, with the resource and the reason, as a failed stack event.
* **What runs.** After the resources, the stack's API (``LocalApiGateway``, on ``api_port(stack)``) and event
  sources (``EventSources``) start; their calls go through the Lambda service, so an alias's routing applies.
* **Updates** change only what changed: a function's new code or configuration replaces its environments
  (as ``UpdateFunctionCode`` does); new resources are made and removed ones deleted; an alias whose version
  changes under SAM's ``DeploymentPreference`` shifts its traffic on the preference's schedule
  (``localcloud.codedeploy``) and rolls back when one of its alarms fires. Stateful resources (tables, buckets,
  queues, pools) are not changed in place: such an update fails and rolls back, naming the resource.
* **Rollback.** Every change made by a deploy is recorded with its undo; a failed create or update undoes
  them in reverse, as CloudFormation's rollback does.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localcloud.cfn.delete import delete_resource
from localcloud.cfn.provision import Provisioner
from localcloud.cfn.service import DeployedStack, DeployFailed, ResourceEvent
from localcloud.cfn.stack import Stack
from localcloud.errors import CloudError, Throttled
from localcloud.event_sources.destinations import Measure, measured_nowhere
from localcloud.sdk import Clients

if TYPE_CHECKING:
    from localcloud.apigateway.gateway import LocalApiGateway
    from localcloud.event_sources.sources import EventSources
    from localcloud.lambda_service.service import LambdaService
    from localcloud.lambda_service.spec import InvocationResult

log = logging.getLogger(__name__)

__all__ = ["CloudDeployer"]

_LAMBDA_TYPES = frozenset({"AWS::Lambda::Function", "AWS::Lambda::Version", "AWS::Lambda::Alias"})
#: What an update may change in place: they hold no data (or live in the Lambda service)
_UPDATABLE = _LAMBDA_TYPES | frozenset({
    "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::Lambda::Permission",
    "AWS::Lambda::EventInvokeConfig", "AWS::Lambda::EventSourceMapping", "AWS::ApiGateway::RestApi",
    "AWS::ApiGateway::Stage", "AWS::ApiGateway::Deployment", "AWS::ApiGateway::Account",
    "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy", "AWS::CodeDeploy::Application",
    "AWS::CodeDeploy::DeploymentGroup", "AWS::CloudWatch::Alarm", "AWS::Logs::LogGroup", "AWS::Events::Rule",
})
_FUNCTION_SETTINGS = ("Role", "Handler", "Runtime", "MemorySize", "Timeout", "Environment", "Description",
                      "DeadLetterConfig", "Architectures", "TracingConfig", "EphemeralStorage", "LoggingConfig")


@dataclass
class _Running:
    """One deployed stack, as the deployer keeps it (``DeployedStack.state``)."""

    stack: Stack
    gateway: LocalApiGateway | None = None
    event_sources: EventSources | None = None
    port: int | None = None  # the API's port, kept across updates and rollbacks (its URL is in the outputs)
    #: what this deploy changed, in order: (logical id, type, undo) — run in reverse by a rollback
    changes: list[tuple[str, str, Callable[[], None]]] = field(default_factory=list)
    #: after a delete: the local cloud's own queues behind the event sources (for ``delete_leftovers``), and
    #: what was deleted in moto, as (type, name, what was done) rows
    leftover_queues: list[str] = field(default_factory=list)
    deleted: list[tuple[str, str, str]] = field(default_factory=list)


class CloudDeployer:
    """Makes stacks real in the local cloud: moto's resources, the Lambda service's functions, the API, event sources."""

    def __init__(
        self,
        clients: Clients,
        functions: LambdaService,
        *,
        endpoint_url: str,
        region: str,
        account_id: str,
        api_port: Callable[[str], int] = lambda stack_name: 0,
        verifier: Callable[[Stack], Any] | None = None,
        on_request: Callable[[dict], None] | None = None,
        retry_delays: tuple[float, ...] = (1.0, 2.0),
        stream_retry_delay: float = 0.2,
        minute_s: float = 60.0,
        measure: Measure = measured_nowhere,
    ) -> None:
        self.clients = clients
        self.functions = functions
        self.measure = measure  # Lambda's metrics that the event sources measure (IteratorAge, AsyncEventAge...)
        self.endpoint_url = endpoint_url
        self.region = region
        self.account_id = account_id
        self.api_port = api_port
        self.verifier = verifier
        self.on_request = on_request
        self.retry_delays = retry_delays
        self.stream_retry_delay = stream_retry_delay
        #: seconds a CodeDeploy minute lasts (60: as on AWS; less compresses a canary for teaching)
        self.minute_s = minute_s
        #: stack name -> {function logical id: local code folder or .zip} for its next deploy: code not packaged
        #: (the workshop's own stack, ``up --template``)
        self.code_dirs: dict[str, dict[str, Path]] = {}
        #: stack names whose functions run in the Lambda runtime under their logical ids (the workshop's stack)
        self.logical_runtime_names: set[str] = set()

    # ----------------------------------------------------------------- the Deployer protocol

    def deploy(self, stack_name: str, stack_id: str, template: dict, parameters: Mapping[str, str],
               previous: DeployedStack | None, emit: Callable[[ResourceEvent], None]) -> DeployedStack:
        stack = self._stack(stack_name, template, parameters)
        running = _Running(stack)
        old: _Running | None = previous.state if previous is not None else None
        verb = "CREATE" if old is None else "UPDATE"
        self._refuse_unsupported(stack, verb, emit)
        current = None
        try:
            for lid in stack.order:
                current = lid
                self._apply(running, old, lid, emit)
            current = None
            refused = self._unemulated(stack)
            if refused is not None:  # refused at deploy time, never left out without a word
                current, reason = refused
                raise CloudError(reason)
            port = old.port if old is not None else None  # the API keeps its URL and its connections
            gateway = None
            if old is not None:
                gateway, old.gateway = old.gateway, None
                self._stop_parts(old)
            self._start_parts(running, port, gateway)
        except Exception as e:  # noqa: BLE001 - any failure rolls back
            reason = _reason(e)
            if current is not None:
                emit(ResourceEvent(current, stack.resource_type(current), f"{verb}_FAILED",
                                   str(stack.refs.get(current, "")), reason))
            failed = DeployedStack(state=running)
            if old is None:  # a failed create: CloudFormation deletes what it made (ROLLBACK_COMPLETE)
                self.rollback(stack_name, failed, None, emit)
            raise DeployFailed(current or stack_name, reason, failed) from e
        if old is not None:  # the update's clean-up phase: what the new template no longer has
            for lid in reversed(old.stack.order):
                if lid not in stack.resources:
                    self._delete_one(old.stack, lid, emit)
        return self._deployed(running)

    def rollback(self, stack_name: str, failed: DeployedStack | None, previous: DeployedStack | None,
                 emit: Callable[[ResourceEvent], None]) -> None:
        """Undo what the failed deploy changed, newest first; then run the previous version again."""
        running: _Running | None = failed.state if failed is not None else None
        gateway = None
        if running is not None:
            gateway, running.gateway = running.gateway, None
            self._stop_parts(running)
            for lid, rtype, undo in reversed(running.changes):
                created = lid not in (previous.state.stack.resources if previous is not None else {})
                emit(ResourceEvent(lid, rtype, "DELETE_IN_PROGRESS" if created else "UPDATE_IN_PROGRESS"))
                try:
                    undo()
                except Exception as e:  # noqa: BLE001 - carry on: undo as much as possible
                    log.warning("rolling back %s failed: %s", lid, e)
                    emit(ResourceEvent(lid, rtype, "DELETE_FAILED" if created else "UPDATE_FAILED", "", _reason(e)))
                    continue
                emit(ResourceEvent(lid, rtype, "DELETE_COMPLETE" if created else "UPDATE_COMPLETE"))
        if previous is not None:
            self._start_parts(previous.state, previous.state.port, gateway)
        elif gateway is not None:
            gateway.stop()

    def delete(self, stack_name: str, deployed: DeployedStack, emit: Callable[[ResourceEvent], None]) -> None:
        """Stop the stack's API and event sources, then delete its resources in reverse dependency order."""
        running: _Running = deployed.state
        queues = running.event_sources.internal_queues() if running.event_sources is not None else []
        self._stop_parts(running)
        for lid in reversed(running.stack.order):
            self._delete_one(running.stack, lid, emit, running.deleted)
        running.leftover_queues = queues

    # ----------------------------------------------------------------- one resource

    def _stack(self, stack_name: str, template: dict, parameters: Mapping[str, str]) -> Stack:
        stack = Stack.from_template(template, parameters=parameters, stack_name=stack_name, region=self.region,
                                    account_id=self.account_id)
        # for the next deploy only: a later one (sam deploy of a packaged template) brings its own code
        stack.code_uris = dict(self.code_dirs.pop(stack_name, {}))
        return stack

    def _refuse_unsupported(self, stack: Stack, verb: str, emit: Callable[[ResourceEvent], None]) -> None:
        provisioner = Provisioner(stack, self.clients)
        for lid in stack.order:
            rtype = stack.resource_type(lid)
            reason = None
            if not (rtype in _LAMBDA_TYPES or provisioner.makes(rtype)):
                reason = f"Resource type {rtype} is not supported by the local cloud"
            elif rtype == "AWS::Lambda::Function":
                props = stack.resources[lid].get("Properties") or {}
                if props.get("PackageType") == "Image":
                    reason = "Container image functions (PackageType: Image) are not supported by the local cloud"
                elif props.get("Layers"):
                    reason = "Lambda layers are not supported by the local cloud"
                elif isinstance(props.get("Runtime"), str) and not props["Runtime"].startswith("python3"):
                    reason = f"Runtime {props.get('Runtime')} is not supported by the local cloud (python3.x only)"
            elif rtype == "AWS::Cognito::UserPool" and (stack.resources[lid].get("Properties") or {}).get("LambdaConfig"):
                reason = "Cognito triggers (LambdaConfig) are not called by the local cloud"
            if reason is not None:
                emit(ResourceEvent(lid, rtype, f"{verb}_FAILED", "", reason))
                raise DeployFailed(lid, reason, None)

    @staticmethod
    def _unemulated(stack: Stack) -> tuple[str, str] | None:
        """The first (resource, reason) the API and event sources could not run as AWS would, read from the template
        with everything recorded (they are read again when they start)."""
        stack.routes(), stack.s3_notifications(), stack.sns_subscriptions(), stack.stream_mappings(), stack.schedules()
        return stack.refused[0] if stack.refused else None

    def _apply(self, running: _Running, old: _Running | None, lid: str, emit: Callable[[ResourceEvent], None]) -> None:
        stack = running.stack
        rtype = stack.resource_type(lid)
        if old is None or lid not in old.stack.resources or old.stack.resource_type(lid) != rtype:
            emit(ResourceEvent(lid, rtype, "CREATE_IN_PROGRESS"))
            self._create(running, lid)
            emit(ResourceEvent(lid, rtype, "CREATE_IN_PROGRESS", str(stack.refs.get(lid, "")), "Resource creation Initiated"))
            emit(ResourceEvent(lid, rtype, "CREATE_COMPLETE", str(stack.refs.get(lid, ""))))
            return
        # the same resource: what it was, unless its (resolved) properties changed
        stack.record(lid, old.stack.refs[lid], {a: v for (r, a), v in old.stack.attrs.items() if r == lid})
        if stack.properties(lid) == old.stack.properties(lid) and rtype != "AWS::Lambda::Function":
            return
        if rtype == "AWS::Lambda::Function" and not self._function_changed(running, old, lid):
            return
        if rtype not in _UPDATABLE:
            raise CloudError(f"Updating {rtype} {lid} in place is not supported by the local cloud; "
                             "delete the stack and deploy it again")
        emit(ResourceEvent(lid, rtype, "UPDATE_IN_PROGRESS", str(stack.refs[lid])))
        self._update(running, old, lid, emit)
        emit(ResourceEvent(lid, rtype, "UPDATE_COMPLETE", str(stack.refs[lid])))

    def _create(self, running: _Running, lid: str) -> None:
        stack = running.stack
        rtype = stack.resource_type(lid)
        props = stack.properties(lid)
        if rtype == "AWS::Lambda::Function":
            name = self._create_function(running, lid, props)
            running.changes.append((lid, rtype, lambda: self.functions.delete_function(name)))
        elif rtype == "AWS::Lambda::Version":
            published = self.functions.publish_version(
                str(props["FunctionName"]), {k: props[k] for k in ("Description",) if k in props})
            stack.record(lid, published["FunctionArn"], {"Version": published["Version"]})
            running.changes.append((lid, rtype, lambda: None))  # versions stay (SAM retains them)
        elif rtype == "AWS::Lambda::Alias":
            function, alias = str(props["FunctionName"]), str(props["Name"])
            made = self.functions.create_alias(function, _alias_params(props))
            stack.record(lid, made["AliasArn"], {})
            running.changes.append((lid, rtype, lambda: self.functions.delete_alias(function, alias)))
        else:
            Provisioner(stack, self.clients).make(lid)
            running.changes.append((lid, rtype, lambda: self._delete_made(stack, lid)))

    def _create_function(self, running: _Running, lid: str, props: dict[str, Any]) -> str:
        stack = running.stack
        name, _ = stack.predicted(lid, props)
        params = {"FunctionName": name, **{k: props[k] for k in _FUNCTION_SETTINGS if k in props}}
        if props.get("Tags"):
            params["Tags"] = {t["Key"]: t["Value"] for t in props["Tags"]}
        code_dir = stack.code_uris.get(lid)
        if code_dir is None or code_dir.is_file():  # packaged (S3), inline, or a local .zip
            params["Code"] = _code_params(props.get("Code") or {}, code_dir)
            code_dir = None
        runtime_key = lid if stack.stack_name in self.logical_runtime_names else None
        made = self.functions.create_function(params, code_dir=code_dir, runtime_key=runtime_key)
        if props.get("ReservedConcurrentExecutions") is not None:
            self.functions.put_function_concurrency(name, int(props["ReservedConcurrentExecutions"]))
        stack.record(lid, name, {"Arn": made["FunctionArn"]})
        logs = self.clients("logs")
        try:  # Lambda makes it at the first invoke; made here so that logs can be read before
            logs.create_log_group(logGroupName=f"/aws/lambda/{name}")
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        return name

    def _function_changed(self, running: _Running, old: _Running, lid: str) -> bool:
        if running.stack.properties(lid) != old.stack.properties(lid):
            return True
        code_dir = running.stack.code_uris.get(lid)
        return code_dir is not None and code_dir != old.stack.code_uris.get(lid)

    def _update(self, running: _Running, old: _Running, lid: str, emit: Callable[[ResourceEvent], None]) -> None:
        stack = running.stack
        rtype = stack.resource_type(lid)
        props, before = stack.properties(lid), old.stack.properties(lid)
        if rtype == "AWS::Lambda::Function":
            self._update_function(running, old, lid, props, before)
        elif rtype == "AWS::Lambda::Alias":
            self._update_alias(running, lid, props, before, emit)
        elif rtype == "AWS::Lambda::Version":  # immutable: a changed version is a new one
            self._create(running, lid)
        elif rtype == "AWS::CloudWatch::Alarm":
            Provisioner(stack, self.clients).make(lid)  # put_metric_alarm replaces it
            running.changes.append((lid, rtype, lambda: Provisioner(old.stack, self.clients).make(lid)))
        else:  # read by the parts started after the resources
            stack.record(lid, *stack.predicted(lid, props))

    def _update_function(self, running: _Running, old: _Running, lid: str, props: dict, before: dict) -> None:
        name = str(running.stack.refs[lid])
        code_dir, old_code_dir = running.stack.code_uris.get(lid), old.stack.code_uris.get(lid)
        if props.get("Code") != before.get("Code") or code_dir != old_code_dir:
            self._update_code(name, props.get("Code") or {}, code_dir)
            running.changes.append((lid, "AWS::Lambda::Function",
                                    lambda: self._update_code(name, before.get("Code") or {}, old_code_dir)))
        settings = {k: props.get(k) for k in _FUNCTION_SETTINGS if props.get(k) != before.get(k)}
        if settings:
            self.functions.update_function_configuration(name, {k: v for k, v in settings.items() if v is not None})
            undo = {k: before[k] for k in settings if k in before}
            running.changes.append((lid, "AWS::Lambda::Function",
                                    lambda: self.functions.update_function_configuration(name, undo)))

    def _update_code(self, name: str, code: Mapping[str, Any], local: Path | None) -> None:
        if local is None or local.is_file():
            self.functions.update_function_code(name, _code_params(code, local))
        else:
            self.functions.update_function_code(name, {}, code_dir=local)

    def _update_alias(self, running: _Running, lid: str, props: dict, before: dict,
                      emit: Callable[[ResourceEvent], None]) -> None:
        function, alias = str(props["FunctionName"]), str(props["Name"])
        old_version, new_version = str(before["FunctionVersion"]), str(props["FunctionVersion"])
        running.changes.append((lid, "AWS::Lambda::Alias",
                                lambda: self.functions.update_alias(function, alias, _alias_params(before))))
        shift = self._traffic_shift(running.stack, lid)
        if shift is None or old_version == new_version:
            self.functions.update_alias(function, alias, _alias_params(props))
            return
        from localcloud.codedeploy import TrafficShift

        preference, alarms = shift
        if self.minute_s != 60:
            emit(ResourceEvent(lid, "AWS::Lambda::Alias", "UPDATE_IN_PROGRESS", "",
                               f"CodeDeploy {preference}: a minute lasts {self.minute_s:g} s in this local cloud "
                               "(compressed for teaching; 60 s on AWS)"))
        rollout = TrafficShift(self.functions, function, alias, old_version, new_version, preference, alarms=alarms,
                               clients=self.clients, minute_s=self.minute_s,
                               events=lambda line: emit(ResourceEvent(lid, "AWS::Lambda::Alias",
                                                                      "UPDATE_IN_PROGRESS", "", line)))
        ok, reason = rollout.run()
        if not ok:
            raise CloudError(f"CodeDeploy deployment failed: {reason}")

    def _traffic_shift(self, stack: Stack, lid: str) -> tuple[str, list[str]] | None:
        """(deployment type, alarm names) when the alias is updated by CodeDeploy (SAM's DeploymentPreference)."""
        policy = ((stack.resources[lid].get("UpdatePolicy") or {}).get("CodeDeployLambdaAliasUpdate")) or {}
        if not policy:
            return None
        group = stack.resolve(policy.get("DeploymentGroupName"))
        for dg in stack.of_type("AWS::CodeDeploy::DeploymentGroup"):
            if stack.refs.get(dg) == group or dg == group:
                props = stack.properties(dg)
                config = str(props.get("DeploymentConfigName") or "CodeDeployDefault.LambdaAllAtOnce")
                alarms = (props.get("AlarmConfiguration") or {})
                names = [a["Name"] for a in alarms.get("Alarms") or []] if str(alarms.get("Enabled", True)) != "False" else []
                return config, names
        return None

    # ----------------------------------------------------------------- deleting

    def _delete_made(self, stack: Stack, lid: str, rows: list | None = None) -> str:
        row = delete_resource(stack, self.clients, lid)
        if row is not None and rows is not None:
            rows.append(row)
        return row[2] if row is not None else ""

    def _delete_one(self, stack: Stack, lid: str, emit: Callable[[ResourceEvent], None],
                    rows: list | None = None) -> None:
        rtype, ref = stack.resource_type(lid), str(stack.refs.get(lid, ""))
        if stack.resources[lid].get("DeletionPolicy") == "Retain":  # SAM retains the versions it publishes
            emit(ResourceEvent(lid, rtype, "DELETE_SKIPPED", ref))
            return
        emit(ResourceEvent(lid, rtype, "DELETE_IN_PROGRESS", ref))
        what = ""
        try:
            if rtype == "AWS::Lambda::Function":
                self.functions.delete_function(ref)
            elif rtype == "AWS::Lambda::Alias":
                props = stack.properties(lid)
                self.functions.delete_alias(str(props["FunctionName"]), str(props["Name"]))
            elif rtype != "AWS::Lambda::Version":
                what = self._delete_made(stack, lid, rows)
        except Exception as e:  # noqa: BLE001 - a function deleted by hand already: CloudFormation skips it
            if getattr(e, "code", "") != "ResourceNotFoundException":
                emit(ResourceEvent(lid, rtype, "DELETE_FAILED", ref, _reason(e)))
                raise
        emit(ResourceEvent(lid, rtype, "DELETE_COMPLETE", ref, what))

    # ----------------------------------------------------------------- what runs: API, event sources

    def _start_parts(self, running: _Running, port: int | None = None,
                     gateway: LocalApiGateway | None = None) -> None:
        """Start the stack's event sources and API; ``gateway``, the API serving until now, takes the new
        routes on its port (no connection dropped) or stops when the stack has no API any more."""
        from localcloud.event_sources.sources import EventSources

        if running.event_sources is not None:  # running already (a refused update changed nothing)
            if gateway is not None and gateway is not running.gateway:
                gateway.stop()
            return
        stack = running.stack
        sources = EventSources(stack, self.clients, self.invoke, endpoint_url=self.endpoint_url,
                               retry_delays=self.retry_delays, stream_retry_delay=self.stream_retry_delay,
                               minute_s=self.minute_s, measure=self.measure)
        sources.setup()
        sources.start()
        running.event_sources = sources
        routes = stack.routes()
        if routes and gateway is not None:
            gateway.redeploy(self._gateway(stack, routes, gateway.port, start=False))
            running.gateway, running.port = gateway, gateway.port
        elif routes:
            running.gateway = self._gateway(stack, routes, port or self.api_port(stack.stack_name))
            running.port = running.gateway.port
        elif gateway is not None:
            gateway.stop()

    def _gateway(self, stack: Stack, routes: list, port: int, start: bool = True) -> LocalApiGateway:
        from localcloud.apigateway.gateway import LocalApiGateway, MockResponse, Route
        from localcloud.apigateway.throttle import MethodThrottle

        apis = sorted({r.api for r in routes})
        if len(apis) > 1:
            stack.warn(f"several REST APIs ({', '.join(apis)}): all their routes are served on one port, "
                       f"with the stage settings of {apis[0]}")
        stage = stack.stage(apis[0])
        throttling = [t for t in map(MethodThrottle.from_setting, stage.method_settings) if t is not None]
        gateway = LocalApiGateway(
            routes=[Route(r.method, r.path, r.function, r.authorized,
                          None if r.mock is None else MockResponse(r.mock.status, r.mock.headers, r.mock.body.encode()))
                    for r in routes],
            invoke=self.invoke,
            verifier=self.verifier(stack) if self.verifier is not None and any(r.authorized for r in routes) else None,
            port=port,
            stage=stage.name,
            api_id=str(stack.refs.get(apis[0], "local")),
            region=self.region,
            account_id=self.account_id,
            on_request=self.on_request,
            binary_media_types=stage.binary_media_types,
            stage_variables=stage.variables,
            throttling=throttling,
        )
        if start:
            gateway.start()
        return gateway

    @staticmethod
    def _stop_parts(running: _Running) -> None:
        for part in (running.gateway, running.event_sources):
            if part is not None:
                try:
                    part.stop()
                except Exception:  # noqa: BLE001 - stop as much as possible
                    log.exception("stopping %s failed", part)
        running.gateway = running.event_sources = None

    def stop(self, deployed: DeployedStack) -> None:
        """Stop a stack's API and event sources (the local cloud is stopping; its resources stay)."""
        self._stop_parts(deployed.state)

    def invoke(self, target: str, event: Any) -> InvocationResult:
        """What the API and event sources call: ``target`` (name or name:qualifier) through the Lambda service."""
        from localcloud.lambda_service.service import LambdaError

        made_here = not isinstance(event, (bytes, bytearray))
        payload = json.dumps(event).encode() if made_here else bytes(event)
        try:
            return self.functions.invoke(target, payload, json_checked=made_here).result
        except LambdaError as e:
            runtime = self.functions.runtime
            if e.code == "ResourceNotFoundException" and target in runtime.functions():
                # registered with the runtime alone (a notebook's toy function): it runs, as it did before
                return runtime.invoke(target, payload)
            if e.code == "TooManyRequestsException":
                raise Throttled(target.split(":", 1)[0],
                                e.fields.get("Reason") or "ConcurrentInvocationLimitExceeded") from None
            raise

    # ----------------------------------------------------------------- what describe-stacks shows

    def _deployed(self, running: _Running) -> DeployedStack:
        stack = running.stack
        resources = {lid: (stack.resource_type(lid), str(stack.refs.get(lid, ""))) for lid in stack.order}
        return DeployedStack(resources=resources, outputs=self._outputs(running),
                             parameters=_shown_parameters(stack), state=running)

    def _outputs(self, running: _Running) -> dict[str, str]:
        """The template's outputs; an API's execute-api URL is the local API's (the local cloud has no DNS)."""
        stack = running.stack
        outputs = stack.outputs()
        if running.gateway is not None:
            local = running.gateway.url.rstrip("/")
            for lid in stack.of_type("AWS::ApiGateway::RestApi"):
                api_id = re.escape(str(stack.refs.get(lid)))
                pattern = re.compile(rf"https://{api_id}\.execute-api\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
                outputs = {k: pattern.sub(local, v) if isinstance(v, str) else v for k, v in outputs.items()}
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in outputs.items()}


def _shown_parameters(stack: Stack) -> dict[str, str]:
    declared = stack.template.get("Parameters") or {}
    out = {}
    for name, value in stack.parameters.items():
        noecho = str((declared.get(name) or {}).get("NoEcho", "false")).lower() == "true"
        out[name] = "****" if noecho else (",".join(value) if isinstance(value, list) else str(value))
    return out


def _code_params(code: Mapping[str, Any], local_zip: Path | None = None) -> dict[str, Any]:
    """CreateFunction's ``Code`` from a template's (``S3Bucket``/``S3Key``/``S3ObjectVersion``, or ``ZipFile`` source),
    or from a local .zip file (``CodeUri: app.zip``)."""
    if local_zip is not None:
        return {"ZipFile": local_zip.read_bytes()}
    if "ZipFile" in code:  # inline source: CloudFormation writes it as index.py
        import io
        import zipfile

        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("index.py", str(code["ZipFile"]))
        return {"ZipFile": buffer.getvalue()}
    return {k: code[k] for k in ("S3Bucket", "S3Key", "S3ObjectVersion") if k in code}


def _alias_params(props: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"Name": str(props["Name"]), "FunctionVersion": str(props["FunctionVersion"])}
    if props.get("Description"):
        params["Description"] = props["Description"]
    weights = (props.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or []
    params["RoutingConfig"] = {"AdditionalVersionWeights": {str(w["FunctionVersion"]): float(w["FunctionWeight"])
                                                            for w in weights}}
    return params


def _reason(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return str(message)[:1000]
