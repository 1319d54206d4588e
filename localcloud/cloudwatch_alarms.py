"""CloudWatch alarm evaluation: moto stores metric alarms but never evaluates them; this does, as CloudWatch would.

moto 5 (checked on 5.2.5) keeps whatever ``put_metric_alarm`` gets, starts it in ``OK`` with the reason
"Unchecked: Initial alarm creation" (CloudWatch starts in ``INSUFFICIENT_DATA``) and never changes its
state by itself: only ``set_alarm_state`` does. ``AlarmEvaluator`` is the missing part: every
``interval_s`` it reads each metric alarm, fetches its metric over ``EvaluationPeriods`` periods and
sets the state CloudWatch would, with a reason in CloudWatch's words, when it changes
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarm-evaluation,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html):

* a period's datapoint breaches when ``value <op> Threshold``; the alarm goes to ``ALARM`` when at
  least ``DatapointsToAlarm`` (default ``EvaluationPeriods``) of the last ``EvaluationPeriods`` breach;
* missing datapoints: ``notBreaching`` counts them as good, ``breaching`` as bad, ``ignore`` keeps the
  state when all are missing, ``missing`` (the default) goes to ``INSUFFICIENT_DATA`` when all are.

It reads the metric with ``get_metric_data``, not ``get_metric_statistics``: moto's
``get_metric_statistics`` returns every datum whose dimensions *include* the ones asked for (an alarm on
``{FunctionName}`` would also count the ``{FunctionName, Resource}`` data), while its ``get_metric_data``
matches the dimension set exactly, as CloudWatch does for both.

Not evaluated (left as they are): metric-math alarms (``Metrics``), percentiles (``ExtendedStatistic``),
anomaly-detection operators. Alarm actions (SNS...) are not run. Periods are sliding windows that end now
(CloudWatch aligns them to the clock), in whole seconds: ``period_scale`` compresses them for teaching
(a 60 s period with ``period_scale=1/30`` lasts 2 s), never below 1 s.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["AlarmEvaluator", "Evaluation", "StateChange", "evaluate"]

#: ComparisonOperator -> (test, the words CloudWatch's reasons use)
_OPERATORS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
_STATISTICS = {"SampleCount", "Average", "Sum", "Minimum", "Maximum"}
_MISSING_AS = {"notBreaching": "NonBreaching", "breaching": "Breaching"}


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation decided: the state (None: keep the current one), why, and the data behind it."""

    state: str | None
    reason: str
    reason_data: dict[str, Any]


@dataclass(frozen=True)
class StateChange:
    alarm_name: str
    old_state: str
    new_state: str
    reason: str


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%d/%m/%y %H:%M:%S")


def evaluate(alarm: Mapping[str, Any], values: Sequence[float | None], period_starts: Sequence[float]) -> Evaluation:
    """The state of a metric ``alarm`` (describe_alarms' shape) given its last periods' values, oldest first."""
    test, words = _OPERATORS[alarm["ComparisonOperator"]]
    threshold = float(alarm["Threshold"])
    n = len(values)
    m = int(alarm.get("DatapointsToAlarm") or n)
    treat = alarm.get("TreatMissingData") or "missing"
    present = [(v, t) for v, t in zip(values, period_starts) if v is not None]
    missing = n - len(present)
    data = {"version": "1.0", "statistic": alarm.get("Statistic"), "period": alarm.get("Period"),
            "threshold": threshold, "recentDatapoints": [v for v, _ in reversed(present)],
            "queryDate": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
    if not present and treat in ("missing", "ignore"):
        reason = f"Insufficient Data: no datapoints were received for {_plural(n, 'period')}."
        return Evaluation("INSUFFICIENT_DATA" if treat == "missing" else None, reason, data)
    breaching = sum(1 for v, _ in present if test(v, threshold))
    if treat == "breaching":
        breaching += missing
    state = "ALARM" if breaching >= m else "OK"
    if not present:
        reason = (f"Threshold Crossed: no datapoints were received for {_plural(n, 'period')} and "
                  f"{_plural(missing, 'missing datapoint')} {'was' if missing == 1 else 'were'} treated as "
                  f"[{_MISSING_AS[treat]}].")
        return Evaluation(state, reason, data)
    shown = ", ".join(f"{v} ({_stamp(t)})" for v, t in reversed(present))
    counted = breaching if state == "ALARM" else len(present) - sum(1 for v, _ in present if test(v, threshold))
    verb = "was" if counted == 1 else "were"
    negation = "" if state == "ALARM" else "not "
    transition = "OK -> ALARM" if state == "ALARM" else "ALARM -> OK"
    reason = (f"Threshold Crossed: {counted} out of the last {len(present)} datapoints [{shown}] {verb} "
              f"{negation}{words} the threshold ({threshold}) (minimum {_plural(m, 'datapoint')} for "
              f"{transition} transition).")
    return Evaluation(state, reason, data)


class AlarmEvaluator:
    """Evaluates every metric alarm in CloudWatch (moto's) every ``interval_s``, from a thread of its own."""

    def __init__(self, clients: Callable[[str], Any], *, interval_s: float = 1.0, period_scale: float = 1.0,
                 on_change: Callable[[StateChange], None] | None = None) -> None:
        self.clients = clients
        self.interval_s = interval_s
        self.period_scale = period_scale
        self.on_change = on_change
        self.changes: list[StateChange] = []
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> AlarmEvaluator:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alarm-evaluator", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(10)

    def period_s(self, period: int) -> int:
        """An alarm's ``Period`` in (compressed) whole seconds, at least 1."""
        return max(1, round(period * self.period_scale))

    def evaluate_once(self, now: float | None = None) -> list[StateChange]:
        """Evaluate every metric alarm once; set and return the states that changed."""
        cloudwatch = self.clients("cloudwatch")
        now = time.time() if now is None else now
        changes = []
        for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
            for alarm in page.get("MetricAlarms") or []:
                if not self._evaluable(alarm):
                    continue
                change = self._evaluate_alarm(cloudwatch, alarm, now)
                if change is not None:
                    changes.append(change)
        return changes

    @staticmethod
    def _evaluable(alarm: Mapping[str, Any]) -> bool:
        return (alarm.get("MetricName") is not None and alarm.get("Statistic") in _STATISTICS
                and alarm.get("ComparisonOperator") in _OPERATORS and not alarm.get("Metrics"))

    def _evaluate_alarm(self, cloudwatch: Any, alarm: Mapping[str, Any], now: float) -> StateChange | None:
        values, starts = self._datapoints(cloudwatch, alarm, now)
        current = alarm.get("StateValue") or "INSUFFICIENT_DATA"
        evaluation = evaluate(alarm, values, starts)
        # moto's "Unchecked" OK is no evaluation: the first real one sets a reason even if the state stays
        unchecked = (alarm.get("StateReason") or "").startswith("Unchecked")
        if evaluation.state is None or (evaluation.state == current and not unchecked):
            return None
        cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue=evaluation.state,
                                   StateReason=evaluation.reason[:1023],
                                   StateReasonData=json.dumps(evaluation.reason_data))
        change = StateChange(alarm["AlarmName"], current, evaluation.state, evaluation.reason)
        self.changes.append(change)
        if self.on_change is not None:
            self.on_change(change)
        return change

    def _datapoints(self, cloudwatch: Any, alarm: Mapping[str, Any], now: float) -> tuple[list[float | None], list[float]]:
        """The statistic of each of the alarm's last ``EvaluationPeriods`` periods (None: no data), oldest first."""
        period = self.period_s(int(alarm["Period"]))
        n = int(alarm["EvaluationPeriods"])
        end = math.floor(now)  # moto drops the query times' fractions of a second
        start = end - n * period
        stat: dict[str, Any] = {"Metric": {"Namespace": alarm["Namespace"], "MetricName": alarm["MetricName"],
                                           "Dimensions": _as_stored(cloudwatch, alarm)},
                                "Period": period, "Stat": alarm["Statistic"]}
        if alarm.get("Unit"):
            stat["Unit"] = alarm["Unit"]
        result = cloudwatch.get_metric_data(
            MetricDataQueries=[{"Id": "m", "MetricStat": stat, "ReturnData": True}],
            StartTime=datetime.fromtimestamp(start, timezone.utc), EndTime=datetime.fromtimestamp(end, timezone.utc),
            ScanBy="TimestampAscending")
        values: list[float | None] = [None] * n
        for series in result.get("MetricDataResults") or []:
            for stamp, value in zip(series.get("Timestamps") or [], series.get("Values") or []):
                index = int((stamp.timestamp() - start) // period)
                if 0 <= index < n:
                    values[index] = float(value)
        return values, [float(start + i * period) for i in range(n)]

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                self.evaluate_once()
            except Exception as exc:  # CloudWatch (moto) away for a moment: try again next interval
                log.warning("alarm evaluation failed: %s", exc)


def _as_stored(cloudwatch: Any, alarm: Mapping[str, Any]) -> list[dict[str, str]]:
    """The alarm's dimensions in the order its metric was stored with. CloudWatch matches a dimension set in any
    order; moto 5's ``get_metric_data`` sorts both sides with a broken ``Dimension.__lt__`` (it compares a
    value with a name), so three dimensions given in another order match nothing."""
    wanted = list(alarm.get("Dimensions") or [])
    as_set = {(d["Name"], d["Value"]) for d in wanted}
    pages = cloudwatch.get_paginator("list_metrics").paginate(Namespace=alarm["Namespace"],
                                                              MetricName=alarm["MetricName"])
    for page in pages:
        for metric in page.get("Metrics") or []:
            stored = metric.get("Dimensions") or []
            if {(d["Name"], d["Value"]) for d in stored} == as_set:
                return list(stored)
    return wanted
