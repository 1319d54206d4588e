"""Hostile requests to every route over HTTP: each is answered with a clear 4xx and a JSON
``{"message"}``, never a 5xx, and nothing is left pending nor any quota spent.

Tokens: missing, empty, garbage, ``alg: none``, HS256 signed with the pool's public key, RS256 signed
with our own key, a tampered payload, expired (signed with moto's own Cognito key, which ships in the
moto package: ``moto/cognitoidp/resources/jwks-private.json.gz``), another pool's, an access token
instead of an ID token, the wrong audience.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from importlib import resources
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.reliability import harness

pytestmark = pytest.mark.local_cloud

ID = "0" * 32
AUTHORIZED_ROUTES = [("POST", "photos"), ("GET", f"photos/{ID}"), ("POST", "thumbnails"), ("GET", f"thumbnails/{ID}")]


@pytest.fixture(scope="module")
def cloud() -> Any:
    with harness.local_cloud(dispatch="sns", parameters={"MonthlyQuota": "5"}) as cloud:
        yield cloud


@pytest.fixture(scope="module")
def api(cloud: Any) -> harness.Api:
    return harness.Api(cloud)


@pytest.fixture(scope="module")
def users(cloud: Any, api: harness.Api) -> dict[str, Any]:
    """Two users; the first has a ready photo and a thumbnail, and a photo still waiting for its upload."""
    from benchmarks.photos import encode, realistic_photo

    owner, other = harness.new_user(cloud, "owner"), harness.new_user(cloud, "other")
    photo_id = harness.upload(api, owner, encode(realistic_photo(64, 48, seed=5), "JPEG"))
    assert harness.wait_photo(api, owner, photo_id)["status"] == "ready"
    answer = api.post("thumbnails", headers=owner, json={"photo_id": photo_id, "width": 8, "height": 8, "format": "PNG"})
    thumbnail_id = answer.json()["thumbnail_id"]
    assert harness.wait_thumbnail(api, owner, thumbnail_id)["status"] == "ready"
    waiting = api.post("photos", headers=owner, json={"content_type": "image/png"}).json()["photo_id"]
    return {"owner": owner, "other": other, "photo_id": photo_id, "thumbnail_id": thumbnail_id, "waiting": waiting}


def assert_clear_4xx(answer: Any, *statuses: int) -> None:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    if statuses:
        assert answer.status_code in statuses, (answer.status_code, answer.text[:300])
    body = answer.json()
    assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"], body
    assert len(body["message"]) <= 300
    assert "Traceback" not in answer.text and "botocore" not in answer.text


# --------------------------------------------------------------------------- tokens


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def moto_private_key() -> Any:
    raw = (resources.files("moto") / "cognitoidp" / "resources" / "jwks-private.json.gz").read_bytes()
    return jwt.algorithms.RSAAlgorithm.from_jwk(gzip.decompress(raw).decode())


def moto_public_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization

    return moto_private_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def bad_tokens(cloud: Any, users: dict[str, Any]) -> dict[str, tuple[str, int, str | None]]:
    """name -> (Authorization header, expected status, expected message or None)."""
    good = users["owner"]["Authorization"]
    claims = _claims(good)
    header = jwt.get_unverified_header(good)
    now = int(time.time())
    own_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    moto_key = moto_private_key()
    head, payload, signature = good.split(".")

    idp = cloud.client("cognito-idp")
    pool = idp.create_user_pool(PoolName="another-pool")["UserPool"]["Id"]
    client = idp.create_user_pool_client(UserPoolId=pool, ClientName="c", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"])
    client_id = client["UserPoolClient"]["ClientId"]
    from localcloud.users import add_user, id_token

    add_user(idp, pool, "mallory", harness.PASSWORD)
    other_pool = id_token(idp, client_id, "mallory", harness.PASSWORD)
    _, own_client, _ = cloud.user_pool()
    name = claims["cognito:username"]
    access = idp.initiate_auth(AuthFlow="USER_PASSWORD_AUTH", ClientId=own_client,
                               AuthParameters={"USERNAME": name, "PASSWORD": harness.PASSWORD})["AuthenticationResult"]["AccessToken"]
    unauthorized = "Unauthorized"
    return {
        "garbage": ("not.a.token", 401, unauthorized),
        "one-segment": ("eyJhbGciOiJSUzI1NiJ9", 401, unauthorized),
        "alg-none": (f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.", 401, unauthorized),
        "alg-none-signed": (f"{_b64({'alg': 'none', 'kid': header['kid']})}.{payload}.{signature}", 401, unauthorized),
        "alg-NoNe": (f"{_b64({'alg': 'NoNe', 'kid': header['kid']})}.{payload}.", 401, unauthorized),
        "hs256-with-public-key": (_hs256_confusion(claims, header["kid"]), 401, unauthorized),
        "forged-own-rsa-key": (jwt.encode(claims, own_key, "RS256", headers={"kid": header["kid"]}), 401, unauthorized),
        "forged-unknown-kid": (jwt.encode(claims, own_key, "RS256", headers={"kid": "mine"}), 401, unauthorized),
        "tampered-sub": (f"{head}.{_b64({**claims, 'sub': 'someone-else'})}.{signature}", 401, unauthorized),
        "expired-moto-key": (jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, moto_key, "RS256",
                                        headers={"kid": header["kid"]}), 401, "The incoming token has expired"),
        "not-yet-valid": (jwt.encode({**claims, "iat": now + 3600, "exp": now + 7200}, moto_key, "RS256",
                                     headers={"kid": header["kid"]}), 401, unauthorized),
        "wrong-audience": (jwt.encode({**claims, "aud": "someone-elses-client"}, moto_key, "RS256",
                                      headers={"kid": header["kid"]}), 401, unauthorized),
        "no-exp": (jwt.encode({k: v for k, v in claims.items() if k != "exp"}, moto_key, "RS256",
                              headers={"kid": header["kid"]}), 401, unauthorized),
        "other-pool": (other_pool, 401, unauthorized),
        "access-token": (access, 401, unauthorized),
        "huge-token": ("eyJ" + "A" * 60_000 + ".x.y", 401, None),
        "unicode-token": ("\U0001f511.\u043a\u043b\u044e\u0447.\u2603".encode(), 401, None),
    }


def _hs256_confusion(claims: dict, kid: str) -> str:
    """An HMAC 'signature' with the pool's public key as the secret (the classic RS256/HS256 confusion)."""
    import hashlib
    import hmac

    head = _b64({"alg": "HS256", "typ": "JWT", "kid": kid})
    body = _b64(claims)
    mac = hmac.new(moto_public_pem(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


TOKEN_CASES = ["missing", "empty", "garbage", "one-segment", "alg-none", "alg-none-signed", "alg-NoNe",
               "hs256-with-public-key", "forged-own-rsa-key", "forged-unknown-kid", "tampered-sub",
               "expired-moto-key", "not-yet-valid", "wrong-audience", "no-exp", "other-pool", "access-token",
               "huge-token", "unicode-token"]


@pytest.mark.parametrize("case", TOKEN_CASES)
def test_every_authorized_route_refuses_a_bad_token(api: harness.Api, bad_tokens: dict, users: dict, case: str) -> None:
    for method, path in AUTHORIZED_ROUTES:
        harness.count("inputs")
        if case == "missing":
            headers, status, message = {}, 401, "Unauthorized"
        elif case == "empty":
            headers, status, message = {"Authorization": ""}, 401, "Unauthorized"
        else:
            token, status, message = bad_tokens[case]
            headers = {"Authorization": token}
        body = {"photo_id": users["photo_id"], "width": 8, "height": 8, "format": "PNG"} if path == "thumbnails" else \
            {"content_type": "image/png"} if path == "photos" else None
        answer = api.request(method, path, headers=headers, json=body)
        assert_clear_4xx(answer, status)
        if message:
            assert answer.json()["message"] == message


def test_the_good_token_works_and_bearer_is_accepted(api: harness.Api, users: dict) -> None:
    token = users["owner"]["Authorization"]
    for auth in (token, f"Bearer {token}"):
        assert api.get(f"photos/{users['photo_id']}", headers={"Authorization": auth}).status_code == 200


# --------------------------------------------------------------------------- bodies


BAD_BODIES: list[tuple[str, bytes | str | None]] = [
    ("no-body", None),
    ("empty", ""),
    ("whitespace", "  \n "),
    ("null", "null"),
    ("array", "[]"),
    ("string", '"image/png"'),
    ("number", "42"),
    ("truncated-json", '{"content_type": "image/png"'),
    ("single-quotes", "{'content_type': 'image/png'}"),
    ("trailing-comma", '{"content_type": "image/png",}'),
    ("nan", '{"width": NaN}'),
    ("infinity", '{"width": Infinity, "height": -Infinity}'),
    ("invalid-utf8", b'{"content_type": "\xff\xfe"}'),
    ("utf16", '{"content_type": "image/png"}'.encode("utf-16")),
    ("nul-bytes", b"\x00" * 64),
    ("deeply-nested-arrays", "[" * 100_000 + "]" * 100_000),
    ("deeply-nested-objects", '{"a":' * 50_000 + "1" + "}" * 50_000),
    ("huge-string-5mb", json.dumps({"content_type": "x" * 5_000_000})),
    ("huge-number", '{"width": ' + "9" * 100_000 + "}"),
    ("many-keys", json.dumps({f"k{i}": i for i in range(50_000)})),
    ("duplicate-keys", '{"content_type": "image/png", "content_type": "text/html"}'),
    ("xml", "<?xml version='1.0'?><content_type>image/png</content_type>"),
    ("form", "content_type=image%2Fpng"),
]


@pytest.mark.parametrize("path", ["photos", "thumbnails"])
@pytest.mark.parametrize(("name", "body"), BAD_BODIES, ids=[n for n, _ in BAD_BODIES])
def test_malformed_bodies_are_400(api: harness.Api, users: dict, path: str, name: str, body: Any) -> None:
    harness.count("inputs")
    answer = api.post(path, headers={**users["owner"], "Content-Type": "application/json"}, data=body)
    assert_clear_4xx(answer, 400)


def _thumbnail(users: dict, **changes: Any) -> dict:
    body = {"photo_id": users["photo_id"], "width": 64, "height": 64, "format": "PNG"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not _DROP}


_DROP = object()
THUMBNAIL_CASES: list[tuple[str, dict, int]] = [
    ("width-zero", {"width": 0}, 400),
    ("width-negative", {"width": -64}, 400),
    ("height-huge", {"height": 10**12}, 400),
    ("height-2049", {"height": 2049}, 400),
    ("width-float", {"width": 64.5}, 400),
    ("width-float-whole", {"width": 64.0}, 400),
    ("width-string", {"width": "64"}, 400),
    ("width-bool", {"width": True}, 400),
    ("width-null", {"width": None}, 400),
    ("width-list", {"width": [64]}, 400),
    ("width-object", {"width": {"$gt": 0}}, 400),
    ("format-unknown", {"format": "GIF"}, 400),
    ("format-jpg", {"format": "JPG"}, 400),
    ("format-empty", {"format": ""}, 400),
    ("format-padded", {"format": " png "}, 400),
    ("format-number", {"format": 1}, 400),
    ("format-unicode", {"format": "ＰＮＧ"}, 400),
    ("missing-photo-id", {"photo_id": _DROP}, 400),
    ("missing-width", {"width": _DROP}, 400),
    ("missing-format", {"format": _DROP}, 400),
    ("extra-field", {"owner": "someone-else"}, 400),
    ("extra-proto", {"__proto__": {"admin": True}}, 400),
    ("photo-id-number", {"photo_id": 12345}, 400),
    ("photo-id-empty", {"photo_id": ""}, 400),
    ("photo-id-null", {"photo_id": None}, 400),
    ("photo-id-sql", {"photo_id": "' OR '1'='1' --"}, 404),
    ("photo-id-nosql", {"photo_id": '{"$ne": null}'}, 404),
    ("photo-id-path", {"photo_id": "../../etc/passwd"}, 404),
    ("photo-id-jndi", {"photo_id": "${jndi:ldap://127.0.0.1/a}"}, 404),
    ("photo-id-template", {"photo_id": "{{7*7}}${7*7}"}, 404),
    ("photo-id-html", {"photo_id": "<script>alert(1)</script>"}, 404),
    ("photo-id-unicode", {"photo_id": "\U0001f4f7\u202e\u0000\u0645\u0631\u062d\u0628\u0627"}, 404),
    ("photo-id-lone-surrogate", {"photo_id": "\ud800"}, 404),
    ("photo-id-huge", {"photo_id": "a" * 1_000_000}, 404),
    ("photo-id-uppercase", {"photo_id": "A" * 32}, 404),
    ("photo-id-unknown", {"photo_id": "f" * 32}, 404),
]


@pytest.mark.parametrize(("name", "changes", "status"), THUMBNAIL_CASES, ids=[c[0] for c in THUMBNAIL_CASES])
def test_bad_thumbnail_requests_are_4xx(api: harness.Api, users: dict, name: str, changes: dict, status: int) -> None:
    harness.count("inputs")
    answer = api.post("thumbnails", headers=users["owner"], json=_thumbnail(users, **changes))
    assert_clear_4xx(answer, status)


UPLOAD_CASES = [
    ("missing", {}), ("null", {"content_type": None}), ("number", {"content_type": 1}),
    ("list", {"content_type": ["image/png"]}), ("gif", {"content_type": "image/gif"}),
    ("svg", {"content_type": "image/svg+xml"}), ("html", {"content_type": "text/html"}),
    ("upper", {"content_type": "IMAGE/PNG"}), ("params", {"content_type": "image/png; charset=utf-8"}),
    ("nul", {"content_type": "image/png\u0000"}), ("crlf", {"content_type": "image/png\r\nX-Evil: 1"}),
    ("extra", {"content_type": "image/png", "key": "photos/../../evil"}),
    ("bucket", {"content_type": "image/png", "bucket": "other"}),
]


@pytest.mark.parametrize(("name", "body"), UPLOAD_CASES, ids=[c[0] for c in UPLOAD_CASES])
def test_bad_upload_requests_are_400(api: harness.Api, users: dict, name: str, body: dict) -> None:
    harness.count("inputs")
    assert_clear_4xx(api.post("photos", headers=users["owner"], json=body), 400)


def test_over_the_size_limits(api: harness.Api, users: dict) -> None:
    """Over 10 MB API Gateway's front end refuses with a plain-text 413 (as AWS does)."""
    harness.count("inputs")
    answer = api.post("thumbnails", headers={**users["owner"], "Content-Type": "application/json"},
                      data=b'{"photo_id": "' + b"a" * (11 * 1024 * 1024) + b'"}')
    assert answer.status_code == 413
    assert "exceeded" in answer.text


@pytest.mark.xfail(strict=True, reason="Lambda's 6 MB synchronous payload limit: API Gateway answers 500 for a body "
                                        "between ~6 and 10 MB, before the function runs (a platform limit, as on AWS)")
def test_a_body_between_lambdas_and_api_gateways_limits(api: harness.Api, users: dict) -> None:
    harness.count("inputs")
    answer = api.post("photos", headers={**users["owner"], "Content-Type": "application/json"}, expect_5xx=True,
                      data=b'{"content_type": "' + b"x" * (7 * 1024 * 1024) + b'"}')
    assert_clear_4xx(answer)


# --------------------------------------------------------------------------- ids: someone else's, odd paths


def test_other_users_ids_are_404_like_missing_ones(api: harness.Api, users: dict) -> None:
    other = users["other"]
    for answer in (
        api.get(f"photos/{users['photo_id']}", headers=other),
        api.get(f"thumbnails/{users['thumbnail_id']}", headers=other),
        api.post("thumbnails", headers=other, json={"photo_id": users["photo_id"], "width": 8, "height": 8, "format": "PNG"}),
    ):
        harness.count("inputs")
        assert_clear_4xx(answer, 404)
        assert answer.json()["message"] in ("photo not found", "thumbnail not found")
        assert users["photo_id"] not in answer.text


def test_a_photo_not_uploaded_yet_is_409(api: harness.Api, users: dict) -> None:
    harness.count("inputs")
    answer = api.post("thumbnails", headers=users["owner"], json={"photo_id": users["waiting"], "width": 8, "height": 8, "format": "PNG"})
    assert_clear_4xx(answer, 409)


ODD_PATHS = [
    "photos/" + "a" * 2000, "photos/%00", "photos/..%2F..%2Fetc%2Fpasswd", "photos/%F0%9F%93%B7",
    "photos/%ZZ", "thumbnails/" + "0" * 31 + "g", "thumbnails/%27%20OR%201%3D1", "photos/" + ID.upper(),
    "thumbnails/" + ID + "%0d%0aX-Evil:%201",
]


@pytest.mark.parametrize("path", ODD_PATHS)
def test_odd_ids_in_paths_are_404(api: harness.Api, users: dict, path: str) -> None:
    harness.count("inputs")
    assert_clear_4xx(api.get(path, headers=users["owner"]), 404)


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", f"photos/{ID}"), ("PUT", "photos"), ("PATCH", "thumbnails"), ("GET", "photos"),
    ("POST", "ping"), ("GET", "admin"), ("GET", "photos/a/b"), ("GET", "../../etc/passwd"), ("OPTIONS", "thumbnails"),
])
def test_unknown_routes_and_methods_are_403(api: harness.Api, users: dict, method: str, path: str) -> None:
    harness.count("inputs")
    for headers in ({}, users["owner"]):
        assert_clear_4xx(api.request(method, path, headers=headers), 403)


def test_ping_ignores_hostile_extras(api: harness.Api) -> None:
    harness.count("inputs")
    answer = api.get("ping?x=%00&y=" + "z" * 5000, headers={"Authorization": "garbage", "X-Forwarded-For": "1.2.3.4"})
    assert answer.status_code == 200 and answer.json() == {"ok": True}


# --------------------------------------------------------------------------- afterwards


def test_no_crash_nothing_pending_no_quota_spent(cloud: Any, users: dict) -> None:
    """Run last (pytest keeps file order): only the one good thumbnail spent quota."""
    assert harness.function_errors(cloud) == []
    assert harness.check_nothing_pending(cloud) == []
    assert sorted(harness.quota_used(cloud).values()) == [1]
    assert len(harness.table_items(cloud, "ThumbnailsTableName")) == 1
