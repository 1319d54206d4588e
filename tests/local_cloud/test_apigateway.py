"""LocalApiGateway: the REST API event, routing, the Cognito authorizer, proxy responses, the server.

The Lambda side is a fake ``invoke`` that records events; tokens are signed with a key made here
and verified by a real ``CognitoVerifier`` against a JWKS served on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from localcloud.apigateway.gateway import LocalApiGateway, MockResponse, Route
from localcloud.apigateway.throttle import MethodThrottle, TokenBucket
from localcloud.errors import Throttled
from localcloud.apigateway.cognito import CognitoVerifier

pytestmark = pytest.mark.local_cloud

REGION = "eu-west-1"
POOL_ID = "eu-west-1_TestPool1"
ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{POOL_ID}"
CLIENT_ID = "testclient1234567890abcdef"
KID = "test-key-1"


# -- fakes ----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    payload: bytes
    function_error: str | None = None


class FakeLambda:
    """Records (function, event) and answers with whatever the function's responder returns."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.responders: dict[str, Callable[[dict], Any]] = {}

    def __call__(self, function: str, event: dict) -> Outcome:
        self.calls.append((function, event))
        responder = self.responders.get(function)
        if responder is None:
            return Outcome(json.dumps({"statusCode": 200, "body": json.dumps({"function": function})}).encode())
        result = responder(event)
        if isinstance(result, Outcome):
            return result
        if isinstance(result, bytes):
            return Outcome(result)
        return Outcome(json.dumps(result).encode())

    @property
    def last_event(self) -> dict:
        assert self.calls, "the function was not invoked"
        return self.calls[-1][1]


# -- keys, JWKS and tokens ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key(), as_dict=True)
    document = json.dumps({"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]}).encode()

    class Jwks(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{POOL_ID}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def verifier(jwks_url: str) -> CognitoVerifier:
    return CognitoVerifier(jwks_url=jwks_url, issuer=ISSUER, app_client_ids=[CLIENT_ID])


def id_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": "8f1c2d3e-0000-4000-8000-000000000001",
        "aud": CLIENT_ID,
        "email_verified": True,
        "token_use": "id",
        "auth_time": now,
        "iss": ISSUER,
        "cognito:username": "alice",
        "cognito:groups": ["admins", "editors"],
        "exp": now + 3600,
        "iat": now,
        "email": "alice@example.com",
    }
    claims.update(overrides)
    return claims


def sign(key: rsa.RSAPrivateKey, claims: dict[str, Any], kid: str = KID) -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any]) -> str:
    header = b64url(json.dumps({"alg": "none", "kid": KID}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


def hs256_with_public_key(public_key: rsa.RSAPublicKey, claims: dict[str, Any]) -> str:
    """The algorithm-confusion forgery: an HMAC whose secret is the pool's public key (PEM)."""
    secret = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64url(json.dumps({'alg': 'HS256', 'kid': KID}).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


# -- gateway fixtures and HTTP helpers ------------------------------------------------------------

ROUTES = [
    Route("GET", "/ping", "Ping", False),
    Route("GET", "/photos", "ListPhotos", True),
    Route("POST", "/photos", "CreatePhoto", True),
    Route("GET", "/photos/recent", "RecentPhotos", False),
    Route("GET", "/photos/{photo_id}", "GetPhoto", False),
    Route("ANY", "/photos/{photo_id}", "AnyPhoto", False),
    Route("GET", "/files/{proxy+}", "Files", False),
    Route("ANY", "/echo", "Echo", False),
    Route("GET", "/", "Root", False),
]


@pytest.fixture
def fake() -> FakeLambda:
    return FakeLambda()


@pytest.fixture
def gateway(fake: FakeLambda, verifier: CognitoVerifier) -> Iterator[LocalApiGateway]:
    with LocalApiGateway(routes=ROUTES, invoke=fake, verifier=verifier, region=REGION,
                         api_id="abc123defg", account_id="111122223333") as gw:
        yield gw


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(gw: LocalApiGateway, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def assert_gateway_error(reply: Reply, status: int, message: str | None) -> None:
    assert reply.status == status
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {"message": message}
    uuid.UUID(reply.headers["x-amzn-RequestId"])
    assert reply.headers["x-amz-apigw-id"]


# -- the event ------------------------------------------------------------------------------------


def test_event_shape_for_an_unauthorized_route(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    before_ms = int(time.time() * 1000)
    reply = call(gateway, "GET", "/Prod/photos/abc?size=small&tag=a&tag=b&q=a+b%21",
                 headers={"X-Custom-HEADER": "MiXeD", "User-Agent": "pytest-agent/1.0"})
    assert reply.status == 200
    assert reply.json() == {"function": "GetPhoto"}
    function, event = fake.calls[-1]
    assert function == "GetPhoto"
    json.dumps(event)  # what the runtime sends to the function must be JSON

    assert event["resource"] == "/photos/{photo_id}"
    assert event["path"] == "/photos/abc"
    assert event["httpMethod"] == "GET"
    assert event["headers"]["X-Custom-HEADER"] == "MiXeD"  # case preserved, as received
    assert event["multiValueHeaders"]["X-Custom-HEADER"] == ["MiXeD"]
    assert event["headers"]["User-Agent"] == "pytest-agent/1.0"
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    assert "Content-Length" not in event["headers"]
    assert set(event["headers"]) == set(event["multiValueHeaders"])
    assert event["queryStringParameters"] == {"size": "small", "tag": "b", "q": "a b!"}
    assert event["multiValueQueryStringParameters"] == {"size": ["small"], "tag": ["a", "b"], "q": ["a b!"]}
    assert event["pathParameters"] == {"photo_id": "abc"}
    assert event["stageVariables"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False

    ctx = event["requestContext"]
    assert "authorizer" not in ctx  # only authorized routes carry claims
    assert ctx["accountId"] == "111122223333"
    assert ctx["apiId"] == "abc123defg"
    assert ctx["stage"] == "Prod"
    assert ctx["path"] == "/Prod/photos/abc"
    assert ctx["resourcePath"] == "/photos/{photo_id}"
    assert re.fullmatch(r"[a-z0-9]{6}", ctx["resourceId"])
    assert ctx["httpMethod"] == "GET"
    assert ctx["protocol"] == "HTTP/1.1"
    assert ctx["domainName"] == f"127.0.0.1:{gateway.port}"
    assert ctx["domainPrefix"] == "127"
    assert ctx["requestId"] == reply.headers["x-amzn-RequestId"]
    uuid.UUID(ctx["requestId"])
    assert ctx["extendedRequestId"] == reply.headers["x-amz-apigw-id"]
    assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", ctx["requestTime"])
    assert isinstance(ctx["requestTimeEpoch"], int)
    assert before_ms - 1000 <= ctx["requestTimeEpoch"] <= int(time.time() * 1000) + 1000
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert ctx["identity"]["userAgent"] == "pytest-agent/1.0"
    for name in ("accessKey", "accountId", "caller", "cognitoAuthenticationProvider",
                 "cognitoAuthenticationType", "cognitoIdentityId", "cognitoIdentityPoolId",
                 "principalOrgId", "user", "userArn"):
        assert ctx["identity"][name] is None


def test_no_query_string_and_no_path_parameters_are_null(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    assert call(gateway, "GET", "/ping").status == 200
    event = fake.last_event
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["resource"] == "/ping"


def test_multi_value_headers_keep_every_value(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as s:
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Tag: one\r\nx-tag: two\r\nauthorization: raw\r\n"
                  b"Connection: close\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
    event = fake.last_event
    assert event["multiValueHeaders"]["X-Tag"] == ["one", "two"]
    assert event["headers"]["X-Tag"] == "two"
    assert event["headers"]["Authorization"] == "raw"  # re-cased as CloudFront does
    assert "Connection" not in event["headers"]


def test_the_stage_prefix_is_optional(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    for url in ("/Prod/ping", "/ping", "/Prod/ping/"):
        assert call(gateway, "GET", url).status == 200
        assert fake.last_event["requestContext"]["path"] == "/Prod" + fake.last_event["path"]
        assert fake.last_event["resource"] == "/ping"
    assert fake.last_event["path"] == "/ping/"  # the trailing slash is kept in path
    assert call(gateway, "GET", "/Prod").status == 200
    assert fake.calls[-1][0] == "Root"
    assert fake.last_event["path"] == "/"
    assert fake.last_event["requestContext"]["path"] == "/Prod/"


def test_a_custom_stage(fake: FakeLambda) -> None:
    with LocalApiGateway(routes=[Route("GET", "/ping", "Ping", False)], invoke=fake, verifier=None,
                         stage="dev") as gw:
        assert call(gw, "GET", "/dev/ping").status == 200
        assert fake.last_event["requestContext"]["stage"] == "dev"
        assert fake.last_event["requestContext"]["path"] == "/dev/ping"
        assert call(gw, "GET", "/Prod/ping").status == 403


# -- routing --------------------------------------------------------------------------------------


def test_literal_segments_beat_parameters(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    call(gateway, "GET", "/photos/recent")
    assert fake.calls[-1][0] == "RecentPhotos"
    assert fake.last_event["pathParameters"] is None
    call(gateway, "GET", "/photos/older")
    assert fake.calls[-1][0] == "GetPhoto"


def test_a_specific_method_beats_any(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    call(gateway, "GET", "/photos/p1")
    assert fake.calls[-1][0] == "GetPhoto"
    call(gateway, "DELETE", "/photos/p1")
    assert fake.calls[-1][0] == "AnyPhoto"
    assert fake.last_event["httpMethod"] == "DELETE"
    assert fake.last_event["pathParameters"] == {"photo_id": "p1"}


def test_greedy_proxy_parameter(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    call(gateway, "GET", "/files/a/b/c.txt")
    assert fake.calls[-1][0] == "Files"
    assert fake.last_event["resource"] == "/files/{proxy+}"
    assert fake.last_event["pathParameters"] == {"proxy": "a/b/c.txt"}
    call(gateway, "GET", "/files/dir/")
    assert fake.last_event["pathParameters"] == {"proxy": "dir"}
    assert fake.last_event["path"] == "/files/dir/"
    assert_gateway_error(call(gateway, "GET", "/files"), 403, "Missing Authentication Token")


def test_path_parameters_are_passed_percent_encoded(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    call(gateway, "GET", "/photos/a%20b%2Bc")
    assert fake.last_event["pathParameters"] == {"photo_id": "a%20b%2Bc"}
    assert fake.last_event["path"] == "/photos/a%20b%2Bc"


def test_unknown_resource_or_method_is_403_missing_authentication_token(
        gateway: LocalApiGateway, fake: FakeLambda) -> None:
    for method, url in [("GET", "/nope"), ("POST", "/ping"), ("GET", "/Prod/photos/a/b"),
                        ("DELETE", "/photos"), ("POST", "/")]:
        reply = call(gateway, method, url)
        assert_gateway_error(reply, 403, "Missing Authentication Token")
        assert reply.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert fake.calls == []


def test_unknown_route_with_an_authorization_header_gets_the_sigv4_parse_error(gateway: LocalApiGateway) -> None:
    reply = call(gateway, "GET", "/nope", headers={"Authorization": "some-token"})
    digest = base64.b64encode(hashlib.sha256(b"some-token").digest()).decode()
    assert_gateway_error(reply, 403, "Invalid key=value pair (missing equal-sign) in Authorization header "
                                     f"(hashed with SHA-256 and encoded with Base64): '{digest}'.")
    assert reply.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"


def test_resource_is_chosen_before_method(fake: FakeLambda) -> None:
    routes = [Route("ANY", "/{proxy+}", "CatchAll", False), Route("GET", "/things", "Things", False)]
    with LocalApiGateway(routes=routes, invoke=fake, verifier=None) as gw:
        assert call(gw, "GET", "/things").status == 200
        assert fake.calls[-1][0] == "Things"
        assert call(gw, "GET", "/other/x").status == 200
        assert fake.calls[-1][0] == "CatchAll"
        # /things matches better but has no POST: API Gateway does not fall back to /{proxy+}.
        assert call(gw, "POST", "/things").status == 403
        # The root is not matched by /{proxy+}.
        assert call(gw, "GET", "/").status == 403


def test_head_gets_headers_but_no_body(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    fake.responders["Echo"] = lambda event: {"statusCode": 200, "body": "twelve bytes"}
    reply = call(gateway, "HEAD", "/echo")
    assert reply.status == 200
    assert reply.body == b""
    assert reply.headers["Content-Length"] == "12"


def test_invalid_route_tables_are_refused(fake: FakeLambda) -> None:
    with pytest.raises(ValueError, match="no verifier"):
        LocalApiGateway(routes=[Route("GET", "/me", "Me", True)], invoke=fake, verifier=None)
    with pytest.raises(ValueError, match="last segment"):
        LocalApiGateway(routes=[Route("GET", "/{proxy+}/x", "F", False)], invoke=fake, verifier=None)
    with pytest.raises(ValueError, match="different parameter names"):
        LocalApiGateway(routes=[Route("GET", "/p/{a}", "F", False), Route("PUT", "/p/{b}", "G", False)],
                        invoke=fake, verifier=None)
    with pytest.raises(ValueError, match="two routes"):
        LocalApiGateway(routes=[Route("GET", "/p", "F", False), Route("get", "/p/", "G", False)],
                        invoke=fake, verifier=None)
    with pytest.raises(ValueError, match="method"):
        LocalApiGateway(routes=[Route("FETCH", "/p", "F", False)], invoke=fake, verifier=None)
    with pytest.raises(ValueError, match="whole segment"):
        LocalApiGateway(routes=[Route("GET", "/p/file.{ext}", "F", False)], invoke=fake, verifier=None)


# -- the Cognito authorizer -----------------------------------------------------------------------


def test_a_valid_id_token_reaches_the_function_with_its_claims(
        jwks_url: str, fake: FakeLambda, signing_key: rsa.RSAPrivateKey) -> None:
    claims = id_claims(exp=1_900_000_000, iat=1_899_996_400, auth_time=1_899_996_400)
    token = sign(signing_key, claims)
    verifier = CognitoVerifier(jwks_url=jwks_url, issuer=ISSUER, app_client_ids=[CLIENT_ID],
                               clock=lambda: 1_899_998_000)  # fixed times => fixed date strings
    with LocalApiGateway(routes=ROUTES, invoke=fake, verifier=verifier) as gateway:
        reply = call(gateway, "GET", "/photos", headers={"Authorization": token})
    assert reply.status == 200, reply.body
    event = fake.last_event
    assert event["headers"]["Authorization"] == token
    got = event["requestContext"]["authorizer"]["claims"]
    assert all(isinstance(v, str) for v in got.values())
    assert got["sub"] == claims["sub"]
    assert got["cognito:username"] == "alice"
    assert got["email_verified"] == "true"
    assert got["token_use"] == "id"
    assert got["aud"] == CLIENT_ID
    assert got["auth_time"] == "1899996400"
    assert got["exp"] == "Sun Mar 17 17:46:40 UTC 2030"  # Java's Date.toString(), as API Gateway
    assert got["iat"] == "Sun Mar 17 16:46:40 UTC 2030"
    assert got["cognito:groups"] == "admins,editors"


def test_a_bearer_prefix_is_accepted(gateway: LocalApiGateway, signing_key: rsa.RSAPrivateKey) -> None:
    token = sign(signing_key, id_claims())
    assert call(gateway, "GET", "/photos", headers={"Authorization": f"Bearer {token}"}).status == 200


def test_missing_authorization_is_401(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    for headers in ({}, {"Authorization": ""}, {"Authorization": "Bearer "}):
        reply = call(gateway, "POST", "/Prod/photos", body=b"{}", headers=headers)
        assert_gateway_error(reply, 401, "Unauthorized")
        assert reply.headers["x-amzn-ErrorType"] == "UnauthorizedException"
    assert fake.calls == []


def test_an_expired_token_is_401_the_incoming_token_has_expired(
        gateway: LocalApiGateway, fake: FakeLambda, signing_key: rsa.RSAPrivateKey) -> None:
    now = int(time.time())
    token = sign(signing_key, id_claims(iat=now - 7200, auth_time=now - 7200, exp=now - 3600))
    reply = call(gateway, "GET", "/photos", headers={"Authorization": token})
    assert_gateway_error(reply, 401, "The incoming token has expired")
    assert fake.calls == []


@pytest.mark.parametrize("forgery", [
    "signed_by_another_key", "other_pool", "other_app_client", "access_token",
    "alg_none", "hs256_with_public_key", "garbage", "tampered_payload",
])
def test_invalid_tokens_are_401_unauthorized(
        forgery: str, gateway: LocalApiGateway, fake: FakeLambda,
        signing_key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey) -> None:
    if forgery == "signed_by_another_key":
        token = sign(other_key, id_claims())  # same kid, wrong key
    elif forgery == "other_pool":
        token = sign(signing_key, id_claims(iss=f"https://cognito-idp.{REGION}.amazonaws.com/eu-west-1_Other"))
    elif forgery == "other_app_client":
        token = sign(signing_key, id_claims(aud="someotherclient"))
    elif forgery == "access_token":
        claims = id_claims(token_use="access", client_id=CLIENT_ID)
        del claims["aud"]
        token = sign(signing_key, claims)
    elif forgery == "alg_none":
        token = unsigned_token(id_claims())
    elif forgery == "hs256_with_public_key":
        token = hs256_with_public_key(signing_key.public_key(), id_claims())
    elif forgery == "garbage":
        token = "not-a-jwt"
    else:
        header, _, signature = sign(signing_key, id_claims()).split(".")
        token = f"{header}.{b64url(json.dumps(id_claims(**{'cognito:username': 'root'})).encode())}.{signature}"
    reply = call(gateway, "GET", "/photos", headers={"Authorization": token})
    assert_gateway_error(reply, 401, "Unauthorized")
    assert fake.calls == []


def test_a_jwks_outage_is_401_unauthorized_without_a_wait_per_request(
        fake: FakeLambda, signing_key: rsa.RSAPrivateKey) -> None:
    # A JWKS endpoint that accepts connections and never answers (the worst kind of outage).
    with socket.create_server(("127.0.0.1", 0), backlog=16) as hung:
        verifier = CognitoVerifier(jwks_url=f"http://127.0.0.1:{hung.getsockname()[1]}/jwks.json", issuer=ISSUER,
                                   app_client_ids=[CLIENT_ID], fetch_timeout_s=0.3)
        with LocalApiGateway(routes=[Route("GET", "/me", "Me", True)], invoke=fake, verifier=verifier) as gw:
            token = sign(signing_key, id_claims(), kid="rotated-away")
            for _ in range(3):
                assert_gateway_error(call(gw, "GET", "/me", headers={"Authorization": token}), 401, "Unauthorized")
    assert verifier.jwks_fetches == 1  # one fetch timed out; the next requests did not each wait for another
    assert fake.calls == []


# -- proxy responses ------------------------------------------------------------------------------


def test_status_headers_and_body_pass_through(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    fake.responders["Echo"] = lambda event: {
        "statusCode": 418,
        "headers": {"Content-Type": "text/plain; charset=utf-8", "X-Teapot": "yes", "X-Flag": True},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": "I'm a teapot ☕",
        "isBase64Encoded": False,
    }
    reply = call(gateway, "GET", "/echo")
    assert reply.status == 418
    assert reply.body == "I'm a teapot ☕".encode()
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert reply.headers["X-Teapot"] == "yes"
    assert reply.headers["X-Flag"] == "true"
    assert reply.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    uuid.UUID(reply.headers["x-amzn-RequestId"])
    assert reply.headers["x-amz-apigw-id"]


def test_headers_and_multi_value_headers_are_merged_without_case(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    fake.responders["Echo"] = lambda event: {
        "statusCode": 200,
        "headers": {"X-A": "single", "X-B": "b", "x-c": "m1"},
        "multiValueHeaders": {"x-a": ["m1", "m2"], "X-C": ["m1"]},
    }
    reply = call(gateway, "GET", "/echo")
    assert reply.headers.get_all("X-A") == ["m1", "m2", "single"]  # both kept, one name whatever its case
    assert reply.headers.get_all("X-C") == ["m1"]  # the same pair in both appears once
    assert reply.headers["X-B"] == "b"
    assert [name for name, _ in reply.headers.items() if name.lower() == "x-a"] == ["x-a"] * 3


@pytest.mark.parametrize(("response", "status", "body", "content_type"), [
    ({}, 200, b"", "application/json"),  # nothing is required
    ({"statusCode": "201", "body": "made"}, 201, b"made", "application/json"),  # numeric strings are fine
    ({"statusCode": 204, "headers": None, "body": None}, 204, b"", "application/json"),
    ({"statusCode": 200, "body": "{}", "headers": {"content-type": "application/x"}}, 200, b"{}", "application/x"),
])
def test_lenient_proxy_responses(response: dict, status: int, body: bytes, content_type: str,
                                 gateway: LocalApiGateway, fake: FakeLambda) -> None:
    fake.responders["Echo"] = lambda event: response
    reply = call(gateway, "GET", "/echo")
    assert (reply.status, reply.body, reply.headers["Content-Type"]) == (status, body, content_type)


def test_reserved_response_headers_are_remapped(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    fake.responders["Echo"] = lambda event: {"statusCode": 200, "body": "abc",
                                             "headers": {"Content-Length": "999", "Server": "mine"}}
    reply = call(gateway, "GET", "/echo")
    assert reply.headers["Content-Length"] == "3"
    assert reply.headers["x-amzn-Remapped-Content-Length"] == "999"
    assert reply.headers["x-amzn-Remapped-Server"] == "mine"


@pytest.mark.parametrize("payload", [
    b"not json",
    b"",
    b"null",
    b'"a string"',
    b"[1, 2]",
    b'{"statusCode": 200, "body": "x", "extra": 1}',  # unknown key
    b'{"errorMessage": "boom", "errorType": "Exception"}',  # an error object returned as a result
    b'{"statusCode": "two hundred"}',
    b'{"statusCode": 42}',
    b'{"statusCode": 200.5}',
    b'{"statusCode": 200, "headers": ["X-A: 1"]}',
    b'{"statusCode": 200, "headers": {"X-A": 1}}',
    b'{"statusCode": 200, "headers": {"X-A": "a\\r\\nX-Injected: 1"}}',
    b'{"statusCode": 200, "multiValueHeaders": {"X-A": "not a list"}}',
    b'{"statusCode": 200, "body": {"not": "a string"}}',
    b'{"statusCode": 200, "body": "x", "isBase64Encoded": "yes"}',
], ids=lambda p: p.decode()[:40] or "empty")
def test_malformed_proxy_responses_are_502(payload: bytes, gateway: LocalApiGateway, fake: FakeLambda) -> None:
    fake.responders["Echo"] = lambda event: payload
    reply = call(gateway, "GET", "/echo")
    assert_gateway_error(reply, 502, "Internal server error")


def test_a_function_error_is_502(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    error = json.dumps({"errorMessage": "boom", "errorType": "ValueError", "stackTrace": []}).encode()
    fake.responders["Echo"] = lambda event: Outcome(error, function_error="Unhandled")
    assert_gateway_error(call(gateway, "GET", "/echo"), 502, "Internal server error")
    # Even a well-formed proxy response does not count when Lambda flags a function error.
    ok = json.dumps({"statusCode": 200, "body": "fine"}).encode()
    fake.responders["Echo"] = lambda event: Outcome(ok, function_error="Unhandled")
    assert_gateway_error(call(gateway, "GET", "/echo"), 502, "Internal server error")


def test_a_rejected_invocation_is_500(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    def reserved_throttle(event: dict) -> Any:
        raise Throttled("Echo", "ReservedFunctionConcurrentInvocationLimitExceeded")

    def broken(event: dict) -> Any:
        raise RuntimeError("the runtime could not start")

    records: list[dict] = []
    gateway._on_request = records.append  # noqa: SLF001 - peek at the access-log record
    for responder in (reserved_throttle, broken):
        fake.responders["Echo"] = responder
        assert_gateway_error(call(gateway, "GET", "/echo"), 500, "Internal server error")
    deadline = time.monotonic() + 5
    while len(records) < 2 and time.monotonic() < deadline:  # the hook runs after the reply is sent
        time.sleep(0.005)
    assert "429" in records[0]["error"]
    assert "RuntimeError" in records[1]["error"]


def test_invalid_base64_in_a_response_to_decode_is_500(fake: FakeLambda) -> None:
    fake.responders["Echo"] = lambda event: {"statusCode": 200, "body": "***", "isBase64Encoded": True}
    with LocalApiGateway(routes=[Route("GET", "/echo", "Echo", False)], invoke=fake, verifier=None,
                         binary_media_types=["*/*"]) as gw:
        assert_gateway_error(call(gw, "GET", "/echo", headers={"Accept": "image/png"}), 500, "Internal server error")


def test_integration_timeout_is_504(fake: FakeLambda) -> None:
    release = threading.Event()

    def slow(event: dict) -> Any:
        release.wait(5)
        return {"statusCode": 200}

    fake.responders["Slow"] = slow
    try:
        with LocalApiGateway(routes=[Route("GET", "/slow", "Slow", False)], invoke=fake, verifier=None,
                             integration_timeout_s=0.2) as gw:
            started = time.perf_counter()
            reply = call(gw, "GET", "/slow")
            assert_gateway_error(reply, 504, "Endpoint request timed out")
            assert time.perf_counter() - started < 10  # a hung gateway would wait for the release, forever
    finally:
        release.set()


# -- bodies ---------------------------------------------------------------------------------------


def test_text_body_is_passed_as_a_string(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    body = json.dumps({"caption": "café"}).encode()
    call(gateway, "POST", "/echo", body=body, headers={"Content-Type": "application/json"})
    assert fake.last_event["body"] == '{"caption": "caf\\u00e9"}'
    assert fake.last_event["isBase64Encoded"] is False
    assert fake.last_event["headers"]["Content-Type"] == "application/json"
    call(gateway, "POST", "/echo", body="é".encode())
    assert fake.last_event["body"] == "é"


def _echo_body(event: dict) -> dict:
    return {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"},
            "body": event["body"], "isBase64Encoded": event["isBase64Encoded"]}


def test_binary_body_round_trips_through_base64_with_binary_media_types(fake: FakeLambda) -> None:
    data = bytes(range(256)) * 40 + b"\xff\xfe\x00\x89PNG"
    fake.responders["Echo"] = _echo_body
    with LocalApiGateway(routes=[Route("POST", "/echo", "Echo", False)], invoke=fake, verifier=None,
                         binary_media_types=["application/octet-stream", "image/*"]) as gw:
        reply = call(gw, "POST", "/echo", body=data,
                     headers={"Content-Type": "application/octet-stream", "Accept": "image/png, */*"})
        assert fake.last_event["isBase64Encoded"] is True
        assert base64.b64decode(fake.last_event["body"]) == data
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "application/octet-stream"
        assert reply.body == data
        # the first Accept type decides: not a binary type, so the client gets the base64 text
        reply = call(gw, "POST", "/echo", body=data,
                     headers={"Content-Type": "application/octet-stream", "Accept": "text/html, image/png"})
        assert base64.b64decode(reply.body) == data
        # a text Content-Type is text even when the bytes are not UTF-8
        call(gw, "POST", "/echo", body=b"caf\xe9", headers={"Content-Type": "text/plain"})
        assert fake.last_event["isBase64Encoded"] is False
        assert fake.last_event["body"] == "caf\ufffd"


def test_without_binary_media_types_bodies_are_text_both_ways(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    fake.responders["Echo"] = lambda event: {"statusCode": 200, "body": base64.b64encode(b"\x89PNG\xff").decode(),
                                             "isBase64Encoded": True, "headers": {"Content-Type": "image/png"}}
    reply = call(gateway, "POST", "/echo", body=b"\x89PNG\xff\x00", headers={"Content-Type": "image/png",
                                                                           "Accept": "image/png"})
    assert fake.last_event["isBase64Encoded"] is False
    assert fake.last_event["body"] == "\ufffdPNG\ufffd\x00"  # what AWS does to a binary upload without them
    assert reply.body == base64.b64encode(b"\x89PNG\xff")  # returned as the base64 text, not decoded


def test_chunked_request_body(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        conn.request("POST", "/echo", body=iter([b"hello ", b"chunked ", b"world"]),
                     headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    finally:
        conn.close()
    assert fake.last_event["body"] == "hello chunked world"


def test_a_body_over_10_mb_is_413(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10485761\r\n\r\n")  # no body sent
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"bytes."):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in head
    assert body == b"HTTP content length exceeded 10485760 bytes."
    assert fake.calls == []


def test_a_body_at_the_limit_is_accepted(fake: FakeLambda) -> None:
    with LocalApiGateway(routes=[Route("POST", "/up", "Up", False)], invoke=fake, verifier=None,
                         max_request_bytes=1024) as gw:
        assert call(gw, "POST", "/up", body=b"x" * 1024).status == 200
        assert call(gw, "POST", "/up", body=b"x" * 1025).status == 413


# -- the server -----------------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        conn.request("GET", "/ping")
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        assert sock is not None
        for _ in range(20):
            conn.request("GET", "/ping")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            assert conn.sock is sock  # http.client would have reconnected if the server had closed
        conn.request("GET", "/nope")  # API Gateway's own errors keep the connection too
        response = conn.getresponse()
        response.read()
        assert response.status == 403
        assert conn.sock is sock
    finally:
        conn.close()
    assert len(fake.calls) == 21


def test_concurrent_requests(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    gate = threading.Barrier(8)

    def wait_for_all(event: dict) -> Any:
        gate.wait(5)  # all 8 invocations must be in flight at once
        return {"statusCode": 200, "body": event["pathParameters"]["photo_id"]}

    fake.responders["GetPhoto"] = wait_for_all
    results: dict[int, Reply] = {}

    def one(i: int) -> None:
        results[i] = call(gateway, "GET", f"/photos/p{i}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert {i: (r.status, r.body) for i, r in results.items()} == {i: (200, f"p{i}".encode()) for i in range(8)}


def test_on_request_gets_an_access_log_record_and_nothing_is_printed(
        fake: FakeLambda, capfd: pytest.CaptureFixture[str]) -> None:
    records: list[dict] = []
    with LocalApiGateway(routes=[Route("GET", "/ping", "Ping", False)], invoke=fake, verifier=None,
                         on_request=records.append) as gw:
        ok = call(gw, "GET", "/Prod/ping?x=1")
        call(gw, "GET", "/missing")
        with socket.create_connection(("127.0.0.1", gw.port)) as s:  # a client that hangs up mid-request
            s.sendall(b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        with socket.create_connection(("127.0.0.1", gw.port)) as s:  # ... and one that sends nonsense
            s.sendall(b"\x16\x03\x01garbage\r\n\r\n")
            s.recv(1024)
    assert records[0]["method"] == "GET"
    assert records[0]["path"] == "/Prod/ping"
    assert records[0]["status"] == 200
    assert records[0]["request_id"] == ok.headers["x-amzn-RequestId"]
    assert records[0]["function"] == "Ping"
    assert isinstance(records[0]["latency_ms"], float) and records[0]["latency_ms"] >= 0
    assert records[1]["status"] == 403 and records[1]["path"] == "/missing"
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_lifecycle(fake: FakeLambda) -> None:
    gw = LocalApiGateway(routes=[Route("GET", "/ping", "Ping", False)], invoke=fake, verifier=None)
    with pytest.raises(RuntimeError, match="not started"):
        _ = gw.url
    gw.start()
    try:
        assert gw.url == f"http://127.0.0.1:{gw.port}/"
        with pytest.raises(RuntimeError, match="already started"):
            gw.start()
        # An idle keep-alive connection does not keep stop() waiting, and is closed by it.
        idle = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
        idle.request("GET", "/ping")
        idle.getresponse().read()
    finally:
        started = time.perf_counter()
        gw.stop()
        assert time.perf_counter() - started < 10  # an idle keep-alive connection must not keep stop() waiting
    gw.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not started"):
        _ = gw.url
    assert idle.sock is not None and idle.sock.recv(1) == b""
    idle.close()


def test_a_busy_port_raises_oserror(fake: FakeLambda) -> None:
    with LocalApiGateway(routes=[], invoke=fake, verifier=None) as first:
        second = LocalApiGateway(routes=[], invoke=fake, verifier=None, port=first.port)
        with pytest.raises(OSError, match=rf"cannot listen on 127\.0\.0\.1:{first.port}"):
            second.start()
        second.stop()  # harmless


# -- the stage: throttling, variables, mock integrations, ids -------------------------------------


def test_the_token_bucket_allows_the_burst_then_the_rate() -> None:
    now = [64.0]
    bucket = TokenBucket(rate=40, burst=100, clock=lambda: now[0])
    assert sum(bucket.take() for _ in range(150)) == 100  # the burst, at once
    now[0] += 0.125  # 5 tokens later
    assert sum(bucket.take() for _ in range(20)) == 5
    now[0] += 60  # a long idle time refills to the burst, not beyond
    assert sum(bucket.take() for _ in range(500)) == 100


def test_stage_throttling_answers_429_too_many_requests_per_method(fake: FakeLambda) -> None:
    throttling = [MethodThrottle("/*", "*", rate=0.001, burst=3),
                  MethodThrottle("/ping", "GET", rate=None, burst=5)]  # a method's own setting wins
    routes = [Route("GET", "/ping", "Ping", False), Route("GET", "/echo", "Echo", False),
              Route("POST", "/echo", "Echo", False)]
    with LocalApiGateway(routes=routes, invoke=fake, verifier=None, throttling=throttling) as gw:
        statuses = {key: [call(gw, method, path).status for _ in range(7)]
                    for key, (method, path) in {"ping": ("GET", "/ping"), "get": ("GET", "/echo"),
                                                "post": ("POST", "/echo")}.items()}
        reply = call(gw, "GET", "/echo")
    assert statuses == {"ping": [200] * 5 + [429] * 2, "get": [200] * 3 + [429] * 4, "post": [200] * 3 + [429] * 4}
    assert_gateway_error(reply, 429, "Too Many Requests")
    assert reply.headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    assert len(fake.calls) == 11  # a throttled request never reaches the function


def test_a_burst_of_500_connections_is_answered_by_throttling_and_waiting_for_concurrency(fake: FakeLambda) -> None:
    # Lambda with an account concurrency of 10: an 11th invocation in flight is throttled
    in_flight, lock, most = [0], threading.Lock(), [0]

    def limited(event: dict) -> Any:
        with lock:
            if in_flight[0] >= 10:
                raise Throttled("Work", "ConcurrentInvocationLimitExceeded")
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            time.sleep(0.01)
            return {"statusCode": 200, "body": "done"}
        finally:
            with lock:
                in_flight[0] -= 1

    fake.responders["Work"] = limited
    routes = [Route("POST", "/work", "Work", False)]
    with LocalApiGateway(routes=routes, invoke=fake, verifier=None,
                         throttling=[MethodThrottle("/*", "*", rate=50, burst=100)]) as gw:
        started = time.monotonic()
        clients = [socket.create_connection(("127.0.0.1", gw.port), timeout=20) for _ in range(500)]
        try:
            for sock in clients:
                sock.sendall(b"POST /work HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            statuses = []
            for sock in clients:
                answer = http.client.HTTPResponse(sock)
                answer.begin()  # a reset or a hang fails here
                answer.read()
                statuses.append(answer.status)
        finally:
            for sock in clients:
                sock.close()
        elapsed = time.monotonic() - started
    passed = statuses.count(200)
    assert statuses.count(200) + statuses.count(429) == 500  # every one answered: no 500, no reset
    assert 100 <= passed <= 100 + 50 * elapsed + 1  # the burst, and the rate while the burst lasted
    assert most[0] <= 10  # those past the concurrency waited for it instead of failing


def test_an_account_concurrency_throttle_waits_then_is_500(fake: FakeLambda) -> None:
    attempts = []

    def busy_twice(event: dict) -> Any:
        attempts.append(1)
        if len(attempts) <= 2:
            raise Throttled("Work", "ConcurrentInvocationLimitExceeded")
        return {"statusCode": 200, "body": "ran"}

    def always_busy(event: dict) -> Any:
        raise Throttled("Busy", "ConcurrentInvocationLimitExceeded")

    fake.responders.update(Work=busy_twice, Busy=always_busy)
    routes = [Route("GET", "/work", "Work", False), Route("GET", "/busy", "Busy", False)]
    with LocalApiGateway(routes=routes, invoke=fake, verifier=None, concurrency_wait_s=0.2) as gw:
        reply = call(gw, "GET", "/work")
        assert (reply.status, reply.body, len(attempts)) == (200, b"ran", 3)
        # Lambda refusing the invocation is API Gateway's 500 (services-apigateway-errors.html)
        assert_gateway_error(call(gw, "GET", "/busy"), 500, "Internal server error")


def test_stage_variables_reach_the_event(fake: FakeLambda) -> None:
    with LocalApiGateway(routes=[Route("GET", "/ping", "Ping", False)], invoke=fake, verifier=None,
                         stage_variables={"color": "blue", "table": "t1"}) as gw:
        call(gw, "GET", "/ping")
    assert fake.last_event["stageVariables"] == {"color": "blue", "table": "t1"}


def test_trace_and_request_ids_are_on_the_answer_and_in_the_event(gateway: LocalApiGateway, fake: FakeLambda) -> None:
    reply = call(gateway, "GET", "/ping")
    trace = reply.headers["X-Amzn-Trace-Id"]
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Sampled=0", trace)
    assert fake.last_event["headers"]["X-Amzn-Trace-Id"] == trace.split(";")[0]
    assert fake.last_event["requestContext"]["requestId"] == reply.headers["x-amzn-RequestId"]
    assert fake.last_event["requestContext"]["extendedRequestId"] == reply.headers["x-amz-apigw-id"]
    # a client's own trace is continued
    mine = "Root=1-5e66d96f-7491f09aa79d18acf3d05aab"
    reply = call(gateway, "GET", "/ping", headers={"X-Amzn-Trace-Id": mine})
    assert reply.headers["X-Amzn-Trace-Id"] == mine + ";Sampled=0"
    assert call(gateway, "GET", "/nowhere").headers["X-Amzn-Trace-Id"] != reply.headers["X-Amzn-Trace-Id"]


def test_a_mock_integration_answers_the_cors_preflight(fake: FakeLambda, verifier: CognitoVerifier) -> None:
    cors = MockResponse(200, (("Access-Control-Allow-Origin", "https://example.com"),
                              ("Access-Control-Allow-Methods", "GET,OPTIONS")), b"{}")
    routes = [Route("GET", "/hello", "Hello", False), Route("OPTIONS", "/hello", None, False, cors),
              Route("GET", "/private", "Private", True), Route("OPTIONS", "/private", None, True, cors)]
    with LocalApiGateway(routes=routes, invoke=fake, verifier=verifier) as gw:
        preflight = call(gw, "OPTIONS", "/hello", headers={"Origin": "https://example.com",
                                                           "Access-Control-Request-Method": "GET"})
        assert preflight.status == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://example.com"
        assert preflight.headers["Access-Control-Allow-Methods"] == "GET,OPTIONS"
        assert fake.calls == []  # no function behind a mock
        # behind the default authorizer (SAM's AddDefaultAuthorizerToCorsPreflight), a preflight is 401
        assert_gateway_error(call(gw, "OPTIONS", "/private"), 401, "Unauthorized")
        # a proxy answer has only what the function returns
        assert "Access-Control-Allow-Origin" not in call(gw, "GET", "/hello").headers
    with pytest.raises(ValueError, match="either a function or a mock"):
        LocalApiGateway(routes=[Route("OPTIONS", "/x", "Fn", False, cors)], invoke=fake, verifier=None)


@pytest.mark.parametrize("reason", ["ReservedFunctionConcurrentInvocationLimitExceeded",
                                    "ConcurrentInvocationLimitExceeded"])
def test_the_deployers_invoke_keeps_the_throttles_reason(reason: str) -> None:
    # what decides whether the API waits (the account's pool) or answers at once (the function's reserve)
    from localcloud.cfn.deployer import CloudDeployer
    from localcloud.lambda_service.service import LambdaError

    class Functions:
        runtime = None

        def invoke(self, target: str, payload: bytes, json_checked: bool) -> Any:
            raise LambdaError("TooManyRequestsException", "Rate Exceeded.", fields={"Reason": reason})

    deployer = CloudDeployer(None, Functions(), endpoint_url="http://127.0.0.1:1", region="us-east-1",  # type: ignore[arg-type]
                             account_id="123456789012")
    with pytest.raises(Throttled) as caught:
        deployer.invoke("Fn:live", {})
    assert (caught.value.function_name, caught.value.reason) == ("Fn", reason)
