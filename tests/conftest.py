"""Every test runs offline: fake AWS credentials, no profile, and no socket may leave this machine.

For the whole session, every test gets fake credentials (``testing``), no ``AWS_PROFILE``, no
``~/.aws`` files, and a socket guard: a connection (or a name lookup) for anything but 127.0.0.1,
localhost or ::1 raises ``RealNetworkBlocked``, so a call that would reach AWS fails loudly.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator

import pytest


class RealNetworkBlocked(OSError):
    """A test tried to reach something other than this machine (AWS, for one)."""


def _is_local_host(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).split("%", 1)[0]
    if host in ("", "localhost", "localhost.localdomain", "0.0.0.0", "::"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


@pytest.fixture(scope="session", autouse=True)
def no_real_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Fake credentials, no profile, and sockets that only reach this machine (for the whole session)."""
    mp = pytest.MonkeyPatch()
    for name in list(os.environ):
        if name.startswith("AWS_"):
            mp.delenv(name)
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_SESSION_TOKEN", "testing")
    mp.setenv("AWS_SECURITY_TOKEN", "testing")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.setenv("AWS_CONFIG_FILE", os.devnull)
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    # the workshop's settings at their defaults, except where `up` keeps its state
    for name in list(os.environ):
        if name.startswith("WORKSHOP_"):
            mp.delenv(name)
    mp.setenv("WORKSHOP_STATE_FILE", str(tmp_path_factory.mktemp("workshop") / "state.json"))

    blocked: list[str] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: object) -> None:
        if isinstance(address, (str, bytes)):  # AF_UNIX
            return
        host = address[0] if isinstance(address, tuple) and address else address
        if not _is_local_host(host):
            blocked.append(repr(address))
            raise RealNetworkBlocked(f"the tests may only connect to this machine, not to {address!r}")

    def connect(self: socket.socket, address: object) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> list:
        if not _is_local_host(host):
            blocked.append(repr(host))
            raise RealNetworkBlocked(f"the tests may only look up this machine, not {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    mp.setattr(socket.socket, "connect", connect)
    mp.setattr(socket.socket, "connect_ex", connect_ex)
    mp.setattr(socket, "getaddrinfo", getaddrinfo)
    yield blocked
    mp.undo()
