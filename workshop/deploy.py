"""Deploying to and deleting from the local cloud: packaged templates, versions, canaries, rollbacks, clean-up.

What ``sam package``/``sam deploy``/CodeDeploy/``sam delete`` do, for the deploy and clean-up notebooks::

    from workshop import deploy

    deploy.sam(cloud, "package", "--s3-bucket", "artifacts", ...)   # SAM CLI aimed at the local cloud
    deployed, _ = deploy.deploy_packaged("packaged.yaml", cloud.client("s3"), workdir)  # a LocalCloud
    print(deploy.outputs_table(deployed.outputs, ["ApiUrl"]))      # as `sam deploy` prints them

    v1 = deploy.publish_version(cloud, "GetPhotoFunction")            # "GetPhotoFunction:1"
    live = deploy.Alias("live", {v1: 1.0})
    v2 = deploy.publish_version(cloud, "GetPhotoFunction", code_dir=new_code)
    alarm = deploy.ErrorAlarm("GetPhotoErrors", v2, threshold=1)
    rollout = deploy.Deployment(cloud, live, v2, "Canary10Percent5Minutes", [alarm],
                                clock=deploy.CompressedClock(seconds_per_minute=1), seed=7)
    rollout.invoke(event)   # a Call: the version that answered, its result, the minute, the phase

    deploy.delete_stack(cloud)   # every resource the template made, in reverse order
    deploy.leftovers(cloud)      # what is still in the local account: {} when all is gone

A *version* is the function registered again with the local Lambda runtime under the name
``Function:N`` (its own execution environments; its logs in the function's log group, in log streams
named ``.../[N]...``, as on AWS). An *alias* is a router with weights,
as Lambda's alias routing configuration. A ``Deployment`` is what CodeDeploy does for
``DeploymentPreference``: it moves the alias's weight to the new version on the preference's
schedule, and when one of its alarms is in ALARM it moves all traffic back (a rollback). The
clock is yours: ``CompressedClock`` makes a minute last a few seconds, ``ManualClock`` moves only
when told.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from workshop import config, lab

if TYPE_CHECKING:
    from localcloud import LocalCloud

__all__ = [
    "Alias", "Call", "CompressedClock", "Deployment", "ErrorAlarm", "ManualClock",
    "artifact_uris", "delete_stack", "deploy_packaged", "deployment_preference", "leftovers",
    "local_processes", "logs_cli", "outputs_table", "publish_version", "sam", "traffic_schedule",
    "weight_at",
]

# --------------------------------------------------------------------------- SAM CLI and packages


def sam(cloud: LocalCloud, *args: str, cwd: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess:
    """Run SAM CLI with the local cloud's endpoint and fake credentials (``sam package`` uploads to its S3)."""
    return lab.sam(*args, cwd=Path(cwd) if cwd else None, aws_env=cloud.environment())


_S3_CODE = re.compile(r"^(\s*CodeUri:\s*)(s3://([^/\s]+)/(\S+))\s*$", re.MULTILINE)


def artifact_uris(packaged_text: str) -> list[str]:
    """The ``s3://bucket/key`` of every function's code in a packaged template, without repeats."""
    return list(dict.fromkeys(m.group(2) for m in _S3_CODE.finditer(packaged_text)))


def deploy_packaged(packaged_template: str | os.PathLike[str], s3: Any, workdir: str | os.PathLike[str],
                    **cloud_options: Any) -> tuple[LocalCloud, dict[str, list[str]]]:
    """Deploy a packaged template (``CodeUri: s3://...``) as a new, started ``LocalCloud``: (the cloud, what was set aside).

    What CloudFormation does with a packaged template: fetch each code zip from S3 (here through
    ``s3``), unpack it (``workdir/sam-app/code/<key>``), and make the stack from the template with
    each ``CodeUri`` pointing at the unpacked code. Native packages built for another CPU are
    removed, so the local runtime uses its own copy ({artifact URI: what was swapped, one line each}).
    """
    from localcloud import LocalCloud, use_host_native_packages

    text = Path(packaged_template).read_text()
    app = Path(workdir) / "sam-app"
    (app / "code").mkdir(parents=True, exist_ok=True)
    local: dict[str, str] = {}
    dropped: dict[str, list[str]] = {}
    for uri in artifact_uris(text):
        bucket, key = uri[len("s3://"):].split("/", 1)
        target = app / "code" / re.sub(r"[^A-Za-z0-9._-]", "_", key)
        if not target.is_dir():
            archive = app / "code" / (target.name + ".zip")
            s3.download_file(bucket, key, str(archive))
            with zipfile.ZipFile(archive) as z:
                z.extractall(target)
            archive.unlink()
            dropped[uri] = use_host_native_packages(target)
        local[uri] = f"code/{target.name}/"
    (app / "template.yaml").write_text(_S3_CODE.sub(lambda m: m.group(1) + local[m.group(2)], text))
    options = {"port": 0, "control": False, **cloud_options}
    cloud = LocalCloud(**{**config.local_cloud_options(Path(workdir)), **options})
    return cloud.start(), dropped


def outputs_table(outputs: Mapping[str, Any], keys: Iterable[str] | None = None,
                  descriptions: Mapping[str, str] | None = None) -> str:
    """Stack outputs laid out as ``sam deploy`` prints them (Key, Description, Value)."""
    rule = "-" * 78
    lines = ["CloudFormation outputs from deployed stack", rule, "Outputs", rule]
    for key in keys if keys is not None else outputs:
        lines += [f"{'Key':<20}{key}", f"{'Description':<20}{(descriptions or {}).get(key, '-')}",
                  f"{'Value':<20}{outputs[key]}", rule]
    return "\n".join(lines)


def logs_cli(cloud: LocalCloud, *args: str, state_dir: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m workshop logs ...`` against ``cloud`` (started in this process, not by ``up``):
    its outputs are written as the state file that the command reads."""
    state_dir = Path(state_dir or tempfile.mkdtemp(prefix="workshop-state-"))
    state = state_dir / "state.json"
    state.write_text(json.dumps({**cloud.outputs, "Functions": sorted(cloud.functions)}, default=str))
    env = {**os.environ, "WORKSHOP_STATE_FILE": str(state), "PYTHONPATH": str(config.repo_root())}
    return subprocess.run([sys.executable, "-m", "workshop", "logs", *args], env=env,
                          capture_output=True, text=True, cwd=config.repo_root())


# --------------------------------------------------------------------------- versions and aliases


def publish_version(cloud: LocalCloud, function: str, code_dir: str | os.PathLike[str] | None = None,
                    **changes: Any) -> str:
    """Register a new version of ``function`` (its current configuration, with ``code_dir`` and any
    other ``FunctionSpec`` field changed) as ``function:N``, N one more than the last; returns the name."""
    runtime = cloud.runtime
    numbers = [int(n.rsplit(":", 1)[1]) for n in runtime.functions() if re.fullmatch(rf"{re.escape(function)}:\d+", n)]
    name = f"{function}:{max(numbers, default=0) + 1}"
    if code_dir is not None:
        changes["code_dir"] = Path(code_dir)
    # its log streams are named [N] in the function's log group, as a version's are on AWS
    runtime.register(dataclasses.replace(runtime.spec(function), name=name, version=name.rsplit(":", 1)[1], **changes))
    return name


class Alias:
    """A Lambda alias: a name that routes each call to a version, by weight (the weights sum to 1)."""

    def __init__(self, name: str, weights: Mapping[str, float]) -> None:
        self.name = name
        self.weights: dict[str, float] = {}
        self.set(weights)

    def set(self, weights: Mapping[str, float]) -> None:
        kept = {v: float(w) for v, w in weights.items() if w > 0}
        if not kept or not math.isclose(sum(kept.values()), 1.0, abs_tol=1e-9):
            raise ValueError(f"alias weights must be positive and sum to 1: {dict(weights)}")
        self.weights = kept

    def route(self, rng: random.Random) -> str:
        """The version one call goes to."""
        draw, total = rng.random(), 0.0
        for version, weight in self.weights.items():
            total += weight
            if draw < total:
                return version
        return next(reversed(self.weights))

    def __repr__(self) -> str:
        shares = ", ".join(f"{v} {w:.0%}" for v, w in self.weights.items())
        return f"Alias({self.name}: {shares})"


# --------------------------------------------------------------------------- CodeDeploy's schedules

_CANARY = re.compile(r"Canary(\d+)Percent(\d+)Minutes?")
_LINEAR = re.compile(r"Linear(\d+)PercentEvery(\d+)Minutes?")


def traffic_schedule(preference: str) -> list[tuple[float, float]]:
    """CodeDeploy's predefined Lambda configuration as (minute, share of traffic on the new version) steps.

    ``Canary10Percent5Minutes``: 10 % at once, all of it 5 minutes later. ``Linear10PercentEvery1Minute``:
    10 % more every minute (100 % after 9 minutes). ``AllAtOnce``: 100 % at once.
    """
    if preference == "AllAtOnce":
        return [(0.0, 1.0)]
    match = _CANARY.fullmatch(preference)
    if match:
        percent, minutes = int(match.group(1)), int(match.group(2))
        return [(0.0, percent / 100), (float(minutes), 1.0)]
    match = _LINEAR.fullmatch(preference)
    if match:
        percent, minutes = int(match.group(1)), int(match.group(2))
        steps = math.ceil(100 / percent)
        return [(float(i * minutes), min(1.0, (i + 1) * percent / 100)) for i in range(steps)]
    raise ValueError(f"unknown deployment preference {preference!r}: use CanaryXPercentYMinutes, "
                     "LinearXPercentEveryYMinutes or AllAtOnce")


def weight_at(schedule: Sequence[tuple[float, float]], minute: float) -> float:
    """The new version's share at ``minute`` of a ``traffic_schedule``."""
    weight = 0.0
    for start, share in schedule:
        if minute >= start:
            weight = share
    return weight


def deployment_preference(template_path: str | os.PathLike[str], function: str) -> dict[str, Any]:
    """A function's ``AutoPublishAlias`` and ``DeploymentPreference`` (``Type``, ``Alarms``...) in a SAM template."""
    from localcloud import read_template

    resource = read_template(template_path)["Resources"][function]
    props = resource.get("Properties") or {}
    preference = dict(props.get("DeploymentPreference") or {})
    preference["AutoPublishAlias"] = props.get("AutoPublishAlias")
    return preference


class ManualClock:
    """Minutes that pass only when ``advance`` says so (for tests and exact counts)."""

    def __init__(self) -> None:
        self.minute = 0.0

    def advance(self, minutes: float) -> None:
        self.minute += minutes

    def __call__(self) -> float:
        return self.minute


class CompressedClock:
    """Minutes since it was made, with a minute lasting ``seconds_per_minute`` real seconds."""

    def __init__(self, seconds_per_minute: float = 1.0) -> None:
        self.seconds_per_minute = seconds_per_minute
        self.started = time.monotonic()

    def __call__(self) -> float:
        return (time.monotonic() - self.started) / self.seconds_per_minute


class ErrorAlarm:
    """A CloudWatch alarm on a version's ``Errors``: ALARM when, in the last ``period_minutes``, it had at
    least ``threshold`` errors. Given a CloudWatch client, it also exists there (``put_metric_alarm``),
    gets the error counts (``put_metric_data``) and its state (``set_alarm_state``)."""

    def __init__(self, name: str, version: str, threshold: int = 1, period_minutes: float = 1.0,
                 cloudwatch: Any = None) -> None:
        self.name, self.version, self.threshold, self.period = name, version, threshold, period_minutes
        self.errors: list[float] = []  # the minutes at which the version failed
        self.state = "OK"
        self.fired_at: float | None = None
        self.cloudwatch = cloudwatch
        function, _, number = version.partition(":")
        self.dimensions = [{"Name": "FunctionName", "Value": function},
                           {"Name": "ExecutedVersion", "Value": number or "$LATEST"}]
        if cloudwatch is not None:
            cloudwatch.put_metric_alarm(
                AlarmName=name, Namespace="AWS/Lambda", MetricName="Errors", Dimensions=self.dimensions,
                Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=float(threshold),
                ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching")

    def record(self, minute: float, version: str, failed: bool) -> None:
        if version == self.version and failed:
            self.errors.append(minute)
            if self.cloudwatch is not None:
                self.cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=[
                    {"MetricName": "Errors", "Dimensions": self.dimensions, "Value": 1.0, "Unit": "Count"}])

    def evaluate(self, minute: float) -> str:
        recent = sum(1 for m in self.errors if minute - self.period <= m <= minute)
        state = "ALARM" if recent >= self.threshold else "OK"
        if state != self.state:
            self.state = state
            if state == "ALARM" and self.fired_at is None:
                self.fired_at = minute
            if self.cloudwatch is not None:
                self.cloudwatch.set_alarm_state(AlarmName=self.name, StateValue=state,
                                                StateReason=f"{recent} error(s) of {self.version}")
        return self.state


@dataclasses.dataclass
class Call:
    """One call through a deployment: which version answered, the result, when, in which phase."""

    version: str
    result: Any
    minute: float
    phase: str  # "InProgress", "Succeeded" or "RolledBack" when the call was routed

    @property
    def failed(self) -> bool:
        return bool(getattr(self.result, "function_error", None))


class Deployment:
    """What CodeDeploy does for a ``DeploymentPreference``: shift ``alias`` from its current version to
    ``new_version`` on the preference's schedule; roll back if any alarm is in ALARM before the end.

    It acts when asked (``update``, or before each ``invoke``), at the minute ``clock()`` says.
    ``seed`` makes the routing repeatable.
    """

    def __init__(self, cloud: LocalCloud, alias: Alias, new_version: str, preference: str = "Canary10Percent5Minutes",
                 alarms: Sequence[ErrorAlarm] = (), clock: Callable[[], float] | None = None,
                 seed: int | None = None) -> None:
        if len(alias.weights) != 1:
            raise ValueError(f"{alias!r} is already shifting traffic")
        self.cloud, self.alias, self.new_version = cloud, alias, new_version
        self.old_version = next(iter(alias.weights))
        self.preference = preference
        self.schedule = traffic_schedule(preference)
        self.alarms = list(alarms)
        self.clock = clock or CompressedClock(1.0)
        self.rng = random.Random(seed)
        self.status = "InProgress"
        self.history: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._apply(0.0)

    @property
    def ends_at(self) -> float:
        """The minute the schedule reaches 100 %."""
        return self.schedule[-1][0]

    def _apply(self, minute: float) -> None:
        share = weight_at(self.schedule, minute)
        weights = {self.new_version: 1.0} if share >= 1 else {self.old_version: 1 - share, self.new_version: share}
        if weights != self.alias.weights:
            self.alias.set(weights)
            self.history.append((minute, f"{self.alias.name}: {share:.0%} to {self.new_version}"))

    def update(self) -> str:
        """Check the alarms and the schedule now; returns the status."""
        with self._lock:
            if self.status != "InProgress":
                return self.status
            minute = self.clock()
            for alarm in self.alarms:
                if alarm.evaluate(minute) == "ALARM":
                    self.alias.set({self.old_version: 1.0})
                    self.status = "RolledBack"
                    self.history.append((minute, f"{alarm.name} in ALARM: all traffic back to {self.old_version}"))
                    return self.status
            self._apply(minute)
            if minute >= self.ends_at:
                self.status = "Succeeded"
                self.history.append((minute, f"{self.alias.name} -> {self.new_version}: deployment succeeded"))
            return self.status

    def invoke(self, event: Any) -> Call:
        """One call to the alias: routed by its weights at this minute; the result feeds the alarms."""
        phase = self.update()
        with self._lock:
            version = self.alias.route(self.rng)
        minute = self.clock()
        result = self.cloud.invoke(version, event)
        call = Call(version, result, minute, phase)
        for alarm in self.alarms:
            alarm.record(self.clock(), version, call.failed)
        return call

    def wait(self, timeout_minutes: float | None = None, poll_s: float = 0.05) -> str:
        """Let the clock run until the deployment ends (succeeded or rolled back)."""
        limit = self.ends_at + 1 if timeout_minutes is None else timeout_minutes
        while self.update() == "InProgress" and self.clock() <= limit:
            time.sleep(poll_s)
        return self.status


# --------------------------------------------------------------------------- clean-up


def delete_stack(cloud: LocalCloud) -> list[tuple[str, str, str]]:
    """Delete, in reverse dependency order, every resource the template made in the local cloud (buckets
    emptied first), then the functions' log groups (versions' included): ``cloud.delete_stack()``, what
    ``sam delete`` does. Returns (type, name, what was done)."""
    return cloud.delete_stack()


def _log_groups(logs: Any) -> list[str]:
    return [g["logGroupName"] for page in logs.get_paginator("describe_log_groups").paginate()
            for g in page.get("logGroups") or []]


def leftovers(cloud: LocalCloud) -> dict[str, list[str]]:
    """What is still in the local account, by kind (only kinds with something left): buckets, tables,
    topics, queues, user pools, log groups, alarms."""
    found = {
        "buckets": [b["Name"] for b in cloud.client("s3").list_buckets().get("Buckets") or []],
        "tables": cloud.client("dynamodb").list_tables().get("TableNames") or [],
        "topics": [t["TopicArn"].rsplit(":", 1)[-1] for t in cloud.client("sns").list_topics().get("Topics") or []],
        "queues": [u.rsplit("/", 1)[-1] for u in cloud.client("sqs").list_queues().get("QueueUrls") or []],
        "user pools": [p["Name"] for p in
                       cloud.client("cognito-idp").list_user_pools(MaxResults=60).get("UserPools") or []],
        "log groups": _log_groups(cloud.client("logs")),
        "alarms": [a["AlarmName"] for a in cloud.client("cloudwatch").describe_alarms().get("MetricAlarms") or []],
    }
    return {kind: names for kind, names in found.items() if names}


def local_processes(pid: int | None = None) -> list[tuple[int, str]]:
    """The local cloud's processes still running under ``pid`` (default: this one): Lambda execution
    environments (awslambdaric) and moto servers, as (pid, what)."""
    import psutil

    found = []
    for child in psutil.Process(pid or os.getpid()).children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "awslambdaric" in command:
            found.append((child.pid, "Lambda execution environment (awslambdaric)"))
        elif "moto" in command.lower():
            found.append((child.pid, "moto server"))
    return found
