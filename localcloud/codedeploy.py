"""CodeDeploy for Lambda: shift an alias's traffic to a new version on a deployment type's schedule, stop on alarm.

What CodeDeploy does for SAM's ``DeploymentPreference`` (an alias with the ``CodeDeployLambdaAliasUpdate``
update policy): the alias keeps pointing at the old version and gives the new one a growing weight in
its routing configuration, then points at the new one alone; if one of the deployment's CloudWatch
alarms is in ``ALARM`` meanwhile, the deployment stops and all traffic goes back to the old version.

    shift = TrafficShift(lambda_service, "GetPhotoFunction", "live", "1", "2", "Canary10Percent5Minutes",
                         alarms=["GetPhotoErrors"], clients=clients, minute_s=1.0, events=print)
    ok, reason = shift.run()     # blocks: about 5 "minutes" of 1 s each

``minute_s`` is how long a schedule's minute lasts (60: real time). Not done: the PreTraffic/PostTraffic
hooks (Lambda functions CodeDeploy invokes around the shift), custom deployment configurations other
than the predefined names' patterns.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["DEPLOYMENT_TYPES", "AliasService", "DeploymentType", "TrafficShift", "deployment_type",
           "traffic_schedule"]


@dataclass(frozen=True)
class DeploymentType:
    """One way to shift traffic: ``Canary`` (two increments), ``Linear`` (equal increments) or ``AllAtOnce``."""

    name: str  # as SAM's DeploymentPreference Type says it, e.g. "Canary10Percent5Minutes"
    kind: str  # "Canary" (CodeDeploy's TimeBasedCanary), "Linear" (TimeBasedLinear) or "AllAtOnce"
    percentage: int = 100  # shifted in the first increment (Canary) or in each one (Linear)
    interval_minutes: int = 0  # before the rest (Canary) or between increments (Linear)

    @property
    def config_name(self) -> str:
        """CodeDeploy's name for it (what SAM puts in the deployment group)."""
        return f"CodeDeployDefault.Lambda{self.name}"

    def schedule(self) -> list[tuple[float, float]]:
        """(minute, share of traffic on the new version) steps; the last share is 1.0."""
        if self.kind == "Canary":
            return [(0.0, self.percentage / 100), (float(self.interval_minutes), 1.0)]
        if self.kind == "Linear":
            steps = -(-100 // self.percentage)  # ceil: 10 % steps reach 100 % at the 10th
            return [(float(i * self.interval_minutes), min(100, (i + 1) * self.percentage) / 100)
                    for i in range(steps)]
        return [(0.0, 1.0)]


#: AWS's predefined deployment configurations for the Lambda compute platform, which are SAM's
#: DeploymentPreference types: "Canary10Percent5Minutes: shifts 10 percent of traffic in the first
#: increment. The remaining 90 percent is deployed five minutes later"; "Linear10PercentEvery1Minute:
#: shifts 10 percent of traffic every minute until all traffic is shifted"; "AllAtOnce: shifts all
#: traffic to the updated Lambda functions at once".
#: https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-configurations.html
#: https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/automating-updates-to-serverless-apps.html
DEPLOYMENT_TYPES: dict[str, DeploymentType] = {t.name: t for t in (
    DeploymentType("Canary10Percent5Minutes", "Canary", 10, 5),
    DeploymentType("Canary10Percent10Minutes", "Canary", 10, 10),
    DeploymentType("Canary10Percent15Minutes", "Canary", 10, 15),
    DeploymentType("Canary10Percent30Minutes", "Canary", 10, 30),
    DeploymentType("Linear10PercentEvery1Minute", "Linear", 10, 1),
    DeploymentType("Linear10PercentEvery2Minutes", "Linear", 10, 2),
    DeploymentType("Linear10PercentEvery3Minutes", "Linear", 10, 3),
    DeploymentType("Linear10PercentEvery10Minutes", "Linear", 10, 10),
    DeploymentType("AllAtOnce", "AllAtOnce"),
)}

_CANARY = re.compile(r"Canary(\d+)Percent(\d+)Minutes?")
_LINEAR = re.compile(r"Linear(\d+)PercentEvery(\d+)Minutes?")


def deployment_type(name: str) -> DeploymentType:
    """The deployment type SAM's ``Type`` (or CodeDeploy's ``CodeDeployDefault.Lambda...`` name) names.

    A custom configuration named like the predefined ones (``Canary5Percent2Minutes``) gets that schedule."""
    short = name.removeprefix("CodeDeployDefault.Lambda")
    if short in DEPLOYMENT_TYPES:
        return DEPLOYMENT_TYPES[short]
    for pattern, kind in ((_CANARY, "Canary"), (_LINEAR, "Linear")):
        match = pattern.fullmatch(short)
        if match and 0 < int(match.group(1)) <= 100:
            return DeploymentType(short, kind, int(match.group(1)), int(match.group(2)))
    raise ValueError(f"unknown deployment type {name!r}: use one of {', '.join(DEPLOYMENT_TYPES)}")


def traffic_schedule(name: str) -> list[tuple[float, float]]:
    """(minute, share of traffic on the new version) steps of a deployment type, e.g. [(0, 0.1), (5, 1.0)]."""
    return deployment_type(name).schedule()


class AliasService(Protocol):
    """The part of the Lambda service a traffic shift uses (boto3's lambda client's shapes)."""

    def get_alias(self, name: str, alias: str) -> dict[str, Any]: ...
    def update_alias(self, name: str, alias: str, params: dict[str, Any]) -> dict[str, Any]: ...


class TrafficShift:
    """One CodeDeploy deployment of a Lambda alias from ``old_version`` to ``new_version``.

    ``run()`` blocks until it ends and returns ``(ok, reason)``; ``status`` is then ``Succeeded``,
    ``Stopped`` (an alarm, or ``stop()``: traffic back on the old version) or ``Failed`` (the alias
    was not on the old version, untouched then; or the rollback itself failed). ``history`` holds (seconds since start, share on the new version) for
    each alias update; ``events`` gets one progress line per step.
    """

    def __init__(self, service: AliasService, function_name: str, alias: str, old_version: str, new_version: str,
                 deployment_type_name: str = "AllAtOnce", *, alarms: Sequence[str] = (),
                 clients: Callable[[str], Any] | None = None, minute_s: float = 60.0, poll_s: float | None = None,
                 events: Callable[[str], None] | None = None, ignore_poll_alarm_failure: bool = False) -> None:
        if alarms and clients is None:
            raise ValueError("alarms need clients (for CloudWatch's describe_alarms)")
        self.service = service
        self.function_name, self.alias = function_name, alias
        self.old_version, self.new_version = str(old_version), str(new_version)
        self.deployment_type = deployment_type(deployment_type_name)
        self.alarms = list(alarms)
        self.clients = clients
        self.minute_s = minute_s
        # CodeDeploy watches the alarms all along; poll often enough for compressed minutes
        self.poll_s = poll_s if poll_s is not None else max(0.02, min(1.0, minute_s / 5))
        self.events = events
        self.ignore_poll_alarm_failure = ignore_poll_alarm_failure
        self.status = "Created"
        self.history: list[tuple[float, float]] = []
        self.lines: list[str] = []
        self.result: tuple[bool, str] | None = None
        self._stop = threading.Event()
        self._stop_reason = ""
        self._started = 0.0
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ running

    def run(self) -> tuple[bool, str]:
        """Shift the traffic on schedule, watching the alarms; returns (ok, reason)."""
        self.status = "InProgress"
        self._started = time.monotonic()
        t = self.deployment_type
        self._emit(f"Deployment started: {self.function_name}:{self.alias} from version {self.old_version} "
                   f"to {self.new_version} ({t.config_name})")
        mismatch = self._check_alias()
        if mismatch:
            self.status = "Failed"
            self.result = (False, mismatch)
            self._emit(f"Deployment failed: {mismatch}")
            return self.result
        for minute, share in t.schedule():
            problem = self._wait_until(self._started + minute * self.minute_s)
            if not problem:
                try:
                    self._shift(share)
                except Exception as exc:  # the Lambda service refused the update: undo what was shifted
                    problem = f"INTERNAL_ERROR: could not update alias {self.alias}: {exc}"
            if problem:
                self.result = self._roll_back(problem)
                return self.result
        self.status = "Succeeded"
        self.result = (True, f"Deployment succeeded: {self.function_name}:{self.alias} is version {self.new_version}")
        self._emit(self.result[1])
        return self.result

    def start(self) -> TrafficShift:
        """``run()`` in a thread of its own; ``join()`` waits for it, ``result`` holds what it returned."""
        self._thread = threading.Thread(target=self.run, name=f"codedeploy-{self.function_name}", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> tuple[bool, str] | None:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    def stop(self, reason: str = "stopped by the user") -> None:
        """Stop a running shift (CodeDeploy's StopDeployment with rollback): traffic goes back to the old version."""
        self._stop_reason = f"MANUAL_STOP: {reason}"
        self._stop.set()

    # ------------------------------------------------------------------ steps

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        if self.events is not None:
            self.events(line)

    def _check_alias(self) -> str | None:
        """Why the alias cannot be shifted from the old version (CodeDeploy checks the AppSpec's
        CurrentVersion against the alias), or None."""
        current = self.service.get_alias(self.function_name, self.alias)
        if str(current.get("FunctionVersion")) != self.old_version:
            return (f"INVALID_LAMBDA_CONFIGURATION: alias {self.alias} of {self.function_name} points at version "
                    f"{current.get('FunctionVersion')}, not at the current version {self.old_version}")
        return None

    def _wait_until(self, due: float) -> str | None:
        """Watch the alarms until ``due``; the reason to stop, if any."""
        while True:
            problem = self._stop_reason if self._stop.is_set() else self._check_alarms()
            if problem:
                return problem
            remaining = due - time.monotonic()
            if remaining <= 0:
                return None
            self._stop.wait(min(self.poll_s, remaining))

    def _check_alarms(self) -> str | None:
        if not self.alarms:
            return None
        assert self.clients is not None
        try:
            found = self.clients("cloudwatch").describe_alarms(AlarmNames=self.alarms).get("MetricAlarms") or []
        except Exception as exc:  # CloudWatch unreachable: CodeDeploy stops unless told to ignore it
            return None if self.ignore_poll_alarm_failure else f"Could not read the alarms' states: {exc}"
        states = {a["AlarmName"]: a for a in found}
        unknown = [name for name in self.alarms if name not in states]
        if unknown and not self.ignore_poll_alarm_failure:
            return f"Could not read the alarms' states: no alarm named {', '.join(unknown)} in CloudWatch"
        firing = [states[name] for name in self.alarms if name in states and states[name]["StateValue"] == "ALARM"]
        if not firing:
            return None
        # CodeDeploy's error code for it (https://docs.aws.amazon.com/codedeploy/latest/userguide/error-codes.html)
        named = "; ".join(f"{a['AlarmName']} ({a.get('StateReason', '')})" for a in firing)
        return f"ALARM_ACTIVE: the deployment was stopped because these alarms were activated: {named}"

    def _shift(self, share: float) -> None:
        if share >= 1.0:
            params: dict[str, Any] = {"FunctionVersion": self.new_version, "RoutingConfig": {}}
        else:
            params = {"FunctionVersion": self.old_version,
                      "RoutingConfig": {"AdditionalVersionWeights": {self.new_version: share}}}
        self.service.update_alias(self.function_name, self.alias, params)
        self.history.append((self._elapsed(), share))
        self._emit(f"Traffic shifted {share:.0%} to version {self.new_version}")

    def _roll_back(self, problem: str) -> tuple[bool, str]:
        self._emit(f"Deployment stopped: {problem}")
        try:
            self.service.update_alias(self.function_name, self.alias,
                                      {"FunctionVersion": self.old_version, "RoutingConfig": {}})
        except Exception as exc:
            self.status = "Failed"
            return False, f"{problem}; the rollback failed too: {exc}"
        self.history.append((self._elapsed(), 0.0))
        self.status = "Stopped"
        self._emit(f"Rolled back: all traffic on version {self.old_version}")
        return False, problem
