"""AWS's rest-json protocol from the server's side: requests parsed and responses written by botocore's model.

The operation is found by method and path against the model's ``requestUri`` templates; its input
members are read from the URI labels, the query string, the headers and the JSON body (or the raw
payload) as their ``location`` says; the output is written back the same way, and errors carry the
``x-amzn-ErrorType`` header and a JSON body botocore turns into the modeled exception.
(https://smithy.io/2.0/aws/protocols/aws-restjson1-protocol.html)
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

__all__ = ["BadInput", "RestJsonCodec", "Route"]


class BadInput(ValueError):
    """The request's parameters cannot be read as the model says (bad JSON, base64, number)."""


@dataclass(frozen=True)
class Route:
    """One operation's HTTP binding: its method, a regex of its path, the query its URI requires."""

    operation: Any  # botocore.model.OperationModel
    method: str
    pattern: re.Pattern[str]
    required_query: tuple[tuple[str, str], ...]
    literal_chars: int  # more literal text: a more specific route, tried first


@functools.lru_cache(maxsize=None)
def _service_model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def _route(operation: Any) -> Route:
    http = operation.http
    uri, _, query = http["requestUri"].partition("?")
    parts, literal, pos = [], 0, 0
    for m in re.finditer(r"\{([^}]+)\}", uri):
        parts.append(re.escape(uri[pos:m.start()]))
        literal += m.start() - pos
        label = m.group(1)
        greedy = label.endswith("+")
        parts.append(f"(?P<{label.rstrip('+')}>{'.+' if greedy else '[^/]+'})")
        pos = m.end()
    parts.append(re.escape(uri[pos:]))
    literal += len(uri) - pos
    required = tuple((k, v[0] if v else "") for k, v in parse_qs(query, keep_blank_values=True).items())
    return Route(operation, http["method"], re.compile("^" + "".join(parts) + "/?$"), required, literal)


class RestJsonCodec:
    """The rest-json codec of one service (``"lambda"``), from botocore's model of it."""

    def __init__(self, service: str) -> None:
        self.model = _service_model(service)
        routes = [_route(self.model.operation_model(name)) for name in self.model.operation_names]
        # a URI that requires a query (?List=ALL) before the same path without it
        self.routes = sorted(routes, key=lambda r: (-len(r.required_query), -r.literal_chars))

    # ----------------------------------------------------------------- requests

    def match(self, method: str, target: str) -> tuple[Any, dict[str, str], dict[str, list[str]]] | None:
        """(operation model, URI labels, query) of a request target (path?query), or None."""
        path, _, query_string = target.partition("?")
        query = parse_qs(query_string, keep_blank_values=True)
        for route in self.routes:
            if route.method != method:
                continue
            m = route.pattern.match(path)
            if m is None or any(query.get(k, [None])[0] != v for k, v in route.required_query):
                continue
            return route.operation, {k: unquote(v) for k, v in m.groupdict().items()}, query
        return None

    def parse(self, operation: Any, labels: dict[str, str], query: dict[str, list[str]],
              headers: Any, body: bytes) -> dict[str, Any]:
        """The operation's input as boto3 would have been called with it (member names, Python types)."""
        shape = operation.input_shape
        if shape is None:
            return {}
        params: dict[str, Any] = {}
        payload_name = shape.serialization.get("payload")
        body_members = {}
        for name, member in shape.members.items():
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if location == "uri":
                if wire in labels:
                    params[name] = self._scalar(member, labels[wire])
            elif location == "querystring":
                if member.type_name == "list":
                    if wire in query:
                        params[name] = [self._scalar(member.member, v) for v in query[wire]]
                elif member.type_name == "map":
                    params[name] = {k: v[0] for k, v in query.items()}
                elif wire in query:
                    params[name] = self._scalar(member, query[wire][0])
            elif location == "header":
                value = headers.get(wire)
                if value is not None:
                    params[name] = self._header_value(member, value)
            elif location == "headers":
                prefix = wire.lower()
                found = {k[len(prefix):]: v for k, v in headers.items() if k.lower().startswith(prefix)}
                if found:
                    params[name] = found
            elif name != payload_name:
                body_members[name] = member
        if payload_name is not None:
            member = shape.members[payload_name]
            if member.type_name in ("blob", "string"):
                if body:
                    params[payload_name] = body if member.type_name == "blob" else body.decode("utf-8")
            elif body.strip():
                params[payload_name] = self._from_json(member, self._json(body))
        elif body_members and body.strip():
            document = self._json(body)
            if not isinstance(document, dict):
                raise BadInput("the request body is not a JSON object")
            for name, member in body_members.items():
                wire = member.serialization.get("name", name)
                if wire in document and document[wire] is not None:
                    params[name] = self._from_json(member, document[wire])
        return params

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError as e:
            raise BadInput(f"Could not parse request body into json: {e}") from None

    @staticmethod
    def _scalar(shape: Any, text: str) -> Any:
        try:
            match shape.type_name:
                case "integer" | "long":
                    return int(text)
                case "float" | "double":
                    return float(text)
                case "boolean":
                    return text.lower() == "true"
                case _:
                    return text
        except ValueError:
            raise BadInput(f"{text!r} is not a valid {shape.type_name}") from None

    def _header_value(self, shape: Any, value: str) -> Any:
        if shape.serialization.get("jsonvalue"):
            try:
                return json.loads(base64.b64decode(value))
            except ValueError:
                raise BadInput("a JSON header is not base64-encoded JSON") from None
        return self._scalar(shape, value)

    def _from_json(self, shape: Any, value: Any) -> Any:
        match shape.type_name:
            case "structure":
                if not isinstance(value, dict):
                    raise BadInput(f"expected an object for {shape.name}")
                out = {}
                for name, member in shape.members.items():
                    wire = member.serialization.get("name", name)
                    if wire in value and value[wire] is not None:
                        out[name] = self._from_json(member, value[wire])
                return out
            case "list":
                if not isinstance(value, list):
                    raise BadInput(f"expected a list for {shape.name}")
                return [self._from_json(shape.member, v) for v in value]
            case "map":
                if not isinstance(value, dict):
                    raise BadInput(f"expected a map for {shape.name}")
                return {k: self._from_json(shape.value, v) for k, v in value.items()}
            case "blob":
                try:
                    return base64.b64decode(value, validate=True)
                except (ValueError, TypeError):
                    raise BadInput(f"{shape.name} is not valid base64") from None
            case _:
                return value

    # ----------------------------------------------------------------- responses

    def serialize(self, operation: Any, result: dict[str, Any] | None, *,
                  content_type: str = "application/json") -> tuple[int, list[tuple[str, str]], bytes]:
        """(status, headers, body) of an operation's output; members not in the model are left out."""
        status = int(operation.http.get("responseCode", 200))
        headers: list[tuple[str, str]] = []
        shape = operation.output_shape
        result = result or {}
        if shape is None:
            return status, headers, b""
        payload_name = shape.serialization.get("payload")
        document: dict[str, Any] = {}
        body = b""
        for name, member in shape.members.items():
            if name not in result or result[name] is None:
                continue
            value = result[name]
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if location == "statusCode":
                status = int(value)
            elif location == "header":
                headers.append((wire, self._header_text(member, value)))
            elif location == "headers":
                headers += [(wire + k, str(v)) for k, v in value.items()]
            elif name == payload_name:
                if member.type_name == "blob":
                    body = bytes(value)
                elif member.type_name == "string":
                    body = str(value).encode()
                else:
                    body = json.dumps(self._to_json(member, value)).encode()
            else:
                document[wire] = self._to_json(member, value)
        if payload_name is None:
            body = json.dumps(document).encode()
        headers.append(("Content-Type", content_type))
        return status, headers, body

    @staticmethod
    def _header_text(shape: Any, value: Any) -> str:
        if shape.serialization.get("jsonvalue"):
            return base64.b64encode(json.dumps(value).encode()).decode()
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def _to_json(self, shape: Any, value: Any) -> Any:
        match shape.type_name:
            case "structure":
                out = {}
                for name, member in shape.members.items():
                    if name in value and value[name] is not None:
                        out[member.serialization.get("name", name)] = self._to_json(member, value[name])
                return out
            case "list":
                return [self._to_json(shape.member, v) for v in value]
            case "map":
                return {k: self._to_json(shape.value, v) for k, v in value.items()}
            case "blob":
                return base64.b64encode(bytes(value)).decode()
            case "timestamp":
                return value.timestamp() if isinstance(value, _dt.datetime) else value
            case _:
                return value

    def error(self, code: str, message: str, *, status: int | None = None,
              fields: dict[str, Any] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
        """An error answer botocore maps to ``client.exceptions.<code>`` when the model has that error."""
        shape = self._error_shape(code)
        if status is None:
            status = int(shape.metadata.get("error", {}).get("httpStatusCode", 400)) if shape is not None else 400
        message_key = "message"
        headers = [("x-amzn-ErrorType", code), ("Content-Type", "application/json"),
                   ("x-amzn-RequestId", str(uuid.uuid4()))]
        document: dict[str, Any] = {"Type": "User" if status < 500 else "Server"}
        fields = dict(fields or {})
        if shape is not None:
            for name, member in shape.members.items():
                if name.lower() == "message":
                    message_key = name
                elif name in fields and member.serialization.get("location") == "header":
                    headers.append((member.serialization.get("name", name), str(fields.pop(name))))
        document[message_key] = message
        document.update(fields)
        return status, headers, json.dumps(document).encode()

    def _error_shape(self, code: str) -> Any:
        try:
            shape = self.model.shape_for(code)
        except Exception:  # noqa: BLE001 - botocore's NoShapeFoundError: an unmodeled code
            return None
        return shape if shape.metadata.get("exception") else None
