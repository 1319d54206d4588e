"""LocalCloud: starts the local cloud's parts in order (moto, the stack, Lambda, event sources, the API), and stops them.

::

    from localcloud import LocalCloud

    with LocalCloud("sam-app/template.yaml", port=0, dispatch="sns") as cloud:
        cloud.add_user("ada", "Passw0rd!")
        token = cloud.token("ada", "Passw0rd!")
        # HTTP to cloud.api_url with {"Authorization": token}; boto3 through cloud.client("s3")

Every boto3 client it makes (``client()``) and every process it starts gets the endpoint and the fake
credentials ``testing`` (``localcloud.sdk``); none reads ``~/.aws``.
"""

from __future__ import annotations

import logging
import os
import re
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
    from localcloud.cfn.stack import Stack
    from localcloud.event_sources.sources import EventSources
    from localcloud.lambda_service.runtime import LambdaRuntime
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
        account_concurrency: int = 10,
    ) -> None:
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
        self.account_concurrency = account_concurrency
        self.stack: Stack | None = None
        self.runtime: LambdaRuntime | None = None
        self.gateway: LocalApiGateway | None = None
        self.event_sources: EventSources | None = None
        self.code_dirs: dict[str, tuple[Path, str]] = {}
        self.outputs: dict[str, Any] = {}
        self.started_in_s: float | None = None
        self._moto: MotoProcess | None = None
        self._endpoint: Endpoint | None = None
        self._clients: Clients | None = None
        self._logs: LogForwarder | None = None
        self._control: ControlServer | None = None
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
        self.stack = self._read_template()
        self._endpoint = Endpoint(f"http://127.0.0.1:{self._moto.wait_ready()}").start()
        self._endpoint_url = self._endpoint.url
        self._clients = Clients(self._endpoint_url, self.region)
        self._provision()
        self._start_lambda()
        self._start_event_sources()
        self._start_api()
        if self.control:
            self._control = ControlServer(self)
        self.outputs = self._outputs()

    def _read_template(self) -> Stack:
        from localcloud.cfn.stack import Stack, TemplateError

        try:
            return Stack(
                self.template_path,
                parameters=self.parameters,
                optional_parameters={"Dispatch": self.dispatch},
                stack_name=self.stack_name,
                region=self.region,
                account_id=self.account_id,
                cache_dir=self.cache_dir,
            )
        except TemplateError as e:
            raise CloudError(str(e)) from None

    def _provision(self) -> None:
        from localcloud.cfn.provision import ProvisionError, provision
        from localcloud.cfn.stack import TemplateError

        try:
            provision(self.stack, self._clients)
        except (ProvisionError, TemplateError) as e:
            raise CloudError(str(e)) from None

    def _start_lambda(self) -> None:
        """The Lambda service with every function of the template, its code from source or from `sam build`."""
        from localcloud.lambda_service.code import host_code_dir
        from localcloud.lambda_service.runtime import LambdaRuntime
        from localcloud.lambda_service.spec import FunctionSpec

        self._logs = LogForwarder(self._clients, self.echo_logs)
        self.runtime = LambdaRuntime(
            base_env=fake_aws_environment(self.endpoint_url, self.region),
            log_sink=self._logs.sink,
            region=self.region,
            account_id=self.account_id,
            account_concurrency=self.account_concurrency,
        )
        build_root = self.template_path.parent / ".aws-sam" / "build"
        for fn in self.stack.functions():
            if fn.code_uri is None:
                self.stack.warn(f"{fn.logical_id}: its code is not in a local folder; it cannot run locally")
                continue
            code_dir, why = host_code_dir(fn.code_uri, build_root / fn.logical_id)
            self.code_dirs[fn.logical_id] = (code_dir, why)
            self.runtime.register(FunctionSpec(
                name=fn.logical_id,
                handler=fn.handler,
                code_dir=code_dir,
                environment=fn.environment,
                memory_mb=fn.memory_mb,
                timeout_s=fn.timeout_s,
                reserved_concurrency=fn.reserved_concurrency,
                runtime=fn.runtime,
                architecture=fn.architecture,
            ))

    def _start_event_sources(self) -> None:
        from localcloud.event_sources.sources import EventSources

        self.event_sources = EventSources(
            self.stack, self._clients, self.invoke,
            endpoint_url=self.endpoint_url,
            retry_delays=self.retry_delays,
            stream_retry_delay=self.stream_retry_delay,
        )
        self.event_sources.setup()
        self.event_sources.start()

    def _start_api(self) -> None:
        """API Gateway with the template's routes (all its REST APIs on one port) and its Cognito authorizer."""
        from localcloud.apigateway.gateway import LocalApiGateway, Route

        routes = self.stack.routes()
        apis = sorted({r.api for r in routes})
        if len(apis) > 1:
            self.stack.warn(f"several REST APIs ({', '.join(apis)}): all their routes are served on one port")
        api_lid = apis[0] if apis else None
        self.gateway = LocalApiGateway(
            routes=[Route(r.method, r.path, r.function, r.authorized) for r in routes],
            invoke=self.invoke,
            verifier=self._verifier(any(r.authorized for r in routes)),
            port=self.port,
            stage=self.stack.stage_name(api_lid) if api_lid else "Prod",
            api_id=str(self.stack.refs.get(api_lid, "local")) if api_lid else "local",
            region=self.region,
            account_id=self.account_id,
            on_request=self.on_request,
        )
        self.gateway.start()

    def _verifier(self, needed: bool) -> CognitoVerifier | None:
        """The Cognito authorizer's token verifier, when some route is authorized."""
        from localcloud.apigateway.cognito import CognitoVerifier

        pool = self.stack.user_pool_for_api()
        if pool is None or not needed:
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
            control, gateway, sources, logs, runtime, endpoint, moto = (
                self._control, self.gateway, self.event_sources, self._logs, self.runtime, self._endpoint,
                self._moto)
            self._control = self._logs = self._moto = self._endpoint = None
            self.gateway = self.event_sources = None
        for step in (
            control.stop if control else None,
            gateway.stop if gateway else None,
            sources.stop if sources else None,
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

    # ----------------------------------------------------------------- what it offers

    @property
    def running(self) -> bool:
        return self.gateway is not None

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
        return self.runtime.invoke(function, event, debug_port=debug_port)

    def debug(self, function: str, port: int | None = 5678) -> None:
        """The function's next invocation (through the API, an event source...) waits for a debugger.

        It runs in a fresh environment under debugpy on 127.0.0.1:``port``, like ``sam local start-api
        -d``; once only. ``port=None`` cancels.
        """
        if self.runtime is None:
            raise CloudError("the local cloud is not started")
        self.runtime.debug_next(function, port)

    def invoke_async(self, function: str, event: Any) -> None:
        """Invoke ``function`` asynchronously (``Event``): retried on error, then its DLQ/destination."""
        if self.event_sources is None:
            raise CloudError("the local cloud is not started")
        self.event_sources.invoke_async(function, event)

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
        outputs = self.stack.outputs()
        local = self.api_url.rstrip("/")
        for lid in self.stack.of_type("AWS::ApiGateway::RestApi"):
            api_id = re.escape(str(self.stack.refs.get(lid)))
            pattern = re.compile(rf"https://{api_id}\.execute-api\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
            outputs = {k: pattern.sub(local, v) if isinstance(v, str) else v for k, v in outputs.items()}
        outputs.update({
            "AwsEndpointUrl": self.endpoint_url,
            "Region": self.region,
            "StackName": self.stack_name,
            "Dispatch": self.stack.parameters.get("Dispatch", self.dispatch),
            "Pid": os.getpid(),
            "ControlUrl": self.control_url,
            "LocalApiUrl": self.api_url,
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

    def delete_stack(self) -> list[tuple[str, str, str]]:
        """Delete what the template made, as ``sam delete`` does (``localcloud.cfn.delete``): resources in reverse
        dependency order, buckets emptied first, then the functions' alarms and log groups. The event sources
        stop first. Returns (type, name, what was done) rows."""
        from localcloud.cfn.delete import delete_stack

        if self._clients is None:
            raise CloudError("the local cloud is not started")
        queues: list[str] = []
        if self.event_sources is not None:
            self.event_sources.stop()  # the notifications and subscriptions go with their resources
            queues = self.event_sources.internal_queues()
        return delete_stack(self.stack, self._clients, queues)
