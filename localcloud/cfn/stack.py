"""The SAM template, read the way CloudFormation reads it, without AWS.

``Stack`` does what ``sam deploy`` + CloudFormation do before any resource exists:

1. **Transform.** ``sam-app/template.yaml`` (``AWS::Serverless-2016-10-31``) becomes plain
   CloudFormation with AWS's own translator (``samtranslator``, offline: a managed-policy loader
   that knows no policies, every ``CodeUri`` swapped for an S3 placeholder as ``sam package``
   would, the local folder remembered). The result is cached in ``.workshop/cache/``: the
   translator takes seconds to import, a cache hit milliseconds.
2. **Parameters** (defaults, overrides, ``AllowedValues``/``MinValue``/``MaxValue``/
   ``AllowedPattern`` checked) and the pseudo parameters (``AWS::StackName``, ``AWS::AccountId``,
   ``AWS::Region``, ``AWS::Partition``, ``AWS::URLSuffix``, ``AWS::StackId``, ``AWS::NoValue``).
3. **Conditions** (``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or``, ``Condition``); a
   resource or output whose condition is false does not exist.
4. **Dependency order** from ``Ref``, ``Fn::GetAtt``, ``Fn::Sub`` and ``DependsOn``, following
   only the branch of an ``Fn::If`` that is taken.
5. **Intrinsics**, resolved against what exists so far (``resolve``): ``Ref``, ``Fn::GetAtt``,
   ``Fn::Sub``, ``Fn::Join``, ``Fn::Select``, ``Fn::Split``, ``Fn::If``, ``Fn::FindInMap``,
   ``Fn::Base64``, ``Fn::GetAZs``; ``AWS::NoValue`` removes the key or item.

What a resource's ``Ref`` and ``Fn::GetAtt`` give is *recorded* as resources are made
(``record``): ``localcloud.cfn.provision`` records moto's answers (a table's ``StreamArn``, a pool's id).
``predict()`` records what they would be without making anything, which is all
``functions()``, ``routes()`` and the event-source readers need to be tested offline.

Names follow CloudFormation: a name the template gives is used; otherwise
``<stack>-<LogicalId>-<SUFFIX>`` (lower case for buckets), with a suffix derived from the stack
name and logical id instead of a random one, so that names are the same at every ``up``.
Functions are the exception: locally a function's name is its logical id (as with
``sam local invoke PingFunction``), so its log group is ``/aws/lambda/<LogicalId>``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = [
    "AsyncConfig",
    "FunctionModel",
    "RouteModel",
    "S3NotificationModel",
    "SnsSubscriptionModel",
    "Stack",
    "StreamMappingModel",
    "TemplateError",
    "host_code_dir",
]

#: Bump when the translation or what is cached with it changes.
_CACHE_VERSION = "1"
#: The S3 bucket the local CodeUris are swapped for (never created: the code runs from the folder).
CODE_BUCKET = "workshop-local-code"
PSEUDO_PARAMETERS = (
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
)
_INTRINSICS = frozenset(
    {
        "Ref",
        "Fn::GetAtt",
        "Fn::Sub",
        "Fn::Join",
        "Fn::Select",
        "Fn::Split",
        "Fn::If",
        "Fn::Equals",
        "Fn::Not",
        "Fn::And",
        "Fn::Or",
        "Fn::FindInMap",
        "Fn::Base64",
        "Fn::GetAZs",
        "Fn::ImportValue",
        "Fn::Cidr",
        "Fn::Transform",
        "Fn::Length",
        "Fn::ToJsonString",
    }
)
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """The template (or a parameter) is not something the local cloud can deploy; says why."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


class Unresolved(TemplateError):
    """A Ref/GetAtt to a resource that has not been made (recorded) yet."""


# --------------------------------------------------------------------------- what the stack holds


@dataclass
class AsyncConfig:
    """How Lambda handles a function's asynchronous invocations (EventInvokeConfig + DeadLetterConfig)."""

    max_retry_attempts: int = 2
    max_event_age_s: int = 21600
    dead_letter_arn: str | None = None
    on_failure: str | None = None
    on_success: str | None = None


@dataclass
class FunctionModel:
    logical_id: str
    name: str  # the function's name in the local runtime (= logical id)
    arn: str
    handler: str
    runtime: str
    architecture: str  # "arm64" | "x86_64"
    code_uri: Path | None  # the template's folder for the code (None: not local)
    environment: dict[str, str]
    memory_mb: int = 128
    timeout_s: float = 3.0
    reserved_concurrency: int | None = None
    async_config: AsyncConfig = field(default_factory=AsyncConfig)


@dataclass(frozen=True)
class RouteModel:
    method: str
    path: str
    function: str
    authorized: bool
    api: str = ""  # the RestApi's logical id


@dataclass
class S3NotificationModel:
    bucket: str  # the bucket's name
    bucket_logical_id: str
    function: str
    events: list[str]
    filter_rules: list[dict[str, str]]  # S3 API form: [{"Name": "prefix", "Value": "photos/"}]
    id: str


@dataclass
class SnsSubscriptionModel:
    logical_id: str
    arn: str
    topic_arn: str
    function: str
    filter_policy: dict | None = None
    filter_policy_scope: str | None = None


@dataclass
class StreamMappingModel:
    logical_id: str
    uuid: str
    function: str
    event_source_arn: str
    starting_position: str = "LATEST"
    batch_size: int = 100
    maximum_retry_attempts: int = -1
    maximum_record_age_s: int = -1
    bisect_on_error: bool = False
    filters: list[dict] = field(default_factory=list)
    report_batch_item_failures: bool = False
    on_failure: str | None = None
    enabled: bool = True
    maximum_batching_window_s: float = 0.0


# --------------------------------------------------------------------------- helpers


def _suffix(*parts: str, length: int = 12) -> str:
    """A CloudFormation-like physical-id suffix (``1A2B3C4D5E6F``), stable for the same inputs."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return base64.b32encode(digest).decode().rstrip("=")[:length].replace("=", "A")


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _intrinsic(value: Any) -> tuple[str, Any] | None:
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key in _INTRINSICS or key == "Condition":
            return key, arg
    return None


def _getatt_args(arg: Any) -> tuple[str, str]:
    if isinstance(arg, str):
        lid, _, attr = arg.partition(".")
        return lid, attr
    if isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str):
        return arg[0], arg[1]
    raise TemplateError(f"Fn::GetAtt {arg!r}: expected [LogicalId, Attribute] or 'LogicalId.Attribute'")


def _function_name_from_arn(arn: str) -> str:
    # arn:aws:lambda:region:acct:function:NAME[:qualifier]
    parts = str(arn).split(":")
    if len(parts) >= 7 and parts[2] == "lambda" and parts[5] == "function":
        return parts[6]
    return str(arn)


def _host_elf_machine() -> int | None:
    machine = os.uname().machine.lower() if hasattr(os, "uname") else ""
    return {"x86_64": 0x3E, "amd64": 0x3E, "aarch64": 0xB7, "arm64": 0xB7}.get(machine)


def _elf_machine(path: Path) -> int | None:
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return -1  # not ELF (a Mach-O .so on macOS, for one): not loadable by the functions here
    order = "little" if head[5] == 1 else "big"
    return int.from_bytes(head[18:20], order)


def _built_architecture(build: Path) -> str | None:
    """The architecture ``sam build`` recorded for the function built in ``build`` (``.aws-sam/build.toml``)."""
    manifest = build.parent.parent / "build.toml"
    try:
        import tomllib

        data = tomllib.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    for definition in (data.get("function_build_definitions") or {}).values():
        if build.name in (definition.get("functions") or []):
            return str(definition.get("architecture") or "x86_64")
    return None


def host_code_dir(source: Path, build: Path | None) -> tuple[Path, str]:
    """The folder a function's code runs from here, and why.

    ``.aws-sam/build/<Function>`` only when it exists and is known to be built for this machine:
    ``sam build``'s ``build.toml`` names this machine's architecture (when it names one) and its
    native extensions are ELF files for this machine, at least one of them (a build without
    any, with no ``build.toml`` to say what it is for, proves nothing). Otherwise the source
    folder (``CodeUri``), which runs with the packages installed next to the workshop.
    ``sam build`` makes arm64 builds (the template says ``Architectures: [arm64]``): their Pillow
    cannot load on an x86_64 laptop.
    """
    if build is None or not build.is_dir():
        return source, "source (no sam build output)"
    host = _host_elf_machine()
    built_for = _built_architecture(build)
    if built_for is not None:
        wanted = {"x86_64": 0x3E, "arm64": 0xB7}.get(built_for)
        if host is None or wanted != host:
            return source, f"source (sam build made {built_for} code, this machine is {os.uname().machine})"
    checked = 0
    for dirpath, _dirs, files in os.walk(build):
        for name in files:
            if name.endswith(".so") or ".so." in name:
                machine = _elf_machine(Path(dirpath) / name)
                if machine is None:
                    continue
                if host is None or machine != host:
                    return source, "source (the sam build output is for another architecture)"
                checked += 1
                if checked >= 3:
                    return build, "build (.aws-sam/build, built for this machine)"
    if checked or built_for is not None:
        return build, "build (.aws-sam/build, built for this machine)"
    return source, "source (the sam build output does not say what it was built for)"


# --------------------------------------------------------------------------- the stack


class Stack:
    """One SAM template deployed (in thought) as a stack: parameters, conditions, order, intrinsics."""

    def __init__(
        self,
        template_path: str | os.PathLike[str],
        *,
        parameters: Mapping[str, Any] | None = None,
        optional_parameters: Mapping[str, Any] | None = None,
        stack_name: str = "thumbnailr",
        region: str = "us-east-1",
        account_id: str = "123456789012",
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.template_path = Path(template_path).resolve()
        if not self.template_path.is_file():
            raise TemplateError(f"no SAM template at {self.template_path}")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", stack_name):
            raise TemplateError(f"stack name {stack_name!r}: letters, digits and '-', starting with a letter")
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
        self.url_suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
        self.stack_id = (
            f"arn:{self.partition}:cloudformation:{region}:{account_id}:stack/{stack_name}/"
            f"{uuid.uuid5(uuid.NAMESPACE_URL, f'{account_id}/{region}/{stack_name}')}"
        )
        optional = {k: _as_str(v) for k, v in (optional_parameters or {}).items()}
        overrides = {k: _as_str(v) for k, v in (parameters or {}).items()}
        self.template, self.code_uris = self._translate({**optional, **overrides}, cache_dir)
        declared = self.template.get("Parameters") or {}
        self.parameters = self._parameters({**{k: v for k, v in optional.items() if k in declared}, **overrides})
        self.mappings = self.template.get("Mappings") or {}
        self._conditions: dict[str, bool] = {}
        self.conditions = {name: self.condition(name) for name in self.template.get("Conditions") or {}}
        self.resources: dict[str, dict] = {}
        for lid, resource in (self.template.get("Resources") or {}).items():
            cond = resource.get("Condition")
            if cond is not None and not self.condition(cond):
                continue
            self.resources[lid] = resource
        self.order = self._order()
        self.refs: dict[str, Any] = {}
        self.attrs: dict[tuple[str, str], Any] = {}
        self.warnings: list[str] = []

    # ----------------------------------------------------------------- transform

    def _translate(self, overrides: dict[str, str], cache_dir: Any) -> tuple[dict, dict[str, Path | None]]:
        text = self.template_path.read_text()
        key_src = json.dumps(
            {
                "v": _CACHE_VERSION,
                "template": text,
                "dir": str(self.template_path.parent),
                "params": overrides,
                "region": self.region,
                "translator": _translator_version(),
            },
            sort_keys=True,
        )
        key = hashlib.sha256(key_src.encode()).hexdigest()[:32]
        cache_file = Path(cache_dir) / f"template-{key}.json" if cache_dir else None
        if cache_file is not None and cache_file.is_file():
            try:
                cached = json.loads(cache_file.read_text())
                codes = {k: (Path(v) if v else None) for k, v in cached["code_uris"].items()}
                return cached["template"], codes
            except (OSError, ValueError, KeyError):
                pass
        translated, codes = translate(text, self.template_path.parent, overrides, self.region)
        if cache_file is not None:
            try:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps({"template": translated,
                                           "code_uris": {k: (str(v) if v else None) for k, v in codes.items()}}))
                os.replace(tmp, cache_file)
            except OSError:
                pass
        return translated, codes

    # ----------------------------------------------------------------- parameters, conditions

    def _parameters(self, overrides: dict[str, str]) -> dict[str, Any]:
        declared = self.template.get("Parameters") or {}
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise TemplateError(
                f"unknown parameter(s) {', '.join(unknown)}; the template declares: {', '.join(declared) or 'none'}"
            )
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in overrides:
                value = overrides[name]
            elif "Default" in spec:
                value = _as_str(spec["Default"])
            else:
                raise TemplateError(f"parameter {name} has no default: give it a value")
            ptype = spec.get("Type", "String")
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in [_as_str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={value!r} must be one of {', '.join(map(_as_str, allowed))}")
            if ptype == "Number":
                try:
                    number = float(value)
                except ValueError:
                    raise TemplateError(f"parameter {name}={value!r} must be a number") from None
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    raise TemplateError(f"parameter {name}={value} is below its MinValue {spec['MinValue']}")
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    raise TemplateError(f"parameter {name}={value} is above its MaxValue {spec['MaxValue']}")
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
                raise TemplateError(f"parameter {name}={value!r} does not match {spec['AllowedPattern']}")
            if ptype == "CommaDelimitedList" or ptype.startswith("List<"):
                values[name] = [v.strip() for v in value.split(",")] if value else []
            else:
                values[name] = value
        return values

    def condition(self, name: str, _stack: tuple[str, ...] = ()) -> bool:
        if name in self._conditions:
            return self._conditions[name]
        conditions = self.template.get("Conditions") or {}
        if name not in conditions:
            raise TemplateError(f"condition {name!r} is not declared in Conditions")
        if name in _stack:
            raise TemplateError(f"conditions refer to each other in a circle: {' -> '.join((*_stack, name))}")
        value = self._evaluate(conditions[name], (*_stack, name))
        self._conditions[name] = value
        return value

    def _evaluate(self, expr: Any, stack: tuple[str, ...] = ()) -> bool:
        fn = _intrinsic(expr)
        if fn is None:
            if isinstance(expr, bool):
                return expr
            if isinstance(expr, str) and expr.lower() in ("true", "false"):
                return expr.lower() == "true"
            raise TemplateError(f"condition {expr!r} is not a condition function")
        key, arg = fn
        if key == "Condition":
            return self.condition(arg, stack)
        if key == "Fn::Equals":
            a, b = (self._resolve(v, conditions=stack) for v in arg)
            return _as_str(a) == _as_str(b)
        if key == "Fn::Not":
            return not self._evaluate(arg[0], stack)
        if key == "Fn::And":
            return all(self._evaluate(v, stack) for v in arg)
        if key == "Fn::Or":
            return any(self._evaluate(v, stack) for v in arg)
        raise TemplateError(f"{key} cannot be used in a condition")

    # ----------------------------------------------------------------- dependency order

    def dependencies(self, lid: str) -> list[str]:
        resource = self.resources[lid]
        deps: list[str] = []
        depends_on = resource.get("DependsOn") or []
        for dep in [depends_on] if isinstance(depends_on, str) else depends_on:
            if dep in self.resources:
                deps.append(dep)
        for ref in self._refs_in(resource.get("Properties") or {}):
            if ref in self.resources and ref not in deps:
                deps.append(ref)
        return deps

    def _refs_in(self, value: Any, sub_vars: frozenset[str] = frozenset()) -> Iterator[str]:
        fn = _intrinsic(value)
        if fn is not None:
            key, arg = fn
            if key == "Ref" and isinstance(arg, str):
                yield arg
                return
            if key == "Fn::GetAtt":
                yield _getatt_args(arg)[0]
                return
            if key == "Fn::If" and isinstance(arg, list) and len(arg) == 3:
                yield from self._refs_in(arg[1] if self.condition(arg[0]) else arg[2], sub_vars)
                return
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                yield from self._refs_in(variables, sub_vars)
                for name in _SUB_VAR.findall(text if isinstance(text, str) else ""):
                    if name.startswith("!") or name in variables:
                        continue
                    yield name.split(".", 1)[0]
                return
            yield from self._refs_in(arg, sub_vars)
            return
        if isinstance(value, dict):
            for v in value.values():
                yield from self._refs_in(v, sub_vars)
        elif isinstance(value, list):
            for v in value:
                yield from self._refs_in(v, sub_vars)

    def _order(self) -> list[str]:
        deps = {lid: self.dependencies(lid) for lid in self.resources}
        order: list[str] = []
        done: set[str] = set()
        remaining = list(self.resources)
        while remaining:
            ready = [lid for lid in remaining if all(d in done for d in deps[lid])]
            if not ready:
                cycle = ", ".join(f"{lid} -> {'/'.join(d for d in deps[lid] if d not in done)}" for lid in remaining)
                raise TemplateError(f"circular dependency between resources: {cycle}")
            for lid in ready:
                order.append(lid)
                done.add(lid)
            remaining = [lid for lid in remaining if lid not in done]
        return order

    # ----------------------------------------------------------------- resolving

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function resolved (``Unresolved`` if it names a resource not made yet)."""
        out = self._resolve(value)
        return None if out is NO_VALUE else out

    def properties(self, lid: str) -> dict[str, Any]:
        return self.resolve(self.resources[lid].get("Properties") or {}) or {}

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::AccountId": self.account_id,
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": self.url_suffix,
            "AWS::StackId": self.stack_id,
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        if name in self.resources:
            raise Unresolved(f"Ref {name}: the resource is not made yet")
        if name in (self.template.get("Resources") or {}):
            raise TemplateError(f"Ref {name}: that resource's condition is false, so it does not exist")
        raise TemplateError(f"Ref {name}: no such parameter or resource")

    def _getatt(self, lid: str, attr: str) -> Any:
        if (lid, attr) in self.attrs:
            return self.attrs[(lid, attr)]
        if lid in self.resources:
            if lid in self.refs:
                raise TemplateError(f"Fn::GetAtt {lid}.{attr}: the local cloud does not know that attribute "
                                    f"of a {self.resources[lid].get('Type')}")
            raise Unresolved(f"Fn::GetAtt {lid}.{attr}: the resource is not made yet")
        raise TemplateError(f"Fn::GetAtt {lid}.{attr}: no such resource (or its condition is false)")

    def _resolve(self, value: Any, conditions: tuple[str, ...] = ()) -> Any:
        fn = _intrinsic(value)
        if fn is not None:
            return self._function(fn[0], fn[1], conditions)
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                r = self._resolve(v, conditions)
                if r is not NO_VALUE:
                    out[k] = r
            return out
        if isinstance(value, list):
            return [r for r in (self._resolve(v, conditions) for v in value) if r is not NO_VALUE]
        return value

    def _function(self, key: str, arg: Any, conditions: tuple[str, ...]) -> Any:  # noqa: PLR0911, PLR0912
        if key == "Ref":
            return self._ref(arg)
        if key == "Fn::GetAtt":
            lid, attr = _getatt_args(self._resolve(arg, conditions))
            return self._getatt(lid, attr)
        if key == "Fn::Sub":
            if isinstance(arg, str):
                text, variables = arg, {}
            else:
                text, variables = arg[0], self._resolve(arg[1], conditions)

            def one(match: re.Match[str]) -> str:
                name = match.group(1)
                if name.startswith("!"):
                    return "${" + name[1:] + "}"
                if name in variables:
                    return _as_str(variables[name])
                if "." in name and name.split(".", 1)[0] not in PSEUDO_PARAMETERS:
                    lid, attr = name.split(".", 1)
                    return _as_str(self._getatt(lid, attr))
                return _as_str(self._ref(name))

            return _SUB_VAR.sub(one, text)
        if key == "Fn::Join":
            delimiter, items = arg
            items = self._resolve(items, conditions)
            return str(delimiter).join(_as_str(i) for i in items)
        if key == "Fn::Select":
            index, items = self._resolve(arg[0], conditions), self._resolve(arg[1], conditions)
            try:
                return items[int(index)]
            except (IndexError, ValueError, TypeError):
                raise TemplateError(f"Fn::Select: index {index!r} is not in {items!r}") from None
        if key == "Fn::Split":
            delimiter, text = arg[0], self._resolve(arg[1], conditions)
            return str(text).split(delimiter)
        if key == "Fn::If":
            name, yes, no = arg
            return self._resolve(yes if self.condition(name) else no, conditions)
        if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
            return self._evaluate({key: arg}, conditions)
        if key == "Fn::FindInMap":
            m, top, second = (self._resolve(a, conditions) for a in arg[:3])
            try:
                return self.mappings[m][top][second]
            except KeyError:
                raise TemplateError(f"Fn::FindInMap: {m}/{top}/{second} is not in Mappings") from None
        if key == "Fn::Base64":
            return base64.b64encode(_as_str(self._resolve(arg, conditions)).encode()).decode()
        if key == "Fn::GetAZs":
            region = self._resolve(arg, conditions) or self.region
            return [f"{region}{z}" for z in "abc"]
        if key == "Fn::ToJsonString":
            return json.dumps(self._resolve(arg, conditions), separators=(",", ":"))
        if key == "Fn::Length":
            return len(self._resolve(arg, conditions))
        raise TemplateError(f"{key} is not supported by the local cloud")

    # ----------------------------------------------------------------- names and what exists

    def resource_type(self, lid: str) -> str:
        return self.resources[lid].get("Type", "")

    def generated_name(self, lid: str, *, lower: bool = False, max_length: int = 255) -> str:
        """CloudFormation's name for a resource the template does not name: ``stack-LogicalId-SUFFIX``."""
        suffix = _suffix(self.stack_name, lid)
        head = f"{self.stack_name}-{lid}"[: max_length - len(suffix) - 1]
        name = f"{head}-{suffix}"
        return name.lower() if lower else name

    def record(self, lid: str, ref: Any, attrs: Mapping[str, Any] | None = None) -> None:
        """What resource ``lid``'s ``Ref`` and ``Fn::GetAtt`` give from now on."""
        self.refs[lid] = ref
        for attr, value in (attrs or {}).items():
            self.attrs[(lid, attr)] = value

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (f"arn:{self.partition}:{service}:{self.region if region else ''}:"
                f"{self.account_id if account else ''}:{resource}")

    def predicted(self, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:  # noqa: PLR0911
        """What ``Ref``/``Fn::GetAtt`` would give for ``lid``, computed without AWS (placeholders for ids)."""
        rtype = self.resource_type(lid)
        if rtype == "AWS::DynamoDB::Table":
            name = props.get("TableName") or self.generated_name(lid)
            arn = self.arn("dynamodb", f"table/{name}")
            attrs = {"Arn": arn}
            if (props.get("StreamSpecification") or {}).get("StreamViewType"):
                attrs["StreamArn"] = f"{arn}/stream/1970-01-01T00:00:00.000"
            return name, attrs
        if rtype == "AWS::S3::Bucket":
            name = props.get("BucketName") or self.generated_name(lid, lower=True, max_length=63)
            return name, {
                "Arn": self.arn("s3", name, region=False, account=False),
                "DomainName": f"{name}.s3.{self.url_suffix}",
                "RegionalDomainName": f"{name}.s3.{self.region}.{self.url_suffix}",
                "DualStackDomainName": f"{name}.s3.dualstack.{self.region}.{self.url_suffix}",
                "WebsiteURL": f"http://{name}.s3-website-{self.region}.{self.url_suffix}",
            }
        if rtype == "AWS::SNS::Topic":
            name = props.get("TopicName") or self.generated_name(lid, max_length=256)
            if str(props.get("FifoTopic")).lower() == "true" and not name.endswith(".fifo"):
                name += ".fifo"
            arn = self.arn("sns", name)
            return arn, {"TopicArn": arn, "TopicName": name}
        if rtype == "AWS::SQS::Queue":
            name = props.get("QueueName") or self.generated_name(lid, max_length=80)
            if str(props.get("FifoQueue")).lower() == "true" and not name.endswith(".fifo"):
                name = name[:75] + ".fifo"
            url = f"https://sqs.{self.region}.{self.url_suffix}/{self.account_id}/{name}"
            return url, {"Arn": self.arn("sqs", name), "QueueName": name, "QueueUrl": url}
        if rtype == "AWS::Cognito::UserPool":
            pool_id = f"{self.region}_{_suffix(self.stack_name, lid, length=9)}"
            provider = f"cognito-idp.{self.region}.{self.url_suffix}/{pool_id}"
            return pool_id, {
                "Arn": self.arn("cognito-idp", f"userpool/{pool_id}"),
                "ProviderName": provider,
                "ProviderURL": f"https://{provider}",
                "UserPoolId": pool_id,
            }
        if rtype == "AWS::Cognito::UserPoolClient":
            client_id = _suffix(self.stack_name, lid, length=26).lower()
            return client_id, {"ClientId": client_id, "Name": props.get("ClientName", lid)}
        if rtype == "AWS::Lambda::Function":
            return lid, {"Arn": self.arn("lambda", f"function:{lid}"), "SnapStartResponse": {}}
        if rtype == "AWS::IAM::Role":
            name = props.get("RoleName") or self.generated_name(lid, max_length=64)
            return name, {"Arn": self.arn("iam", f"role/{name}", region=False), "RoleId": "AROA" + _suffix(lid, length=17)}
        if rtype == "AWS::ApiGateway::RestApi":
            api_id = _suffix(self.stack_name, lid, length=10).lower()
            return api_id, {"RootResourceId": _suffix(api_id, "root", length=10).lower(), "RestApiId": api_id}
        if rtype == "AWS::ApiGateway::Stage":
            return props.get("StageName") or lid, {}
        if rtype == "AWS::ApiGateway::Deployment":
            return _suffix(self.stack_name, lid, length=6).lower(), {}
        if rtype == "AWS::Lambda::EventSourceMapping":
            esm = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.stack_id}/{lid}"))
            return esm, {"Id": esm}
        if rtype == "AWS::SNS::Subscription":
            topic = props.get("TopicArn") or self.arn("sns", "topic")
            return f"{topic}:{uuid.uuid5(uuid.NAMESPACE_URL, f'{self.stack_id}/{lid}')}", {}
        if rtype == "AWS::Logs::LogGroup":
            name = props.get("LogGroupName") or self.generated_name(lid, max_length=512)
            return name, {"Arn": self.arn("logs", f"log-group:{name}:*")}
        return self.generated_name(lid), {}

    def predict(self) -> Stack:
        """Record every resource's predicted Ref/GetAtt (nothing is made). Returns self."""
        for lid in self.order:
            if lid in self.refs:
                continue
            ref, attrs = self.predicted(lid, self.properties(lid))
            self.record(lid, ref, attrs)
        return self

    # ----------------------------------------------------------------- what the local cloud runs

    def of_type(self, rtype: str) -> list[str]:
        return [lid for lid in self.order if self.resource_type(lid) == rtype]

    def function_for(self, target: Any) -> str | None:
        """The logical id of the function a name or ARN (Ref/GetAtt of a function) points to."""
        name = _function_name_from_arn(target)
        for lid in self.of_type("AWS::Lambda::Function"):
            if name in (lid, self.refs.get(lid)):
                return lid
        return None

    def functions(self) -> list[FunctionModel]:
        configs: dict[str, dict] = {}
        for lid in self.of_type("AWS::Lambda::EventInvokeConfig"):
            props = self.properties(lid)
            fn = self.function_for(props.get("FunctionName"))
            if fn is not None:
                configs[fn] = props
        out = []
        for lid in self.of_type("AWS::Lambda::Function"):
            props = self.properties(lid)
            cfg = configs.get(lid, {})
            destinations = cfg.get("DestinationConfig") or {}
            reserved = props.get("ReservedConcurrentExecutions")
            out.append(
                FunctionModel(
                    logical_id=lid,
                    name=lid,
                    arn=self.attrs.get((lid, "Arn")) or self.arn("lambda", f"function:{lid}"),
                    handler=str(props.get("Handler", "")),
                    runtime=str(props.get("Runtime", "python3.13")),
                    architecture=str((props.get("Architectures") or ["x86_64"])[0]),
                    code_uri=self.code_uris.get(lid),
                    environment={k: _as_str(v) for k, v in ((props.get("Environment") or {}).get("Variables") or {}).items()},
                    memory_mb=int(props.get("MemorySize", 128)),
                    timeout_s=float(props.get("Timeout", 3)),
                    reserved_concurrency=int(reserved) if reserved is not None else None,
                    async_config=AsyncConfig(
                        max_retry_attempts=int(cfg.get("MaximumRetryAttempts", 2)),
                        max_event_age_s=int(cfg.get("MaximumEventAgeInSeconds", 21600)),
                        dead_letter_arn=(props.get("DeadLetterConfig") or {}).get("TargetArn"),
                        on_failure=(destinations.get("OnFailure") or {}).get("Destination"),
                        on_success=(destinations.get("OnSuccess") or {}).get("Destination"),
                    ),
                )
            )
        return out

    def stage_name(self, api_lid: str) -> str:
        for lid in self.of_type("AWS::ApiGateway::Stage"):
            props = self.properties(lid)
            if props.get("RestApiId") == self.refs.get(api_lid):
                return str(props.get("StageName") or "Prod")
        return "Prod"

    def routes(self) -> list[RouteModel]:
        """Every REST API method that integrates with a function (Lambda proxy), with its auth."""
        out: list[RouteModel] = []
        for api in self.of_type("AWS::ApiGateway::RestApi"):
            body = self.properties(api).get("Body")
            if not isinstance(body, dict):
                if self.properties(api).get("BodyS3Location"):
                    self.warn(f"{api}: an API defined in S3 (DefinitionUri) is not read locally")
                continue
            definitions = body.get("securityDefinitions") or (body.get("components") or {}).get("securitySchemes") or {}
            default_security = body.get("security")
            for path, methods in (body.get("paths") or {}).items():
                for method, op in (methods or {}).items():
                    if not isinstance(op, dict):
                        continue
                    integration = op.get("x-amazon-apigateway-integration") or {}
                    if integration.get("type") != "aws_proxy":
                        continue
                    uri = str(integration.get("uri", ""))
                    match = re.search(r"functions/(arn:[^/]+)/invocations", uri)
                    fn = self.function_for(match.group(1)) if match else None
                    if fn is None:
                        self.warn(f"{api}: {method.upper()} {path} integrates with {uri!r}, not a function of this stack")
                        continue
                    authorized = self._authorized(op.get("security", default_security), definitions, api, method, path)
                    if authorized is None:
                        continue
                    verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                    out.append(RouteModel(verb, path, fn, authorized, api))
        return out

    def _authorized(self, security: Any, definitions: dict, api: str, method: str, path: str) -> bool | None:
        if not security:
            return False
        kinds = set()
        for requirement in security:
            for name in requirement or {}:
                if name == "NONE":
                    kinds.add("none")
                    continue
                definition = definitions.get(name) or {}
                kind = definition.get("x-amazon-apigateway-authtype") or \
                    (definition.get("x-amazon-apigateway-authorizer") or {}).get("type") or name
                kinds.add(str(kind).lower())
        if kinds <= {"none"}:
            return False
        if "cognito_user_pools" in kinds:
            return True
        self.warn(f"{api}: {method.upper()} {path} uses a {'/'.join(sorted(kinds))} authorizer, which the local "
                  "API does not emulate (Cognito only): the route is left out")
        return None

    def user_pool_for_api(self) -> tuple[str, list[str]] | None:
        """(user pool id, its app client ids) of the Cognito authorizer, or None."""
        pool_ids: list[str] = []
        for api in self.of_type("AWS::ApiGateway::RestApi"):
            body = self.properties(api).get("Body") or {}
            definitions = body.get("securityDefinitions") or (body.get("components") or {}).get("securitySchemes") or {}
            for definition in definitions.values():
                authorizer = definition.get("x-amazon-apigateway-authorizer") or {}
                if authorizer.get("type") == "cognito_user_pools":
                    for arn in authorizer.get("providerARNs") or []:
                        pool_ids.append(str(arn).rsplit("/", 1)[-1])
        if not pool_ids:
            return None
        pool_id = pool_ids[0]
        clients = [
            self.refs[lid]
            for lid in self.of_type("AWS::Cognito::UserPoolClient")
            if self.properties(lid).get("UserPoolId") == pool_id and lid in self.refs
        ]
        return pool_id, clients

    def s3_notifications(self) -> list[S3NotificationModel]:
        out = []
        for lid in self.of_type("AWS::S3::Bucket"):
            props = self.properties(lid)
            for i, cfg in enumerate((props.get("NotificationConfiguration") or {}).get("LambdaConfigurations") or []):
                fn = self.function_for(cfg.get("Function"))
                if fn is None:
                    self.warn(f"{lid}: a notification targets {cfg.get('Function')!r}, not a function of this stack")
                    continue
                rules = ((cfg.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
                out.append(
                    S3NotificationModel(
                        bucket=self.refs.get(lid) or props.get("BucketName"),
                        bucket_logical_id=lid,
                        function=fn,
                        events=[cfg["Event"]],
                        filter_rules=[{"Name": r["Name"], "Value": r["Value"]} for r in rules],
                        id=f"{fn}-{i}",
                    )
                )
        return out

    def sns_subscriptions(self) -> list[SnsSubscriptionModel]:
        out = []
        for lid in self.of_type("AWS::SNS::Subscription"):
            props = self.properties(lid)
            if str(props.get("Protocol", "")).lower() != "lambda":
                continue
            fn = self.function_for(props.get("Endpoint"))
            if fn is None:
                self.warn(f"{lid}: subscribes {props.get('Endpoint')!r}, not a function of this stack")
                continue
            policy = props.get("FilterPolicy")
            if isinstance(policy, str):
                policy = json.loads(policy)
            out.append(
                SnsSubscriptionModel(
                    logical_id=lid,
                    arn=self.refs.get(lid) or f"{props['TopicArn']}:{lid}",
                    topic_arn=props["TopicArn"],
                    function=fn,
                    filter_policy=policy,
                    filter_policy_scope=props.get("FilterPolicyScope"),
                )
            )
        for lid in self.of_type("AWS::SNS::Topic"):
            for i, sub in enumerate(self.properties(lid).get("Subscription") or []):
                if str(sub.get("Protocol", "")).lower() != "lambda":
                    continue
                fn = self.function_for(sub.get("Endpoint"))
                if fn is not None:
                    topic = self.refs[lid]
                    out.append(SnsSubscriptionModel(f"{lid}Subscription{i}", f"{topic}:{_suffix(lid, str(i))}", topic, fn))
        return out

    def stream_mappings(self) -> list[StreamMappingModel]:
        out = []
        for lid in self.of_type("AWS::Lambda::EventSourceMapping"):
            props = self.properties(lid)
            source = str(props.get("EventSourceArn", ""))
            fn = self.function_for(props.get("FunctionName"))
            if fn is None:
                self.warn(f"{lid}: maps to {props.get('FunctionName')!r}, not a function of this stack")
                continue
            if ":dynamodb:" not in source or "/stream/" not in source:
                self.warn(f"{lid}: event source {source!r} is not a DynamoDB stream; the local cloud polls "
                          "DynamoDB streams only: this mapping is left out")
                continue
            filters = []
            for f in (props.get("FilterCriteria") or {}).get("Filters") or []:
                pattern = f.get("Pattern")
                filters.append(json.loads(pattern) if isinstance(pattern, str) else pattern)
            out.append(
                StreamMappingModel(
                    logical_id=lid,
                    uuid=self.refs.get(lid) or str(uuid.uuid4()),
                    function=fn,
                    event_source_arn=source,
                    starting_position=str(props.get("StartingPosition", "LATEST")),
                    batch_size=int(props.get("BatchSize", 100)),
                    maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
                    maximum_record_age_s=int(props.get("MaximumRecordAgeInSeconds", -1)),
                    bisect_on_error=_as_str(props.get("BisectBatchOnFunctionError", False)) == "true",
                    filters=filters,
                    report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                    on_failure=((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"),
                    enabled=_as_str(props.get("Enabled", True)) == "true",
                    maximum_batching_window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                )
            )
        return out

    def outputs(self) -> dict[str, Any]:
        out = {}
        for name, spec in (self.template.get("Outputs") or {}).items():
            cond = spec.get("Condition")
            if cond is not None and not self.condition(cond):
                continue
            try:
                out[name] = self.resolve(spec.get("Value"))
            except Unresolved:
                continue
        return out

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            log.warning("%s", message)


# --------------------------------------------------------------------------- the transform


def _translator_version() -> str:
    try:
        from importlib.metadata import version

        return version("aws-sam-translator")
    except Exception:  # noqa: BLE001
        return "unknown"


class _NoManagedPolicies:
    """The managed-policy loader ``transform`` wants: offline there is no IAM to ask."""

    def load(self) -> dict[str, str]:
        return {}


def translate(text: str, base_dir: Path, parameters: Mapping[str, str], region: str) -> tuple[dict, dict[str, Path | None]]:
    """SAM template text -> (CloudFormation template, {function logical id: local code folder or None}).

    What ``sam validate``/``sam deploy`` do first, offline: ``samcli.yamlhelper.yaml_parse`` (the
    short forms ``!Ref``, ``!Sub``... included) and ``samtranslator``'s ``Translator``. Local
    ``CodeUri`` folders are swapped for ``s3://workshop-local-code/<LogicalId>`` first, as
    ``sam package`` would swap them for uploads.
    """
    import boto3
    from samcli.yamlhelper import yaml_parse
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template

    try:
        sam = yaml_parse(text)
    except Exception as e:  # noqa: BLE001 - yaml errors of several kinds
        raise TemplateError(f"the template is not valid YAML: {e}") from None
    if not isinstance(sam, dict) or "Resources" not in sam:
        raise TemplateError("the template has no Resources")
    sam = copy.deepcopy(sam)
    codes: dict[str, Path | None] = {}
    globals_fn = ((sam.get("Globals") or {}).get("Function")) or {}
    global_code = globals_fn.get("CodeUri")
    for lid, resource in sam["Resources"].items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.setdefault("Properties", {}) or {}
        resource["Properties"] = props
        if props.get("PackageType") == "Image":
            codes[lid] = None
            continue
        code = props.get("CodeUri", global_code)
        if isinstance(code, str) and not code.startswith("s3://"):
            codes[lid] = (base_dir / code).resolve()
            props["CodeUri"] = {"Bucket": CODE_BUCKET, "Key": lid}
        elif props.get("InlineCode") is not None:
            codes[lid] = None
        else:
            codes[lid] = None
            if code is None:
                props["CodeUri"] = {"Bucket": CODE_BUCKET, "Key": lid}
    if "CodeUri" in globals_fn:
        globals_fn["CodeUri"] = {"Bucket": CODE_BUCKET, "Key": "globals"}
    session = boto3.session.Session(
        region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token="testing"
    )
    params = dict(parameters)
    to_py27_compatible_template(sam, params)
    loader = _NoManagedPolicies()
    # its metrics are never published offline, and it says so at every translation
    logging.getLogger("samtranslator.metrics").setLevel(logging.ERROR)
    try:
        out = Translator(None, Parser(), boto_session=session).translate(
            sam, parameter_values=params, get_managed_policy_map=loader.load
        )
    except InvalidDocumentException as e:
        causes = "; ".join(str(getattr(c, "message", c)) for c in e.causes)
        raise TemplateError(f"the SAM template is invalid: {causes}") from None
    return json.loads(json.dumps(undo_mark_unicode_str_in_template(out), default=str)), codes
