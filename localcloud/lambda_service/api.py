"""Lambda's REST API (LambdaApi): the HTTP requests boto3's ``lambda`` client sends, answered by a LambdaService.

Only a codec: :mod:`localcloud.protocols.rest_json` reads each request as botocore's model says,
the service does the work, and its answer (or :class:`LambdaError`) is written back as Lambda's.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from localcloud.http import BadRequest, Request
from localcloud.lambda_service.service import LambdaError, LambdaService
from localcloud.protocols.rest_json import BadInput, RestJsonCodec

__all__ = ["LambdaApi"]

log = logging.getLogger(__name__)

#: Largest request read: CreateFunction's 50 MB zip, base64 in JSON (what Lambda's own message says)
MAX_BODY = 69_905_067


class LambdaApi:
    """``api(request)``: one Lambda API request, answered with one ``request.respond``."""

    def __init__(self, service: LambdaService) -> None:
        self.service = service
        self.codec = RestJsonCodec("lambda")
        s = service
        self._operations: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
            "Invoke": self._invoke,
            "ListFunctions": lambda p: s.list_functions(p.get("Marker"), p.get("MaxItems")),
            "GetFunction": lambda p: s.get_function(p["FunctionName"], p.get("Qualifier")),
            "GetFunctionConfiguration": lambda p: s.get_function_configuration(p["FunctionName"], p.get("Qualifier")),
            "CreateFunction": s.create_function,
            "UpdateFunctionCode": lambda p: s.update_function_code(p.pop("FunctionName"), p),
            "UpdateFunctionConfiguration": lambda p: s.update_function_configuration(p.pop("FunctionName"), p),
            "PublishVersion": lambda p: s.publish_version(p.pop("FunctionName"), p),
            "ListVersionsByFunction": lambda p: s.list_versions_by_function(
                p["FunctionName"], p.get("Marker"), p.get("MaxItems")),
            "CreateAlias": lambda p: s.create_alias(p.pop("FunctionName"), p),
            "UpdateAlias": lambda p: s.update_alias(p.pop("FunctionName"), p.pop("Name"), p),
            "GetAlias": lambda p: s.get_alias(p["FunctionName"], p["Name"]),
            "DeleteAlias": lambda p: s.delete_alias(p["FunctionName"], p["Name"]),
            "ListAliases": lambda p: s.list_aliases(p["FunctionName"], p.get("FunctionVersion"),
                                                    p.get("Marker"), p.get("MaxItems")),
            "DeleteFunction": lambda p: s.delete_function(p["FunctionName"], p.get("Qualifier")),
            "PutFunctionConcurrency": lambda p: s.put_function_concurrency(
                p["FunctionName"], p.get("ReservedConcurrentExecutions")),
            "GetFunctionConcurrency": lambda p: s.get_function_concurrency(p["FunctionName"]),
            "DeleteFunctionConcurrency": lambda p: s.delete_function_concurrency(p["FunctionName"]),
            "GetAccountSettings": lambda p: s.get_account_settings(),
        }

    def __call__(self, request: Request) -> None:
        try:
            status, headers, body = self._answer(request)
        except LambdaError as e:
            status, headers, body = self.codec.error(e.code, e.message, status=e.status, fields=e.fields)
        except BadRequest as e:
            code = "RequestTooLargeException" if e.status == 413 else "InvalidRequestContentException"
            status, headers, body = self.codec.error(code, e.message, status=e.status)
            headers.append(("Connection", "close"))
        except (ConnectionError, TimeoutError):
            raise
        except Exception as e:  # noqa: BLE001 - a bug here is Lambda's ServiceException, not a dropped connection
            log.exception("Lambda API: %s %s failed", request.command, request.path)
            status, headers, body = self.codec.error("ServiceException", f"{type(e).__name__}: {e}", status=500)
        if not any(name.lower() == "x-amzn-requestid" for name, _ in headers):
            headers.append(("x-amzn-RequestId", str(uuid.uuid4())))
        request.respond(status, headers, body)

    def _answer(self, request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        matched = self.codec.match(request.command, request.path)
        if matched is None:
            raise LambdaError("UnknownOperationException",
                              f"No Lambda operation is {request.command} {request.target_path}", status=404)
        operation, labels, query = matched
        body = request.read_body(MAX_BODY)
        handler = self._operations.get(operation.name)
        if handler is None:
            # not retried by SDKs (5xx but 501), and it names what is missing
            raise LambdaError("NotImplemented", f"The local cloud does not implement Lambda's {operation.name}",
                              status=501)
        try:
            params = self.codec.parse(operation, labels, query, request.headers, body)
        except BadInput as e:
            raise LambdaError("InvalidRequestContentException", str(e)) from None
        return self.codec.serialize(operation, handler(params))

    def _invoke(self, params: dict[str, Any]) -> dict[str, Any]:
        context = None
        if params.get("ClientContext"):
            # X-Amz-Client-Context: base64 of a JSON object (https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html)
            try:
                context = json.loads(base64.b64decode(params["ClientContext"]))
            except ValueError:
                raise LambdaError("InvalidRequestContentException",
                                  "Client context must be a valid Base64-encoded JSON object.") from None
        invocation = self.service.invoke(
            params["FunctionName"], params.get("Payload") or b"", qualifier=params.get("Qualifier"),
            invocation_type=params.get("InvocationType") or "RequestResponse", log_type=params.get("LogType"),
            client_context=context)
        out: dict[str, Any] = {"StatusCode": invocation.status}
        if invocation.status == 200:
            out.update(Payload=invocation.payload, ExecutedVersion=invocation.executed_version,
                       FunctionError=invocation.function_error, LogResult=invocation.log_result)
        return out
