"""``python -m workshop``: refusals and errors without tracebacks, and one real ``up`` ... ``down``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from workshop import cli

pytestmark = pytest.mark.local_cloud

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = ["CreateUploadFunction", "PingFunction"]


@pytest.fixture
def state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state.json"
    monkeypatch.setenv("WORKSHOP_STATE_FILE", str(path))
    return path


def _fake_running_state(path: Path, **extra: Any) -> dict:
    """A state file naming a live process (this one) as the running `up`."""
    state = {"Pid": os.getpid(), "LocalApiUrl": "http://127.0.0.1:1/", "AwsEndpointUrl": "http://localhost:1",
             "Region": "us-east-1", "ControlUrl": "http://127.0.0.1:1/", "Functions": FUNCTIONS, **extra}
    path.write_text(json.dumps(state))
    return state


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_up_refuses_when_one_is_running(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = _fake_running_state(state_file)
    code, _, err = _run(capsys, "up", "--port", "0")
    assert code == 1
    assert "already running" in err and str(os.getpid()) in err and "workshop down" in err
    assert json.loads(state_file.read_text()) == state  # nothing changed


def test_nothing_running(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["invoke", "PingFunction"], ["logs", "PingFunction"], ["token", "ada", "--password", "x"], ["env"],
                 ["user", "add", "ada", "--password", "x"], ["status"]):
        code, _, err = _run(capsys, *argv)
        assert code == 1, argv
        assert "not running" in err and "workshop up" in err, err
    code, _, err = _run(capsys, "down")
    assert code == 1 and "nothing is running" in err
    # a state file whose process is gone is stale
    state_file.write_text(json.dumps({"Pid": 2**22 + 12345, "Functions": FUNCTIONS}))
    code, _, err = _run(capsys, "invoke", "PingFunction")
    assert code == 1 and "not running" in err


def test_unknown_function_lists_the_known_ones(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_running_state(state_file)
    for argv in (["invoke", "NoSuchFunction"], ["logs", "NoSuchFunction"]):
        code, _, err = _run(capsys, *argv)
        assert code == 2
        assert "unknown function 'NoSuchFunction'" in err and ", ".join(FUNCTIONS) in err


def test_bad_event_file(state_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_running_state(state_file)
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": json}')
    code, _, err = _run(capsys, "invoke", "PingFunction", "--event", str(bad))
    assert code == 2 and "not valid JSON" in err and str(bad) in err
    code, _, err = _run(capsys, "invoke", "PingFunction", "--event", str(tmp_path / "missing.json"))
    assert code == 2 and "does not exist" in err


def test_port_taken(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = _run(capsys, "up", "--port", str(port))
    assert code == 1
    assert f"port {port}" in err and "taken" in err and "--port" in err
    assert not state_file.exists()


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "up", "--dispatch", "carrier-pigeon")[0] == 2
    assert _run(capsys, "up", "--concurrency", "0")[0] == 2
    assert _run(capsys, "up", "--concurrency", "many")[0] == 2
    assert _run(capsys, "user")[0] == 2
    assert _run(capsys)[0] == 2
    code, _, err = _run(capsys, "logs", "PingFunction", "--since", "yesterday")
    assert code in (1, 2)


def _wait(predicate, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_real_up_token_invoke_logs_down(state_file: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, "WORKSHOP_STATE_FILE": str(state_file), "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "up.log").open("w")
    started = time.monotonic()
    up = subprocess.Popen([sys.executable, "-m", "workshop", "up", "--port", "0", "--concurrency", "150"], cwd=REPO, env=env,
                          stdout=log, stderr=subprocess.STDOUT)
    try:
        state = _wait(lambda: state_file.exists() and json.loads(state_file.read_text()), 30, "state.json")
        ready_s = time.monotonic() - started
        print(f"`up` ready in {ready_s:.1f} s")
        # how fast `up` gets ready is measured by benchmarks.local_runtime, not asserted: timed tests flake
        assert state["Pid"] == up.pid
        for key in ("ApiUrl", "UserPoolId", "UserPoolClientId", "AwsEndpointUrl", "Region", "Dispatch", "ControlUrl"):
            assert state.get(key), key
        assert state["Dispatch"] == "sns" and state["AwsEndpointUrl"].startswith("http://127.0.0.1:")
        capsys.readouterr()

        assert _run(capsys, "user", "add", "ada", "--password", "Passw0rd!")[0] == 0
        code, out, _ = _run(capsys, "token", "ada", "--password", "Passw0rd!")
        assert code == 0 and out.strip().count(".") == 2
        code, _, err = _run(capsys, "token", "ada", "--password", "wrong")
        assert code == 1 and "wrong user name or password" in err

        code, out, err = _run(capsys, "invoke", "PingFunction")
        assert code == 0
        assert json.loads(out)["statusCode"] == 200
        assert "REPORT RequestId:" in err and "Init Duration" in err  # cold
        code, out, err = _run(capsys, "invoke", "PingFunction", "--event", str(REPO / "sam-app/events/ping.json"))
        assert code == 0 and "REPORT RequestId:" in err and "Init Duration" not in err  # warm: the same environment

        # eval "$(python -m workshop env)" aims a shell's aws at the running cloud
        code, out, _ = _run(capsys, "env")
        assert code == 0 and f"export AWS_ENDPOINT_URL={state['AwsEndpointUrl']}" in out.splitlines()
        shell = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        shell.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{shell.get('PATH', '')}", EXPORTS=out)
        listed = subprocess.run(["bash", "-c", 'eval "$EXPORTS" && aws lambda list-functions --output json'],
                                env=shell, capture_output=True, text=True, timeout=60, check=False)
        assert listed.returncode == 0, listed.stderr
        assert any(f["FunctionName"].startswith("thumbnailr-PingFunction-")
                   for f in json.loads(listed.stdout)["Functions"])
        settings = subprocess.run(["bash", "-c", 'eval "$EXPORTS" && aws lambda get-account-settings --output json'],
                                  env=shell, capture_output=True, text=True, timeout=60, check=False)
        assert json.loads(settings.stdout)["AccountLimit"]["ConcurrentExecutions"] == 150  # up --concurrency 150

        def logs_have_report() -> str | None:
            code, out, _ = _run(capsys, "logs", "PingFunction")
            return out if code == 0 and out.count("REPORT RequestId:") >= 2 else None

        out = _wait(logs_have_report, 15, "the REPORT lines in CloudWatch Logs")
        assert "[$LATEST]" in out  # the environment's log stream
        code, out, _ = _run(capsys, "logs", "PingFunction", "--filter", "REPORT", "--since", "5m")
        assert code == 0 and out and all("REPORT" in line for line in out.splitlines())
        assert not any(line.endswith("\t") for line in out.splitlines())  # CloudWatch's "\t\n": one line each

        code, _, err = _run(capsys, "up", "--port", "0")
        assert code == 1 and "already running" in err

        code, out, _ = _run(capsys, "down")
        assert code == 0 and "stopped" in out
        assert up.wait(20) == 0
        assert not state_file.exists()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(10)
        log.close()
    text = (tmp_path / "up.log").read_text()
    assert "Traceback" not in text, text
    assert "The local cloud is up" in text and "Stopped." in text


def test_up_escapes_control_characters_from_requests_and_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    import base64 as b64

    from localcloud.apigateway.cognito import CognitoVerifier
    from localcloud.apigateway.gateway import LocalApiGateway, Route

    echo, access = cli._printers(quiet=False)  # what `up` prints with
    records: list[dict] = []

    def log(info: dict) -> None:
        records.append(info)
        access(info)

    def part(data: dict) -> str:
        return b64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    forged_alg = "RS256\n12:00:00 GET /admin 200 1 ms -> AdminFunction"  # a newline in the token's alg
    token = f"{part({'alg': forged_alg, 'kid': 'k'})}.{part({'sub': 'x'})}.c2ln"
    verifier = CognitoVerifier(jwks_url="http://127.0.0.1:1/jwks.json", issuer="https://issuer",
                               app_client_ids=["client"])
    with LocalApiGateway(routes=[Route("GET", "/me", "Me", True)], invoke=lambda f, e: None,  # type: ignore[arg-type, return-value]
                         verifier=verifier, on_request=log) as gw:
        for raw in (b"GET /me HTTP/1.1\r\nHost: h\r\nAuthorization: " + token.encode() + b"\r\nConnection: close\r\n\r\n",
                    b"GET /\x1b[2J\x1b]0;pwned\x07 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
                sock.sendall(raw)
                assert sock.recv(65536).startswith(b"HTTP/1.1 4")
            deadline = time.monotonic() + 5
            while len(records) < (1 if b"/me" in raw else 2) and time.monotonic() < deadline:
                time.sleep(0.005)  # the access record is written after the answer
    echo("Fn\x1b[31m", ["log line with \x1b[31mcolour\x1b[0m\tand a tab"])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    lines = out.splitlines()
    assert len(lines) == 3  # one line per request and per log line: nothing forged
    assert "\\n12:00:00 GET /admin" in lines[0] and lines[0].endswith("accepted))")
    assert "/\\x1b[2J\\x1b]0;pwned\\x07 403" in lines[1]
    assert lines[2] == "[Fn\\x1b[31m] log line with \\x1b[31mcolour\\x1b[0m\tand a tab"
