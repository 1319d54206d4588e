"""Verify Cognito user pool ID tokens, the way API Gateway's Cognito authorizer does.

A REST API method with a ``COGNITO_USER_POOLS`` authorizer (and no OAuth scopes) accepts an
**ID token** issued by the pool for one of its app clients. This module checks exactly that:

* the signature is RS256 and made by a key in the pool's JWKS
  (``https://cognito-idp.<region>.amazonaws.com/<pool_id>/.well-known/jwks.json``);
  ``alg: none``, HS256 (the "public key used as HMAC secret" confusion) and every other
  algorithm are refused before any key is touched;
* ``iss`` is the pool (``https://cognito-idp.<region>.amazonaws.com/<pool_id>``);
* ``token_use`` is ``"id"`` (an access token is refused);
* ``aud`` is one of the app client ids;
* ``exp`` is in the future (``nbf``/``iat`` not in the future), give or take ``leeway_s``.

The JWKS is fetched once and cached. A token whose ``kid`` is not in the cache triggers one
refetch (keys rotate), but at most once a minute, so a stream of forged ``kid`` values cannot
turn the verifier into a JWKS-fetching loop.

Against moto (the local cloud), ``CognitoVerifier.for_pool`` points the verifier at the JWKS
moto serves on its own server (``<endpoint>/<pool_id>/.well-known/jwks.json``) while keeping
the issuer moto writes into tokens (the real AWS URL). Note that moto signs the tokens of every
pool with one fixed RSA key (kid ``"dummy"``) whose private half ships inside the moto package:
locally, "which pool issued this token" is decided by ``iss``/``aud``, not by the key.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection
from typing import Any

import jwt

__all__ = ["CognitoVerifier", "JwksUnavailable", "TokenInvalid"]

#: Refetch the JWKS for an unknown ``kid`` at most this often (seconds).
JWKS_REFETCH_INTERVAL_S = 60.0
#: After a failed fetch, the next is tried no sooner than this: meanwhile tokens are refused at once
#: instead of each waiting for the JWKS endpoint's time-out.
JWKS_RETRY_AFTER_FAILURE_S = 5.0


class TokenInvalid(Exception):
    """The token is not a valid ID token of this pool; ``reason`` says why.

    ``reason`` is one of: ``"malformed"``, ``"alg none"``, ``"unsupported algorithm"``,
    ``"unknown key"``, ``"bad signature"``, ``"wrong issuer"``, ``"not an id token"``,
    ``"wrong audience"``, ``"expired"``, ``"not yet valid"``.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class JwksUnavailable(Exception):
    """The pool's JWKS could not be fetched or parsed (a configuration problem, not a bad token)."""


def _pool_base(region: str, user_pool_id: str) -> str:
    return f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"


class CognitoVerifier:
    """Checks Cognito ID tokens against one user pool (see the module docstring)."""

    def __init__(
        self,
        *,
        jwks_url: str,
        issuer: str,
        app_client_ids: Collection[str],
        leeway_s: int = 0,
        fetch_timeout_s: float = 1.0,  # the JWKS is fetched from 127.0.0.1 (moto): a second is plenty
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(app_client_ids, str):
            # A bare string is a Collection[str] of characters: almost certainly a mistake.
            app_client_ids = [app_client_ids]
        if not app_client_ids:
            raise ValueError("app_client_ids must name at least one app client")
        if leeway_s < 0:
            raise ValueError("leeway_s must be >= 0")
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.app_client_ids = frozenset(app_client_ids)
        self.leeway_s = leeway_s
        self._fetch_timeout_s = fetch_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._last_fetch: float | None = None  # monotonic time of the last fetch attempt
        self._last_failure: JwksUnavailable | None = None  # the last fetch's error, if it failed
        self.jwks_fetches = 0  # how many times the JWKS was fetched (for tests and curiosity)

    @classmethod
    def for_pool(
        cls,
        *,
        endpoint_url: str | None,
        region: str,
        user_pool_id: str,
        app_client_ids: Collection[str],
        leeway_s: int = 0,
    ) -> CognitoVerifier:
        """A verifier for ``user_pool_id``.

        ``endpoint_url=None`` (or the real ``cognito-idp`` endpoint) means real AWS. Any other
        endpoint is taken to be a moto server: moto serves the pool's JWKS at
        ``<endpoint_url>/<pool_id>/.well-known/jwks.json`` but writes the real AWS issuer
        (``https://cognito-idp.<region>.amazonaws.com/<pool_id>``) into its tokens.
        """
        issuer = _pool_base(region, user_pool_id)
        if endpoint_url is None or ".amazonaws.com" in endpoint_url:
            jwks_url = f"{issuer}/.well-known/jwks.json"
        else:
            jwks_url = f"{endpoint_url.rstrip('/')}/{user_pool_id}/.well-known/jwks.json"
        return cls(jwks_url=jwks_url, issuer=issuer, app_client_ids=app_client_ids, leeway_s=leeway_s)

    # -- JWKS ---------------------------------------------------------------------------------

    def _fetch_keys(self) -> dict[str, jwt.PyJWK]:
        request = urllib.request.Request(self.jwks_url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self._fetch_timeout_s) as response:
                document = json.loads(response.read())
            keyset = jwt.PyJWKSet.from_dict(document)
        except (OSError, urllib.error.URLError, ValueError, jwt.PyJWKSetError, jwt.PyJWKError) as e:
            raise JwksUnavailable(f"cannot load the JWKS from {self.jwks_url}: {e}") from e
        finally:
            self.jwks_fetches += 1
        return {k.key_id: k for k in keyset.keys if k.key_id}

    def _key_for(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            if self._keys is not None and kid in self._keys:
                return self._keys[kid]
            now = time.monotonic()
            since = None if self._last_fetch is None else now - self._last_fetch
            if self._last_failure is not None and since is not None and since < JWKS_RETRY_AFTER_FAILURE_S:
                raise self._last_failure
            if self._keys is None or since is None or since >= JWKS_REFETCH_INTERVAL_S or self._last_failure:
                self._last_fetch = now
                try:
                    self._keys = self._fetch_keys()
                except JwksUnavailable as e:
                    self._last_failure = e
                    raise
                self._last_failure = None
            if kid in self._keys:
                return self._keys[kid]
        raise TokenInvalid("unknown key", f"no key with kid {kid!r} in the pool's JWKS")

    # -- verification -------------------------------------------------------------------------

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims if it is a valid ID token of this pool; raises ``TokenInvalid``.

        Raises ``JwksUnavailable`` when the JWKS cannot be fetched (that is not the token's fault).
        """
        claims = self._signed_claims(token)
        self._check_claims(claims)
        return claims

    def _signed_claims(self, token: str) -> dict[str, Any]:
        """The payload of an RS256 token signed by a key of the pool's JWKS; nothing else checked yet."""
        if not isinstance(token, str) or token.count(".") != 2:
            raise TokenInvalid("malformed", "not a compact JWS (header.payload.signature)")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as e:
            raise TokenInvalid("malformed", str(e)) from e
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise TokenInvalid("alg none", "unsigned tokens are never accepted")
        if alg != "RS256":
            # Refused before any key is looked at: this is what defeats the HS256 confusion
            # attack (an HMAC "signed" with the pool's public key as the secret).
            raise TokenInvalid("unsupported algorithm", f"{alg} (only RS256 is accepted)")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenInvalid("malformed", "no kid in the header")
        key = self._key_for(kid)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                # Time, issuer and audience are checked below, with our clock and clearer reasons.
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except jwt.InvalidSignatureError as e:
            raise TokenInvalid("bad signature", str(e)) from e
        except jwt.InvalidTokenError as e:
            raise TokenInvalid("malformed", str(e)) from e
        if not isinstance(claims, dict):
            raise TokenInvalid("malformed", "the payload is not a JSON object")
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        """Issuer, token use, audience and times, as the Cognito authorizer checks them."""
        if claims.get("iss") != self.issuer:
            raise TokenInvalid("wrong issuer", f"{claims.get('iss')!r} is not {self.issuer!r}")
        if claims.get("token_use") != "id":
            raise TokenInvalid("not an id token", f"token_use is {claims.get('token_use')!r}")
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(isinstance(a, str) and a in self.app_client_ids for a in auds):
            raise TokenInvalid("wrong audience", f"aud {aud!r} is not one of this pool's app clients")

        now = self._clock()
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise TokenInvalid("malformed", "exp is missing or not a number")
        if now >= exp + self.leeway_s:
            raise TokenInvalid("expired", f"expired {int(now - exp)} s ago")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is None:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TokenInvalid("malformed", f"{name} is not a number")
            if value > now + self.leeway_s:
                raise TokenInvalid("not yet valid", f"{name} is {int(value - now)} s in the future")
