"""EventBridge-style filter patterns, as Lambda applies an event source mapping's ``FilterCriteria``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


_MISSING = object()


def matches_filter(pattern: Mapping[str, Any], event: Any) -> bool:
    """Lambda event filtering: does ``event`` match ``pattern`` (``FilterCriteria.Filters[].Pattern``)?

    Supports value lists (strings, numbers, null, booleans), nested objects, ``prefix``, ``suffix``,
    ``equals-ignore-case``, ``anything-but`` (a value, a list or ``{"prefix": ...}``),
    ``numeric`` ranges, ``exists`` and ``wildcard``. An event value that is a list matches if any
    element does.
    """
    if not isinstance(pattern, Mapping):
        return False
    for key, rule in pattern.items():
        value = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(rule, Mapping):
            if value is _MISSING or not isinstance(value, Mapping) or not matches_filter(rule, value):
                return False
        elif isinstance(rule, list):
            if not _match_rules(rule, value):
                return False
        else:
            return False
    return True


def _match_rules(rules: list, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    for rule in rules:
        if isinstance(rule, Mapping):
            if "exists" in rule:
                if (value is not _MISSING) == bool(rule["exists"]):
                    return True
                continue
            if value is _MISSING:
                continue
            if any(_match_operator(rule, v) for v in values):
                return True
        elif value is not _MISSING and any(_equal(rule, v) for v in values):
            return True
    return False


def _equal(rule: Any, value: Any) -> bool:
    if isinstance(rule, bool) or isinstance(value, bool) or rule is None or value is None:
        return rule is value or rule == value and type(rule) is type(value)
    if isinstance(rule, (int, float)) and isinstance(value, (int, float)):
        return float(rule) == float(value)
    return isinstance(rule, str) and isinstance(value, str) and rule == value


def _match_operator(rule: Mapping[str, Any], value: Any) -> bool:  # noqa: PLR0911
    if "prefix" in rule:
        p = rule["prefix"]
        if isinstance(p, Mapping) and "equals-ignore-case" in p:
            return isinstance(value, str) and value.lower().startswith(str(p["equals-ignore-case"]).lower())
        return isinstance(value, str) and value.startswith(str(p))
    if "suffix" in rule:
        s = rule["suffix"]
        if isinstance(s, Mapping) and "equals-ignore-case" in s:
            return isinstance(value, str) and value.lower().endswith(str(s["equals-ignore-case"]).lower())
        return isinstance(value, str) and value.endswith(str(s))
    if "equals-ignore-case" in rule:
        return isinstance(value, str) and value.lower() == str(rule["equals-ignore-case"]).lower()
    if "anything-but" in rule:
        but = rule["anything-but"]
        if isinstance(but, Mapping):
            return not _match_operator(but, value)
        excluded = but if isinstance(but, list) else [but]
        return not any(_equal(e, value) for e in excluded)
    if "numeric" in rule:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        if isinstance(value, bool):
            return False
        ops = rule["numeric"]
        checks = {"<": number.__lt__, "<=": number.__le__, "=": number.__eq__, ">": number.__gt__, ">=": number.__ge__}
        return all(checks[op](float(limit)) for op, limit in zip(ops[::2], ops[1::2], strict=False))
    if "wildcard" in rule:
        import fnmatch

        return isinstance(value, str) and fnmatch.fnmatchcase(value, str(rule["wildcard"]))
    return False
