"""CloudFormation's API (the query protocol) in front of a ``CloudFormationService``: a codec, no logic.

``CloudFormationApi(service)`` is an ``HttpServer`` handler: it reads ``Action=...`` requests with
``localcloud.protocols.query``, calls the service's method of the same name (``CreateChangeSet`` ->
``create_change_set(params)``) and writes its result, or its ``CloudFormationError``, as
CloudFormation's XML. An operation the service has no method for is answered with an AWS-shaped
``NotImplemented`` error naming it.
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/CommonErrors.html
"""

from __future__ import annotations

import logging
import uuid

from botocore import xform_name

from localcloud.cfn.service import CloudFormationError, CloudFormationService
from localcloud.http import Request
from localcloud.protocols.query import QueryCodec, QueryRequestError

__all__ = ["CloudFormationApi"]

log = logging.getLogger(__name__)

#: the largest request read: a 51,200-byte TemplateBody, form-encoded, with room to spare
MAX_BODY = 1024 * 1024


class CloudFormationApi:
    """The CloudFormation endpoint's request handler."""

    def __init__(self, service: CloudFormationService) -> None:
        self.service = service
        self.codec = QueryCodec.for_service("cloudformation")

    def __call__(self, request: Request) -> None:
        request_id = str(uuid.uuid4())
        body = request.read_body(MAX_BODY)
        query = request.path.partition("?")[2]
        try:
            operation, params = self.codec.parse(body, query)
            method = getattr(self.service, xform_name(operation), None)
            if method is None:
                raise QueryRequestError("NotImplemented", f"The local cloud does not implement {operation}", 501)
            result = method(params)
        except (CloudFormationError, QueryRequestError) as e:
            self._error(request, e.status, e.code, e.message, request_id)
            return
        except Exception as e:  # a bug answered as AWS's internal error, not a dropped connection
            log.exception("CloudFormation request failed")
            self._error(request, 500, "InternalFailure", f"{type(e).__name__}: {e}", request_id, sender=False)
            return
        self._send(request, 200, self.codec.serialize(operation, result, request_id), request_id)

    def _error(self, request: Request, status: int, code: str, message: str, request_id: str, *,
               sender: bool = True) -> None:
        self._send(request, status, self.codec.serialize_error(code, message, sender=sender, request_id=request_id),
                   request_id)

    @staticmethod
    def _send(request: Request, status: int, body: bytes, request_id: str) -> None:
        request.respond(status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body)
