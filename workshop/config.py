"""The workshop's settings: one small function each, an environment variable to override it, a local default.

Nothing here talks to AWS. Every default points at this machine: the local cloud, fake credentials.

==============================  ==========================================  ==========================
function                        environment variable                        default
==============================  ==========================================  ==========================
``region()``                    ``WORKSHOP_REGION``                         ``us-east-1``
``state_file()``                ``WORKSHOP_STATE_FILE``                     ``<repo>/.workshop/state.json``
``api_port()``                  ``WORKSHOP_API_PORT``                       ``3000`` (SAM CLI's)
``target_is_aws()``             ``WORKSHOP_TARGET`` (``local`` | ``aws``)   ``local``
``repo_root()``                 ``WORKSHOP_REPO_ROOT``                      the folder above ``workshop/``
``stack_name()``                ``WORKSHOP_STACK_NAME``                     ``thumbnailr``
``account_id()``                ``WORKSHOP_ACCOUNT_ID``                     ``123456789012``
``async_retry_delays()``        ``WORKSHOP_ASYNC_RETRY_DELAYS``             ``1,2`` (seconds)
``stream_retry_delay()``        ``WORKSHOP_STREAM_RETRY_DELAY``             ``0.2`` (seconds)
==============================  ==========================================  ==========================

Lambda retries a failed asynchronous invocation twice, about one minute and then two minutes
later. Locally the waits are *seconds* (``1,2``): the same shape, sixty times faster, so a
learner sees a retry happen without waiting minutes. Set ``WORKSHOP_ASYNC_RETRY_DELAYS=60,120``
for AWS's timing, or ``0.05,0.1`` in tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = [
    "account_id",
    "api_port",
    "async_retry_delays",
    "local_cloud_options",
    "region",
    "repo_root",
    "stack_name",
    "state_file",
    "stream_retry_delay",
    "target_is_aws",
    "template_path",
]

def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def region() -> str:
    """The local cloud's region (``WORKSHOP_REGION``, default ``us-east-1``)."""
    return _env("WORKSHOP_REGION") or "us-east-1"


def repo_root() -> Path:
    """The repository's root (``WORKSHOP_REPO_ROOT``, default: the folder holding ``workshop/``)."""
    value = _env("WORKSHOP_REPO_ROOT")
    return Path(value).resolve() if value else Path(__file__).resolve().parent.parent


def template_path(root: Path | None = None) -> Path:
    """The SAM template: ``<repo>/sam-app/template.yaml``."""
    return (root or repo_root()) / "sam-app" / "template.yaml"


def state_file(root: Path | None = None) -> Path:
    """Where ``python -m workshop up`` writes its endpoints (``WORKSHOP_STATE_FILE``)."""
    value = _env("WORKSHOP_STATE_FILE")
    return Path(value).resolve() if value else (root or repo_root()) / ".workshop" / "state.json"


def api_port() -> int:
    """The local API's default port (``WORKSHOP_API_PORT``, default 3000 like ``sam local start-api``)."""
    value = _env("WORKSHOP_API_PORT")
    if value is None:
        return 3000
    try:
        port = int(value)
    except ValueError:
        raise ValueError(f"WORKSHOP_API_PORT={value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"WORKSHOP_API_PORT={value!r} is not a port number (0-65535)")
    return port


def target_is_aws() -> bool:
    """True when ``WORKSHOP_TARGET=aws``: the notebooks then talk to a deployed stack. Default: local."""
    value = (_env("WORKSHOP_TARGET") or "local").lower()
    if value not in ("local", "aws"):
        raise ValueError(f"WORKSHOP_TARGET={value!r}: use 'local' (the default) or 'aws'")
    return value == "aws"


def stack_name() -> str:
    """The stack's name (``WORKSHOP_STACK_NAME``, default ``thumbnailr``: samconfig.toml's)."""
    return _env("WORKSHOP_STACK_NAME") or "thumbnailr"


def account_id() -> str:
    """The local account id (``WORKSHOP_ACCOUNT_ID``, default moto's ``123456789012``)."""
    return _env("WORKSHOP_ACCOUNT_ID") or "123456789012"


def async_retry_delays() -> tuple[float, ...]:
    """Waits before the retries of a failed asynchronous invocation, in seconds (``1,2``).

    AWS waits about 1 and then 2 *minutes*; the local cloud uses seconds. The last value is reused
    if a function allows more retries than there are values.
    """
    value = _env("WORKSHOP_ASYNC_RETRY_DELAYS")
    if value is None:
        return (1.0, 2.0)
    try:
        delays = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"WORKSHOP_ASYNC_RETRY_DELAYS={value!r}: use seconds separated by commas, e.g. 1,2") from None
    if not delays or any(d < 0 for d in delays):
        raise ValueError(f"WORKSHOP_ASYNC_RETRY_DELAYS={value!r}: use seconds separated by commas, e.g. 1,2")
    return delays


def stream_retry_delay() -> float:
    """Wait before retrying a failed stream batch, in seconds (``WORKSHOP_STREAM_RETRY_DELAY``, 0.2)."""
    value = _env("WORKSHOP_STREAM_RETRY_DELAY")
    try:
        return max(0.0, float(value)) if value is not None else 0.2
    except ValueError:
        raise ValueError(f"WORKSHOP_STREAM_RETRY_DELAY={value!r} is not a number of seconds") from None


def local_cloud_options(root: Path | None = None) -> dict[str, Any]:
    """The workshop's settings as ``localcloud.LocalCloud`` arguments: the app's template, the stack's
    name, region and account, the retry delays, and the SAM transform's cache in ``.workshop/cache``."""
    root = root or repo_root()
    return {
        "template": template_path(root),
        "stack_name": stack_name(),
        "region": region(),
        "account_id": account_id(),
        "retry_delays": async_retry_delays(),
        "stream_retry_delay": stream_retry_delay(),
        "cache_dir": root / ".workshop" / "cache",
    }
