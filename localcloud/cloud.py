"""LocalCloud: one AWS endpoint on 127.0.0.1 (moto, the Lambda and CloudFormation APIs), and the template deployed on it.

::

    from localcloud import LocalCloud

    with LocalCloud("sam-app/template.yaml", port=0, dispatch="sns") as cloud:
        cloud.add_user("ada", "Passw0rd!")
        token = cloud.token("ada", "Passw0rd!")
        # HTTP to cloud.api_url with {"Authorization": token}; boto3 through cloud.client("s3")
        # or any AWS client with AWS_ENDPOINT_URL=cloud.endpoint_url: `aws lambda list-functions`, `sam deploy`

It starts moto, the endpoint, the Lambda service and CloudFormation, then deploys the template as the stack
``stack_name`` through CloudFormation (``localcloud.cfn.deployer``), each function's code from its local folder.
Every boto3 client it makes (``client()``) and every process it starts gets the endpoint and the fake
credentials ``testing`` (``localcloud.sdk``); none reads ``~/.aws``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localcloud.endpoint.control import ControlServer
from localcloud.endpoint.moto_process import MotoProcess
from localcloud.endpoint.router import Endpoint
from localcloud.errors import CloudError
from localcloud.lambda_service.logs import LogForwarder
from localcloud.sdk import Clients, fake_aws_environment
from localcloud.users import add_user, id_token

if TYPE_CHECKING:  # the parts are imported when started: moto starts while this process imports them
    from localcloud.apigateway.cognito import CognitoVerifier
    from localcloud.apigateway.gateway import LocalApiGateway
    from localcloud.cfn.deployer import CloudDeployer
    from localcloud.cfn.service import CloudFormationService
    from localcloud.cfn.stack import Stack
    from localcloud.cfn.transform import Translation
    from localcloud.cloudwatch_alarms import AlarmEvaluator
    from localcloud.event_sources.sources import EventSources
    from localcloud.lambda_service.metrics import LambdaMetrics
    from localcloud.lambda_service.runtime import LambdaRuntime
    from localcloud.lambda_service.service import LambdaService
    from localcloud.lambda_service.spec import InvocationResult

log = logging.getLogger(__name__)

__all__ = ["CloudError", "LocalCloud"]


class LocalCloud:
    """The app deployed on this machine: moto + the Lambda runtime + event sources + the API."""

    def __init__(
        self,
        template: str | os.PathLike[str],
        port: int = 0,
        dispatch: str = "sns",
        *,
        parameters: Mapping[str, Any] | None = None,
        stack_name: str = "thumbnailr",
        region: str = "us-east-1",
        account_id: str = "123456789012",
        retry_delays: tuple[float, ...] = (1.0, 2.0),
        stream_retry_delay: float = 0.2,
        cache_dir: str | os.PathLike[str] | None = None,
        control: bool = True,
        echo_logs: Callable[[str, list[str]], None] | None = None,
        on_request: Callable[[dict], None] | None = None,
        concurrency: int | None = None,
        idle_lifetime_s: float | None = None,
        memory_budget_mb: int | None = None,
        minute_s: float = 60.0,
    ) -> None:
        """``minute_s``: how long a minute of CodeDeploy's traffic shifting and of CloudWatch's alarm periods lasts
        (60 s, as on AWS; a few seconds compress a canary deployment for teaching).

        Lambda's side (``localcloud.lambda_service.runtime``): ``concurrency`` is the account's concurrency (None:
        Lambda's default quota, 1,000); an idle execution environment is kept ``idle_lifetime_s`` (None: 10
        minutes); the environments' memory sizes together stay within ``memory_budget_mb`` (None: the machine's RAM),
        past which invokes are throttled."""
        self.template_path = Path(template).resolve()
        self.port = port
        self.dispatch = dispatch
        self.parameters = dict(parameters or {})
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.retry_delays = retry_delays
        self.stream_retry_delay = stream_retry_delay
        # the SAM transform takes seconds; its result is kept beside SAM CLI's own build output
        self.cache_dir = Path(cache_dir) if cache_dir else self.template_path.parent / ".aws-sam" / "localcloud"
        self.control = control
        self.echo_logs = echo_logs
        self.on_request = on_request
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
            raise CloudError(f"concurrency must be a whole number >= 1, not {concurrency!r}")
        self.concurrency = concurrency
        self.idle_lifetime_s = idle_lifetime_s
        self.memory_budget_mb = memory_budget_mb
        if not minute_s > 0:
            raise CloudError(f"minute_s must be a positive number of seconds, not {minute_s!r}")
        self.minute_s = minute_s
        self.runtime: LambdaRuntime | None = None
        self.lambda_service: LambdaService | None = None
        self.cloudformation: CloudFormationService | None = None
        self.deployer: CloudDeployer | None = None
        self.code_dirs: dict[str, tuple[Path, str]] = {}
        self.outputs: dict[str, Any] = {}
        self.started_in_s: float | None = None
        self._moto: MotoProcess | None = None
        self._endpoint: Endpoint | None = None
        self._clients: Clients | None = None
        self._logs: LogForwarder | None = None
        self._control: ControlServer | None = None
        self._metrics: LambdaMetrics | None = None
        self._alarms: AlarmEvaluator | None = None
        self._endpoint_url: str | None = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> LocalCloud:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalCloud:
        """Start everything; returns when the API answers. Raises ``CloudError`` (and stops what started)."""
        if self._moto is not None:
            raise CloudError("this LocalCloud is already started")
        began = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.started_in_s = time.monotonic() - began
        return self

    def _start(self) -> None:
        # moto imports in its own process while this one reads the template
        self._moto = MotoProcess(self._child_env())
        translation, parameters = self._read_template()
        self._endpoint = Endpoint(f"http://127.0.0.1:{self._moto.wait_ready()}").start()
        self._endpoint_url = self._endpoint.url
        self._clients = Clients(self._endpoint_url, self.region)
        self._start_lambda()
        self._start_cloudformation()
        self._deploy(translation, parameters)
        if self.control:
            self._control = ControlServer(self)
        self.outputs = self._outputs()

    def _read_template(self) -> tuple[Translation, dict[str, str]]:
        """The template made plain CloudFormation (cached), and the parameters to deploy it with (checked)."""
        from localcloud.cfn.errors import TemplateError
        from localcloud.cfn.intrinsics import parameter_values
        from localcloud.cfn.stack import translate_for_deploy

        try:  # Dispatch is given only to a template that declares it
            translation, values = translate_for_deploy(self.template_path, self.parameters, {"Dispatch": self.dispatch},
                                                       region=self.region, cache_dir=self.cache_dir)
            parameter_values(translation.template.get("Parameters") or {}, values)  # unknown or invalid: now
        except TemplateError as e:
            raise CloudError(str(e)) from None
        return translation, values

    def _start_lambda(self) -> None:
        """The Lambda service (its API at the endpoint), its metrics in CloudWatch, and CloudWatch's alarms."""
        from localcloud.cloudwatch_alarms import AlarmEvaluator
        from localcloud.lambda_service.api import LambdaApi
        from localcloud.lambda_service.metrics import LambdaMetrics
        from localcloud.lambda_service.runtime import LambdaRuntime
        from localcloud.lambda_service.service import LambdaService

        self._logs = LogForwarder(self._clients, self.echo_logs)
        self.runtime = LambdaRuntime(
            base_env=fake_aws_environment(self.endpoint_url, self.region),
            log_sink=self._logs.sink,
            region=self.region,
            account_id=self.account_id,
            **{name: value for name, value in (("account_concurrency", self.concurrency),
                                               ("idle_lifetime_s", self.idle_lifetime_s),
                                               ("memory_budget_mb", self.memory_budget_mb)) if value is not None},
        )
        self.lambda_service = LambdaService(self.runtime, self._clients, code_root=self.cache_dir / "code",
                                            region=self.region, account_id=self.account_id)
        self.lambda_service.async_submit = self._submit_event
        # a compressed minute needs metrics and alarm states as fresh as the traffic shifts they guard
        tick = min(0.5, self.minute_s / 8)
        self._metrics = LambdaMetrics(self._clients, flush_interval_s=tick)
        self.lambda_service.on_invoked.append(self._metrics.record)
        self._alarms = AlarmEvaluator(self._clients, interval_s=2 * tick, period_scale=self.minute_s / 60.0)
        self._alarms.start()
        self._endpoint.serve("lambda", LambdaApi(self.lambda_service))

    def _start_cloudformation(self) -> None:
        """CloudFormation (its API at the endpoint), deploying into this cloud."""
        from localcloud.cfn.api import CloudFormationApi
        from localcloud.cfn.deployer import CloudDeployer
        from localcloud.event_sources.destinations import measured_nowhere
        from localcloud.cfn.service import CloudFormationService

        self.deployer = CloudDeployer(
            self._clients, self.lambda_service,
            endpoint_url=self.endpoint_url,
            region=self.region,
            account_id=self.account_id,
            api_port=lambda stack_name: self.port if stack_name == self.stack_name else 0,
            verifier=self._verifier,
            on_request=self.on_request,
            retry_delays=self.retry_delays,
            stream_retry_delay=self.stream_retry_delay,
            minute_s=self.minute_s,
            measure=self._metrics.measure if self._metrics is not None else measured_nowhere,
        )
        self.cloudformation = CloudFormationService(self.deployer, self._clients, region=self.region,
                                                    account_id=self.account_id)
        self._endpoint.serve("cloudformation", CloudFormationApi(self.cloudformation))

    def _deploy(self, translation: Translation, parameters: dict[str, str]) -> None:
        """Deploy the template as the stack ``stack_name`` through CloudFormation, each function's code from its
        local folder (``sam build``'s output when built for this machine, else the source)."""
        from localcloud.cfn.service import CloudFormationError, DeployFailed
        from localcloud.lambda_service.code import host_code_dir

        build_root = self.template_path.parent / ".aws-sam" / "build"
        code_dirs: dict[str, Path] = {}
        for lid, source in translation.code_uris.items():
            if source is not None and source.is_file():  # a zip: unpacked by the Lambda service
                code_dirs[lid] = source
            elif source is not None:
                code_dir, why = host_code_dir(source, build_root / lid)
                self.code_dirs[lid] = (code_dir, why)
                code_dirs[lid] = code_dir
        self.deployer.code_dirs[self.stack_name] = code_dirs
        self.deployer.logical_runtime_names.add(self.stack_name)
        try:
            self.cloudformation.deploy(self.stack_name, translation.template, parameters)
        except DeployFailed as e:
            raise CloudError(f"deploying the stack {self.stack_name} failed: {self._first_failure() or e.reason}") from None
        except CloudFormationError as e:
            raise CloudError(f"deploying the stack {self.stack_name} failed: {e}") from None

    def _first_failure(self) -> str | None:
        """The first failed event's resource and reason: what went wrong, before the rollback's own events."""
        events = self.cloudformation.describe_stack_events({"StackName": self.stack_name})["StackEvents"]
        for event in reversed(events):  # newest first
            if event["ResourceStatus"].endswith("_FAILED") and event.get("ResourceStatusReason"):
                lid = event["LogicalResourceId"]
                prefix = "" if lid == self.stack_name else f"{lid}: "
                return prefix + event["ResourceStatusReason"]
        return None

    def _verifier(self, stack: Stack) -> CognitoVerifier | None:
        """The token verifier of a stack's Cognito authorizer (None when its API has none)."""
        from localcloud.apigateway.cognito import CognitoVerifier

        pool = stack.user_pool_for_api()
        if pool is None:
            return None
        pool_id, client_ids = pool
        if not client_ids:
            raise CloudError(f"the API's Cognito authorizer uses pool {pool_id}, which has no app client")
        return CognitoVerifier.for_pool(
            endpoint_url=self.endpoint_url, region=self.region, user_pool_id=pool_id, app_client_ids=client_ids
        )

    def stop(self) -> None:
        """Stop everything that was started (idempotent)."""
        with self._lock:
            control, cfn, deployer, alarms, metrics, logs, runtime, endpoint, moto = (
                self._control, self.cloudformation, self.deployer, self._alarms, self._metrics, self._logs,
                self.runtime, self._endpoint, self._moto)
            self._control = self._logs = self._moto = self._endpoint = self._alarms = self._metrics = None
            self.cloudformation = None
        stacks = cfn.deployed_stacks() if cfn is not None else []
        for step in (
            control.stop if control else None,
            *((lambda d=d: deployer.stop(d)) for d in stacks if deployer is not None),  # APIs, event sources
            alarms.stop if alarms else None,
            metrics.stop if metrics else None,
            (lambda: logs.flush(2.0)) if logs else None,
            runtime.stop if runtime else None,
            logs.stop if logs else None,
            endpoint.stop if endpoint else None,
            moto.stop if moto else None,
        ):
            if step is None:
                continue
            try:
                step()
            except Exception:  # noqa: BLE001 - stop as much as possible
                log.exception("stopping the local cloud: %s failed", step)

    # ----------------------------------------------------------------- the workshop's stack, as deployed now

    def _running(self) -> Any:
        deployed = self.cloudformation.deployed(self.stack_name) if self.cloudformation is not None else None
        return deployed.state if deployed is not None else None

    @property
    def stack(self) -> Stack | None:
        """The stack ``stack_name`` as deployed now (None when it is not, or the cloud is stopped)."""
        running = self._running()
        return running.stack if running is not None else None

    @property
    def gateway(self) -> LocalApiGateway | None:
        running = self._running()
        return running.gateway if running is not None else None

    @property
    def event_sources(self) -> EventSources | None:
        running = self._running()
        return running.event_sources if running is not None else None

    # ----------------------------------------------------------------- what it offers

    @property
    def running(self) -> bool:
        return self._endpoint is not None

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/`` (the stage prefix, ``/Prod/``, is optional)."""
        if self.gateway is None:
            raise CloudError("the local cloud is not started: call start() (or use `with LocalCloud() as cloud:`)")
        return self.gateway.url

    @property
    def endpoint_url(self) -> str:
        """The local cloud's AWS endpoint, ``http://127.0.0.1:PORT``: ``AWS_ENDPOINT_URL`` for every service."""
        if self._endpoint_url is None:
            raise CloudError("the local cloud is not started")
        return self._endpoint_url

    @property
    def moto_url(self) -> str:
        """moto's own URL, behind the endpoint (to measure what the endpoint adds)."""
        if self._endpoint is None:
            raise CloudError("the local cloud is not started")
        return self._endpoint.moto_url

    @property
    def control_url(self) -> str | None:
        return self._control.url if self._control else None

    @property
    def functions(self) -> list[str]:
        return self.runtime.functions() if self.runtime else []

    def client(self, service: str) -> Any:
        """A boto3 client for ``service``, aimed at the local cloud with fake credentials."""
        if self._clients is None:
            raise CloudError("the local cloud is not started")
        return self._clients(service)

    def environment(self) -> dict[str, str]:
        """The variables that aim an AWS SDK or CLI at this local cloud (fake credentials)."""
        return fake_aws_environment(self.endpoint_url, self.region)

    def invoke(self, function: str, event: Any, *, debug_port: int | None = None) -> InvocationResult:
        """Invoke ``function`` synchronously (``RequestResponse``): the runtime's ``InvocationResult``.

        With ``debug_port``, in a fresh environment that waits for a debugger on 127.0.0.1:``debug_port``
        (``sam local invoke -d``): attach after the call, as with SAM; no timeout while debugging.
        """
        if self.runtime is None:
            raise CloudError("the local cloud is not started")
        return self.runtime.invoke(self._runtime_key(function), event, debug_port=debug_port)

    def debug(self, function: str, port: int | None = 5678) -> None:
        """The function's next invocation (through the API, an event source...) waits for a debugger.

        It runs in a fresh environment under debugpy on 127.0.0.1:``port``, like ``sam local start-api
        -d``; once only. ``port=None`` cancels.
        """
        if self.runtime is None:
            raise CloudError("the local cloud is not started")
        self.runtime.debug_next(self._runtime_key(function), port)

    def invoke_async(self, function: str, event: Any) -> None:
        """Invoke ``function`` asynchronously (``Event``): retried on error, then its DLQ/destination."""
        if self.event_sources is None:
            raise CloudError("the local cloud is not started")
        self.event_sources.invoke_async(self.function_name(function), event)

    def function_name(self, function: str) -> str:
        """The Lambda name (``thumbnailr-PingFunction-1A2B3C4D5E6F``) of a function of the stack, by logical id."""
        stack = self.stack
        if stack is not None and function in stack.resources and stack.resource_type(function) == "AWS::Lambda::Function":
            return str(stack.refs[function])
        return function

    def _runtime_key(self, function: str) -> str:
        """The stack's functions run under their logical ids: a Lambda name or ARN of one is taken too."""
        stack = self.stack
        if stack is not None and self.runtime is not None and function not in self.runtime.functions():
            lid = stack.function_for(function)
            if lid is not None:
                return lid
        return function

    def _submit_event(self, target: str, payload: bytes) -> None:
        """An ``Event`` invoke through the Lambda API: queued with the retries, DLQ and destinations of the
        stack that has the function (a function made with CreateFunction gets the defaults)."""
        name = target.split(":", 1)[0]
        for deployed in self.cloudformation.deployed_stacks() if self.cloudformation else []:
            sources = deployed.state.event_sources
            if sources is not None and name in sources.async_invoker.configs:
                sources.invoke_async(target, json.loads(payload))
                return
        self.lambda_service.run_event_in_background(target, payload)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no event is being delivered or retried; True if that happened within ``timeout``."""
        return self.event_sources.wait_idle(timeout) if self.event_sources else True

    def user_pool(self) -> tuple[str, str, str | None]:
        """(pool id, app client id, client secret or None) of the API's Cognito authorizer."""
        pool = self.stack.user_pool_for_api() if self.stack else None
        if pool is None:
            pools = self.stack.of_type("AWS::Cognito::UserPool") if self.stack else []
            if not pools:
                raise CloudError("the template has no Cognito user pool")
            pool_id = self.stack.refs[pools[0]]
            clients = [self.stack.refs[c] for c in self.stack.of_type("AWS::Cognito::UserPoolClient")
                       if self.stack.properties(c).get("UserPoolId") == pool_id]
        else:
            pool_id, clients = pool
        if not clients:
            raise CloudError(f"user pool {pool_id} has no app client")
        client_lid = next(c for c in self.stack.of_type("AWS::Cognito::UserPoolClient")
                          if self.stack.refs.get(c) == clients[0])
        return pool_id, clients[0], self.stack.attrs.get((client_lid, "ClientSecret"))

    def add_user(self, name: str, password: str) -> None:
        """Add a confirmed user to the API's user pool (``admin_create_user`` + a permanent password)."""
        pool_id, _, _ = self.user_pool()
        add_user(self.client("cognito-idp"), pool_id, name, password)

    def token(self, name: str, password: str) -> str:
        """A Cognito ID token for ``name`` (``USER_PASSWORD_AUTH``): the API's ``Authorization`` header."""
        _, client_id, secret = self.user_pool()
        return id_token(self.client("cognito-idp"), client_id, name, password, secret)

    # ----------------------------------------------------------------- internals

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(fake_aws_environment("http://127.0.0.1:0", self.region))
        env.pop("AWS_ENDPOINT_URL", None)
        return env

    def _outputs(self) -> dict[str, Any]:
        deployed = self.cloudformation.deployed(self.stack_name)
        outputs: dict[str, Any] = dict(deployed.outputs) if deployed is not None else {}
        outputs.update({
            "AwsEndpointUrl": self.endpoint_url,
            "Region": self.region,
            "StackName": self.stack_name,
            "Dispatch": self.stack.parameters.get("Dispatch", self.dispatch),
            "Pid": os.getpid(),
            "ControlUrl": self.control_url,
            "LocalApiUrl": self.gateway.url if self.gateway is not None else None,
            "Functions": sorted(self.functions),
        })
        try:
            pool_id, client_id, secret = self.user_pool()
        except CloudError:  # a template without Cognito
            pass
        else:
            outputs.update({"CognitoUserPoolId": pool_id, "CognitoClientId": client_id})
            if secret:
                outputs["CognitoClientSecret"] = secret
        return outputs

    def delete_stack(self, timeout: float = 60.0) -> list[tuple[str, str, str]]:
        """Delete the stack as ``sam delete`` does (CloudFormation's ``DeleteStack``): its API and event sources
        stop, its resources go in reverse dependency order, buckets emptied first; then what Lambda made outside
        the stack (the functions' log groups, their alarms) and the local cloud's own queues. Returns (type,
        name, what was done) rows."""
        from localcloud.cfn.delete import delete_leftovers

        if self.cloudformation is None:
            raise CloudError("the local cloud is not started")
        running = self._running()
        if running is None:
            raise CloudError(f"the stack {self.stack_name} is not deployed")
        self.cloudformation.delete_stack({"StackName": self.stack_name})
        deadline = time.monotonic() + timeout
        while self.cloudformation.deployed(self.stack_name) is not None:
            if time.monotonic() > deadline:
                raise CloudError(f"deleting the stack {self.stack_name} took more than {timeout:.0f} s")
            time.sleep(0.05)
        return running.deleted + delete_leftovers(running.stack, self._clients, running.leftover_queues)
