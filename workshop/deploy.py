"""What the deploy and clean-up notebooks add to SAM CLI: CodeDeploy's schedules, and what a stack leaves behind.

::

    from workshop import deploy

    deploy.traffic_schedule("Canary10Percent5Minutes")   # [(0.0, 0.1), (5.0, 1.0)]: the share on the new version
    deploy.leftovers(cloud)        # what of the stack (and of the notebooks' own functions) is still in the account
    deploy.local_processes()       # the local cloud's processes still running under this kernel

Deploying itself is SAM CLI's (``cloud.sam("deploy", ...)``), traffic shifting CodeDeploy's and deleting
``sam delete``'s, on the local cloud as on AWS.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

__all__ = ["leftovers", "local_processes", "traffic_schedule"]

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


def _log_groups(logs: Any, prefix: str) -> list[str]:
    return [g["logGroupName"] for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix)
            for g in page.get("logGroups") or []]


def leftovers(cloud: Any, stack_name: str | None = None) -> dict[str, list[str]]:
    """What of the stack ``stack_name`` (default: the target's) is still in the account, by kind (only kinds
    with something left): buckets, tables, topics, queues, user pools, functions, log groups, alarms. Only
    names that start with the stack's name count (CloudFormation names what it makes ``<stack>-...``), plus
    the notebooks' own functions (``workshop-...``): an account's other resources are none of ours."""
    stack = stack_name or cloud.stack_name
    mine = lambda name: name.startswith(f"{stack}-")  # noqa: E731
    lam = cloud.client("lambda")
    functions = [f["FunctionName"] for page in lam.get_paginator("list_functions").paginate() for f in page["Functions"]]
    found = {
        "buckets": [b["Name"] for b in cloud.client("s3").list_buckets().get("Buckets") or [] if mine(b["Name"])],
        "tables": [t for t in cloud.client("dynamodb").list_tables().get("TableNames") or [] if mine(t)],
        "topics": [n for t in cloud.client("sns").list_topics().get("Topics") or []
                   if mine(n := t["TopicArn"].rsplit(":", 1)[-1])],
        "queues": [n for u in cloud.client("sqs").list_queues().get("QueueUrls") or [] if mine(n := u.rsplit("/", 1)[-1])],
        "user pools": [p["Name"] for p in cloud.client("cognito-idp").list_user_pools(MaxResults=60).get("UserPools") or []
                       if mine(p["Name"])],
        "functions": [f for f in functions if mine(f) or f.startswith("workshop-")],
        "log groups": _log_groups(cloud.client("logs"), f"/aws/lambda/{stack}-")
                      + _log_groups(cloud.client("logs"), "/aws/lambda/workshop-"),
        "alarms": [a["AlarmName"] for a in cloud.client("cloudwatch").describe_alarms().get("MetricAlarms") or []
                   if mine(a["AlarmName"])],
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
