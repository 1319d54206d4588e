"""How AWS SDKs are aimed at the local cloud: fake credentials, the environment, shared boto3 clients.

Every client the local cloud makes and every process it starts signs with ``testing`` credentials
and has ``AWS_ENDPOINT_URL`` set, with no profile or config file to read: nothing can reach a real
account, whatever credentials the machine has.
"""

from __future__ import annotations

import os
import threading
from typing import Any

__all__ = ["FAKE_CREDENTIALS", "Clients", "fake_aws_environment", "fake_session"]

#: What every local client and process signs with: moto accepts anything, AWS accepts none of it.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
}


def fake_aws_environment(endpoint_url: str, region_name: str) -> dict[str, str]:
    """The variables that aim the AWS SDKs and CLIs at ``endpoint_url`` with fake credentials."""
    return {
        **FAKE_CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": region_name,
        "AWS_REGION": region_name,
        # no profile, no config file: a ~/.aws/config cannot add credentials or turn the endpoint off
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "false",
    }


def fake_session(region: str) -> Any:
    """A boto3 session in ``region`` that signs with the fake credentials and reads no profile."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=region,
    )


class Clients:
    """boto3 clients aimed at the local cloud, with fake credentials; one per service, shared."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        from botocore.config import Config

        self.endpoint_url = endpoint_url
        self.region = region
        self._session = fake_session(region)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30,
                              max_pool_connections=20)

    def __call__(self, service: str) -> Any:
        with self._lock:  # a boto3 session is not thread-safe; its clients are
            client = self._clients.get(service)
            if client is None:
                client = self._session.client(service, endpoint_url=self.endpoint_url, config=self._config)
                self._clients[service] = client
            return client
