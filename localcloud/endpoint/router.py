"""The local cloud's one AWS endpoint: each request goes to the service it was signed for, the rest to moto.

As LocalStack does, one URL serves every AWS API the SDKs and CLIs speak, so ``AWS_ENDPOINT_URL`` is all a
client needs::

    endpoint = Endpoint(moto_url, {"lambda": lambda_api, "cloudformation": cloudformation_api}).start()
    boto3.client("lambda", endpoint_url=endpoint.url, ...)   # our Lambda
    boto3.client("s3", endpoint_url=endpoint.url, ...)       # moto's S3

A request is routed by the service name of its SigV4 credential scope (``localcloud.endpoint.forward.service_of``):
the SDK signs every call for the service it calls, whatever the URL. Signatures are not checked (the
credentials are fake). Unsigned requests (a browser's POST of a presigned form, a presigned GET) go to moto.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from localcloud.endpoint.forward import Forwarder, service_of
from localcloud.http import HttpServer, Request

log = logging.getLogger(__name__)

__all__ = ["Endpoint"]

Handler = Callable[[Request], None]


class Endpoint:
    """One HTTP endpoint on 127.0.0.1 for every AWS service: ``services`` by SigV4 name, moto for the rest."""

    def __init__(self, moto_url: str, services: Mapping[str, Handler] | None = None, *,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.services: dict[str, Handler] = dict(services or {})
        self.moto_url = moto_url
        self._moto = Forwarder(moto_url)
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
        handler = self.services.get(service_of(request.headers, request.path))
        if handler is None:
            self._moto(request)
        else:
            handler(request)
