"""CognitoVerifier against real ID tokens from a moto Cognito user pool (moto in server mode).

Also pins down what moto does, which the local cloud relies on: where it serves a pool's JWKS,
which ``iss`` it writes, and which claims an ID token carries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import localcloud.apigateway.cognito
from localcloud.apigateway.gateway import LocalApiGateway, Route
from localcloud.apigateway.cognito import CognitoVerifier, JwksUnavailable, TokenInvalid

pytestmark = pytest.mark.local_cloud

REGION = "eu-west-1"
PASSWORD = "Corr3ct-Horse-Battery!"


@dataclass(frozen=True)
class Pool:
    endpoint: str
    pool_id: str
    client_id: str
    other_client_id: str
    id_token: str
    access_token: str
    other_client_id_token: str
    other_pool_id: str
    other_pool_client_id: str
    other_pool_id_token: str


def _client(endpoint: str) -> Any:
    # Fake credentials and an explicit endpoint: nothing here can reach AWS.
    return boto3.client("cognito-idp", region_name=REGION, endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        aws_session_token="testing")


def _pool_with_user(idp: Any, name: str) -> tuple[str, str, str]:
    pool_id = idp.create_user_pool(PoolName=name)["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName=f"{name}-web",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    idp.admin_create_user(UserPoolId=pool_id, Username="alice", MessageAction="SUPPRESS",
                          UserAttributes=[{"Name": "email", "Value": "alice@example.com"},
                                          {"Name": "email_verified", "Value": "true"}])
    idp.admin_set_user_password(UserPoolId=pool_id, Username="alice", Password=PASSWORD, Permanent=True)
    return pool_id, client_id, "alice"


def _login(idp: Any, client_id: str) -> dict[str, str]:
    result = idp.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                               AuthParameters={"USERNAME": "alice", "PASSWORD": PASSWORD})
    return result["AuthenticationResult"]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0 works in moto 5.2.5
    server.start()
    try:
        host, port = server.get_host_and_port()
        assert port != 0
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pool(moto_endpoint: str) -> Pool:
    idp = _client(moto_endpoint)
    pool_id, client_id, _ = _pool_with_user(idp, "photos")
    other_client_id = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName="photos-cli", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"],
    )["UserPoolClient"]["ClientId"]
    other_pool_id, other_pool_client_id, _ = _pool_with_user(idp, "elsewhere")
    tokens = _login(idp, client_id)
    return Pool(
        endpoint=moto_endpoint,
        pool_id=pool_id,
        client_id=client_id,
        other_client_id=other_client_id,
        id_token=tokens["IdToken"],
        access_token=tokens["AccessToken"],
        other_client_id_token=_login(idp, other_client_id)["IdToken"],
        other_pool_id=other_pool_id,
        other_pool_client_id=other_pool_client_id,
        other_pool_id_token=_login(idp, other_pool_client_id)["IdToken"],
    )


@pytest.fixture
def verifier(pool: Pool) -> CognitoVerifier:
    return CognitoVerifier.for_pool(endpoint_url=pool.endpoint, region=REGION, user_pool_id=pool.pool_id,
                                    app_client_ids=[pool.client_id])


def reason(verifier: CognitoVerifier, token: str) -> str:
    with pytest.raises(TokenInvalid) as caught:
        verifier.verify(token)
    return caught.value.reason


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


# -- what moto does -------------------------------------------------------------------------------


def test_moto_serves_the_pool_jwks_and_issuer_where_for_pool_looks(pool: Pool, verifier: CognitoVerifier) -> None:
    assert verifier.jwks_url == f"{pool.endpoint}/{pool.pool_id}/.well-known/jwks.json"
    with urllib.request.urlopen(verifier.jwks_url, timeout=5) as response:
        keys = json.loads(response.read())["keys"]
    assert [(k["kid"], k["kty"], k["alg"]) for k in keys] == [("dummy", "RSA", "RS256")]
    with urllib.request.urlopen(f"{pool.endpoint}/{pool.pool_id}/.well-known/openid-configuration",
                                timeout=5) as response:
        discovery = json.loads(response.read())
    assert discovery["issuer"] == verifier.issuer == f"https://cognito-idp.{REGION}.amazonaws.com/{pool.pool_id}"
    assert discovery["jwks_uri"] == verifier.jwks_url


def test_what_a_moto_id_token_looks_like(pool: Pool) -> None:
    header, claims = unverified(pool.id_token)
    assert header["alg"] == "RS256" and header["kid"] == "dummy"
    assert claims["iss"] == f"https://cognito-idp.{REGION}.amazonaws.com/{pool.pool_id}"
    assert claims["aud"] == pool.client_id
    assert claims["token_use"] == "id"
    assert claims["cognito:username"] == "alice"
    assert claims["exp"] - claims["iat"] == 3600
    assert {"sub", "auth_time", "jti", "origin_jti"} <= claims.keys()
    # The access token names the client in client_id (no aud) and says token_use "access".
    _, access = unverified(pool.access_token)
    assert access["token_use"] == "access" and access["client_id"] == pool.client_id and "aud" not in access


def test_for_pool_on_real_aws_uses_the_cognito_idp_urls() -> None:
    v = CognitoVerifier.for_pool(endpoint_url=None, region="us-west-2", user_pool_id="us-west-2_AbC",
                                 app_client_ids=["c1"])
    assert v.jwks_url == "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_AbC/.well-known/jwks.json"
    assert v.issuer == "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_AbC"
    assert v.jwks_fetches == 0  # nothing is fetched until a token is verified


# -- verification ---------------------------------------------------------------------------------


def test_a_real_id_token_verifies(pool: Pool, verifier: CognitoVerifier) -> None:
    claims = verifier.verify(pool.id_token)
    assert claims == unverified(pool.id_token)[1]
    assert claims["aud"] == pool.client_id


def test_several_app_clients(pool: Pool) -> None:
    both = CognitoVerifier.for_pool(endpoint_url=pool.endpoint, region=REGION, user_pool_id=pool.pool_id,
                                    app_client_ids=[pool.client_id, pool.other_client_id])
    assert both.verify(pool.other_client_id_token)["aud"] == pool.other_client_id
    assert both.verify(pool.id_token)["aud"] == pool.client_id


def test_the_jwks_is_fetched_once(pool: Pool, verifier: CognitoVerifier) -> None:
    for _ in range(5):
        verifier.verify(pool.id_token)
    assert verifier.jwks_fetches == 1


def test_an_access_token_is_not_an_id_token(pool: Pool, verifier: CognitoVerifier) -> None:
    assert reason(verifier, pool.access_token) == "not an id token"


def test_another_app_client_is_the_wrong_audience(pool: Pool, verifier: CognitoVerifier) -> None:
    assert reason(verifier, pool.other_client_id_token) == "wrong audience"


def test_another_pool_is_the_wrong_issuer(pool: Pool, verifier: CognitoVerifier) -> None:
    # moto signs every pool's tokens with the same key: only iss tells the pools apart.
    assert unverified(pool.other_pool_id_token)[0]["kid"] == "dummy"
    assert reason(verifier, pool.other_pool_id_token) == "wrong issuer"


def test_expiry_and_leeway(pool: Pool) -> None:
    exp = unverified(pool.id_token)[1]["exp"]

    def at(t: float, leeway_s: int = 0) -> CognitoVerifier:
        return CognitoVerifier(jwks_url=f"{pool.endpoint}/{pool.pool_id}/.well-known/jwks.json",
                               issuer=f"https://cognito-idp.{REGION}.amazonaws.com/{pool.pool_id}",
                               app_client_ids=[pool.client_id], leeway_s=leeway_s, clock=lambda: t)

    assert at(exp - 1).verify(pool.id_token)
    with pytest.raises(TokenInvalid, match="expired"):
        at(exp).verify(pool.id_token)
    assert at(exp + 30, leeway_s=60).verify(pool.id_token)
    with pytest.raises(TokenInvalid) as caught:
        at(exp + 61, leeway_s=60).verify(pool.id_token)
    assert caught.value.reason == "expired"
    # Nor is a token accepted before it was issued (a clock far behind).
    iat = unverified(pool.id_token)[1]["iat"]
    with pytest.raises(TokenInvalid) as caught:
        at(iat - 600).verify(pool.id_token)
    assert caught.value.reason == "not yet valid"


def test_a_token_re_signed_with_another_key_is_refused(pool: Pool, verifier: CognitoVerifier) -> None:
    header, claims = unverified(pool.id_token)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({**claims, "cognito:username": "mallory"}, forger, algorithm="RS256",
                        headers={"kid": header["kid"]})
    assert reason(verifier, forged) == "bad signature"


def test_a_tampered_payload_is_refused(pool: Pool, verifier: CognitoVerifier) -> None:
    header, payload, signature = pool.id_token.split(".")
    claims = unverified(pool.id_token)[1]
    tampered = f"{header}.{b64url(json.dumps({**claims, 'cognito:username': 'root'}).encode())}.{signature}"
    assert reason(verifier, tampered) == "bad signature"


def test_alg_none_is_refused(pool: Pool, verifier: CognitoVerifier) -> None:
    claims = unverified(pool.id_token)[1]
    for alg in ("none", "None", "NONE"):
        token = f"{b64url(json.dumps({'alg': alg, 'kid': 'dummy'}).encode())}.{b64url(json.dumps(claims).encode())}."
        assert reason(verifier, token) == "alg none"


def test_hs256_signed_with_the_public_key_is_refused(pool: Pool, verifier: CognitoVerifier) -> None:
    """The algorithm-confusion attack: HMAC-SHA256 with the pool's public key (PEM) as the secret."""
    with urllib.request.urlopen(verifier.jwks_url, timeout=5) as response:
        jwk = json.loads(response.read())["keys"][0]
    public_key = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
    claims = unverified(pool.id_token)[1]
    for secret in (public_key.public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo),
                   json.dumps(jwk).encode()):
        signing_input = (f"{b64url(json.dumps({'alg': 'HS256', 'kid': 'dummy'}).encode())}."
                         f"{b64url(json.dumps(claims).encode())}")
        token = f"{signing_input}.{b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
        assert reason(verifier, token) == "unsupported algorithm"


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9.e30.", 42])
def test_malformed_tokens(token: Any, verifier: CognitoVerifier) -> None:
    assert reason(verifier, token) == "malformed"


def test_an_unknown_kid_refetches_the_jwks_at_most_once_a_minute(
        pool: Pool, verifier: CognitoVerifier, monkeypatch: pytest.MonkeyPatch) -> None:
    claims = unverified(pool.id_token)[1]
    stranger = jwt.encode(claims, rsa.generate_private_key(public_exponent=65537, key_size=2048),
                          algorithm="RS256", headers={"kid": "rotated-key"})
    verifier.verify(pool.id_token)
    assert verifier.jwks_fetches == 1
    for _ in range(3):  # a burst of unknown kids: no refetch within the minute
        assert reason(verifier, stranger) == "unknown key"
    assert verifier.jwks_fetches == 1
    monkeypatch.setattr(localcloud.apigateway.cognito, "JWKS_REFETCH_INTERVAL_S", 0.0)  # "a minute later"
    assert reason(verifier, stranger) == "unknown key"
    assert verifier.jwks_fetches == 2
    verifier.verify(pool.id_token)  # known kids never refetch
    assert verifier.jwks_fetches == 2


def test_an_unreachable_jwks_is_not_a_token_problem(pool: Pool) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    v = CognitoVerifier.for_pool(endpoint_url=f"http://127.0.0.1:{port}", region=REGION,
                                 user_pool_id=pool.pool_id, app_client_ids=[pool.client_id])
    with pytest.raises(JwksUnavailable, match="cannot load the JWKS"):
        v.verify(pool.id_token)


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        CognitoVerifier(jwks_url="http://x", issuer="i", app_client_ids=[])
    v = CognitoVerifier(jwks_url="http://x", issuer="i", app_client_ids="client1")  # a bare string is one id
    assert v.app_client_ids == frozenset({"client1"})


# -- end to end: moto token -> LocalApiGateway -> function event ---------------------------------


@dataclass
class Outcome:
    payload: bytes
    function_error: str | None = None


def test_a_moto_id_token_through_the_local_api_gateway(pool: Pool, verifier: CognitoVerifier) -> None:
    events: list[dict] = []

    def invoke(function: str, event: dict) -> Outcome:
        events.append(event)
        claims = event["requestContext"]["authorizer"]["claims"]
        return Outcome(json.dumps({"statusCode": 200, "body": claims["cognito:username"]}).encode())

    with LocalApiGateway(routes=[Route("GET", "/me", "Me", True)], invoke=invoke, verifier=verifier,
                         region=REGION) as gw:
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        try:
            for token, status in [(pool.id_token, 200), (f"Bearer {pool.id_token}", 200),
                                  (pool.access_token, 401), (pool.other_pool_id_token, 401), (None, 401)]:
                conn.request("GET", "/Prod/me", headers={"Authorization": token} if token else {})
                response = conn.getresponse()
                body = response.read()
                assert response.status == status, (token, body)
                if status == 200:
                    assert body == b"alice"
                else:
                    assert json.loads(body) == {"message": "Unauthorized"}
        finally:
            conn.close()
    assert len(events) == 2
    claims = events[0]["requestContext"]["authorizer"]["claims"]
    assert claims["iss"] == verifier.issuer
    assert claims["token_use"] == "id"
    assert claims["exp"].endswith(time.strftime(" UTC %Y", time.gmtime(int(claims["auth_time"]) + 3600)))
    assert verifier.jwks_fetches == 1
