"""The target the notebooks run on: a local cloud on this machine (default), or an AWS account.

A target is only an endpoint, credentials, a region and a stack name, so every cell speaks AWS's own
APIs through it, and the same cell runs on a laptop and in an account::

    cloud = lab.target()                       # WORKSHOP_TARGET=local (default) or aws
    cloud.client("s3").list_buckets()          # boto3, aimed at the target
    cloud.invoke("PingFunction", event)        # Lambda's Invoke with LogType=Tail, REPORT line parsed
    cloud.sam("logs", "-n", "PingFunction")    # SAM CLI with the target's endpoint, region and stack
    api = cloud.signed_in("ada")               # HTTP to the stack's ApiUrl with a Cognito ID token

``local``: the kernel's local cloud (fake credentials, an endpoint on 127.0.0.1; ``cloud.local`` is the
``LocalCloud`` itself, for the cells marked local). ``aws``: the learner's profile and region, no endpoint
(or whatever ``AWS_ENDPOINT_URL`` says: CI points it at a local cloud standing in for an account).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from workshop import config

__all__ = ["CommandFailed", "Invoked", "LoggedEnvironment", "Report", "Target", "parse_report"]

TOY_PREFIX = "workshop-"  # the functions the notebooks create themselves; 10_clean_up deletes them
TOY_ROLE = "workshop-toy-functions"
# The trust policy that lets Lambda assume a role, and what AWSLambdaBasicExecutionRole grants (its logs),
# inline (https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html)
WRITE_LOGS = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
     "Resource": "*"}]}
LAMBDA_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


class CommandFailed(RuntimeError):
    """A SAM CLI or AWS CLI command exited non-zero (or ran out of time); the message ends with its stderr."""

    def __init__(self, command: list[str], returncode: int | None, stderr: str) -> None:
        shown = " ".join(command[:4]) + (" ..." if len(command) > 4 else "")
        what = "timed out" if returncode is None else f"exited with {returncode}"
        super().__init__(f"`{shown}` {what}:\n{stderr.strip()[-1500:]}")
        self.returncode = returncode
        self.stderr = stderr


# ------------------------------------------------------------------ what Invoke and the logs give

_REPORT_FIELDS = {"Duration": "duration_ms", "Billed Duration": "billed_duration_ms",
                  "Memory Size": "memory_size_mb", "Max Memory Used": "max_memory_used_mb",
                  "Init Duration": "init_duration_ms"}


@dataclasses.dataclass
class Report:
    """The numbers of a ``REPORT`` line, as Lambda writes it to CloudWatch Logs."""

    request_id: str
    duration_ms: float
    billed_duration_ms: float
    memory_size_mb: float
    max_memory_used_mb: float
    init_duration_ms: float | None = None  # only on a cold start
    status: str | None = None  # "timeout" or "error" when the platform ended the invocation
    error_type: str | None = None
    text: str = ""

    def line(self) -> str:
        return self.text


def parse_report(line: str) -> Report | None:
    """The ``REPORT RequestId: ...`` line's fields, or None when ``line`` is not one."""
    if not line.startswith("REPORT RequestId:"):
        return None
    fields: dict[str, Any] = {}
    for part in line.rstrip().split("\t"):
        name, _, value = part.partition(": ")
        name = name.removeprefix("REPORT ").strip()
        if name == "RequestId":
            fields["request_id"] = value.strip()
        elif name in _REPORT_FIELDS:
            fields[_REPORT_FIELDS[name]] = float(value.split()[0])
        elif name == "Status":
            fields["status"] = value.strip()
        elif name == "Error Type":
            fields["error_type"] = value.strip()
    if "request_id" not in fields or "duration_ms" not in fields:
        return None
    fields.setdefault("billed_duration_ms", 0.0)
    fields.setdefault("memory_size_mb", 0.0)
    fields.setdefault("max_memory_used_mb", 0.0)
    return Report(**fields, text=line.rstrip())


@dataclasses.dataclass
class Invoked:
    """What Lambda's ``Invoke`` answered (``RequestResponse``, ``LogType=Tail``), read as AWS gives it."""

    function_name: str
    status_code: int
    payload: bytes
    function_error: str | None  # None, "Unhandled" or "Handled" (X-Amz-Function-Error)
    executed_version: str
    log_lines: list[str]  # the last 4 KB of the invocation's log, ending with its REPORT line
    report: Report | None

    @property
    def request_id(self) -> str | None:
        return self.report.request_id if self.report else None

    @property
    def cold_start(self) -> bool:
        """A cold start: the REPORT line has an Init Duration (the INIT phase ran for this call)."""
        return bool(self.report and self.report.init_duration_ms is not None)

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None

    @property
    def error_type(self) -> str | None:
        if not self.function_error:
            return None
        try:
            body = self.json()
        except ValueError:
            return None
        return body.get("errorType") if isinstance(body, dict) else None


@dataclasses.dataclass
class LoggedEnvironment:
    """One execution environment as CloudWatch Logs shows it: its log stream and its REPORT lines.

    Lambda writes each environment's logs to a stream of its own, so a stream *is* an environment.
    Times are epoch seconds: an invocation ends at its REPORT line's timestamp and started ``Duration``
    before; the INIT phase ran for ``Init Duration`` before the first one. The fields are those
    ``workshop.timeline`` draws.
    """

    id: str  # the log stream's name
    function: str
    spawned_at: float | None
    init_end_at: float | None
    init_duration_ms: float | None
    invocations: list[tuple[str, float, float, float]]  # (request id, start, end, duration ms)
    reports: list[Report]
    stopped_at: float | None = None
    stop_reason: str | None = None


# ------------------------------------------------------------------ the target


class Target:
    """A local cloud or an AWS account, seen through AWS's APIs only (see the module's docstring)."""

    def __init__(self, kind: str, session: Any, stack_name: str, *, local: Any = None,
                 environment: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self.session = session
        self.region = session.region_name
        self.stack_name = stack_name
        self.local = local  # the LocalCloud (local target only): for the cells marked local
        self._environment = dict(environment or {})
        self._clients: dict[str, Any] = {}
        self._outputs: dict[str, str] | None = None
        self._physical: dict[str, str] = {}

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    @property
    def endpoint_url(self) -> str | None:
        """The one URL every AWS call goes to (None on AWS: each service's own endpoint)."""
        return self._environment.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL") or None

    def __repr__(self) -> str:
        where = self.endpoint_url or "AWS's endpoints"
        return f"<{self.kind} target: stack {self.stack_name} in {self.region} at {where}>"

    # ---------------------------------------------------------------- SDK and CLIs

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` (one per service, reused)."""
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self._environment.get("AWS_ENDPOINT_URL"))
        return self._clients[service]

    def environment(self) -> dict[str, str]:
        """The ``AWS_*`` variables a CLI needs to reach this target (on AWS: just the region)."""
        return {**self._environment, "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}

    def account(self) -> str:
        """The account id the credentials belong to (STS ``GetCallerIdentity``)."""
        return self.client("sts").get_caller_identity()["Account"]

    def sam(self, *args: str, cwd: Path | None = None, timeout: float = 600, check: bool = True,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """SAM CLI in ``sam-app/`` aimed at this target. A non-zero exit raises ``CommandFailed`` with
        SAM's stderr (where it writes ``Error: ...``), unless ``check=False``."""
        from workshop import lab

        return lab.sam(*args, cwd=cwd, timeout=timeout, check=check,
                       aws_env={**_inherited_aws(), **self.environment(), **(env or {})})

    def aws(self, *args: str, timeout: float = 120, check: bool = True) -> Any:
        """The AWS CLI aimed at this target: its JSON answer parsed (or its text when it prints none)."""
        command = [str(Path(sys.executable).parent / "aws"), *args]
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **_inherited_aws(),
               **self.environment()}
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise CommandFailed(command, None, text_of(error.stderr)) from None
        if check and done.returncode != 0:
            raise CommandFailed(command, done.returncode, done.stderr)
        try:
            return json.loads(done.stdout) if done.stdout.strip() else None
        except ValueError:
            return done.stdout

    # ---------------------------------------------------------------- the stack

    @property
    def outputs(self) -> dict[str, str]:
        """The stack's outputs (CloudFormation ``DescribeStacks``)."""
        if self._outputs is None:
            stack = self.client("cloudformation").describe_stacks(StackName=self.stack_name)["Stacks"][0]
            self._outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        return self._outputs

    def refresh(self) -> None:
        """Forget what was read of the stack (after a deploy)."""
        self._outputs = None
        self._physical.clear()

    def stack_exists(self) -> bool:
        cfn = self.client("cloudformation")
        try:
            status = cfn.describe_stacks(StackName=self.stack_name)["Stacks"][0]["StackStatus"]
        except cfn.exceptions.ClientError as error:
            if "does not exist" in str(error):
                return False
            raise
        return status not in ("DELETE_COMPLETE", "ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS")

    @property
    def api_url(self) -> str:
        return self.outputs["ApiUrl"]

    def physical_id(self, logical_id: str) -> str:
        """The name AWS gave a resource of the stack (CloudFormation ``DescribeStackResource``):
        ``PingFunction`` -> ``thumbnailr-PingFunction-AbC123``. Not one of the stack's: returned as it is."""
        if logical_id in self._physical:
            return self._physical[logical_id]
        cfn = self.client("cloudformation")
        try:
            resource = cfn.describe_stack_resource(StackName=self.stack_name, LogicalResourceId=logical_id)
        except cfn.exceptions.ClientError:
            return logical_id
        name = resource["StackResourceDetail"]["PhysicalResourceId"]
        self._physical[logical_id] = name
        return name

    def function_name(self, function: str) -> str:
        """Lambda's name of ``function``: a logical id of the stack is looked up in CloudFormation; any other
        name is Lambda's already."""
        return self.physical_id(function)

    # ---------------------------------------------------------------- Lambda

    def invoke(self, function: str, event: Any = None, *, qualifier: str | None = None) -> Invoked:
        """Lambda's ``Invoke`` (``RequestResponse``, ``LogType=Tail``): the answer and its REPORT line."""
        params: dict[str, Any] = {"FunctionName": self.function_name(function), "LogType": "Tail",
                                  "Payload": json.dumps({} if event is None else event).encode()}
        if qualifier:
            params["Qualifier"] = qualifier
        answer = self.client("lambda").invoke(**params)
        tail = base64.b64decode(answer.get("LogResult", "")).decode("utf-8", "replace")
        lines = [line for line in tail.splitlines() if line.strip()]
        report = next((r for r in map(parse_report, reversed(lines)) if r), None)
        return Invoked(function_name=params["FunctionName"], status_code=answer["StatusCode"],
                       payload=answer["Payload"].read(), function_error=answer.get("FunctionError"),
                       executed_version=answer.get("ExecutedVersion", "$LATEST"), log_lines=lines, report=report)

    def create_function(self, name: str, code: Path | Mapping[str, str], handler: str, *,
                        environment: Mapping[str, str] | None = None, memory_mb: int = 128,
                        timeout_s: int = 10, runtime: str = "python3.13") -> str:
        """Create (or update) a function of the notebook's own with ``CreateFunction``, as on AWS: a zip of
        ``code`` (a folder, or ``{file name: source}``), an execution role that may write its logs. Its Lambda
        name is ``workshop-<name>``; 10_clean_up deletes every such function."""
        lam = self.client("lambda")
        function_name = name if name.startswith(TOY_PREFIX) else TOY_PREFIX + name
        archive = _zip(code)
        settings = {"Handler": handler, "Runtime": runtime, "MemorySize": memory_mb, "Timeout": timeout_s,
                    "Environment": {"Variables": dict(environment or {})}, "Architectures": ["arm64"]}
        try:
            lam.get_function(FunctionName=function_name)
        except lam.exceptions.ResourceNotFoundException:
            role = self._toy_role()
            _retry_while_role_propagates(lambda: lam.create_function(
                FunctionName=function_name, Role=role, Code={"ZipFile": archive}, **settings))
            lam.get_waiter("function_active_v2").wait(FunctionName=function_name)
        else:
            lam.update_function_code(FunctionName=function_name, ZipFile=archive, Architectures=["arm64"])
            lam.get_waiter("function_updated_v2").wait(FunctionName=function_name)
            settings.pop("Architectures")
            lam.update_function_configuration(FunctionName=function_name, **settings)
            lam.get_waiter("function_updated_v2").wait(FunctionName=function_name)
        self._physical[name] = function_name
        return function_name

    def _toy_role(self) -> str:
        iam = self.client("iam")
        try:
            return iam.get_role(RoleName=TOY_ROLE)["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            arn = iam.create_role(RoleName=TOY_ROLE, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST),
                                  Description="the workshop notebooks' own small functions")["Role"]["Arn"]
            iam.put_role_policy(RoleName=TOY_ROLE, PolicyName="write-logs", PolicyDocument=json.dumps(WRITE_LOGS))
            return arn

    def new_environments(self, function: str) -> None:
        """Make the next calls cold starts, as one does on AWS: change the function's configuration
        (``UpdateFunctionConfiguration``), so Lambda retires the environments it had."""
        lam = self.client("lambda")
        name = self.function_name(function)
        variables = lam.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {})
        variables = {**variables, "WORKSHOP_GENERATION": str(time.time_ns())}
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": variables})
        lam.get_waiter("function_updated_v2").wait(FunctionName=name)

    def delete_toy_functions(self) -> list[str]:
        """Delete every function the notebooks created (``workshop-*``) and their log groups."""
        lam, logs = self.client("lambda"), self.client("logs")
        names = [f["FunctionName"] for page in lam.get_paginator("list_functions").paginate()
                 for f in page["Functions"] if f["FunctionName"].startswith(TOY_PREFIX)]
        for name in names:
            lam.delete_function(FunctionName=name)
            try:
                logs.delete_log_group(logGroupName=f"/aws/lambda/{name}")
            except logs.exceptions.ResourceNotFoundException:
                pass
        return names

    def delete_toy_role(self) -> bool:
        """Delete the role the notebooks' functions ran with (its inline policy first, as IAM requires)."""
        iam = self.client("iam")
        try:
            for name in iam.list_role_policies(RoleName=TOY_ROLE)["PolicyNames"]:
                iam.delete_role_policy(RoleName=TOY_ROLE, PolicyName=name)
            iam.delete_role(RoleName=TOY_ROLE)
        except iam.exceptions.NoSuchEntityException:
            return False
        return True

    # ---------------------------------------------------------------- CloudWatch Logs

    def reports(self, function: str, since: float, *, at_least: int = 0, timeout: float = 60) -> list[tuple[str, float, Report]]:
        """(log stream, timestamp in s, REPORT) of ``function``'s invocations since ``since`` (epoch s), from
        CloudWatch Logs; waits until ``at_least`` are there (logs reach CloudWatch within seconds on AWS)."""
        from workshop.lab import poll

        logs, group = self.client("logs"), f"/aws/lambda/{self.function_name(function)}"

        def fetch() -> list[tuple[str, float, Report]]:
            found, token = [], None
            while True:
                params = {"logGroupName": group, "startTime": int(since * 1000), "filterPattern": "REPORT"}
                if token:
                    params["nextToken"] = token
                try:
                    page = logs.filter_log_events(**params)
                except logs.exceptions.ResourceNotFoundException:
                    return []
                for event in page["events"]:
                    report = parse_report(event["message"])
                    if report:
                        found.append((event["logStreamName"], event["timestamp"] / 1000, report))
                token = page.get("nextToken")
                if not token:
                    return sorted(found, key=lambda item: item[1])

        return poll(fetch, lambda found: len(found) >= at_least, timeout=timeout, interval=0.5)

    def environments(self, functions: str | Iterable[str], since: float, *, at_least: int = 0,
                     timeout: float = 60) -> list[LoggedEnvironment]:
        """The execution environments that served ``functions`` since ``since``, read from CloudWatch Logs:
        one per log stream (``workshop.timeline`` draws them). ``at_least`` invocations are waited for."""
        names = [functions] if isinstance(functions, str) else list(functions)
        found: list[LoggedEnvironment] = []
        for function in names:
            by_stream: dict[str, list[tuple[float, Report]]] = {}
            for stream, at, report in self.reports(function, since, at_least=at_least, timeout=timeout):
                by_stream.setdefault(stream, []).append((at, report))
            for stream, items in by_stream.items():
                calls = [(r.request_id, at - r.duration_ms / 1000, at, r.duration_ms) for at, r in items]
                first_start = calls[0][1]
                init_ms = next((r.init_duration_ms for _, r in items if r.init_duration_ms is not None), None)
                spawned = first_start - init_ms / 1000 if init_ms is not None else first_start
                found.append(LoggedEnvironment(id=stream, function=function, spawned_at=spawned,
                                               init_end_at=first_start if init_ms is not None else None,
                                               init_duration_ms=init_ms, invocations=calls,
                                               reports=[r for _, r in items]))
        return sorted(found, key=lambda e: e.spawned_at or 0)

    def log_stream_of(self, invoked: Invoked, timeout: float = 60) -> str:
        """The log stream (so: the execution environment) that served ``invoked``."""
        from workshop.lab import poll

        since = time.time() - 900  # its REPORT line may take seconds to reach CloudWatch Logs
        return poll(lambda: next((s for s, _, r in self.reports(invoked.function_name, since)
                                  if r.request_id == invoked.request_id), None), bool, timeout=timeout, interval=0.5)

    # ---------------------------------------------------------------- the app's users

    def signed_in(self, name: str, password: str | None = None) -> Any:
        """An ``ApiClient`` for ``name`` at the stack's ``ApiUrl``, with an ID token from Cognito
        (``cognito-idp``: the user is created, confirmed, and signs in with ``USER_PASSWORD_AUTH``)."""
        from localcloud import CloudError, add_user, id_token
        from workshop.lab import PASSWORD, ApiClient

        password = password or PASSWORD
        idp = self.client("cognito-idp")
        try:
            add_user(idp, self.outputs["UserPoolId"], name, password)
        except CloudError as error:
            if "already exists" not in str(error):
                raise
        return ApiClient(self.api_url, id_token(idp, self.outputs["UserPoolClientId"], name, password))


# ------------------------------------------------------------------ helpers


def _inherited_aws() -> dict[str, str]:
    """The learner's own ``AWS_*`` variables (profile, credentials, endpoint), passed on to a CLI."""
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


def text_of(output: bytes | str | None) -> str:
    return output.decode("utf-8", "replace") if isinstance(output, bytes) else output or ""


def _zip(code: Path | Mapping[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if isinstance(code, Mapping):
            for name, source in code.items():
                archive.writestr(name, source)
        else:
            root = Path(code)
            for path in sorted(root.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


def _retry_while_role_propagates(create: Callable[[], Any], timeout: float = 60) -> Any:
    """IAM is eventually consistent: a new role can be refused by Lambda for some seconds
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return create()
        except Exception as error:  # botocore's InvalidParameterValueException: "cannot be assumed by Lambda"
            if "cannot be assumed" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def aws_target(stack_name: str | None = None) -> Target:
    """The learner's account: their profile (``AWS_PROFILE``) and its region unless ``WORKSHOP_REGION``
    or ``AWS_REGION`` says otherwise."""
    import boto3

    region = os.environ.get("WORKSHOP_REGION") or None
    session = boto3.session.Session(region_name=region) if region else boto3.session.Session()
    if not session.region_name:
        raise RuntimeError("no AWS region: set one in your profile (`aws configure`) or export AWS_REGION=...")
    return Target("aws", session, stack_name or config.stack_name())


def local_target(cloud: Any) -> Target:
    """The target of a ``LocalCloud``: its endpoint, its fake credentials, its region and stack."""
    from localcloud import fake_aws_environment
    import boto3

    environment = fake_aws_environment(cloud.endpoint_url, cloud.region)
    session = boto3.session.Session(
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"], aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=environment.get("AWS_SESSION_TOKEN"), region_name=cloud.region)
    return Target("local", session, cloud.stack_name, local=cloud, environment=environment)
