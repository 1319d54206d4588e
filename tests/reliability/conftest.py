"""The reliability suite: one summary at the end (fake credentials come from tests/conftest.py).

``pytest tests/reliability`` prints, after the results, what was tried and what was lost::

    reliability: 41 inputs tried, 12 faults injected, 730 requests sent, 0 lost, 0 left pending, 0 quota mismatches

(``RELIABILITY_LOAD=1`` adds the load benchmark, ``benchmarks.load``, as a test: ``make reliability``.)
"""

from __future__ import annotations


import pytest

from tests.reliability import harness


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    tally = harness.TALLY
    if not tally:
        return
    tr = terminalreporter
    tr.section("reliability summary")
    tr.write_line(
        f"reliability: {tally['inputs']} inputs tried, {tally['faults']} faults injected, "
        f"{tally['requests']} requests sent, {tally['lost']} lost, {tally['left pending']} left pending, "
        f"{tally['quota mismatches']} quota mismatches"
    )
    if tally.get("load_requests"):
        tr.write_line(
            f"load: {tally['load_requests']} thumbnail requests from {tally['load_users']} users, "
            f"{tally['load_rps']} req/s, p50 {tally['load_p50_ms']} ms, p99 {tally['load_p99_ms']} ms, "
            f"{tally['load_ready']} ready + {tally['load_429']} refused 429"
        )
    for what in harness.LOSSES[:20]:
        tr.write_line(f"  lost: {what}")
