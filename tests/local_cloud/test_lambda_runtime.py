"""The local Lambda service (localcloud.lambda_service): real awslambdaric processes behind a local
Runtime API, held to what Lambda does: cold and warm starts, concurrency and throttling, the
REPORT line, timeouts, memory, errors, logs, the environment, and cleaning up."""

from __future__ import annotations

import math
import re
import statistics
import threading
import time
from pathlib import Path

import psutil
import pytest

from localcloud.errors import RequestTooLarge, Throttled, UnknownFunction
from localcloud.lambda_service import environment
from localcloud.lambda_service.runtime import LambdaRuntime
from localcloud.lambda_service.spec import FunctionSpec, Report, cloudwatch_message

pytestmark = pytest.mark.local_cloud

HANDLERS = Path(__file__).parent / "handlers"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
REPORT_RE = re.compile(
    rf"^REPORT RequestId: (?P<id>{UUID})\tDuration: (?P<duration>\d+\.\d\d) ms"
    r"\tBilled Duration: (?P<billed>\d+) ms\tMemory Size: (?P<size>\d+) MB"
    r"\tMax Memory Used: (?P<used>\d+) MB(?:\tInit Duration: (?P<init>\d+\.\d\d) ms)?"
    r"(?:\tStatus: (?P<status>\w+)(?:\tError Type: (?P<error_type>[\w.]+))?)?$"
)
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def spec(name: str, handler: str, **kw) -> FunctionSpec:
    return FunctionSpec(name=name, handler=handler, code_dir=HANDLERS, **kw)


def descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def inside(result) -> list[str]:
    """The log lines between START and END."""
    lines = result.log_lines
    start = lines.index(f"START RequestId: {result.request_id} Version: $LATEST")
    end = lines.index(f"END RequestId: {result.request_id}")
    return lines[start + 1 : end]


def before_start(result) -> list[str]:
    return result.log_lines[: result.log_lines.index(f"START RequestId: {result.request_id} Version: $LATEST")]


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def pid_gone(pid: int) -> bool:
    """Killed and reaped: a zombie would still exist."""
    return not psutil.pid_exists(pid)


@pytest.fixture
def make_runtime():
    made: list[LambdaRuntime] = []

    def make(**kw) -> LambdaRuntime:
        runtime = LambdaRuntime(**kw)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.stop()


@pytest.fixture
def runtime(make_runtime) -> LambdaRuntime:
    return make_runtime()


def in_threads(n: int, target, *args) -> list:
    """Run target(*args) in n threads released together; return results (or exceptions)."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(*args)
        except Exception as exc:  # noqa: BLE001
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


# --------------------------------------------------------------------------- REPORT line


def test_report_line_is_cloudwatchs_format():
    warm = Report("rid", 12.345, 13, 128, 45, None)
    assert warm.line() == (
        "REPORT RequestId: rid\tDuration: 12.35 ms\tBilled Duration: 13 ms"
        "\tMemory Size: 128 MB\tMax Memory Used: 45 MB"
    )
    cold = Report("rid", 12.34, 243, 128, 45, 230.45)
    assert cold.line().endswith("\tMax Memory Used: 45 MB\tInit Duration: 230.45 ms")
    oom = Report("rid", 1.0, 1, 128, 128, None, status="error", error_type="Runtime.OutOfMemory")
    assert oom.line().endswith("\tStatus: error\tError Type: Runtime.OutOfMemory")
    # CloudWatch's messages: START and END end in a newline, REPORT in a tab and a newline
    assert cloudwatch_message(warm.line()) == warm.line() + "\t\n"
    assert cloudwatch_message("START RequestId: rid Version: $LATEST") == "START RequestId: rid Version: $LATEST\n"
    assert cloudwatch_message("END RequestId: rid") == "END RequestId: rid\n"
    assert cloudwatch_message("printed\n") == "printed\n"  # already whole: not a second newline


# --------------------------------------------------------------------------- cold / warm


def test_cold_start_then_the_environment_is_reused(runtime):
    runtime.register(spec("Echo", "toy.echo"))
    assert runtime.functions() == ["Echo"]

    first = runtime.invoke("Echo", {"hello": "world"})
    assert first.json() == {"hello": "world"}
    assert first.function_error is None
    assert first.cold_start
    assert first.report.init_duration_ms is not None and first.report.init_duration_ms > 0
    m = REPORT_RE.match(first.log_lines[-1])
    assert m and m["id"] == first.request_id and m["init"] and m["size"] == "128"
    assert first.log_lines[-1] == first.report.line()
    assert first.log_lines[-2] == f"END RequestId: {first.request_id}"
    # INIT_START, then what the module printed while imported, then START
    assert before_start(first)[0].startswith("INIT_START Runtime Version: python:3.13")
    assert "toy: module imported" in before_start(first)
    assert first.report.billed_duration_ms == math.ceil(
        first.report.duration_ms + first.report.init_duration_ms
    )
    assert 1 <= first.report.max_memory_used_mb < 128

    second = runtime.invoke("Echo", [1, 2, 3])
    assert second.json() == [1, 2, 3]
    assert not second.cold_start
    assert second.environment_id == first.environment_id
    assert second.report.init_duration_ms is None
    m = REPORT_RE.match(second.log_lines[-1])
    assert m and m["id"] == second.request_id and m["init"] is None and m["status"] is None
    assert second.log_lines[0] == f"START RequestId: {second.request_id} Version: $LATEST"
    assert second.report.billed_duration_ms == max(1, math.ceil(second.report.duration_ms))
    assert second.request_id != first.request_id

    (record,) = runtime.records()
    assert record.function == "Echo" and record.id == first.environment_id
    assert [inv[0] for inv in record.invocations] == [first.request_id, second.request_id]


def test_records_make_a_timeline(runtime):
    runtime.register(spec("Echo", "toy.echo"))
    results = [runtime.invoke("Echo", i) for i in range(3)]
    (record,) = runtime.records()
    assert record.origin <= record.spawned_at < record.init_end_at
    assert record.init_duration_ms == pytest.approx((record.init_end_at - record.spawned_at) * 1000)
    assert record.init_duration_ms == results[0].report.init_duration_ms
    assert record.pid and record.log_stream == results[0].log_stream
    previous_end = record.init_end_at
    for (request_id, start, end, duration_ms), result in zip(record.invocations, results):
        assert request_id == result.request_id
        assert previous_end <= start <= end
        assert duration_ms == pytest.approx((end - start) * 1000)
        assert duration_ms == result.report.duration_ms
        previous_end = end
    assert record.stopped_at is None and record.stop_reason is None
    runtime.stop()
    (record,) = runtime.records()
    assert record.stop_reason == "shutdown" and record.stopped_at >= previous_end


def test_warm_invoke_has_no_delayed_ack_stall(runtime):
    runtime.register(spec("Echo", "toy.echo"))
    runtime.invoke("Echo", {})
    timings = []
    for i in range(40):
        t = time.perf_counter()
        runtime.invoke("Echo", {"i": i})
        timings.append(time.perf_counter() - t)
    assert statistics.median(timings) < 0.020  # a 40 ms delayed-ACK stall would show


def test_an_init_longer_than_the_init_phase_goes_on_under_the_timeout(runtime, monkeypatch):
    monkeypatch.setattr(environment, "INIT_PHASE_TIMEOUT_S", 0.2)  # Lambda's is 10 s
    runtime.register(spec("Slow", "slow_init.handler", timeout_s=3))
    r = runtime.invoke("Slow", {})
    assert r.function_error is None and r.report.init_duration_ms >= 500
    assert "INIT_REPORT Init Duration: 200.00 ms\tPhase: init\tStatus: timeout" in before_start(r)

    runtime.register(spec("TooSlow", "slow_init.handler", timeout_s=0.1))
    r = runtime.invoke("TooSlow", {})
    assert r.json()["errorType"] == "Sandbox.Timedout"
    assert runtime.records()[-1].stop_reason == "timeout"


def test_slow_init_shows_in_init_duration(runtime):
    runtime.register(spec("Slow", "slow_init.handler"))
    cold = runtime.invoke("Slow", {})
    assert cold.json() == {"init_seconds": 0.5}
    assert cold.report.init_duration_ms >= 500
    assert cold.report.duration_ms < 500  # the handler itself is quick
    warm = runtime.invoke("Slow", {})
    assert not warm.cold_start and warm.report.init_duration_ms is None


# --------------------------------------------------------------------------- concurrency


def test_concurrent_invocations_start_more_environments(runtime):
    runtime.register(spec("Sleep", "toy.sleep"))
    first = in_threads(3, runtime.invoke, "Sleep", {"seconds": 0.4})
    assert all(r.function_error is None for r in first), first
    assert all(r.cold_start for r in first)
    envs = {r.environment_id for r in first}
    assert len(envs) == 3
    assert len({r.json()["pid"] for r in first}) == 3

    again = in_threads(3, runtime.invoke, "Sleep", {"seconds": 0.1})
    assert not any(r.cold_start for r in again)
    assert {r.environment_id for r in again} == envs
    assert len(runtime.records()) == 3


def test_past_reserved_concurrency_invocations_are_throttled(runtime):
    runtime.register(spec("Sleep", "toy.sleep", reserved_concurrency=2))
    threads = [threading.Thread(target=runtime.invoke, args=("Sleep", {"seconds": 0.8})) for _ in range(2)]
    for t in threads:
        t.start()
    wait_until(lambda: len(runtime.records()) == 2)  # both in flight
    with pytest.raises(Throttled) as info:
        runtime.invoke("Sleep", {"seconds": 0})
    assert info.value.reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert str(info.value) == "Rate Exceeded."
    for t in threads:
        t.join()
    assert not runtime.invoke("Sleep", {"seconds": 0}).cold_start  # capacity is back
    assert len(runtime.records()) == 2  # throttling did not start anything


def test_account_concurrency_is_shared_by_unreserved_functions(make_runtime):
    runtime = make_runtime(account_concurrency=3)
    runtime.register(spec("A", "toy.sleep"))
    runtime.register(spec("B", "toy.sleep"))
    threads = [threading.Thread(target=runtime.invoke, args=(name, {"seconds": 0.8})) for name in ("A", "B", "B")]
    for t in threads:
        t.start()
    wait_until(lambda: len(runtime.records()) == 3)
    with pytest.raises(Throttled) as info:
        runtime.invoke("A", {"seconds": 0})
    assert info.value.reason == "ConcurrentInvocationLimitExceeded"
    for t in threads:
        t.join()
    assert runtime.invoke("A", {"seconds": 0}).function_error is None  # the pool is back


def test_reservations_leave_100_unreserved(make_runtime):
    # https://docs.aws.amazon.com/lambda/latest/dg/API_PutFunctionConcurrency.html
    runtime = make_runtime(account_concurrency=103)
    assert runtime.min_unreserved == 100
    runtime.register(spec("Reserved", "toy.sleep", reserved_concurrency=2))
    with pytest.raises(ValueError, match=r"below its minimum value of \[100\]"):
        runtime.register(spec("Greedy", "toy.sleep", reserved_concurrency=2))
    runtime.register(spec("Greedy", "toy.sleep", reserved_concurrency=1))  # 103 - 2 - 1 = 100 left: fine
    with pytest.raises(ValueError, match=r"minimum value of \[100\]"):
        runtime.set_reserved_concurrency("Reserved", 3)
    small = make_runtime(account_concurrency=10)  # an account under 100 (new accounts start lower) reserves nothing
    with pytest.raises(ValueError, match=r"minimum value of \[10\]"):
        small.register(spec("Any", "toy.sleep", reserved_concurrency=1))
    assert make_runtime().account_concurrency == 1000  # Lambda's default quota


def test_reserved_concurrency_zero_throttles_everything(runtime):
    runtime.register(spec("Off", "toy.echo", reserved_concurrency=0))
    with pytest.raises(Throttled):
        runtime.invoke("Off", {})
    assert runtime.records() == []


def test_many_threads_at_once(make_runtime):
    runtime = make_runtime(account_concurrency=3)
    runtime.register(spec("Echo", "toy.echo"))

    def hammer(i: int):
        out = []
        for j in range(15):
            try:
                r = runtime.invoke("Echo", {"i": i, "j": j})
                assert r.json() == {"i": i, "j": j}
                out.append(r)
            except Throttled:
                out.append(None)
        return out

    results = in_threads(6, lambda: hammer(threading.get_ident()))
    flat = [r for rs in results for r in rs]
    assert not any(isinstance(r, Exception) for r in results), results
    ok = [r for r in flat if r is not None]
    assert ok, "every call was throttled"
    assert len({r.environment_id for r in ok}) <= 3
    assert len({r.request_id for r in ok}) == len(ok)


# --------------------------------------------------------------------------- idle environments, the memory budget


def test_a_steady_trickle_of_users_stays_warm(make_runtime):
    """5 users each calling three functions in turn (at most 5 at once per function), twice: at most one cold start
    per user and function in all, and nothing reclaimed (the old "10 environments in all" kept reclaiming and
    starting them again). The second round may still start one: its calls can line up 5 at once on a function
    where the first round's never went past 4."""
    runtime = make_runtime()
    names = ("Api", "Worker", "Other")
    for name in names:
        runtime.register(spec(name, "toy.sleep"))

    def user() -> list:
        return [runtime.invoke(name, {"seconds": 0.01}) for _ in range(6) for name in names]

    results = [r for _ in range(2) for rs in in_threads(5, user) for r in rs]
    assert not any(isinstance(r, Exception) for r in results), results
    assert len(results) == 180 and {r.function_name for r in results} == set(names)
    for name in names:  # never more environments than calls at once
        assert sum(r.cold_start for r in results if r.function_name == name) <= 5, name
    assert all(rec.stop_reason is None for rec in runtime.records())  # nothing was reclaimed


def test_idle_environments_outlive_the_old_reclaim_and_stop_after_their_lifetime(make_runtime):
    runtime = make_runtime(idle_lifetime_s=1.5)
    runtime.register(spec("Echo", "toy.echo"))
    first = runtime.invoke("Echo", {})
    time.sleep(0.6)  # idle, well past no time at all
    warm = runtime.invoke("Echo", {})
    assert not warm.cold_start and warm.environment_id == first.environment_id
    (record,) = runtime.records()
    wait_until(lambda: runtime.records()[0].stop_reason is not None, timeout=4)
    record = runtime.records()[0]
    assert record.stop_reason == "idle"
    wait_until(lambda: pid_gone(record.pid))  # killed and reaped
    assert record.stopped_at - record.invocations[-1][2] >= 1.5
    assert runtime.invoke("Echo", {}).cold_start


def test_the_memory_budget_reclaims_idle_environments_then_throttles(make_runtime):
    runtime = make_runtime(memory_budget_mb=256)  # two 128 MB environments
    runtime.register(spec("A", "toy.sleep"))
    runtime.register(spec("B", "toy.sleep"))
    a = runtime.invoke("A", {"seconds": 0})
    b = runtime.invoke("B", {"seconds": 0})
    assert runtime.invoke("A", {"seconds": 0}).environment_id == a.environment_id  # both kept: within budget
    # a second A at once: no room, B's idle environment (the least recently used) makes it
    pair = in_threads(2, runtime.invoke, "A", {"seconds": 0.5})
    assert all(r.function_error is None for r in pair), pair
    b_record = next(r for r in runtime.records() if r.id == b.environment_id)
    assert b_record.stop_reason == "reclaimed"
    wait_until(lambda: pid_gone(b_record.pid))
    # both A environments busy and the budget spent: B is throttled, as the account's limit would
    threads = [threading.Thread(target=runtime.invoke, args=("A", {"seconds": 0.8})) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # both warm invocations under way
    with pytest.raises(Throttled) as info:
        runtime.invoke("B", {"seconds": 0})
    assert info.value.reason == "ConcurrentInvocationLimitExceeded"
    for t in threads:
        t.join()
    assert runtime.invoke("B", {"seconds": 0}).cold_start  # room again: an idle A made way


# --------------------------------------------------------------------------- limits


def test_timeout_kills_reports_and_the_next_call_is_cold(runtime):
    runtime.register(spec("Sleep", "toy.sleep", timeout_s=0.5))
    t = time.monotonic()
    r = runtime.invoke("Sleep", {"seconds": 30})
    assert time.monotonic() - t < 5
    assert r.function_error == "Unhandled"
    assert r.json() == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {r.request_id} Error: Task timed out after 0.50 seconds",
    }
    assert re.fullmatch(rf"{ISO} {r.request_id} Task timed out after 0\.50 seconds", inside(r)[-1])
    m = REPORT_RE.match(r.log_lines[-1])
    assert m and m["duration"] == "500.00" and m["status"] == "timeout"
    (record,) = runtime.records()
    assert record.stop_reason == "timeout" and pid_gone(record.pid)

    after = runtime.invoke("Sleep", {"seconds": 0})
    assert after.cold_start and after.function_error is None
    assert after.environment_id != r.environment_id


def test_memory_limit(runtime):
    runtime.register(spec("Hog", "toy.hog", memory_mb=192, timeout_s=10))
    fits = runtime.invoke("Hog", {"mb": 64})
    assert fits.json() == {"allocated_mb": 64}
    assert 64 < fits.report.max_memory_used_mb < 192

    r = runtime.invoke("Hog", {"mb": 1024})
    assert r.function_error == "Unhandled"
    assert r.json() == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {r.request_id} Error: Runtime exited with error: signal: killed",
    }
    assert r.report.max_memory_used_mb == 192 and r.report.memory_size_mb == 192
    m = REPORT_RE.match(r.log_lines[-2])
    assert m and m["status"] == "error" and m["error_type"] == "Runtime.OutOfMemory" and m["used"] == "192"
    assert r.log_lines[-1] == (
        f"RequestId: {r.request_id} Error: Runtime exited with error: signal: killed\nRuntime.ExitError"
    )
    assert runtime.records()[0].stop_reason == "out_of_memory"
    assert pid_gone(runtime.records()[0].pid)

    assert runtime.invoke("Hog", {"mb": 0}).cold_start


def test_response_over_6_mb(runtime):
    runtime.register(spec("Big", "toy.big_response"))
    assert runtime.invoke("Big", {"size": 1024}).function_error is None
    r = runtime.invoke("Big", {"size": 7 * 1024 * 1024})
    assert r.function_error == "Unhandled"
    assert r.json() == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    assert any("413" in line for line in inside(r))  # awslambdaric's own complaint
    assert runtime.invoke("Big", {"size": 10}).cold_start  # awslambdaric exits after a 413


def test_request_over_6_mb_is_refused(runtime):
    runtime.register(spec("Echo", "toy.echo"))
    with pytest.raises(RequestTooLarge):
        runtime.invoke("Echo", b'"' + b"x" * (6 * 1024 * 1024) + b'"')
    assert runtime.records() == []


# --------------------------------------------------------------------------- errors


def test_handler_exception(runtime):
    runtime.register(spec("Boom", "toy.boom"))
    r = runtime.invoke("Boom", {"message": "bad input"})
    assert r.function_error == "Unhandled"
    body = r.json()
    assert body["errorType"] == "ValueError" and r.error_type == "ValueError"
    assert body["errorMessage"] == "bad input"
    assert body["requestId"] == r.request_id
    assert any("toy.py" in frame and "in boom" in frame for frame in body["stackTrace"])
    (logged,) = [line for line in inside(r) if line.startswith("[ERROR]")]
    assert logged.startswith("[ERROR] ValueError: bad input\nTraceback (most recent call last):")
    assert REPORT_RE.match(r.log_lines[-1])["status"] is None
    again = runtime.invoke("Boom", {"message": "again"})  # a function error keeps the environment
    assert not again.cold_start and again.environment_id == r.environment_id


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("init_boom.handler", "RuntimeError", "cannot initialise: missing configuration"),
        ("no_such_module.handler", "Runtime.ImportModuleError",
         "Unable to import module 'no_such_module': No module named 'no_such_module'"),
        ("toy.no_such_function", "Runtime.HandlerNotFound", "Handler 'no_such_function' missing on module 'toy'"),
    ],
)
def test_crash_at_init(runtime, handler, error_type, message):
    runtime.register(spec("Broken", handler))
    r = runtime.invoke("Broken", {})
    assert r.function_error == "Unhandled"
    assert r.cold_start
    body = r.json()
    assert body["errorType"] == error_type and body["errorMessage"] == message
    assert body["requestId"] == "" and isinstance(body["stackTrace"], list)
    assert any(line.startswith("INIT_REPORT Init Duration: ") and f"Error Type: {error_type}" in line
               for line in before_start(r))
    assert any(line.startswith(f"[ERROR] {error_type}: {message}") for line in before_start(r))
    m = REPORT_RE.match(r.log_lines[-1])
    assert m and m["status"] == "error" and m["error_type"] == error_type
    (record,) = runtime.records()
    assert record.stop_reason == "init_error" and pid_gone(record.pid)
    if handler.startswith("init_boom"):
        assert "init_boom: about to fail" in before_start(r)
        assert any("init_boom.py" in frame for frame in body["stackTrace"])
    again = runtime.invoke("Broken", {})  # a failed init is retried on the next invoke
    assert again.cold_start and again.environment_id != r.environment_id


def test_process_exiting_mid_invocation(runtime):
    runtime.register(spec("Exit", "toy.exit_now"))
    r = runtime.invoke("Exit", {"code": 3})
    assert r.json() == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {r.request_id} Error: Runtime exited with error: exit status 3",
    }
    report = REPORT_RE.match(r.log_lines[-2])
    assert report["status"] == "error" and report["error_type"] == "Runtime.ExitError"
    # in CloudWatch: "...\tStatus: error\tError Type: Runtime.ExitError\t\n", then Lambda's own two lines
    assert cloudwatch_message(r.log_lines[-2]).endswith("\tStatus: error\tError Type: Runtime.ExitError\t\n")
    assert cloudwatch_message(r.log_lines[-1]) == (f"RequestId: {r.request_id} Error: Runtime exited with error: "
                                                   "exit status 3\nRuntime.ExitError\n")
    assert runtime.records()[0].stop_reason == "exited"
    assert runtime.invoke("Exit", {"code": 0}).cold_start


def test_unknown_function(runtime):
    with pytest.raises(UnknownFunction) as info:
        runtime.invoke("Nope", {})
    assert isinstance(info.value, KeyError)
    assert str(info.value) == "Function not found: arn:aws:lambda:us-east-1:123456789012:function:Nope"


# --------------------------------------------------------------------------- logs


def test_function_output_is_logged_between_start_and_end(make_runtime):
    sunk: list[tuple[str, list[str]]] = []
    runtime = make_runtime(log_sink=lambda name, lines, stream: sunk.append((name, lines)))
    runtime.register(spec("Printer", "toy.print_lines"))
    r = runtime.invoke("Printer", {"n": 3})
    assert inside(r) == ["line 0", "line 1", "line 2", "to stderr", "no newline at the end"]
    assert sunk == [("Printer", r.log_lines)]
    warm = runtime.invoke("Printer", {"n": 1})
    assert warm.log_lines[:2] == [f"START RequestId: {warm.request_id} Version: $LATEST", "line 0"]
    assert len(sunk) == 2


# --------------------------------------------------------------------------- environment


def test_the_environment_is_lambdas_and_nothing_leaks_from_the_parent(make_runtime, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "parents-profile")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA_PARENTS_REAL_KEY")  # shaped so no secret scanner takes it for real
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "parents-real-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "parents-real-token")
    monkeypatch.setenv("SOME_PARENT_SETTING", "1")
    runtime = make_runtime(
        base_env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                  "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"},
        region="eu-west-1",
    )
    runtime.register(spec("Env", "toy.environment", memory_mb=256, environment={"TABLE_NAME": "photos"}))
    r = runtime.invoke("Env", {})
    env = r.json()
    for leaked in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "SOME_PARENT_SETTING"):
        assert leaked not in env
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    assert env["TABLE_NAME"] == "photos"
    code_dir = str(HANDLERS.resolve())
    assert env["_HANDLER"] == "toy.environment"
    assert env["LAMBDA_TASK_ROOT"] == code_dir and env["PYTHONPATH"] == code_dir
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "Env"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/Env"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", env["AWS_LAMBDA_LOG_STREAM_NAME"])
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == r.log_stream
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.13"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["TZ"] == ":UTC"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")


def test_the_context_object(runtime):
    runtime.register(spec("Ctx", "toy.context_info", timeout_s=3))
    r = runtime.invoke("Ctx", {}, client_context={"custom": {"app": "notebook"}, "env": {}, "client": {}})
    ctx = r.json()
    assert ctx["aws_request_id"] == r.request_id
    assert ctx["function_name"] == "Ctx" and ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:Ctx"
    assert ctx["memory_limit_in_mb"] == "128"  # awslambdaric reads it from the environment
    assert ctx["log_group_name"] == "/aws/lambda/Ctx" and ctx["log_stream_name"] == r.log_stream
    assert 2000 < ctx["remaining_ms"] <= 3000
    assert ctx["client_context_custom"] == {"app": "notebook"}
    assert ctx["trace_id"].startswith("Root=1-")
    assert ctx["cwd"] == str(HANDLERS.resolve())


def test_reserved_variables_are_refused(runtime):
    with pytest.raises(ValueError, match="reserved keys"):
        runtime.register(spec("Bad", "toy.echo", environment={"AWS_REGION": "eu-west-1"}))


def test_registering_again_replaces_the_environments(runtime):
    runtime.register(spec("Env", "toy.environment", environment={"VERSION": "1"}))
    assert runtime.invoke("Env", {}).json()["VERSION"] == "1"
    runtime.register(spec("Env", "toy.environment", environment={"VERSION": "2"}))
    r = runtime.invoke("Env", {})
    assert r.cold_start and r.json()["VERSION"] == "2"
    assert [rec.stop_reason for rec in runtime.records()] == ["replaced", None]
    runtime.reset("Env")  # force a cold start
    assert runtime.invoke("Env", {}).cold_start
    assert [rec.stop_reason for rec in runtime.records()] == ["replaced", "reset", None]


# --------------------------------------------------------------------------- cleaning up


def test_stop_leaves_no_process_or_thread_behind(make_runtime):
    before = descendants()
    runtime = make_runtime()
    runtime.register(spec("Echo", "toy.echo"))
    runtime.register(spec("Sleep", "toy.sleep", timeout_s=30))
    runtime.invoke("Echo", {})
    in_flight: list = []
    t = threading.Thread(target=lambda: in_flight.append(runtime.invoke("Sleep", {"seconds": 20})))
    t.start()
    wait_until(lambda: len(runtime.records()) == 2 and runtime.records()[1].init_end_at is not None)
    pids = {record.pid for record in runtime.records()}
    assert pids <= descendants() - before

    runtime.stop()
    t.join(timeout=5)
    assert not t.is_alive()
    (cut_short,) = in_flight  # the invocation that was running when the service stopped
    assert cut_short.error_type == "Runtime.ExitError"
    assert all(pid_gone(pid) for pid in pids)  # killed and reaped: no zombie either
    assert descendants() - before == set()
    assert {record.stop_reason for record in runtime.records()} == {"shutdown"}
    wait_until(lambda: not [th for th in threading.enumerate() if th.name.startswith("lambda-")])

    runtime.stop()  # idempotent
    with pytest.raises(RuntimeError):
        runtime.invoke("Echo", {})


def test_context_manager_stops_everything():
    before = descendants()
    with LambdaRuntime() as runtime:
        runtime.register(spec("Echo", "toy.echo"))
        runtime.invoke("Echo", {})
        (pid,) = {record.pid for record in runtime.records()}
        assert pid in descendants()
    assert pid_gone(pid)
    assert descendants() - before == set()
