"""Going serverless on AWS with Python & SAM: the local cloud and the notebooks' helpers.

``python -m workshop up`` (``workshop.cli``) or ``workshop.cloud.LocalCloud`` run the SAM app in
``sam-app/`` on this machine: moto for the AWS services, ``workshop.lambda_runtime`` for the
functions, ``workshop.apigateway`` for the API. Nothing reaches a real AWS account.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LocalCloud"]


def __getattr__(name: str) -> Any:  # `from workshop import LocalCloud`, without importing boto3 at `import workshop`
    if name == "LocalCloud":
        from workshop.cloud import LocalCloud

        return LocalCloud
    raise AttributeError(f"module 'workshop' has no attribute {name!r}")
