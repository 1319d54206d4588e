"""AWS's query protocol from the server's side: form-encoded requests parsed, XML answers written, by botocore's model.

What boto3 sends for a ``query`` service (CloudFormation, SNS, SQS of old...) is a form body
``Action=CreateChangeSet&Version=2010-05-15&StackName=s&Parameters.member.1.ParameterKey=K...``;
what it expects back is ``<CreateChangeSetResponse xmlns=...><CreateChangeSetResult>...</...Result>
<ResponseMetadata><RequestId>...</RequestId></ResponseMetadata></...Response>``, and errors as
``<ErrorResponse><Error><Type>Sender</Type><Code>..</Code><Message>..</Message></Error>...``.
``QueryCodec`` reads and writes both from the service model's shapes (member names, ``locationName``,
flattened lists, ``resultWrapper``), the inverse of botocore's ``QuerySerializer`` and ``QueryParser``.
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/Welcome.html (Common parameters,
query requests); https://smithy.io/2.0/aws/protocols/aws-query-protocol.html
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

__all__ = ["QueryCodec", "QueryRequestError"]


class QueryRequestError(Exception):
    """A request the protocol cannot read (no Action, an unknown one): AWS's code, message and status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class QueryCodec:
    """One query-protocol service's requests and answers, from its botocore service model."""

    def __init__(self, service_model: Any) -> None:
        self.model = service_model
        self.namespace = service_model.metadata.get("xmlNamespace", "")
        self.version = service_model.api_version

    @classmethod
    def for_service(cls, name: str) -> QueryCodec:
        import botocore.session

        return cls(botocore.session.get_session().get_service_model(name))

    # ----------------------------------------------------------------- requests

    def parse(self, body: bytes, query: str = "") -> tuple[str, dict[str, Any]]:
        """(operation name, its input as boto3 takes it) of a form body and/or query string."""
        fields = dict(parse_qsl(query, keep_blank_values=True))
        fields.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        action = fields.pop("Action", "")
        fields.pop("Version", None)
        if not action:
            raise QueryRequestError("MissingAction", "Missing Action")
        if action not in self.model.operation_names:
            raise QueryRequestError("InvalidAction", f"Could not find operation {action} for version {self.version}")
        shape = self.model.operation_model(action).input_shape
        if shape is None:
            return action, {}
        prefixes = {key.rsplit(".", n)[0] for key in fields for n in range(key.count(".") + 1)}
        value = _read(shape, fields, prefixes, "")
        return action, value if isinstance(value, dict) else {}

    # ----------------------------------------------------------------- answers

    def serialize(self, operation: str, result: Mapping[str, Any] | None, request_id: str | None = None) -> bytes:
        """The XML answer of ``operation`` whose output is ``result`` (boto3's shape; keys not in it are ignored)."""
        op = self.model.operation_model(operation)
        parts = [f'<{operation}Response xmlns="{self.namespace}">']
        shape = op.output_shape
        if shape is not None:
            wrapper = shape.serialization.get("resultWrapper", f"{operation}Result")
            parts.append(f"<{wrapper}>")
            _write_members(shape, result or {}, parts)
            parts.append(f"</{wrapper}>")
        parts.append(f"<ResponseMetadata><RequestId>{request_id or uuid.uuid4()}</RequestId></ResponseMetadata>")
        parts.append(f"</{operation}Response>")
        return "".join(parts).encode()

    def serialize_error(self, code: str, message: str, *, sender: bool = True, request_id: str | None = None) -> bytes:
        return (f'<ErrorResponse xmlns="{self.namespace}"><Error><Type>{"Sender" if sender else "Receiver"}</Type>'
                f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
                f"<RequestId>{request_id or uuid.uuid4()}</RequestId></ErrorResponse>").encode()


def _member_name(name: str, shape: Any) -> str:
    return shape.serialization.get("name", name)


_MISSING = object()
#: a carriage return kept as one (an XML parser turns a literal CR LF into LF)
_ENTITIES = {"\r": "&#13;"}


def _read(shape: Any, fields: Mapping[str, str], prefixes: set[str], prefix: str) -> Any:
    """The value of ``shape`` at ``prefix`` in the flat form fields (``_MISSING`` if absent)."""
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for name, member in shape.members.items():
            key = _member_name(name, member)
            value = _read(member, fields, prefixes, f"{prefix}.{key}" if prefix else key)
            if value is not _MISSING:
                out[name] = value
        return out if out or not prefix or prefix in prefixes else _MISSING
    if kind == "list":
        if prefix in fields and fields[prefix] == "":
            return []  # botocore sends an empty list as "Name="
        base = prefix if shape.serialization.get("flattened") else \
            f"{prefix}.{shape.member.serialization.get('name', 'member')}"
        items, i = [], 1
        while f"{base}.{i}" in prefixes:
            items.append(_read(shape.member, fields, prefixes, f"{base}.{i}"))
            i += 1
        return items if items or base in prefixes else _MISSING
    if kind == "map":
        base = prefix if shape.serialization.get("flattened") else f"{prefix}.entry"
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        out, i = {}, 1
        while f"{base}.{i}" in prefixes:
            out[fields.get(f"{base}.{i}.{key_name}", "")] = _read(shape.value, fields, prefixes, f"{base}.{i}.{value_name}")
            i += 1
        return out if out or prefix in prefixes else _MISSING
    if prefix not in fields:
        return _MISSING
    return _scalar(kind, fields[prefix])


def _scalar(kind: str, text: str) -> Any:
    if kind in ("integer", "long"):
        return int(text)
    if kind in ("float", "double"):
        return float(text)
    if kind == "boolean":
        return text.lower() == "true"
    if kind == "blob":
        return base64.b64decode(text)
    if kind == "timestamp":
        try:
            return dt.datetime.fromtimestamp(float(text), dt.UTC)
        except ValueError:
            return dt.datetime.fromisoformat(text)
    return text


def _write_members(shape: Any, value: Mapping[str, Any], parts: list[str]) -> None:
    for name, member in shape.members.items():
        if name in value and value[name] is not None:
            _write(member, _member_name(name, member), value[name], parts)


def _write(shape: Any, tag: str, value: Any, parts: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        parts.append(f"<{tag}>")
        _write_members(shape, value, parts)
        parts.append(f"</{tag}>")
    elif kind == "list":
        if shape.serialization.get("flattened"):
            for item in value:
                _write(shape.member, tag, item, parts)
            return
        item_tag = shape.member.serialization.get("name", "member")
        parts.append(f"<{tag}>")
        for item in value:
            _write(shape.member, item_tag, item, parts)
        parts.append(f"</{tag}>")
    elif kind == "map":
        key_tag = shape.key.serialization.get("name", "key")
        value_tag = shape.value.serialization.get("name", "value")
        parts.append(f"<{tag}>")
        for k, v in value.items():
            parts.append("<entry>")
            _write(shape.key, key_tag, k, parts)
            _write(shape.value, value_tag, v, parts)
            parts.append("</entry>")
        parts.append(f"</{tag}>")
    else:
        parts.append(f"<{tag}>{escape(_text(kind, value), _ENTITIES)}</{tag}>")


def _text(kind: str, value: Any) -> str:
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp":
        if not isinstance(value, dt.datetime):
            value = dt.datetime.fromtimestamp(float(value), dt.UTC)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        # ISO 8601 with milliseconds, as AWS writes them (events a few ms apart stay ordered)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if kind == "blob":
        return base64.b64encode(value).decode()
    return str(value)
