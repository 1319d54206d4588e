"""The Runtime API of one environment (localcloud.lambda_service.runtime_api), spoken to as awslambdaric
does, over HTTP: GET next waits for an invocation, answers are accepted once, Lambda's refusals, and a
GET next that ends without an answer when the environment goes away."""

from __future__ import annotations

import http.client
import json
import queue
import threading

import pytest

from localcloud.lambda_service.runtime_api import (
    InitError,
    Invocation,
    InvocationError,
    InvocationResponse,
    ResponseTooLarge,
    RuntimeApi,
    RuntimeReady,
)
from localcloud.lambda_service.spec import MAX_RESPONSE_PAYLOAD

pytestmark = pytest.mark.local_cloud

NEXT = "/2018-06-01/runtime/invocation/next"
REQUEST_ID = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:Echo"


@pytest.fixture
def mailbox() -> queue.SimpleQueue:
    return queue.SimpleQueue()


@pytest.fixture
def api(mailbox: queue.SimpleQueue):
    server = RuntimeApi(mailbox, name="test-runtime-api")
    yield server
    server.close()


@pytest.fixture
def runtime(api: RuntimeApi):
    """The runtime's keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", api.start(), timeout=5)
    yield connection
    connection.close()


def invocation(request_id: str = REQUEST_ID, payload: bytes = b'{"name": "Ada"}') -> Invocation:
    return Invocation.of(request_id, payload, deadline_ms=1_700_000_000_000, function_arn=ARN,
                         client_context={"custom": {"k": "v"}}, cognito_identity=None)


def call(connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    headers = {k: v for k, v in response.headers.items() if k != "Date"}  # the clock's, as on AWS
    return response.status, headers, response.read()


def take_next(api: RuntimeApi, connection: http.client.HTTPConnection, inv: Invocation) -> tuple[int, dict, bytes]:
    api.deliver(inv)
    return call(connection, "GET", NEXT)


class TestNext:
    def test_next_answers_with_the_event_and_lambdas_headers(self, api, runtime, mailbox):
        status, headers, body = take_next(api, runtime, invocation())

        assert status == 200 and body == b'{"name": "Ada"}'
        assert headers["Lambda-Runtime-Aws-Request-Id"] == REQUEST_ID
        assert headers["Lambda-Runtime-Deadline-Ms"] == "1700000000000"
        assert headers["Lambda-Runtime-Invoked-Function-Arn"] == ARN
        assert headers["Lambda-Runtime-Trace-Id"].startswith("Root=1-")
        assert json.loads(headers["Lambda-Runtime-Client-Context"]) == {"custom": {"k": "v"}}
        assert "Lambda-Runtime-Cognito-Identity" not in headers
        assert isinstance(mailbox.get_nowait(), RuntimeReady)

    def test_next_waits_for_an_invocation(self, api, runtime):
        # GIVEN a runtime waiting in GET next
        answers: list[tuple] = []
        waiting = threading.Thread(target=lambda: answers.append(call(runtime, "GET", NEXT)))
        waiting.start()
        waiting.join(0.3)
        assert waiting.is_alive() and not answers

        # WHEN an invocation comes, THEN it is the answer
        api.deliver(invocation())
        waiting.join(5)
        assert answers[0][0] == 200

    def test_a_waiting_next_ends_without_an_answer_when_the_environment_goes_away(self, api, runtime):
        failures: list[BaseException] = []

        def wait_next() -> None:
            try:
                call(runtime, "GET", NEXT)
            except (http.client.HTTPException, OSError) as e:
                failures.append(e)

        waiting = threading.Thread(target=wait_next)
        waiting.start()
        waiting.join(0.3)

        api.close()

        waiting.join(5)
        assert not waiting.is_alive()
        assert failures and isinstance(failures[0], (http.client.RemoteDisconnected, ConnectionError))


class TestAnswers:
    def test_a_response_is_accepted_once(self, api, runtime, mailbox):
        take_next(api, runtime, invocation())
        path = f"/2018-06-01/runtime/invocation/{REQUEST_ID}/response"

        assert call(runtime, "POST", path, b'"hello"') == (202, {"Content-Type": "application/json",
                                                                   "Content-Length": "15"}, b'{"status":"OK"}')
        again = call(runtime, "POST", path, b'"hello"')

        assert again[0] == 403 and json.loads(again[2])["errorType"] == "InvalidStateTransition"
        assert isinstance(mailbox.get_nowait(), RuntimeReady)
        response = mailbox.get_nowait()
        assert isinstance(response, InvocationResponse) and response.body == b'"hello"'

    def test_an_error_keeps_its_error_type(self, api, runtime, mailbox):
        take_next(api, runtime, invocation())
        error = b'{"errorMessage": "boom", "errorType": "ValueError"}'

        status, _, _ = call(runtime, "POST", f"/2018-06-01/runtime/invocation/{REQUEST_ID}/error", error,
                            {"Lambda-Runtime-Function-Error-Type": "Unhandled"})

        assert status == 202
        mailbox.get_nowait()  # RuntimeReady
        message = mailbox.get_nowait()
        assert isinstance(message, InvocationError)
        assert (message.body, message.error_type) == (error, "Unhandled")

    def test_an_unknown_request_id_is_a_bad_request(self, api, runtime):
        take_next(api, runtime, invocation())

        status, _, body = call(runtime, "POST", "/2018-06-01/runtime/invocation/not-this-one/response", b"{}")

        assert (status, json.loads(body)) == (400, {"errorMessage": "Invalid request ID",
                                                    "errorType": "InvalidRequestID"})

    def test_a_response_over_6_mb_is_refused_with_413(self, api, runtime, mailbox):
        take_next(api, runtime, invocation())

        status, _, body = call(runtime, "POST", f"/2018-06-01/runtime/invocation/{REQUEST_ID}/response",
                               b"x" * (MAX_RESPONSE_PAYLOAD + 1))

        assert status == 413 and json.loads(body)["errorType"] == "RequestEntityTooLarge"
        mailbox.get_nowait()  # RuntimeReady
        assert isinstance(mailbox.get_nowait(), ResponseTooLarge)

    def test_a_chunked_response_is_read_whole(self, api, runtime, mailbox):
        take_next(api, runtime, invocation())

        status, _, _ = call(runtime, "POST", f"/2018-06-01/runtime/invocation/{REQUEST_ID}/response",
                            iter([b'{"a": ', b"1}"]))  # an iterable body, so http.client sends it chunked

        assert status == 202
        mailbox.get_nowait()  # RuntimeReady
        assert mailbox.get_nowait().body == b'{"a": 1}'


class TestInit:
    def test_an_init_error_is_accepted_before_the_first_next(self, runtime, mailbox):
        status, _, _ = call(runtime, "POST", "/2018-06-01/runtime/init/error", b'{"errorType": "ImportError"}',
                            {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})

        message = mailbox.get_nowait()
        assert status == 202 and isinstance(message, InitError)
        assert message.error_type == "Runtime.ImportModuleError"

    def test_an_init_error_after_the_first_next_is_refused(self, api, runtime):
        take_next(api, runtime, invocation())

        status, _, body = call(runtime, "POST", "/2018-06-01/runtime/init/error", b"{}")

        assert status == 403 and json.loads(body)["errorType"] == "InvalidStateTransition"


def test_an_unknown_route_is_not_found(runtime):
    status, headers, body = call(runtime, "GET", "/2018-06-01/runtime/nope")

    assert (status, headers["Content-Type"]) == (404, "application/json")
    assert json.loads(body) == {"errorMessage": "No route for GET /2018-06-01/runtime/nope",
                                "errorType": "InvalidRequest"}
