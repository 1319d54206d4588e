"""S3's checks that moto's S3 does not make: presigned POST policies, and presigned URLs' expiry and signature.

moto stores a browser's form POST whatever its policy says and serves a presigned URL long after it expired; an app
that relies on its policy's conditions for its security (which key, which type, how large) learns nothing from it.
The endpoint makes these checks in front of moto, as S3 makes them, with S3's XML errors and statuses; a refused
request never reaches moto, so nothing is stored.

* **POST policies** (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html,
  https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-authentication-HTTPPOST.html): the signature over the
  base64 policy (SigV4 ``x-amz-signature``, or SigV2's ``signature``, which boto3 still makes by default), the
  ``expiration``, every condition (exact ``{"field": value}`` and ``["eq", ...]``, ``["starts-with", ...]``,
  ``["content-length-range", min, max]``, ``bucket``) and that every form field is covered by one, except
  those S3 exempts (``x-amz-signature``/``signature``, ``AWSAccessKeyId``, ``file``, ``policy``, ``x-ignore-*``).
  A form POST without a policy is an anonymous upload: refused, as by a bucket that is not public-write (the local
  cloud evaluates no bucket policy or ACL).
* **Presigned URLs** (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html, and SigV2's
  ``Expires``): past ``X-Amz-Date`` + ``X-Amz-Expires`` (or ``Expires``) the request has expired; the
  signature must be the one the secret of the signing key gives for the request as received.

The signing secrets are those the local cloud knows: its fixed fake credentials (``localcloud.sdk``), which every
client and Lambda environment it starts signs with. Requests signed in a header (SDK calls) are not checked.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import hmac
import json
import re
import secrets as _secrets
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any
from xml.sax.saxutils import escape

from localcloud.http import Request

__all__ = ["S3Checks", "S3Refusal"]

#: the query parameters of a SigV4 presigned URL, as S3's error names them
_V4_QUERY = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date", "X-Amz-SignedHeaders",
             "X-Amz-Expires")
_MAX_EXPIRES_S = 604_800  # a week: the longest a SigV4 presigned URL may last
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_DISPOSITION_NAME = re.compile(r'\bname="([^"]*)"', re.IGNORECASE)
_DISPOSITION_FILENAME = re.compile(r'\bfilename="([^"]*)"', re.IGNORECASE)
_UNRESERVED = "-_.~"
#: the SigV2 subresources that are part of the signed resource (botocore's and S3's list)
_V2_SUBRESOURCES = frozenset({
    "accelerate", "acl", "cors", "defaultObjectAcl", "location", "logging", "partNumber", "policy",
    "requestPayment", "torrent", "versioning", "versionId", "versions", "website", "uploads", "uploadId",
    "response-content-type", "response-content-language", "response-expires", "response-cache-control",
    "response-content-disposition", "response-content-encoding", "delete", "lifecycle", "tagging", "restore",
    "storageClass", "notification", "replication", "analytics", "metrics", "inventory", "select", "select-type",
    "object-lock"})


class S3Refusal(Exception):
    """What S3 answers a refused request with: status, ``Code``, ``Message`` and the error's other elements."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def xml(self, request_id: str) -> bytes:
        elements = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in self.extra.items())
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{self.code}</Code>'
                f"<Message>{escape(self.message)}</Message>{elements}<RequestId>{request_id}</RequestId>"
                f"<HostId>{base64.b64encode(request_id.encode()).decode()}</HostId></Error>").encode()


def _access_denied(message: str, **extra: Any) -> S3Refusal:
    return S3Refusal(403, "AccessDenied", message, **extra)


def _policy_failed(condition: Any) -> S3Refusal:
    return _access_denied(f"Invalid according to Policy: Policy Condition failed: {json.dumps(condition)}")


def _signature_mismatch(**extra: Any) -> S3Refusal:
    return S3Refusal(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                     "signature you provided. Check your key and signing method.", **extra)


def _iso(moment: _dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------- signing


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _v4_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """SigV4's derived key (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html)."""
    key = _hmac(f"AWS4{secret}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def _v2_signature(secret: str, text: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()).decode()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe=_UNRESERVED)


# ----------------------------------------------------------------------------- the form


def _form(content_type: str, body: bytes) -> tuple[list[tuple[str, str]], bytes | None, str]:
    """The fields before the file (S3 ignores those after it), the file's bytes (None: no file) and its name."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise S3Refusal(400, "MalformedPOSTRequest",
                        "The body of your POST request is not well-formed multipart/form-data.")
    delimiter = b"\r\n--" + match.group(1).encode("latin-1")
    fields: list[tuple[str, str]] = []
    for section in (b"\r\n" + body).split(delimiter)[1:]:
        if section.startswith(b"--"):  # the closing delimiter
            break
        head, sep, content = section.partition(b"\r\n\r\n")
        if not sep:
            raise S3Refusal(400, "MalformedPOSTRequest",
                            "The body of your POST request is not well-formed multipart/form-data.")
        headers = head.decode("latin-1")
        name = _DISPOSITION_NAME.search(headers)
        if name is None:
            continue
        if name.group(1).lower() == "file":
            filename = _DISPOSITION_FILENAME.search(headers)
            return fields, content, filename.group(1) if filename else ""
        fields.append((name.group(1), content.decode("utf-8", "replace")))
    return fields, None, ""


def _expiration(text: Any) -> _dt.datetime:
    try:
        moment = _dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise S3Refusal(400, "InvalidPolicyDocument", "Invalid Policy: Invalid 'expiration' value: "
                        f"'{text}'") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=_dt.UTC)


class S3Checks:
    """Checks presigned POSTs and URLs, then hands what passes to ``forward`` (moto), with the body it read."""

    def __init__(self, forward: Callable[[Request, bytes], None], credentials: Mapping[str, str], *,
                 max_body: int, clock: Callable[[], _dt.datetime] | None = None) -> None:
        self.forward = forward
        self.credentials = dict(credentials)  # access key id -> secret
        self.max_body = max_body
        self.clock = clock or (lambda: _dt.datetime.now(_dt.UTC))

    def __call__(self, request: Request) -> None:
        body = request.read_body(self.max_body)
        try:
            self.check(request, body)
        except S3Refusal as refusal:
            request_id = _secrets.token_hex(8).upper()
            request.respond(refusal.status, [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)],
                            refusal.xml(request_id))
            return
        self.forward(request, body)

    def check(self, request: Request, body: bytes) -> None:
        """Raise :class:`S3Refusal` if S3 would refuse the request."""
        split = urllib.parse.urlsplit(request.path)
        query = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        names = {k for k, _ in query}
        if "X-Amz-Signature" in names or "X-Amz-Credential" in names or "X-Amz-Algorithm" in names:
            self._check_v4_url(request, split, query)
        elif "Signature" in names and "AWSAccessKeyId" in names:
            self._check_v2_url(request, split, query)
        elif request.command == "POST" and "multipart/form-data" in (request.headers.get("Content-Type") or "").lower():
            self._check_post(request, split, body)

    def _secret(self, access_key: str) -> str:
        secret = self.credentials.get(access_key)
        if secret is None:
            raise S3Refusal(403, "InvalidAccessKeyId",
                            "The AWS Access Key Id you provided does not exist in our records.",
                            AWSAccessKeyId=access_key)
        return secret

    # ----------------------------------------------------------------- presigned URLs

    def _check_v4_url(self, request: Request, split: urllib.parse.SplitResult, query: list[tuple[str, str]]) -> None:
        params = dict(query)
        missing = [name for name in _V4_QUERY if name not in params]
        if missing:
            raise S3Refusal(400, "AuthorizationQueryParametersError",
                            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                            "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
        if params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
            raise S3Refusal(400, "AuthorizationQueryParametersError",
                            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
        try:
            expires = int(params["X-Amz-Expires"])
        except ValueError:
            raise S3Refusal(400, "AuthorizationQueryParametersError",
                            "X-Amz-Expires should be a number") from None
        if expires < 0:
            raise S3Refusal(400, "AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative")
        if expires > _MAX_EXPIRES_S:
            raise S3Refusal(400, "AuthorizationQueryParametersError",
                            "X-Amz-Expires must be less than a week (in seconds) that is; 604800")
        try:
            signed_at = _dt.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=_dt.UTC)
        except ValueError:
            raise S3Refusal(400, "AuthorizationQueryParametersError",
                            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"") from None
        now = self.clock()
        if now > signed_at + _dt.timedelta(seconds=expires):
            raise _access_denied("Request has expired", **{"X-Amz-Expires": expires,
                                 "Expires": _iso(signed_at + _dt.timedelta(seconds=expires)), "ServerTime": _iso(now)})
        scope = params["X-Amz-Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            raise S3Refusal(400, "AuthorizationQueryParametersError",
                            "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting "
                            "\"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".")
        access_key, date, region, service, _ = scope
        secret = self._secret(access_key)
        signed_headers = params["X-Amz-SignedHeaders"].split(";")
        canonical_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query) if k != "X-Amz-Signature")
        canonical_headers = "".join(
            f"{name}:{' '.join((request.headers.get(name) or '').split())}\n" for name in signed_headers)
        canonical_request = "\n".join([request.command, split.path or "/", canonical_query, canonical_headers,
                                       params["X-Amz-SignedHeaders"],
                                       params.get("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")])
        string_to_sign = "\n".join(["AWS4-HMAC-SHA256", params["X-Amz-Date"], "/".join(scope[1:]),
                                    hashlib.sha256(canonical_request.encode()).hexdigest()])
        expected = hmac.new(_v4_signing_key(secret, date, region, service), string_to_sign.encode(),
                            hashlib.sha256).hexdigest()
        if not _same(expected, params["X-Amz-Signature"]):
            raise _signature_mismatch(AWSAccessKeyId=access_key, StringToSign=string_to_sign,
                                      SignatureProvided=params["X-Amz-Signature"], CanonicalRequest=canonical_request)

    def _check_v2_url(self, request: Request, split: urllib.parse.SplitResult, query: list[tuple[str, str]]) -> None:
        """SigV2's query-string authentication (``Expires`` in seconds since the epoch)."""
        params = dict(query)
        try:
            expires = int(params.get("Expires", ""))
        except ValueError:
            raise _access_denied("Query-string authentication requires the Signature, Expires and AWSAccessKeyId "
                                 "parameters") from None
        now = self.clock()
        if now.timestamp() > expires:
            raise _access_denied("Request has expired", Expires=_iso(_dt.datetime.fromtimestamp(expires, _dt.UTC)),
                                 ServerTime=_iso(now))
        secret = self._secret(params["AWSAccessKeyId"])
        amz = sorted((k.lower(), v) for k, v in query if k.lower().startswith("x-amz-"))
        subresources = sorted((k, v) for k, v in query if k in _V2_SUBRESOURCES)
        resource = split.path or "/"
        if subresources:
            resource += "?" + "&".join(k if v == "" else f"{k}={v}" for k, v in subresources)
        string_to_sign = "\n".join([request.command, request.headers.get("Content-MD5") or "",
                                    request.headers.get("Content-Type") or "", str(expires),
                                    *(f"{k}:{v}" for k, v in amz), resource])
        if not _same(_v2_signature(secret, string_to_sign), params["Signature"]):
            raise _signature_mismatch(AWSAccessKeyId=params["AWSAccessKeyId"], StringToSign=string_to_sign,
                                      SignatureProvided=params["Signature"])

    # ----------------------------------------------------------------- POST policies

    def _check_post(self, request: Request, split: urllib.parse.SplitResult, body: bytes) -> None:
        bucket = urllib.parse.unquote(split.path.strip("/").split("/", 1)[0])
        fields, file, _ = _form(request.headers.get("Content-Type") or "", body)
        form = {name.lower(): value for name, value in fields}
        if file is None:
            raise S3Refusal(400, "InvalidArgument", "POST requires exactly one file upload per request.",
                            ArgumentName="file", ArgumentValue=0)
        if "key" not in form:
            raise S3Refusal(400, "InvalidArgument", "Bucket POST must contain a field named 'key'.  If it is "
                            "specified, please check the order of the fields.", ArgumentName="key", ArgumentValue="")
        if "policy" not in form:  # an anonymous upload: the local cloud's buckets are not public-write
            raise _access_denied("Access Denied")
        self._check_policy_signature(form)
        try:
            policy = json.loads(base64.b64decode(form["policy"], validate=True))
        except (ValueError, binascii.Error):
            raise S3Refusal(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from None
        if not isinstance(policy, dict) or "expiration" not in policy or not isinstance(policy.get("conditions"), list):
            raise S3Refusal(400, "InvalidPolicyDocument",
                            "Invalid Policy: Policy missing expiration or conditions.")
        if self.clock() > _expiration(policy["expiration"]):
            raise _access_denied("Invalid according to Policy: Policy expired.")
        covered: set[str] = set()
        length_range: tuple[int, int] | None = None
        for condition in policy["conditions"]:
            if isinstance(condition, dict) and len(condition) == 1:
                ((name, expected),) = condition.items()
                op, field = "eq", name.lower()
            elif isinstance(condition, list) and len(condition) == 3 and isinstance(condition[0], str):
                op = condition[0].lower()
                if op == "content-length-range":
                    try:
                        length_range = (int(condition[1]), int(condition[2]))
                    except (TypeError, ValueError):
                        raise S3Refusal(400, "InvalidPolicyDocument", "Invalid Policy: Invalid content-length-range "
                                        f"condition: {json.dumps(condition)}") from None
                    continue
                if op not in ("eq", "starts-with") or not str(condition[1]).startswith("$"):
                    raise S3Refusal(400, "InvalidPolicyDocument",
                                    f"Invalid Policy: Invalid Condition: {json.dumps(condition)}")
                field, expected = str(condition[1])[1:].lower(), condition[2]
            else:
                raise S3Refusal(400, "InvalidPolicyDocument", f"Invalid Policy: Invalid Condition: {json.dumps(condition)}")
            covered.add(field)
            actual = bucket if field == "bucket" else form.get(field)
            if not self._holds(op, field, actual, str(expected)):
                raise _policy_failed(condition if isinstance(condition, list) else ["eq", f"${name}", expected])
        exempt = {"policy", "x-amz-signature", "signature", "awsaccesskeyid", "file"}
        extra = [name for name, _ in fields
                 if name.lower() not in covered and name.lower() not in exempt and not name.lower().startswith("x-ignore-")]
        if extra:
            raise _access_denied(f"Invalid according to Policy: Extra input fields: {', '.join(extra)}")
        if length_range is not None:
            low, high = length_range
            if len(file) > high:
                raise S3Refusal(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                                ProposedSize=len(file), MaxSizeAllowed=high)
            if len(file) < low:
                raise S3Refusal(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size",
                                ProposedSize=len(file), MinSizeAllowed=low)

    @staticmethod
    def _holds(op: str, field: str, actual: str | None, expected: str) -> bool:
        if actual is None:
            return False
        if op == "eq":
            return actual == expected
        if field == "content-type":  # a starts-with on Content-Type holds for each of a comma-separated list
            return all(part.strip().startswith(expected) for part in actual.split(","))
        return actual.startswith(expected)

    def _check_policy_signature(self, form: dict[str, str]) -> None:
        """SigV4 (``x-amz-signature`` over the base64 policy, with the credential's derived key) or SigV2."""
        if "x-amz-signature" in form or "x-amz-credential" in form or "x-amz-algorithm" in form:
            if form.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
                raise S3Refusal(400, "InvalidArgument", "POST form fields x-amz-algorithm must be AWS4-HMAC-SHA256",
                                ArgumentName="x-amz-algorithm", ArgumentValue=form.get("x-amz-algorithm", ""))
            scope = (form.get("x-amz-credential") or "").split("/")
            if len(scope) != 5 or "x-amz-signature" not in form:
                raise S3Refusal(400, "InvalidArgument", "Bucket POST must contain the fields x-amz-credential, "
                                "x-amz-date and x-amz-signature.", ArgumentName="x-amz-credential",
                                ArgumentValue=form.get("x-amz-credential", ""))
            access_key, date, region, service, _ = scope
            key = _v4_signing_key(self._secret(access_key), date, region, service)
            expected = hmac.new(key, form["policy"].encode(), hashlib.sha256).hexdigest()
            provided = form["x-amz-signature"]
        elif "signature" in form and "awsaccesskeyid" in form:
            access_key = form["awsaccesskeyid"]
            expected, provided = _v2_signature(self._secret(access_key), form["policy"]), form["signature"]
        else:
            raise S3Refusal(400, "InvalidArgument", "Bucket POST must contain a field named 'x-amz-signature'.  If it "
                            "is specified, please check the order of the fields.", ArgumentName="x-amz-signature",
                            ArgumentValue="")
        if not _same(expected, provided):
            raise _signature_mismatch(AWSAccessKeyId=access_key, StringToSign=form["policy"],
                                      SignatureProvided=provided)
