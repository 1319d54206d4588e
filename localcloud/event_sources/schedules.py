"""EventBridge schedule rules (SAM's ``Schedule`` event: an ``AWS::Events::Rule`` with a ``ScheduleExpression``
and Lambda targets): each fires its targets asynchronously, as EventBridge does, every period.

Only ``rate(...)`` expressions are run (``cron(...)`` is refused at deploy time by ``localcloud.cfn.models``). A
period is scaled by ``minute_s / 60`` (a minute lasts ``minute_s`` seconds: 60 as on AWS, less in tests), like
CodeDeploy's and CloudWatch's minutes. As on AWS the first run comes one period after the rule is made, and a
run that fails is retried by Lambda's async invocation (``AsyncInvoker``), not by the rule.
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from localcloud.cfn.models import ScheduleModel
from localcloud.event_sources.destinations import iso_time

log = logging.getLogger(__name__)

__all__ = ["ScheduleRunner", "scheduled_event"]


def scheduled_event(rule: ScheduleModel, region: str, account_id: str) -> Any:
    """What a target gets: the rule's ``Input`` when it has one, else EventBridge's "Scheduled Event"."""
    if rule.input is not None:
        return json.loads(rule.input)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": iso_time()[:19] + "Z",
        "region": region,
        "resources": [rule.arn],
        "detail": {},
    }


class ScheduleRunner:
    """One thread per enabled rule: wait a period, send the event to each target, again."""

    def __init__(self, rules: list[ScheduleModel], submit: Callable[[str, Any], None], *, minute_s: float,
                 region: str, account_id: str) -> None:
        self.rules = [r for r in rules if r.enabled]
        self.submit = submit
        self.minute_s = minute_s
        self.region = region
        self.account_id = account_id
        self.fired: dict[str, int] = {r.logical_id: 0 for r in self.rules}  # runs so far, per rule
        self._stopped = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(r,), name=f"schedule-{r.logical_id}", daemon=True)
                         for r in self.rules]

    def period_s(self, rule: ScheduleModel) -> float:
        return rule.rate_minutes * self.minute_s

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self, rule: ScheduleModel) -> None:
        while not self._stopped.wait(self.period_s(rule)):
            event = scheduled_event(rule, self.region, self.account_id)
            for function in rule.functions:
                try:
                    self.submit(function, event)
                except Exception as e:  # noqa: BLE001 - stopping: the next run would fail the same way
                    log.warning("schedule %s could not invoke %s: %s", rule.logical_id, function, e)
            self.fired[rule.logical_id] += 1
