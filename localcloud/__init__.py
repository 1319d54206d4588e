"""AWS on 127.0.0.1, without Docker: one endpoint, with our own Lambda, CloudFormation, API Gateway and event
sources, and moto for the other services.

It learns an app only from its SAM template (deployed as a CloudFormation stack) and runs its code only as
Lambda does (a handler string in an ``awslambdaric`` process)::

    from localcloud import LocalCloud

    with LocalCloud("sam-app/template.yaml") as cloud:
        cloud.client("s3").list_buckets()     # boto3, aimed at the local endpoint
        cloud.invoke("PingFunction", {})      # the runtime's InvocationResult, REPORT line included

The names below are its public face; everything in the sub-packages is internal.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it (imported on first use: `import localcloud` stays cheap)
_PUBLIC = {
    "LocalCloud": "localcloud.cloud",
    "CloudError": "localcloud.errors",
    "Throttled": "localcloud.errors",
    "UnknownFunction": "localcloud.errors",
    "RequestTooLarge": "localcloud.errors",
    "FunctionSpec": "localcloud.lambda_service.spec",
    "InvocationResult": "localcloud.lambda_service.spec",
    "Stack": "localcloud.cfn.stack",
    "TemplateError": "localcloud.cfn.errors",
    "sam_transform": "localcloud.cfn.transform",
    "read_template": "localcloud.cfn.transform",
    "refs_in": "localcloud.cfn.intrinsics",
    "host_code_dir": "localcloud.lambda_service.code",
    "use_host_native_packages": "localcloud.lambda_service.code",
    "LocalAlb": "localcloud.fronts.alb",
    "alb_event": "localcloud.fronts.alb",
    "start_plain_server": "localcloud.fronts.plain_server",
    "FaultProxy": "localcloud.faults",
    "Clients": "localcloud.sdk",
    "add_user": "localcloud.users",
    "id_token": "localcloud.users",
    "FAKE_CREDENTIALS": "localcloud.sdk",
    "fake_aws_environment": "localcloud.sdk",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'localcloud' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
