"""The load benchmark (``benchmarks.load``) as a check, for ``make reliability`` only: it takes about
a minute, so it runs when ``RELIABILITY_LOAD=1`` and is skipped otherwise (``make test``)."""

from __future__ import annotations

import os

import pytest

from tests.reliability import harness

pytestmark = [
    pytest.mark.local_cloud,
    pytest.mark.skipif(os.environ.get("RELIABILITY_LOAD") != "1", reason="a benchmark: RELIABILITY_LOAD=1 runs it"),
]


def test_200_requests_from_5_users_are_all_accounted_for() -> None:
    from benchmarks.load import run

    result = run(users=5, total=200, quota=30, verbose=False)
    harness.count("requests", result["requests"])
    harness.TALLY.update({
        "load_requests": result["requests"], "load_users": result["users"], "load_rps": result["requests_per_second"],
        "load_p50_ms": result["p50_ms"], "load_p99_ms": result["p99_ms"], "load_ready": result["ready"],
        "load_429": result["refused_429"],
    })
    if result["lost"]:
        harness.lost(f"load: {result}")
    assert result["accepted_202"] == 150 and result["refused_429"] == 50 and result["other_answers"] == []
    assert result["ready"] == 150 and result["quota_exact"] and result["quota_used"] == [30] * 5
    assert result["thumbnail_objects"] == 150 and result["duplicate_objects"] == 0
    assert result["lost"] == 0
