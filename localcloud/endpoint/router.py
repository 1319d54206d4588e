"""The local cloud's one AWS endpoint: each request goes to the service it was signed for, the rest to moto.

As LocalStack does, one URL serves every AWS API the SDKs and CLIs speak, so ``AWS_ENDPOINT_URL`` is all a
client needs::

    endpoint = Endpoint(moto_url, {"lambda": lambda_api, "cloudformation": cloudformation_api}).start()
    boto3.client("lambda", endpoint_url=endpoint.url, ...)   # our Lambda
    boto3.client("s3", endpoint_url=endpoint.url, ...)       # moto's S3

A request is routed by the service name of its SigV4 credential scope (``localcloud.endpoint.forward.service_of``):
the SDK signs every call for the service it calls, whatever the URL. Signatures in headers are not checked (the
credentials are fake). What S3 checks and moto does not, a presigned POST's policy and a presigned URL's expiry
and signature, is checked in front of moto (``localcloud.endpoint.s3_checks``); unsigned requests (a browser's
POST of a presigned form) are S3's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from localcloud.endpoint.forward import MAX_REQUEST_BYTES, Forwarder, service_of
from localcloud.endpoint.s3_checks import S3Checks
from localcloud.http import HttpServer, Request
from localcloud.sdk import FAKE_CREDENTIALS

log = logging.getLogger(__name__)

__all__ = ["Endpoint"]

Handler = Callable[[Request], None]


class Endpoint:
    """One HTTP endpoint on 127.0.0.1 for every AWS service: ``services`` by SigV4 name, moto for the rest."""

    def __init__(self, moto_url: str, services: Mapping[str, Handler] | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, credentials: Mapping[str, str] | None = None) -> None:
        """``credentials``: the secret of each access key id that may sign a presigned S3 request (the local
        cloud's fake ones by default)."""
        self.services: dict[str, Handler] = dict(services or {})
        self.moto_url = moto_url
        self._moto = Forwarder(moto_url)
        known = {FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]: FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
        self._s3 = S3Checks(self._moto, known if credentials is None else credentials, max_body=MAX_REQUEST_BYTES)
        self._http = HttpServer(self._serve, host=host, port=port, name="the AWS endpoint")

    def serve(self, service: str, handler: Handler) -> None:
        """Answer the requests signed for ``service`` with ``handler`` from now on."""
        self.services[service] = handler

    def start(self) -> Endpoint:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()
        self._moto.close()

    def __enter__(self) -> Endpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the value of ``AWS_ENDPOINT_URL``."""
        return f"http://127.0.0.1:{self.port}"

    def _serve(self, request: Request) -> None:
        service = service_of(request.headers, request.path)
        handler = self.services.get(service)
        if handler is not None:
            handler(request)
        elif service in ("s3", "") and not request.headers.get("Authorization"):  # presigned, or a form POST
            self._s3(request)
        else:
            self._moto(request)
