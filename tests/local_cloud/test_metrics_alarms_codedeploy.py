"""Lambda's metrics in CloudWatch, alarm evaluation and CodeDeploy's traffic shifting, against moto's CloudWatch.

What moto 5 (5.2.5) does and does not, checked before writing these: it stores metric alarms but never
evaluates them (a new alarm is ``OK``, "Unchecked: Initial alarm creation", until ``set_alarm_state``);
its ``get_metric_data`` matches a query's dimension set exactly, as CloudWatch does, but its
``get_metric_statistics`` returns every datum whose dimensions merely *include* the asked ones (asking
for ``{FunctionName}`` also sums the ``{FunctionName, Resource}`` data). So the counts per dimension set
are read here with ``get_metric_data``, and ``get_metric_statistics`` only for the full dimension set,
where the two agree.

The traffic shifts run against a small fake of the Lambda service (get_alias/update_alias), with
compressed minutes.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from localcloud.cloudwatch_alarms import AlarmEvaluator, evaluate
from localcloud.codedeploy import DEPLOYMENT_TYPES, TrafficShift, deployment_type, traffic_schedule
from localcloud.lambda_service.metrics import LambdaMetrics
from localcloud.sdk import Clients

REGION = "us-east-1"


@dataclass
class Record:
    """An invoke attempt, with the fields of ``localcloud.lambda_service.spec.InvokeRecord``."""

    function_name: str
    resource: str | None = None
    executed_version: str | None = "$LATEST"
    duration_ms: float = 12.0
    error: str | None = None
    throttled: bool = False
    at: float = 0.0

    def __post_init__(self) -> None:
        self.at = self.at or time.time()


@pytest.fixture(scope="module")
def clients(moto_clients: Clients) -> Clients:
    return moto_clients


def dims(**pairs: str) -> list[dict[str, str]]:
    return [{"Name": k, "Value": v} for k, v in pairs.items()]


def metric_total(clients: Clients, metric: str, dimensions: list[dict[str, str]], stat: str = "Sum") -> float | None:
    """``stat`` of ``metric`` over the last and next minute, with exactly these dimensions (None: no data)."""
    now = datetime.now(timezone.utc)
    result = clients("cloudwatch").get_metric_data(
        MetricDataQueries=[{"Id": "q", "MetricStat": {
            "Metric": {"Namespace": "AWS/Lambda", "MetricName": metric, "Dimensions": dimensions},
            "Period": 300, "Stat": stat}}],
        StartTime=now - timedelta(minutes=2), EndTime=now + timedelta(minutes=2))
    values = result["MetricDataResults"][0]["Values"]
    return values[0] if len(values) == 1 else (sum(values) if values else None)


def wait_for(predicate: Any, timeout: float, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def alarm_state(clients: Clients, name: str) -> dict[str, Any]:
    return clients("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]


def put_errors_alarm(clients: Clients, name: str, dimensions: list[dict[str, str]]) -> None:
    clients("cloudwatch").put_metric_alarm(
        AlarmName=name, Namespace="AWS/Lambda", MetricName="Errors", Dimensions=dimensions, Statistic="Sum",
        Period=60, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching")


# --------------------------------------------------------------------------- metrics


def test_invocations_and_errors_are_counted_for_each_dimension_set(clients: Clients) -> None:
    metrics = LambdaMetrics(clients)
    n, k = 7, 2
    for i in range(n):
        metrics.record(Record("count-fn", "count-fn:live", "1", error="Unhandled" if i < k else None))
    for _ in range(3):  # unqualified calls: FunctionName only
        metrics.record(Record("count-fn", None, "$LATEST", duration_ms=40.0))
    metrics.flush()

    function = dims(FunctionName="count-fn")
    resource = dims(FunctionName="count-fn", Resource="count-fn:live")
    executed = dims(FunctionName="count-fn", Resource="count-fn:live", ExecutedVersion="1")
    assert metric_total(clients, "Invocations", function) == n + 3
    assert metric_total(clients, "Errors", function) == k
    assert metric_total(clients, "Invocations", resource) == n
    assert metric_total(clients, "Errors", resource) == k
    assert metric_total(clients, "Invocations", executed) == n
    assert metric_total(clients, "Errors", executed, "Average") == pytest.approx(k / n)
    assert metric_total(clients, "Duration", function, "Maximum") == 40.0
    assert metric_total(clients, "Duration", resource, "Average") == pytest.approx(12.0)
    assert metric_total(clients, "Throttles", function) is None

    now = datetime.now(timezone.utc)
    stats = clients("cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda", MetricName="Invocations", Dimensions=executed, Period=300,
        StartTime=now - timedelta(minutes=2), EndTime=now + timedelta(minutes=2), Statistics=["Sum"])
    assert sum(p["Sum"] for p in stats["Datapoints"]) == n
    metrics.stop()


def test_a_throttled_attempt_counts_in_throttles_only_and_the_thread_sends_it(clients: Clients) -> None:
    metrics = LambdaMetrics(clients, flush_interval_s=0.1)
    metrics.record(Record("throttled-fn", "throttled-fn:2", "2"))
    for _ in range(3):
        metrics.record(Record("throttled-fn", "throttled-fn:2", None, duration_ms=0.0, throttled=True))
    function = dims(FunctionName="throttled-fn")
    # no flush(): the background thread sends them
    assert wait_for(lambda: metric_total(clients, "Throttles", function) == 3, timeout=5)
    assert metric_total(clients, "Throttles", dims(FunctionName="throttled-fn", Resource="throttled-fn:2")) == 3
    assert metric_total(clients, "Invocations", function) == 1
    assert metric_total(clients, "Errors", function) == 0
    assert metric_total(clients, "ConcurrentExecutions", function, "Maximum") == 1
    thread = metrics._thread
    metrics.stop()
    assert thread is not None and not thread.is_alive()


def test_concurrent_executions_is_the_peak_of_overlapping_invocations(clients: Clients) -> None:
    metrics = LambdaMetrics(clients)
    end = time.time()
    for at, duration in ((end, 500.0), (end - 0.1, 300.0), (end - 0.05, 100.0)):  # all three overlap
        metrics.record(Record("busy-fn", at=at, duration_ms=duration))
    metrics.record(Record("busy-fn", at=end - 0.6, duration_ms=50.0))  # over before the others start
    metrics.flush()
    assert metric_total(clients, "ConcurrentExecutions", dims(FunctionName="busy-fn"), "Maximum") == 3
    metrics.stop()


# --------------------------------------------------------------------------- alarms


def test_evaluate_counts_m_out_of_n_and_treats_missing_data_as_told() -> None:
    alarm = {"ComparisonOperator": "GreaterThanThreshold", "Threshold": 5.0, "EvaluationPeriods": 3,
             "DatapointsToAlarm": 2, "Statistic": "Maximum", "Period": 60}
    starts = [0.0, 60.0, 120.0]
    assert evaluate(alarm, [6.0, 1.0, 7.0], starts).state == "ALARM"
    assert evaluate(alarm, [6.0, 1.0, 5.0], starts).state == "OK"
    assert evaluate(alarm, [None, None, None], starts).state == "INSUFFICIENT_DATA"  # "missing", the default
    assert evaluate({**alarm, "TreatMissingData": "ignore"}, [None] * 3, starts).state is None
    assert evaluate({**alarm, "TreatMissingData": "breaching"}, [None, 9.0, None], starts).state == "ALARM"
    assert evaluate({**alarm, "TreatMissingData": "notBreaching"}, [None, 9.0, None], starts).state == "OK"
    reason = evaluate(alarm, [6.0, 1.0, 7.0], starts).reason
    assert reason.startswith("Threshold Crossed: 2 out of the last 3 datapoints [7.0 (01/01/70 00:02:00)")
    assert "greater than the threshold (5.0) (minimum 2 datapoints for OK -> ALARM transition)" in reason


def test_an_errors_alarm_goes_to_alarm_after_an_error_and_back_to_ok_when_quiet(clients: Clients) -> None:
    put_errors_alarm(clients, "alarm-fn-errors", dims(FunctionName="alarm-fn"))
    metrics = LambdaMetrics(clients, flush_interval_s=0.1)
    evaluator = AlarmEvaluator(clients, interval_s=0.2, period_scale=1 / 30).start()  # 60 s -> 2 s
    try:
        # moto's "Unchecked" OK becomes an evaluated OK: nothing breached
        assert wait_for(lambda: alarm_state(clients, "alarm-fn-errors")["StateReason"].startswith("Threshold"), 3)
        assert alarm_state(clients, "alarm-fn-errors")["StateValue"] == "OK"

        metrics.record(Record("alarm-fn", error="Unhandled"))
        assert wait_for(lambda: alarm_state(clients, "alarm-fn-errors")["StateValue"] == "ALARM", timeout=5)
        reason = alarm_state(clients, "alarm-fn-errors")["StateReason"]
        assert "[1.0 (" in reason and "greater than or equal to the threshold (1.0)" in reason

        assert wait_for(lambda: alarm_state(clients, "alarm-fn-errors")["StateValue"] == "OK", timeout=6)
        assert alarm_state(clients, "alarm-fn-errors")["StateReason"] == (
            "Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint was treated "
            "as [NonBreaching].")
        states = [(c.old_state, c.new_state) for c in evaluator.changes if c.alarm_name == "alarm-fn-errors"]
        assert states[-2:] == [("OK", "ALARM"), ("ALARM", "OK")]
    finally:
        evaluator.stop()
        metrics.stop()


def test_an_alarm_on_a_version_fires_whatever_the_order_of_its_dimensions(clients: Clients) -> None:
    # GIVEN an alarm on the new version's errors, its dimensions written as SAM's documentation writes them
    # (Resource, FunctionName, ExecutedVersion), not in the order Lambda's metrics are stored
    put_errors_alarm(clients, "order-fn-new", dims(Resource="order-fn:live", FunctionName="order-fn", ExecutedVersion="2"))
    metrics = LambdaMetrics(clients, flush_interval_s=0.1)
    evaluator = AlarmEvaluator(clients, interval_s=0.2, period_scale=1 / 30).start()
    try:
        # WHEN version 2 fails once through the alias
        metrics.record(Record("order-fn", "order-fn:live", "2", error="Unhandled"))
        # THEN the alarm counts it (CloudWatch matches a dimension set in any order)
        assert wait_for(lambda: alarm_state(clients, "order-fn-new")["StateValue"] == "ALARM", timeout=5)
    finally:
        evaluator.stop()
        metrics.stop()


# --------------------------------------------------------------------------- CodeDeploy


class FakeAliases:
    """A Lambda service with one function's aliases: get_alias/update_alias in boto3's shapes."""

    def __init__(self, version: str = "1") -> None:
        self.aliases: dict[str, dict[str, Any]] = {"live": {"Name": "live", "FunctionVersion": version}}
        self.updates: list[tuple[float, dict[str, Any]]] = []  # (time.monotonic(), params)
        self.lock = threading.Lock()

    def get_alias(self, name: str, alias: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.aliases[alias])

    def update_alias(self, name: str, alias: str, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.updates.append((time.monotonic(), copy.deepcopy(params)))
            config = {"Name": alias, "FunctionVersion": params["FunctionVersion"]}
            weights = (params.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
            if weights:
                config["RoutingConfig"] = {"AdditionalVersionWeights": dict(weights)}
            self.aliases[alias] = config
        return self.get_alias(name, alias)

    def route(self, rng: random.Random) -> str:
        """The version one call to the alias runs (as Lambda's weighted alias routing)."""
        config = self.get_alias("f", "live")
        for version, weight in (config.get("RoutingConfig") or {}).get("AdditionalVersionWeights", {}).items():
            if rng.random() < weight:
                return version
        return config["FunctionVersion"]

    def shares(self) -> list[float]:
        """The new version's share after each update."""
        out = []
        for _, params in self.updates:
            weights = (params.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
            out.append(next(iter(weights.values())) if weights else (1.0 if params["FunctionVersion"] != "1" else 0.0))
        return out


def test_the_deployment_types_are_aws_predefined_schedules() -> None:
    assert set(DEPLOYMENT_TYPES) == {
        "Canary10Percent5Minutes", "Canary10Percent10Minutes", "Canary10Percent15Minutes",
        "Canary10Percent30Minutes", "Linear10PercentEvery1Minute", "Linear10PercentEvery2Minutes",
        "Linear10PercentEvery3Minutes", "Linear10PercentEvery10Minutes", "AllAtOnce"}
    assert traffic_schedule("Canary10Percent30Minutes") == [(0.0, 0.1), (30.0, 1.0)]
    linear = traffic_schedule("Linear10PercentEvery3Minutes")
    assert [share for _, share in linear] == [i / 10 for i in range(1, 11)]
    assert linear[-1] == (27.0, 1.0)
    assert traffic_schedule("AllAtOnce") == [(0.0, 1.0)]
    assert deployment_type("CodeDeployDefault.LambdaCanary10Percent5Minutes").config_name == \
        "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    with pytest.raises(ValueError, match="unknown deployment type"):
        deployment_type("Canary10PercentSoon")


def test_canary_shifts_10_percent_then_all_of_it_five_minutes_later() -> None:
    service = FakeAliases()
    lines: list[str] = []
    shift = TrafficShift(service, "f", "live", "1", "2", "Canary10Percent5Minutes", minute_s=0.05, events=lines.append)
    began = time.monotonic()
    assert shift.run() == (True, "Deployment succeeded: f:live is version 2")
    assert [params for _, params in service.updates] == [
        {"FunctionVersion": "1", "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.1}}},
        {"FunctionVersion": "2", "RoutingConfig": {}}]
    first, last = service.updates[0][0] - began, service.updates[1][0] - began
    assert first < 0.05 and last >= 5 * 0.05 - 0.005
    assert service.get_alias("f", "live") == {"Name": "live", "FunctionVersion": "2"}
    assert "Traffic shifted 10% to version 2" in lines and "Traffic shifted 100% to version 2" in lines
    assert shift.status == "Succeeded"


def test_linear_shifts_10_percent_more_every_minute() -> None:
    service = FakeAliases()
    shift = TrafficShift(service, "f", "live", "1", "2", "Linear10PercentEvery1Minute", minute_s=0.05)
    assert shift.run()[0]
    assert service.shares() == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    times = [t for t, _ in service.updates]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.05 - 0.005
    assert times[-1] - times[0] >= 9 * 0.05 - 0.005


def test_an_alias_not_on_the_old_version_is_left_alone() -> None:
    service = FakeAliases(version="3")
    ok, reason = TrafficShift(service, "f", "live", "1", "2", "AllAtOnce").run()
    assert not ok and "points at version 3" in reason
    assert service.updates == []


def test_an_alarm_mid_shift_rolls_back_to_the_old_version(clients: Clients) -> None:
    put_errors_alarm(clients, "shift-errors", dims(FunctionName="shift-fn"))
    service = FakeAliases()
    shift = TrafficShift(service, "shift-fn", "live", "1", "2", "Linear10PercentEvery1Minute",
                         alarms=["shift-errors"], clients=clients, minute_s=0.2).start()
    assert wait_for(lambda: len(service.updates) >= 3, timeout=3, step=0.02)
    clients("cloudwatch").set_alarm_state(AlarmName="shift-errors", StateValue="ALARM", StateReason="errors seen")
    ok, reason = shift.join(5)
    assert not ok and "shift-errors" in reason and reason.startswith("ALARM_ACTIVE")
    assert service.updates[-1][1] == {"FunctionVersion": "1", "RoutingConfig": {}}
    assert service.get_alias("shift-fn", "live") == {"Name": "live", "FunctionVersion": "1"}
    assert 0.3 <= max(service.shares()) < 1.0
    assert shift.status == "Stopped"


def test_errors_of_the_new_version_trip_its_alarm_and_roll_the_canary_back(clients: Clients) -> None:
    """The whole path: invocations -> LambdaMetrics -> CloudWatch -> AlarmEvaluator -> TrafficShift."""
    alarm = "e2e-v2-errors"
    put_errors_alarm(clients, alarm, dims(FunctionName="e2e-fn", Resource="e2e-fn:live", ExecutedVersion="2"))
    service = FakeAliases()
    metrics = LambdaMetrics(clients, flush_interval_s=0.1)
    evaluator = AlarmEvaluator(clients, interval_s=0.1, period_scale=1 / 60).start()  # 60 s -> 1 s
    stop = threading.Event()

    def traffic() -> None:  # version 2 fails every call; version 1 never does
        rng = random.Random(7)
        while not stop.wait(0.01):
            version = service.route(rng)
            metrics.record(Record("e2e-fn", "e2e-fn:live", version, error="Unhandled" if version == "2" else None))

    caller = threading.Thread(target=traffic, daemon=True)
    caller.start()
    try:
        shift = TrafficShift(service, "e2e-fn", "live", "1", "2", "Canary10Percent5Minutes", alarms=[alarm],
                             clients=clients, minute_s=1.0)
        ok, reason = shift.run()  # the canary phase lasts 5 s; the alarm should fire within about 2
        assert not ok and alarm in reason
        assert service.shares() == [0.1, 0.0]
        assert service.get_alias("e2e-fn", "live")["FunctionVersion"] == "1"
        assert shift.history[-1][0] < 5.0
    finally:
        stop.set()
        caller.join(2)
        evaluator.stop()
        metrics.stop()


def test_an_alarm_reads_its_own_dimension_set_only(clients: Clients) -> None:
    cloudwatch = clients("cloudwatch")
    now = time.time()
    cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=[{
        "MetricName": "Errors", "Dimensions": dims(FunctionName="dims-fn", Resource="dims-fn:live"), "Value": 1.0,
        "Unit": "Count", "Timestamp": datetime.fromtimestamp(now - 1, timezone.utc)}])
    put_errors_alarm(clients, "dims-fn-all", dims(FunctionName="dims-fn"))
    put_errors_alarm(clients, "dims-fn-live", dims(FunctionName="dims-fn", Resource="dims-fn:live"))
    changes = AlarmEvaluator(clients, period_scale=1 / 20).evaluate_once(now)  # 60 s -> 3 s, once, no thread
    states = {c.alarm_name: c.new_state for c in changes if c.alarm_name.startswith("dims-fn")}
    # the {FunctionName} alarm has no data of its own (moto's get_metric_statistics would have counted it)
    assert states == {"dims-fn-all": "OK", "dims-fn-live": "ALARM"}


def test_a_refused_alias_update_mid_shift_rolls_back() -> None:
    class Refusing(FakeAliases):
        def update_alias(self, name: str, alias: str, params: dict[str, Any]) -> dict[str, Any]:
            if params["FunctionVersion"] == "2":
                raise RuntimeError("ServiceException")
            return super().update_alias(name, alias, params)

    service = Refusing()
    ok, reason = TrafficShift(service, "f", "live", "1", "2", "Canary10Percent5Minutes", minute_s=0.02).run()
    assert not ok and reason.startswith("INTERNAL_ERROR") and "ServiceException" in reason
    assert service.get_alias("f", "live") == {"Name": "live", "FunctionVersion": "1"}
