"""Users of a Cognito user pool, as a test needs them: a confirmed user with a password, and an ID token."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from localcloud.errors import CloudError

__all__ = ["add_user", "id_token"]


def _secret_hash(username: str, client_id: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), (username + client_id).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def add_user(idp: Any, pool_id: str, name: str, password: str) -> None:
    """Create a confirmed user with a permanent password (what an admin does for a test user)."""
    try:
        idp.admin_create_user(UserPoolId=pool_id, Username=name, MessageAction="SUPPRESS")
    except idp.exceptions.UsernameExistsException:
        raise CloudError(f"user {name} already exists in pool {pool_id}") from None
    try:
        idp.admin_set_user_password(UserPoolId=pool_id, Username=name, Password=password, Permanent=True)
    except idp.exceptions.InvalidPasswordException as e:
        idp.admin_delete_user(UserPoolId=pool_id, Username=name)
        raise CloudError(f"password refused by the pool's policy: {e.response['Error'].get('Message', e)}") from None


def id_token(idp: Any, client_id: str, name: str, password: str, secret: str | None = None) -> str:
    """Sign in with ``USER_PASSWORD_AUTH`` and return the ID token."""
    params = {"USERNAME": name, "PASSWORD": password}
    if secret:
        params["SECRET_HASH"] = _secret_hash(name, client_id, secret)
    try:
        answer = idp.initiate_auth(AuthFlow="USER_PASSWORD_AUTH", ClientId=client_id, AuthParameters=params)
    except (idp.exceptions.NotAuthorizedException, idp.exceptions.UserNotFoundException):
        raise CloudError(f"sign-in refused for {name}: wrong user name or password") from None
    if "AuthenticationResult" not in answer:
        raise CloudError(f"sign-in for {name} needs a challenge ({answer.get('ChallengeName')}); "
                         "add_user makes a confirmed user with a permanent password")
    return answer["AuthenticationResult"]["IdToken"]
