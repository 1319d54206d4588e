"""Lambda's control plane (LambdaService): functions, their code, versions, aliases and concurrency, and Invoke.

Its methods take and return the dicts boto3's ``lambda`` client does (request parameters and output
shapes of botocore's model, without ResponseMetadata): the REST API (:mod:`.api`) is only a codec
around it, and the deployer calls the same methods. What runs is the :class:`LambdaRuntime`: the
``$LATEST`` of function ``f`` is its function ``f``, version N is ``f:N``.

Code comes from a local folder (used as is), ``Code.ZipFile`` or ``Code.S3Bucket``/``S3Key``;
a zip is unpacked once under ``code_root/<sha256>/`` (content-addressed, never changed after).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import hashlib
import io
import json
import logging
import os
import random
import re
import shutil
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.errors import CloudError, RequestTooLarge, Throttled, UnknownFunction
from localcloud.lambda_service.runtime import LambdaRuntime
from localcloud.lambda_service.spec import (
    MAX_ASYNC_REQUEST_PAYLOAD,
    MAX_REQUEST_PAYLOAD,
    FunctionSpec,
    InvocationResult,
    InvokeRecord,
    cloudwatch_message,
)
from localcloud.sdk import Clients

__all__ = ["Invocation", "LambdaError", "LambdaService"]

log = logging.getLogger(__name__)

#: HTTP status of each error code the service raises (botocore's lambda model, where it has them).
_STATUS = {
    "InvalidParameterValueException": 400,
    "InvalidRequestContentException": 400,
    "ValidationException": 400,
    "ResourceNotFoundException": 404,
    "ResourceConflictException": 409,
    "PreconditionFailedException": 412,
    "RequestTooLargeException": 413,
    "TooManyRequestsException": 429,
    "ServiceException": 500,
}
#: Quotas (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html)
MAX_UNZIPPED_BYTES = 262_144_000
MAX_ZIPPED_BYTES = 52_428_800
TOTAL_CODE_BYTES = 80_530_636_800
#: FunctionName: name, partial ARN or ARN, with an optional :qualifier (the API reference's pattern)
_TARGET = re.compile(
    r"^(?:arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d):)?"
    r"(?:(?P<account>\d{12}):)?(?:function:)?(?P<name>[a-zA-Z0-9_.-]{1,64})"
    r"(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?$"
)
_ALIAS = re.compile(r"^(?!\d+$)[a-zA-Z0-9_-]{1,128}$")
_TAIL_BYTES = 4096


class LambdaError(CloudError):
    """An error Lambda's API answers with: its ``code`` (``ResourceNotFoundException``...), HTTP ``status``, ``message``.

    ``fields``: the error shape's other members (``Reason`` of a throttle).
    """

    def __init__(self, code: str, message: str, *, status: int | None = None,
                 fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _STATUS.get(code, 400)
        self.fields = dict(fields or {})


def _invalid(message: str) -> LambdaError:
    return LambdaError("InvalidParameterValueException", message)


@dataclass
class Invocation:
    """What Invoke answers: status 200 (RequestResponse), 202 (Event) or 204 (DryRun), and its headers."""

    status: int
    payload: bytes = b""
    function_error: str | None = None  # X-Amz-Function-Error ("Unhandled")
    log_result: str | None = None  # X-Amz-Log-Result: base64 of the log's last 4 KB (LogType=Tail)
    executed_version: str | None = None  # X-Amz-Executed-Version
    result: InvocationResult | None = None  # the runtime's, for a synchronous invoke


@dataclass
class _Code:
    """A function's code: the folder it runs from and what the API says of it."""

    folder: Path
    sha256: str  # base64 of the digest, as CodeSha256
    size: int
    location: str  # GetFunction's Code.Location
    notes: list[str] = field(default_factory=list)  # INIT log lines (native packages swapped)


@dataclass
class _Version:
    config: dict[str, Any]  # FunctionConfiguration
    spec: FunctionSpec  # what the runtime runs, under spec.name


@dataclass
class _Function:
    name: str
    latest: _Version
    code: _Code
    tags: dict[str, str] = field(default_factory=dict)
    versions: dict[str, _Version] = field(default_factory=dict)  # "1", "2", ...
    code_of: dict[str, _Code] = field(default_factory=dict)  # each version's code
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)  # AliasConfiguration by name
    last_version: int = 0  # version numbers are never reused, even after a delete
    reserved: int | None = None
    key: str = ""  # its $LATEST's name in the runtime (versions: key:N); the function's name unless given

    def __post_init__(self) -> None:
        self.key = self.key or self.name


def _now() -> str:
    """Lambda's LastModified format: 2026-12-01T10:20:30.123+0000."""
    now = _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def _runtime_key(name: str, version: str) -> str:
    return name if version == "$LATEST" else f"{name}:{version}"


def _fingerprint(config: dict[str, Any]) -> str:
    """What PublishVersion compares: a version is only published when code or configuration changed."""
    keys = ("CodeSha256", "Handler", "Runtime", "Role", "MemorySize", "Timeout", "Environment",
            "Architectures", "DeadLetterConfig", "TracingConfig", "EphemeralStorage")
    return json.dumps({k: config.get(k) for k in keys}, sort_keys=True, default=str)


def _tail(lines: list[str]) -> str:
    """The log's last 4 KB, base64 (X-Amz-Log-Result), cut so that it starts on a whole character."""
    data = "".join(cloudwatch_message(line) for line in lines).encode()[-_TAIL_BYTES:]
    while data and data[0] & 0xC0 == 0x80:  # a UTF-8 continuation byte
        data = data[1:]
    return base64.b64encode(data).decode()


class LambdaService:
    """The Lambda control plane over a :class:`LambdaRuntime`; thread-safe."""

    def __init__(self, runtime: LambdaRuntime, clients: Clients, *, code_root: Path,
                 region: str, account_id: str) -> None:
        self.runtime = runtime
        self.clients = clients
        self.code_root = Path(code_root)
        self.region = region
        self.account_id = account_id
        #: set by the cloud: queues an Event invoke (name or name:version, payload); None: a thread runs it now
        self.async_submit: Callable[[str, bytes], None] | None = None
        #: called after every invoke attempt, throttles included (metrics, CodeDeploy)
        self.on_invoked: list[Callable[[InvokeRecord], None]] = []
        self._functions: dict[str, _Function] = {}
        self._lock = threading.RLock()

    # ----------------------------------------------------------------- names

    def arn(self, name: str, qualifier: str | None = None) -> str:
        base = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        return f"{base}:{qualifier}" if qualifier else base

    def _not_found(self, name: str, qualifier: str | None = None) -> LambdaError:
        return LambdaError("ResourceNotFoundException", f"Function not found: {self.arn(name, qualifier)}")

    def _split(self, target: str) -> tuple[str, str | None]:
        """(name, qualifier or None) of a name, partial ARN or ARN."""
        m = _TARGET.match(target or "")
        if m is None:
            raise LambdaError(
                "ValidationException",
                f"1 validation error detected: Value '{target}' at 'functionName' failed to satisfy "
                "constraint: Member must satisfy regular expression pattern: "
                + _TARGET.pattern)
        if (m["region"] and m["region"] != self.region) or (m["account"] and m["account"] != self.account_id):
            raise LambdaError("ResourceNotFoundException", f"Function not found: {target}")
        return m["name"], m["qualifier"]

    def _target(self, target: str, qualifier: str | None) -> tuple[str, str | None]:
        name, derived = self._split(target)
        if derived and qualifier and derived != qualifier:
            raise _invalid("The derived qualifier from the function name does not match the specified qualifier.")
        return name, derived or qualifier

    def _function(self, name: str) -> _Function:
        fn = self._functions.get(name)
        if fn is None:
            raise self._not_found(name)
        return fn

    def _unqualified(self, target: str) -> _Function:
        """The function of an operation on $LATEST (a qualifier in the name is refused)."""
        name, qualifier = self._split(target)
        if qualifier and qualifier != "$LATEST":
            raise _invalid(f"Unsupported qualifier: {qualifier}")
        return self._function(name)

    def function_names(self) -> list[str]:
        with self._lock:
            return sorted(self._functions)

    # ----------------------------------------------------------------- code

    def _code(self, code: dict[str, Any] | None, code_dir: Path | None) -> _Code:
        if code_dir is not None:
            return self._folder_code(Path(code_dir))
        code = code or {}
        if code.get("ImageUri"):
            raise _invalid("The local cloud runs zip packages only (PackageType Zip), not container images.")
        if code.get("ZipFile") is not None:
            data = bytes(code["ZipFile"])
            return self._zip_code(data, None)
        if code.get("S3Bucket") and code.get("S3Key"):
            return self._zip_code(self._s3_object(code), f"{self.clients.endpoint_url.rstrip('/')}/"
                                  f"{code['S3Bucket']}/{code['S3Key']}")
        raise _invalid("Please provide a source for function code.")

    def _s3_object(self, code: dict[str, Any]) -> bytes:
        s3 = self.clients("s3")
        extra = {"VersionId": code["S3ObjectVersion"]} if code.get("S3ObjectVersion") else {}
        try:
            return s3.get_object(Bucket=code["S3Bucket"], Key=code["S3Key"], **extra)["Body"].read()
        except Exception as e:  # noqa: BLE001 - botocore's ClientError, or moto unreachable
            error = getattr(e, "response", {}).get("Error", {})
            raise _invalid(
                f"Error occurred while GetObject. S3 Error Code: {error.get('Code', type(e).__name__)}. "
                f"S3 Error Message: {error.get('Message', str(e))}") from None

    def _folder_code(self, folder: Path) -> _Code:
        if not folder.is_dir():
            raise _invalid(f"The code folder {folder} does not exist.")
        digest, size = hashlib.sha256(), 0
        for dirpath, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for filename in sorted(files):
                path = Path(dirpath) / filename
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                digest.update(str(path.relative_to(folder)).encode() + b"\0" + data)
                size += len(data)
        return _Code(folder.resolve(), base64.b64encode(digest.digest()).decode(), size, folder.resolve().as_uri())

    def _zip_code(self, data: bytes, location: str | None) -> _Code:
        from localcloud.lambda_service.code import use_host_native_packages

        digest = hashlib.sha256(data)
        folder = self.code_root / digest.hexdigest()
        notes_file = self.code_root / f"{digest.hexdigest()}.init-notes.json"
        archive = self.code_root / f"{digest.hexdigest()}.zip"
        if not folder.is_dir():
            self.code_root.mkdir(parents=True, exist_ok=True)
            staging = self.code_root / f".{digest.hexdigest()}.{uuid.uuid4().hex[:8]}"
            try:
                self._unzip(data, staging)
                notes = use_host_native_packages(staging)
                notes_file.write_text(json.dumps(notes))
                archive.write_bytes(data)
                try:
                    staging.rename(folder)
                except OSError:  # another thread unpacked the same code meanwhile
                    pass
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        try:
            notes = json.loads(notes_file.read_text())
        except (OSError, ValueError):
            notes = []
        return _Code(folder, base64.b64encode(digest.digest()).decode(), len(data),
                     location or archive.as_uri(), list(notes))

    @staticmethod
    def _unzip(data: bytes, into: Path) -> None:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = archive.infolist()
                if sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
                    raise _invalid(f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes")
                into.mkdir(parents=True)
                root = into.resolve()
                for member in members:
                    target = (into / member.filename).resolve()
                    if root not in target.parents and target != root:  # an entry out of the folder
                        raise _invalid("Could not unzip uploaded file. Please check your file, then try to upload again.")
                    archive.extract(member, into)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError):
            raise _invalid("Could not unzip uploaded file. Please check your file, then try to upload again.") from None

    # ----------------------------------------------------------------- configuration

    def _configuration(self, name: str, params: dict[str, Any], code: _Code,
                       base: dict[str, Any] | None = None) -> dict[str, Any]:
        """The FunctionConfiguration of $LATEST from CreateFunction's (or an update's) parameters over ``base``."""
        config = dict(base or {
            "FunctionName": name, "FunctionArn": self.arn(name), "Description": "", "Timeout": 3,
            "MemorySize": 128, "Version": "$LATEST", "TracingConfig": {"Mode": "PassThrough"},
            "State": "Active", "LastUpdateStatus": "Successful", "PackageType": "Zip",
            "Architectures": ["x86_64"], "EphemeralStorage": {"Size": 512},
            "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"},
        })
        for key in ("Runtime", "Role", "Handler", "Description", "Timeout", "MemorySize", "DeadLetterConfig",
                    "TracingConfig", "EphemeralStorage", "Architectures", "KMSKeyArn"):
            if params.get(key) is not None:
                config[key] = params[key]
        if params.get("LoggingConfig"):
            config["LoggingConfig"] = {**config["LoggingConfig"], **params["LoggingConfig"]}
        if "Environment" in params:
            variables = (params.get("Environment") or {}).get("Variables") or {}
            config["Environment"] = {"Variables": dict(variables)}
            if not variables:
                config.pop("Environment")
        config.update(CodeSha256=code.sha256, CodeSize=code.size, LastModified=_now(),
                      RevisionId=str(uuid.uuid4()))
        self._check(config, params)
        return config

    @staticmethod
    def _check(config: dict[str, Any], params: dict[str, Any]) -> None:
        if params.get("PackageType", "Zip") != "Zip":
            raise _invalid("The local cloud runs zip packages only (PackageType Zip), not container images.")
        if params.get("Layers"):
            raise _invalid("The local cloud does not support layers: put the layer's packages in the function's code.")
        if not config.get("Runtime") or not config.get("Handler"):
            raise _invalid("Runtime and Handler are mandatory parameters for functions created with deployment packages.")
        if not re.fullmatch(r"python3\.\d+", str(config["Runtime"])):
            raise _invalid(f"The runtime parameter of {config['Runtime']} is not supported by the local cloud, "
                           "which runs Python functions only (python3.x).")
        for key, low, high in (("Timeout", 1, 900), ("MemorySize", 128, 10240)):
            value = config[key]
            if not isinstance(value, int) or not low <= value <= high:
                bound = f"greater than or equal to {low}" if isinstance(value, int) and value < low else \
                    f"less than or equal to {high}"
                raise LambdaError("ValidationException",
                                  f"1 validation error detected: Value '{value}' at '{key[0].lower() + key[1:]}' "
                                  f"failed to satisfy constraint: Member must have value {bound}")

    def _spec(self, fn_name: str, version: str, config: dict[str, Any], code: _Code,
              reserved: int | None, key: str | None = None) -> FunctionSpec:
        return FunctionSpec(
            name=_runtime_key(key or fn_name, version), function_name=fn_name, version=version,
            handler=config["Handler"], code_dir=code.folder,
            environment=dict((config.get("Environment") or {}).get("Variables") or {}),
            memory_mb=config["MemorySize"], timeout_s=float(config["Timeout"]), reserved_concurrency=reserved,
            runtime=config["Runtime"], architecture=(config.get("Architectures") or ["x86_64"])[0],
            init_notes=list(code.notes),
        )

    def _register(self, spec: FunctionSpec) -> None:
        try:
            self.runtime.register(spec)
        except ValueError as e:
            raise _invalid(str(e)) from None

    @staticmethod
    def _check_revision(params: dict[str, Any], current: dict[str, Any]) -> None:
        if params.get("RevisionId") and params["RevisionId"] != current.get("RevisionId"):
            raise LambdaError("PreconditionFailedException",
                              "The Revision Id provided does not match the latest Revision Id. "
                              "Call the GetFunction/GetAlias API to retrieve the latest Revision Id")

    # ----------------------------------------------------------------- functions

    def create_function(self, params: dict, *, code_dir: Path | None = None, runtime_key: str | None = None) -> dict:
        """CreateFunction: FunctionConfiguration. ``code_dir``: a local folder, used as is (instead of ``Code``);
        ``runtime_key``: the name its $LATEST runs under in the runtime (default: the function's name)."""
        name, qualifier = self._split(params.get("FunctionName", ""))
        if qualifier:
            raise _invalid(f"Unsupported qualifier in a new function's name: {qualifier}")
        with self._lock:
            if name in self._functions:
                raise LambdaError("ResourceConflictException", f"Function already exist: {name}")
            code = self._code(params.get("Code"), code_dir)
            config = self._configuration(name, params, code)
            spec = self._spec(name, "$LATEST", config, code, None, runtime_key)
            self._register(spec)
            self._functions[name] = _Function(name, _Version(config, spec), code, tags=dict(params.get("Tags") or {}),
                                              key=runtime_key or name)
            if params.get("Publish"):
                self.publish_version(name, {})
            return dict(config)

    def update_function_code(self, name: str, params: dict, *, code_dir: Path | None = None) -> dict:
        """UpdateFunctionCode: $LATEST gets the new code (its environments are replaced)."""
        with self._lock:
            fn = self._unqualified(name)
            self._check_revision(params, fn.latest.config)
            code = self._code(params, code_dir)
            update = {"Architectures": params["Architectures"]} if params.get("Architectures") else {}
            config = self._configuration(fn.name, update, code, fn.latest.config)
            if params.get("DryRun"):
                return dict(config)
            spec = self._spec(fn.name, "$LATEST", config, code, fn.reserved, fn.key)
            self._register(spec)
            fn.latest, fn.code = _Version(config, spec), code
            if params.get("Publish"):
                self.publish_version(fn.name, {})
            return dict(config)

    def update_function_configuration(self, name: str, params: dict) -> dict:
        """UpdateFunctionConfiguration of $LATEST (its environments are replaced)."""
        with self._lock:
            fn = self._unqualified(name)
            self._check_revision(params, fn.latest.config)
            config = self._configuration(fn.name, params, fn.code, fn.latest.config)
            spec = self._spec(fn.name, "$LATEST", config, fn.code, fn.reserved, fn.key)
            self._register(spec)
            fn.latest = _Version(config, spec)
            return dict(config)

    def _version(self, fn: _Function, qualifier: str | None) -> tuple[_Version, str | None]:
        """The version a qualifier names (an alias: its primary version), and the qualifier for the ARN."""
        if qualifier in (None, "$LATEST"):
            return fn.latest, qualifier
        if qualifier in fn.versions:
            return fn.versions[qualifier], qualifier
        alias = fn.aliases.get(qualifier)
        if alias is None:
            raise self._not_found(fn.name, qualifier)
        return self._version(fn, alias["FunctionVersion"])[0], qualifier

    def get_function_configuration(self, name: str, qualifier: str | None = None) -> dict:
        with self._lock:
            fn_name, qualifier = self._target(name, qualifier)
            fn = self._function(fn_name)
            version, shown = self._version(fn, qualifier)
            config = dict(version.config)
            if shown and shown != "$LATEST":
                config["FunctionArn"] = self.arn(fn.name, shown)
            return config

    def get_function(self, name: str, qualifier: str | None = None) -> dict:
        """GetFunction: {"Configuration", "Code", "Concurrency"?, "Tags"?}."""
        with self._lock:
            config = self.get_function_configuration(name, qualifier)
            fn = self._functions[config["FunctionName"]]
            code = fn.code_of.get(config["Version"], fn.code)
            out: dict[str, Any] = {"Configuration": config, "Code": {"RepositoryType": "S3", "Location": code.location}}
            if fn.reserved is not None:
                out["Concurrency"] = {"ReservedConcurrentExecutions": fn.reserved}
            if fn.tags:
                out["Tags"] = dict(fn.tags)
            return out

    def list_functions(self, marker: str | None = None, max_items: int | None = None) -> dict:
        """ListFunctions: the $LATEST of each function, by name, 50 a page at most (as Lambda)."""
        with self._lock:
            configs = [dict(self._functions[n].latest.config) for n in sorted(self._functions)]
        page, next_marker = self._page(configs, marker, max_items)
        out: dict[str, Any] = {"Functions": page}
        if next_marker:
            out["NextMarker"] = next_marker
        return out

    @staticmethod
    def _page(items: list[dict], marker: str | None, max_items: int | None) -> tuple[list[dict], str | None]:
        try:
            start = int(base64.b64decode(marker).decode()) if marker else 0
        except ValueError:
            raise _invalid(f"Invalid marker: {marker}") from None
        size = max(1, min(int(max_items or 50), 50))
        page = items[start:start + size]
        more = start + size < len(items)
        return page, base64.b64encode(str(start + size).encode()).decode() if more else None

    def delete_function(self, name: str, qualifier: str | None = None) -> None:
        """DeleteFunction: the function with its versions and aliases, or one version (``qualifier``)."""
        with self._lock:
            fn_name, qualifier = self._target(name, qualifier)
            fn = self._function(fn_name)
            if qualifier is None:
                for key in [fn.latest.spec.name, *(v.spec.name for v in fn.versions.values())]:
                    self.runtime.unregister(key)
                del self._functions[fn_name]
                return
            if qualifier == "$LATEST":
                raise _invalid("$LATEST version cannot be deleted without deleting the function.")
            if qualifier not in fn.versions:
                if qualifier in fn.aliases:
                    raise _invalid("Deletion of aliases is not supported by DeleteFunction; call DeleteAlias.")
                raise self._not_found(fn_name, qualifier)
            users = sorted(a for a, c in fn.aliases.items() if qualifier == c["FunctionVersion"]
                           or qualifier in ((c.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}))
            if users:
                raise LambdaError("ResourceConflictException",
                                  f"Unable to delete version because the following aliases reference it: "
                                  f"[{', '.join(users)}]")
            self.runtime.unregister(fn.versions.pop(qualifier).spec.name)
            fn.code_of.pop(qualifier, None)

    # ----------------------------------------------------------------- versions

    def publish_version(self, name: str, params: dict) -> dict:
        """PublishVersion: a new version from $LATEST, unless nothing changed since the last one (that one then)."""
        with self._lock:
            fn = self._unqualified(name)
            latest = fn.latest.config
            self._check_revision(params, latest)
            if params.get("CodeSha256") and params["CodeSha256"] != latest["CodeSha256"]:
                raise _invalid(f"CodeSHA256 ({params['CodeSha256']}) is different from current CodeSHA256 in "
                               f"$LATEST ({latest['CodeSha256']}). Please try again with the CodeSHA256 in $LATEST.")
            if fn.versions:
                last = fn.versions[max(fn.versions, key=int)]
                if _fingerprint(last.config) == _fingerprint(latest):
                    return dict(last.config)
            number = str(fn.last_version + 1)
            config = {**latest, "Version": number, "FunctionArn": self.arn(fn.name, number),
                      "RevisionId": str(uuid.uuid4()), "LastModified": _now()}
            if params.get("Description") is not None:
                config["Description"] = params["Description"]
            spec = dataclasses.replace(fn.latest.spec, name=_runtime_key(fn.key, number), version=number,
                                       reserved_concurrency=fn.reserved)
            self._register(spec)
            fn.last_version = int(number)
            fn.versions[number] = _Version(config, spec)
            fn.code_of[number] = fn.code
            return dict(config)

    def list_versions_by_function(self, name: str, marker: str | None = None,
                                  max_items: int | None = None) -> dict:
        with self._lock:
            fn = self._unqualified(name)
            configs = [dict(fn.latest.config)] + [dict(fn.versions[v].config) for v in sorted(fn.versions, key=int)]
        page, next_marker = self._page(configs, marker, max_items)
        out: dict[str, Any] = {"Versions": page}
        if next_marker:
            out["NextMarker"] = next_marker
        return out

    # ----------------------------------------------------------------- aliases

    def _routing(self, fn: _Function, primary: str, routing: dict[str, Any] | None) -> dict[str, float]:
        """The alias's AdditionalVersionWeights, checked as Lambda does."""
        if primary != "$LATEST" and primary not in fn.versions:
            raise self._not_found(fn.name, primary)
        weights = dict((routing or {}).get("AdditionalVersionWeights") or {})
        if not weights:
            return {}
        # https://docs.aws.amazon.com/lambda/latest/dg/configuring-alias-routing.html
        if primary == "$LATEST" or "$LATEST" in weights:
            raise _invalid("$LATEST is not supported for an alias pointing to more than 1 version")
        if len(weights) > 1:
            raise _invalid("Number of items in AdditionalVersionWeights cannot be greater than 1")
        for version, weight in weights.items():
            if version not in fn.versions:
                raise self._not_found(fn.name, version)
            if version == primary:
                raise _invalid("Alias with RoutingConfig cannot point to the same version in "
                               "AdditionalVersionWeights as its FunctionVersion")
            if not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
                raise _invalid(f"Invalid weight {weight} for version {version}: it must be between 0.0 and 1.0")
        return {v: float(w) for v, w in weights.items()}

    def _alias_config(self, fn: _Function, alias: str, version: str, description: str,
                      weights: dict[str, float]) -> dict[str, Any]:
        config = {"AliasArn": self.arn(fn.name, alias), "Name": alias, "FunctionVersion": version,
                  "Description": description, "RevisionId": str(uuid.uuid4())}
        if weights:
            config["RoutingConfig"] = {"AdditionalVersionWeights": dict(weights)}
        return config

    def create_alias(self, name: str, params: dict) -> dict:
        """CreateAlias: AliasConfiguration (RoutingConfig.AdditionalVersionWeights for weighted routing)."""
        with self._lock:
            fn = self._unqualified(name)
            alias = params.get("Name", "")
            if not _ALIAS.match(alias):
                raise _invalid(f"Invalid alias name {alias!r}: letters, digits, - and _, not only digits")
            if alias in fn.aliases:
                raise LambdaError("ResourceConflictException", f"Alias already exists: {self.arn(fn.name, alias)}")
            version = str(params.get("FunctionVersion", ""))
            weights = self._routing(fn, version, params.get("RoutingConfig"))
            fn.aliases[alias] = self._alias_config(fn, alias, version, params.get("Description", ""), weights)
            return dict(fn.aliases[alias])

    def update_alias(self, name: str, alias: str, params: dict) -> dict:
        """UpdateAlias: a RoutingConfig given replaces the old one (``{}`` clears it)."""
        with self._lock:
            fn = self._unqualified(name)
            current = self._alias(fn, alias)
            self._check_revision(params, current)
            version = str(params.get("FunctionVersion") or current["FunctionVersion"])
            routing = params["RoutingConfig"] if "RoutingConfig" in params else current.get("RoutingConfig")
            weights = self._routing(fn, version, routing)
            description = params.get("Description", current.get("Description", ""))
            fn.aliases[alias] = self._alias_config(fn, alias, version, description, weights)
            return dict(fn.aliases[alias])

    def _alias(self, fn: _Function, alias: str) -> dict[str, Any]:
        config = fn.aliases.get(alias)
        if config is None:
            raise LambdaError("ResourceNotFoundException", f"Alias not found: {self.arn(fn.name, alias)}")
        return config

    def get_alias(self, name: str, alias: str) -> dict:
        with self._lock:
            return dict(self._alias(self._unqualified(name), alias))

    def delete_alias(self, name: str, alias: str) -> None:
        with self._lock:
            self._unqualified(name).aliases.pop(alias, None)  # Lambda answers 204 for an unknown alias too

    def list_aliases(self, name: str, function_version: str | None = None, marker: str | None = None,
                     max_items: int | None = None) -> dict:
        with self._lock:
            fn = self._unqualified(name)
            aliases = [dict(a) for _, a in sorted(fn.aliases.items())
                       if function_version is None or a["FunctionVersion"] == function_version]
        page, next_marker = self._page(aliases, marker, max_items)
        out: dict[str, Any] = {"Aliases": page}
        if next_marker:
            out["NextMarker"] = next_marker
        return out

    # ----------------------------------------------------------------- concurrency, account

    def put_function_concurrency(self, name: str, reserved: int) -> dict:
        """PutFunctionConcurrency: reserved for the function (all its versions); 0 throttles every invoke."""
        with self._lock:
            fn = self._unqualified(name)
            if not isinstance(reserved, int) or reserved < 0:
                raise _invalid(f"ReservedConcurrentExecutions must be a whole number >= 0, not {reserved!r}")
            try:  # Lambda's rule and words: reservations leave at least 100 unreserved
                self.runtime.set_reserved_concurrency(fn.name, reserved)
            except ValueError as e:
                raise _invalid(f"{e} (The local account's concurrency is {self.runtime.account_concurrency}: "
                               "python -m workshop up --concurrency N sets it.)") from None
            fn.reserved = reserved
            return {"ReservedConcurrentExecutions": reserved}

    def get_function_concurrency(self, name: str) -> dict:
        with self._lock:
            fn = self._unqualified(name)
            return {} if fn.reserved is None else {"ReservedConcurrentExecutions": fn.reserved}

    def delete_function_concurrency(self, name: str) -> None:
        with self._lock:
            fn = self._unqualified(name)
            self.runtime.set_reserved_concurrency(fn.name, None)
            fn.reserved = None

    def get_account_settings(self) -> dict:
        with self._lock:
            reserved = sum(f.reserved or 0 for f in self._functions.values())
            code_size = sum(f.code.size for f in self._functions.values())
            count = len(self._functions)
        total = self.runtime.account_concurrency
        return {
            "AccountLimit": {"TotalCodeSize": TOTAL_CODE_BYTES, "CodeSizeUnzipped": MAX_UNZIPPED_BYTES,
                             "CodeSizeZipped": MAX_ZIPPED_BYTES, "ConcurrentExecutions": total,
                             "UnreservedConcurrentExecutions": total - reserved},
            "AccountUsage": {"TotalCodeSize": code_size, "FunctionCount": count},
        }

    # ----------------------------------------------------------------- invoking

    def _resolve(self, target: str, qualifier: str | None) -> tuple[str, str | None, str, str]:
        """(function name, qualifier as called, runtime key, executed version); an alias's weights pick here."""
        name, qualifier = self._target(target, qualifier)
        with self._lock:
            fn = self._function(name)
            if qualifier in (None, "$LATEST"):
                return name, qualifier, fn.key, "$LATEST"
            if qualifier.isdigit():
                if qualifier not in fn.versions:
                    raise self._not_found(name, qualifier)
                return name, qualifier, _runtime_key(fn.key, qualifier), qualifier
            alias = fn.aliases.get(qualifier)
            if alias is None:
                raise self._not_found(name, qualifier)
            version = alias["FunctionVersion"]
            pick = random.random()
            for other, weight in ((alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}).items():
                if pick < weight:
                    version = other
                    break
                pick -= weight
            return name, qualifier, _runtime_key(fn.key, version), version

    def resolve(self, target: str, qualifier: str | None = None) -> tuple[str, str]:
        """(runtime key, executed version) of a name, partial ARN or ARN, with or without :qualifier."""
        _, _, key, version = self._resolve(target, qualifier)
        return key, version

    def invoke(self, target: str, payload: bytes, *, qualifier: str | None = None,
               invocation_type: str = "RequestResponse", log_type: str | None = None,
               client_context: dict | None = None, json_checked: bool = False) -> Invocation:
        """Invoke: RequestResponse (200, the function's answer), Event (202, queued) or DryRun (204).

        ``json_checked``: the caller made ``payload`` with ``json.dumps`` (the local API, the event sources), so
        it is not parsed again on their hot path; what comes through the Lambda API is."""
        if invocation_type not in ("RequestResponse", "Event", "DryRun"):
            raise LambdaError("ValidationException",
                              f"1 validation error detected: Value '{invocation_type}' at 'invocationType' failed "
                              "to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]")
        payload = bytes(payload or b"") or b"{}"  # no payload: the function gets {}
        # https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html: 6 MB synchronous, 1 MB asynchronous
        limit = MAX_ASYNC_REQUEST_PAYLOAD if invocation_type == "Event" else MAX_REQUEST_PAYLOAD
        if len(payload) > limit:
            raise LambdaError("RequestTooLargeException",
                              f"Request must be smaller than {limit} bytes for the InvokeFunction operation")
        try:
            if not json_checked:
                json.loads(payload)
        except ValueError as e:
            raise LambdaError("InvalidRequestContentException",
                              f"Could not parse request body into json: Could not parse payload into json: {e}") from None
        name, called, key, version = self._resolve(target, qualifier)
        if invocation_type == "DryRun":
            return Invocation(204, executed_version=version)
        if invocation_type == "Event":  # the version is picked now: the queued event runs that one
            self._submit(name if version == "$LATEST" else f"{name}:{version}", payload)
            return Invocation(202, executed_version=version)
        resource = f"{name}:{called}" if called and called != "$LATEST" else None
        result = self._run(key, payload, name, resource, version, client_context)
        return Invocation(200, result.payload, result.function_error,
                          _tail(result.log_lines) if log_type == "Tail" else None, version, result)

    def _submit(self, target: str, payload: bytes) -> None:
        if self.async_submit is not None:
            self.async_submit(target, payload)
            return
        self.run_event_in_background(target, payload)

    def run_event_in_background(self, target: str, payload: bytes) -> None:
        """Run an Event invoke in a thread of its own, once (no queue, no retries, no destination)."""

        def run() -> None:
            try:
                self.invoke(target, payload)
            except Exception as e:  # noqa: BLE001 - nobody waits for an Event invoke
                log.info("event invoke of %s failed: %s", target, e)

        threading.Thread(target=run, name=f"lambda-event-{target}", daemon=True).start()

    def _run(self, key: str, payload: bytes, name: str, resource: str | None, version: str,
             client_context: dict | None) -> InvocationResult:
        try:
            result = self.runtime.invoke(key, payload, client_context=client_context)
        except Throttled as e:
            self._record(InvokeRecord(name, resource, version, 0.0, False, True))
            raise LambdaError("TooManyRequestsException", "Rate Exceeded.", fields={"Reason": e.reason}) from None
        except UnknownFunction:
            raise self._not_found(name, None if version == "$LATEST" else version) from None
        except RequestTooLarge as e:
            raise LambdaError("RequestTooLargeException", str(e)) from None
        self._record(InvokeRecord(name, resource, version, result.report.duration_ms,
                                  bool(result.function_error), False))
        return result

    def _record(self, record: InvokeRecord) -> None:
        record.at = time.time()
        for listener in list(self.on_invoked):
            try:
                listener(record)
            except Exception:  # noqa: BLE001 - a listener's failure is not the caller's
                log.exception("on_invoked listener failed")
