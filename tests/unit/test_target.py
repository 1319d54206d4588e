"""workshop.target and lab's runners: REPORT lines as CloudWatch records them, CLI failures, the local-only marker."""

from __future__ import annotations

import subprocess

import pytest

from workshop import lab
from workshop.target import CommandFailed, parse_report

COLD = ("REPORT RequestId: 8df7f96f-0650-4f75-b978-bce157a9c506\tDuration: 0.65 ms\tBilled Duration: 115 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 15 MB\tInit Duration: 114.28 ms\t\n")


def test_a_report_line_as_cloudwatch_records_it_is_parsed() -> None:
    report = parse_report(COLD)
    assert report.request_id == "8df7f96f-0650-4f75-b978-bce157a9c506"
    assert (report.duration_ms, report.billed_duration_ms, report.memory_size_mb) == (0.65, 115, 128)
    assert report.init_duration_ms == 114.28 and report.status is None
    assert report.line() == COLD.rstrip()


def test_a_platform_error_and_a_warm_call_are_told_apart() -> None:
    failed = parse_report("REPORT RequestId: r1\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\tMemory Size: 128 MB\t"
                          "Max Memory Used: 40 MB\tStatus: error\tError Type: Runtime.ExitError")
    assert (failed.status, failed.error_type, failed.init_duration_ms) == ("error", "Runtime.ExitError", None)
    assert parse_report("START RequestId: r1 Version: $LATEST") is None
    assert parse_report("REPORT RequestId: r1") is None  # no Duration: not a REPORT line Lambda writes


def test_a_failing_sam_command_raises_with_sams_own_error() -> None:
    with pytest.raises(CommandFailed, match="exited with 2") as caught:
        lab.sam("no-such-command", check=True)
    assert "No such command" in str(caught.value)
    assert lab.sam("no-such-command").returncode == 2  # check=False: the caller reads the result


def test_a_command_that_outlives_its_time_limit_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs["timeout"], stderr=b"still waiting")

    monkeypatch.setattr(subprocess, "run", slow)
    with pytest.raises(CommandFailed, match="timed out"):
        lab.sam("logs", "--tail", timeout=1)


def test_sam_gets_a_region_only_when_the_learner_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def record(command, **kwargs):
        seen.update(kwargs["env"])
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", record)
    lab.sam("build", aws_env={"AWS_PROFILE": "ada"})
    assert "AWS_DEFAULT_REGION" not in seen  # the profile's region wins
    lab.sam("build", aws_env={"AWS_REGION": "eu-west-1"})
    assert seen["AWS_REGION"] == "eu-west-1" and "AWS_DEFAULT_REGION" not in seen
    lab.sam("build", aws_env={})
    assert seen["AWS_DEFAULT_REGION"] == "us-east-1"


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    lab._register_magic()
    yield shell
    InteractiveShell.clear_instance()


def test_a_local_only_cell_runs_locally_and_prints_one_line_on_aws(shell, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("WORKSHOP_TARGET", raising=False)
    shell.run_cell("%%local_only use the AWS Toolkit\nran = 'here'", store_history=False)
    assert shell.user_ns.get("ran") == "here" and lab.LOCAL_ONLY in capsys.readouterr().out

    monkeypatch.setenv("WORKSHOP_TARGET", "aws")
    shell.user_ns.pop("ran")
    shell.run_cell("%%local_only use the AWS Toolkit\nran = 'here'", store_history=False)
    assert "ran" not in shell.user_ns
    assert capsys.readouterr().out.strip() == f"{lab.LOCAL_ONLY}: skipped on AWS. use the AWS Toolkit"


def test_an_error_in_a_local_only_cell_fails_the_cell(shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKSHOP_TARGET", raising=False)
    result = shell.run_cell("%%local_only nothing\nraise KeyError('boom')", store_history=False)
    assert isinstance(result.error_in_exec, KeyError)
