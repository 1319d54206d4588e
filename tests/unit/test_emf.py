"""Embedded Metric Format: what CloudWatch Logs extracts from a log line, and what it leaves a plain line."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from localcloud.lambda_service.emf import metric_data

STAMP = 1_764_662_400_000  # 2025-12-02T08:00:00Z, in milliseconds


def emf(**root: object) -> dict:
    document = {"_aws": {"Timestamp": STAMP, "CloudWatchMetrics": [
        {"Namespace": "Shop", "Dimensions": [["service"], ["service", "format"]],
         "Metrics": [{"Name": "Orders", "Unit": "Count"}, {"Name": "Latency", "Unit": "Milliseconds",
                                                         "StorageResolution": 1}]}]},
        "service": "checkout", "format": "PNG", "Orders": 2, "Latency": [3.5, 4.0], "note": "any other member"}
    document.update(root)
    return document


def test_each_metric_is_extracted_once_per_dimension_set_with_its_values_and_time() -> None:
    data = metric_data(json.dumps(emf()) + "\n")
    assert list(data) == ["Shop"]
    assert [(d["MetricName"], [x["Value"] for x in d["Dimensions"]], d["Values"], d["Unit"]) for d in data["Shop"]] == [
        ("Orders", ["checkout"], [2.0], "Count"),
        ("Orders", ["checkout", "PNG"], [2.0], "Count"),
        ("Latency", ["checkout"], [3.5, 4.0], "Milliseconds"),
        ("Latency", ["checkout", "PNG"], [3.5, 4.0], "Milliseconds"),
    ]
    assert {d["Timestamp"] for d in data["Shop"]} == {datetime(2025, 12, 2, 8, tzinfo=timezone.utc)}
    assert {d["StorageResolution"] for d in data["Shop"]} == {60, 1}


def test_a_directive_without_dimension_sets_gives_the_metric_with_no_dimensions() -> None:
    document = emf()
    document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = []
    assert [d["Dimensions"] for d in metric_data(json.dumps(document))["Shop"]] == [[], []]


def test_what_powertools_metrics_prints_is_extracted() -> None:
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    metrics = Metrics(namespace="Thumbnailr", service="api")
    metrics.add_dimension(name="format", value="PNG")
    metrics.add_metric(name="ThumbnailsRequested", unit=MetricUnit.Count, value=1)
    line = json.dumps(metrics.serialize_metric_set())
    [datum] = metric_data(line)["Thumbnailr"]
    assert datum["MetricName"] == "ThumbnailsRequested" and datum["Values"] == [1.0]
    assert {d["Name"]: d["Value"] for d in datum["Dimensions"]} == {"service": "api", "format": "PNG"}


def _broken(change) -> str:
    document = emf()
    change(document)
    return json.dumps(document)


def _directive(document: dict) -> dict:
    return document["_aws"]["CloudWatchMetrics"][0]


@pytest.mark.parametrize("line", [
    "START RequestId: 1 Version: $LATEST",
    '{"message": "a JSON log line, no _aws"}',
    '{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [',  # cut short
    json.dumps(emf()) + " trailing text",
    '{"_aws": ' + "[" * 100_000 + "]" * 100_000 + "}",  # nesting deeper than the parser goes
    _broken(lambda d: d.update(_aws="not an object")),
    _broken(lambda d: d["_aws"].pop("Timestamp")),
    _broken(lambda d: d["_aws"].update(Timestamp="yesterday")),
    _broken(lambda d: d["_aws"].update(CloudWatchMetrics={"Namespace": "Shop"})),
    _broken(lambda d: _directive(d).update(Namespace="")),
    _broken(lambda d: _directive(d).update(Namespace="x" * 256)),
    _broken(lambda d: _directive(d).pop("Metrics")),
    _broken(lambda d: _directive(d).update(Dimensions=[["missing"]])),
    _broken(lambda d: d.update(service=7)),  # a dimension's value must be a string
    _broken(lambda d: _directive(d).update(Dimensions=[[f"d{i}" for i in range(31)]])),
    _broken(lambda d: d.pop("Orders")),  # a metric without its member
    _broken(lambda d: d.update(Orders="two")),
    _broken(lambda d: d.update(Orders=True)),
    _broken(lambda d: d.update(Latency=[])),
    _broken(lambda d: d.update(Latency=list(range(101)))),
    _broken(lambda d: _directive(d)["Metrics"].append({"Name": "Orders", "Unit": "Furlongs"})),
    _broken(lambda d: _directive(d)["Metrics"].append({"Name": "Orders", "StorageResolution": 5})),
    _broken(lambda d: _directive(d)["Metrics"].append({"Unit": "Count"})),
    _broken(lambda d: _directive(d).update(Metrics=[{"Name": "Orders"}] * 101)),
    '{"_aws": {"Timestamp": 1e400, "CloudWatchMetrics": []}}',
    '{"_aws": {"Timestamp": NaN, "CloudWatchMetrics": []}}',
])
def test_a_line_that_breaks_the_format_is_a_plain_log_line(line: str) -> None:
    assert metric_data(line) == {}
