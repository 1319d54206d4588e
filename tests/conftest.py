"""Every test runs offline: fake AWS credentials, and no socket may leave this machine."""

import ipaddress
import socket

import pytest

_real_connect = socket.socket.connect
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # a Unix socket path
        return True
    host = address[0]
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
        raise ConnectionRefusedError(f"tests must not leave 127.0.0.1, but something connected to {address!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Fake credentials and region, no profile, and a guard that refuses any non-loopback connection."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    yield
