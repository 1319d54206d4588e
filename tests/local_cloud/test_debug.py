"""Debugging a function on the local Lambda runtime (debugpy) with the DAP client workshop.dap:
make the call first, then attach; the call stops at a breakpoint, locals are read, it completes;
no timeout while debugging; a debugged environment serves one invocation only."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import psutil
import pytest

from workshop.dap import DapClient
from localcloud.errors import UnknownFunction
from localcloud.lambda_service.runtime import LambdaRuntime
from localcloud.lambda_service.spec import FunctionSpec

pytestmark = pytest.mark.local_cloud

HANDLERS = Path(__file__).parent / "handlers"
TOY = HANDLERS / "toy.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture
def runtime():
    rt = LambdaRuntime()
    rt.register(FunctionSpec("Toy", "toy.echo", HANDLERS, timeout_s=1.0))
    yield rt
    rt.stop()


def invoke_in_background(call) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        try:
            out["result"] = call()
        except Exception as e:  # noqa: BLE001
            out["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_invoke_stops_at_a_breakpoint_and_completes(runtime):
    port = free_port()
    thread, out = invoke_in_background(lambda: runtime.invoke("Toy", {"n": 41}, debug_port=port))
    line = line_of(TOY, "return event")
    with DapClient.attach("127.0.0.1", port, {str(TOY): [line]}, timeout=60) as dbg:
        stopped = dbg.wait_stopped(timeout=60)
        assert stopped["reason"] == "breakpoint"
        frame = dbg.stack_trace(stopped["threadId"])[0]
        assert (frame["name"], frame["line"]) == ("echo", line)
        assert Path(frame["source"]["path"]).resolve() == TOY.resolve()
        variables = dbg.locals(frame["id"])
        assert variables["event"] == "{'n': 41}"
        assert dbg.evaluate("event['n'] + 1", frame["id"]) == "42"
        time.sleep(1.5)  # past the 1 s timeout: not enforced while debugging
        assert thread.is_alive()
        dbg.continue_(stopped["threadId"])
    thread.join(30)
    result = out["result"]
    assert result.function_error is None and result.json() == {"n": 41}
    assert result.cold_start and result.report.status is None
    record = runtime.records()[-1]
    assert record.debug_port == port
    assert record.stop_reason == "debugged"  # one invocation per debugged environment
    again = runtime.invoke("Toy", {})  # the next call: a fresh, ordinary environment
    assert again.cold_start and runtime.records()[-1].debug_port is None


def test_debug_next_marks_the_next_cold_start(runtime):
    warm = runtime.invoke("Toy", {})
    port = free_port()
    runtime.debug_next("Toy", port)
    assert runtime.debug_pending("Toy") == port
    thread, out = invoke_in_background(lambda: runtime.invoke("Toy", {"x": 1}))  # e.g. from the API
    with DapClient.attach("127.0.0.1", port, {str(TOY): [line_of(TOY, "return event")]}, timeout=60) as dbg:
        stopped = dbg.wait_stopped(timeout=60)
        dbg.continue_(stopped["threadId"])
    thread.join(30)
    result = out["result"]
    assert result.json() == {"x": 1} and result.cold_start
    assert result.environment_id != warm.environment_id  # not the idle warm one
    assert runtime.debug_pending("Toy") is None  # once only
    assert not runtime.invoke("Toy", {}).cold_start  # the warm one is still there
    with pytest.raises(UnknownFunction):
        runtime.debug_next("Nope", port)


def test_an_unattached_debug_environment_dies_with_the_runtime(runtime):
    port = free_port()
    # other clouds' environments stay warm for minutes: only the processes this invoke started count
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    thread, out = invoke_in_background(lambda: runtime.invoke("Toy", {}, debug_port=port))
    client = DapClient.connect("127.0.0.1", port, timeout=60)  # listening: it waits for us
    client.close()
    pids = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert pids and thread.is_alive()
    runtime.stop()
    thread.join(15)
    assert not thread.is_alive() and "error" in out or out["result"].function_error
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in pids)


def test_the_control_endpoint_debugs_the_next_api_call_and_one_invoke(sns_cloud):
    """What `python -m workshop debug` and `python -m workshop invoke --debug-port` ask the running `up` for."""
    import json
    import urllib.request

    control = sns_cloud.control_url.rstrip("/")
    ping = sns_cloud.runtime.spec("PingFunction").code_dir / "thumbnailr" / "handlers" / "ping.py"
    line = line_of(ping, "return {")

    port = free_port()
    request = urllib.request.Request(f"{control}/debug/PingFunction", data=json.dumps({"port": port}).encode(),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read()) == {"function": "PingFunction", "debug_port": port}
    thread, out = invoke_in_background(
        lambda: urllib.request.urlopen(sns_cloud.api_url + "ping", timeout=60).read())  # through the API
    with DapClient.attach("127.0.0.1", port, {str(ping): [line]}, timeout=60) as dbg:
        stopped = dbg.wait_stopped(timeout=60)
        frame = dbg.stack_trace(stopped["threadId"])[0]
        assert dbg.evaluate("event['path']", frame["id"]) == "'/ping'"
        dbg.continue_(stopped["threadId"])
    thread.join(30)
    assert json.loads(out["result"]) == {"ok": True}

    port = free_port()
    request = urllib.request.Request(f"{control}/invoke/PingFunction?debug_port={port}", data=b"{}", method="POST")
    thread, out = invoke_in_background(lambda: json.loads(urllib.request.urlopen(request, timeout=60).read()))
    with DapClient.attach("127.0.0.1", port, {str(ping): [line]}, timeout=60) as dbg:
        dbg.continue_(dbg.wait_stopped(timeout=60)["threadId"])
    thread.join(30)
    assert out["result"]["cold_start"] and out["result"]["function_error"] is None

    bad = urllib.request.Request(f"{control}/invoke/PingFunction?debug_port=nope", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bad, timeout=10)
    assert refused.value.code == 400
