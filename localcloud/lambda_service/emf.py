"""Metrics out of log lines in CloudWatch's Embedded Metric Format (EMF), as CloudWatch Logs extracts them.

The rules are the specification's
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):

* the log event is one JSON object, nothing before or after it, with a metadata object ``_aws`` holding
  ``Timestamp`` (milliseconds since the epoch, a number) and ``CloudWatchMetrics``, an array of directives;
* a directive has a ``Namespace`` (a string of 1 to 255 characters), ``Dimensions`` (an array of dimension
  sets, each an array of at most 30 names) and ``Metrics`` (at most 100 definitions: a ``Name``, an optional
  ``Unit`` among CloudWatch's units and an optional ``StorageResolution`` of 1 or 60);
* every name a directive uses is a member of the root: a dimension's value is a string, a metric's a number
  or an array of at most 100 numbers.

A line that breaks any rule is only a log line (CloudWatch then counts an ``EMFValidationErrors`` in
``AWS/Logs``, not emulated): :func:`metric_data` returns nothing for it and never raises.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

__all__ = ["metric_data"]

#: CloudWatch's StandardUnit values (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html)
UNITS = frozenset(
    "Seconds Microseconds Milliseconds Bytes Kilobytes Megabytes Gigabytes Terabytes Bits Kilobits Megabits "
    "Gigabits Terabits Percent Count Bytes/Second Kilobytes/Second Megabytes/Second Gigabytes/Second "
    "Terabytes/Second Bits/Second Kilobits/Second Megabits/Second Gigabits/Second Terabits/Second "
    "Count/Second None".split()
)
MAX_DIMENSIONS, MAX_METRICS, MAX_VALUES = 30, 100, 100


class _Invalid(ValueError):
    pass


def _check(condition: bool, why: str) -> None:
    if not condition:
        raise _Invalid(why)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _values(root: dict, name: str) -> list[float]:
    value = root.get(name)
    values = value if isinstance(value, list) else [value]
    _check(0 < len(values) <= MAX_VALUES and all(_is_number(v) for v in values), f"metric {name!r} is not numbers")
    return [float(v) for v in values]


def _directive(root: dict, directive: Any, timestamp: datetime) -> tuple[str, list[dict[str, Any]]]:
    _check(isinstance(directive, dict), "a directive is not an object")
    namespace, dimension_sets, metrics = (directive.get(k) for k in ("Namespace", "Dimensions", "Metrics"))
    _check(isinstance(namespace, str) and 0 < len(namespace) <= 255, "bad Namespace")
    _check(isinstance(dimension_sets, list) and isinstance(metrics, list) and len(metrics) <= MAX_METRICS,
           "bad Dimensions or Metrics")
    sets = []
    for names in dimension_sets:
        _check(isinstance(names, list) and len(names) <= MAX_DIMENSIONS, "a dimension set is not a short array")
        _check(all(isinstance(n, str) and isinstance(root.get(n), str) for n in names),
               "a dimension is not a string member of the root")
        sets.append([{"Name": n, "Value": root[n]} for n in names])
    data = []
    for definition in metrics:
        _check(isinstance(definition, dict) and isinstance(definition.get("Name"), str), "a metric has no Name")
        unit = definition.get("Unit", "None")
        resolution = definition.get("StorageResolution", 60)
        _check(unit in UNITS and resolution in (1, 60), "bad Unit or StorageResolution")
        values = _values(root, definition["Name"])
        for dimensions in sets or [[]]:  # no dimension set: the metric with no dimensions
            data.append({"MetricName": definition["Name"], "Dimensions": dimensions, "Timestamp": timestamp,
                         "Values": values, "Unit": unit, "StorageResolution": resolution})
    return namespace, data


def metric_data(line: str) -> dict[str, list[dict[str, Any]]]:
    """``{namespace: [MetricData of put_metric_data]}`` a log line embeds; empty for any other line."""
    text = line.strip()
    if not (text.startswith("{") and '"_aws"' in text):  # most lines: no JSON parse at all
        return {}
    try:
        root = json.loads(text)
        _check(isinstance(root, dict) and isinstance(root.get("_aws"), dict), "no _aws object")
        meta = root["_aws"]
        directives, stamp = meta.get("CloudWatchMetrics"), meta.get("Timestamp")
        _check(isinstance(directives, list) and _is_number(stamp) and stamp >= 0, "bad CloudWatchMetrics or Timestamp")
        timestamp = datetime.fromtimestamp(stamp / 1000, timezone.utc)
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for directive in directives:
            namespace, data = _directive(root, directive, timestamp)
            by_namespace.setdefault(namespace, []).extend(data)
        return by_namespace
    except (ValueError, OverflowError, OSError, RecursionError):  # _Invalid and json's errors: a plain log line
        return {}
