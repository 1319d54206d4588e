"""Fixtures for the local cloud's tests: no real AWS, ever; one LocalCloud per dispatch mode.

* Every test runs offline (``tests/conftest.py``): fake credentials and a socket guard.
* ``sns_cloud`` and ``stream_cloud`` are started once per test module that uses them (each is a
  moto server, the app's resources and its functions: seconds to start, longer to warm), and
  stopped after it, so that other modules' tests see no process or thread of theirs; tests that
  change them add their own resources and functions instead of changing the app's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HANDLERS = Path(__file__).resolve().parent / "handlers"
#: Async retries 60x faster than the local default (which is itself 60x faster than AWS).
FAST_RETRIES = (0.05, 0.1)


def _cloud(**kwargs: object) -> Iterator[object]:
    from localcloud.cloud import LocalCloud

    cloud = LocalCloud(REPO / "sam-app" / "template.yaml", port=0, retry_delays=FAST_RETRIES, stream_retry_delay=0.05, **kwargs)
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()


@pytest.fixture(scope="module")
def moto_clients(no_real_aws: list[str]) -> Iterator[object]:
    """Clients of a moto process of the module's own (the local cloud's, with its fixes), in us-east-1."""
    import os

    from localcloud.endpoint.moto_process import MotoProcess
    from localcloud.sdk import Clients, fake_aws_environment

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(fake_aws_environment("http://127.0.0.1:0", "us-east-1"))
    env.pop("AWS_ENDPOINT_URL", None)
    moto = MotoProcess(env)
    try:
        yield Clients(f"http://127.0.0.1:{moto.wait_ready()}", "us-east-1")
    finally:
        moto.stop()


@pytest.fixture(scope="module")
def sns_cloud(no_real_aws: list[str]) -> Iterator[object]:
    """The app with Dispatch=sns (the template's defaults otherwise)."""
    yield from _cloud(dispatch="sns")


@pytest.fixture(scope="module")
def stream_cloud(no_real_aws: list[str]) -> Iterator[object]:
    """The app with Dispatch=stream and MonthlyQuota=3 (so the quota test is short)."""
    yield from _cloud(dispatch="stream", parameters={"MonthlyQuota": "3"})
