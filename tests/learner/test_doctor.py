"""`make doctor`: each check finds what it looks for, says what to do, and a problem makes the exit code 1."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.learner.conftest import REPO
from workshop import doctor


def _listening() -> socket.socket:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    return held


def test_a_busy_port_is_named_with_what_needs_it() -> None:
    with _listening() as held:
        port = held.getsockname()[1]
        problem = doctor.check_ports([(port, "the local API")])
        assert problem is not None and f"port {port} is in use" in problem and "the local API" in problem
    assert doctor.check_ports([(port, "the local API")]) is None  # released: free again


def test_python_other_than_3_13_and_no_python3_13_for_sam_build() -> None:
    assert "needs 3.13" in doctor.check_python((3, 12, 7))
    assert "python3.13" in doctor.check_python((3, 13, 1), which=lambda name, path=None: None)
    assert doctor.check_python((3, 13, 1), which=lambda name, path=None: "/usr/bin/python3.13") is None


def test_too_little_disk_or_memory_says_how_much_there_is() -> None:
    assert "GB free" in doctor.check_disk(REPO, minimum_gb=1e9)
    assert doctor.check_disk(REPO, minimum_gb=0) is None
    assert "GB of memory available" in doctor.check_memory(minimum_gb=1e9)
    assert doctor.check_memory(minimum_gb=0) is None


def test_pins_missing_or_at_another_version_are_named(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# a comment\npytest==0.0.1\nno-such-package-here==1.0\nrequests[socks]==%s\n"
                            % __import__("requests").__version__)
    problem = doctor.check_packages(requirements)
    assert f"pytest is {pytest.__version__}, pinned 0.0.1" in problem
    assert "no-such-package-here is missing" in problem
    assert "requests" not in problem  # at its pin, extras and all


def test_every_pin_of_requirements_txt_is_installed_and_imports() -> None:
    assert doctor.check_packages(REPO / "requirements.txt") is None


def test_the_report_is_one_line_per_check_and_a_problem_fails_it() -> None:
    out = io.StringIO()
    assert doctor.run({"fine": lambda: None, "broken": lambda: "it is broken: fix it"}, out=out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("  ok   fine") and lines[1] == "  FIX  broken            it is broken: fix it"
    assert lines[-1] == "1 problem found"
    out = io.StringIO()
    assert doctor.run({"raises": lambda: 1 / 0}, out=out) == 1 and "ZeroDivisionError" in out.getvalue()
    assert doctor.run({"fine": lambda: None}, out=io.StringIO()) == 0


@pytest.mark.local_cloud
def test_make_doctor_on_this_machine_fails_on_a_busy_api_port(no_real_aws: list[str]) -> None:
    """The whole doctor as `make doctor` runs it: a local cloud starts and answers, and the busy port fails it."""
    with _listening() as held:
        port = held.getsockname()[1]
        env = {**os.environ, "WORKSHOP_API_PORT": str(port), "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'sam-app' / 'src'}"}
        done = subprocess.run([sys.executable, "-m", "workshop", "doctor"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=240)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith("  ")}
    assert lines["ports"].startswith("  FIX") and f"port {port} is in use" in lines["ports"]
    for check in ("python", "local", "packages"):
        assert lines[check].startswith("  ok"), done.stdout
