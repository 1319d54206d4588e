"""CloudFormation's template language: parameters, conditions, intrinsic functions, references, dependency order.

- **Parameters** (``parameter_values``): defaults, overrides, ``AllowedValues``/``MinValue``/``MaxValue``/
  ``AllowedPattern`` checked; lists for ``CommaDelimitedList`` and ``List<...>``.
- **Conditions** (``Intrinsics.condition``): ``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or``, ``Condition``.
- **Intrinsic functions** (``Intrinsics.resolve``), against the parameters, the pseudo parameters and what
  each resource's ``Ref``/``Fn::GetAtt`` gives so far: ``Ref``, ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::Join``,
  ``Fn::Select``, ``Fn::Split``, ``Fn::If``, ``Fn::FindInMap``, ``Fn::Base64``, ``Fn::GetAZs``,
  ``Fn::ToJsonString``, ``Fn::Length``; ``AWS::NoValue`` removes the key or item.
- **References** (``refs_in``): the logical ids a value refers to through ``Ref``, ``Fn::GetAtt`` and
  ``Fn::Sub``; **dependency order** (``dependency_order``) from them and ``DependsOn``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from localcloud.cfn.errors import TemplateError, Unresolved

__all__ = [
    "NO_VALUE",
    "PSEUDO_PARAMETERS",
    "Intrinsics",
    "as_str",
    "dependencies",
    "dependency_order",
    "parameter_values",
    "refs_in",
]

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
_CONDITION_FUNCTIONS = frozenset({"Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"})
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


def as_str(value: Any) -> str:
    """A parameter or property value as CloudFormation writes it in a string (``true``, ``3``)."""
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


# --------------------------------------------------------------------------- parameters


def parameter_values(declared: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, str]) -> dict[str, Any]:
    """Each declared parameter's value: its override or its default, checked against its constraints."""
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
            value = as_str(spec["Default"])
        else:
            raise TemplateError(f"parameter {name} has no default: give it a value")
        _check_parameter(name, spec, value)
        ptype = spec.get("Type", "String")
        if ptype == "CommaDelimitedList" or ptype.startswith("List<"):
            values[name] = [v.strip() for v in value.split(",")] if value else []
        else:
            values[name] = value
    return values


def _check_parameter(name: str, spec: Mapping[str, Any], value: str) -> None:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [as_str(a) for a in allowed]:
        raise TemplateError(f"parameter {name}={value!r} must be one of {', '.join(map(as_str, allowed))}")
    if spec.get("Type", "String") == "Number":
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


# --------------------------------------------------------------------------- references and order


def refs_in(value: Any, condition: Callable[[str], bool] | None = None) -> Iterator[str]:
    """The names a template value refers to through ``Ref``, ``Fn::GetAtt`` and ``Fn::Sub`` (logical ids,
    parameters, pseudo parameters), in the order they appear, repeats included.

    With ``condition`` (a condition's name -> its value) only the branch of an ``Fn::If`` that is
    taken counts; without it, both do: every name the value may refer to::

        list(refs_in({"Fn::If": ["IsProd", {"Ref": "Big"}, {"Fn::GetAtt": ["Small", "Arn"]}]}))
        # ['Big', 'Small']
    """
    fn = _intrinsic(value)
    if fn is not None:
        key, arg = fn
        if key == "Ref" and isinstance(arg, str):
            yield arg
        elif key == "Fn::GetAtt":
            yield _getatt_args(arg)[0]
        elif key == "Fn::If" and isinstance(arg, list) and len(arg) == 3:
            branches = arg[1:] if condition is None else [arg[1] if condition(arg[0]) else arg[2]]
            for branch in branches:
                yield from refs_in(branch, condition)
        elif key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            yield from refs_in(variables, condition)
            for name in _SUB_VAR.findall(text if isinstance(text, str) else ""):
                if not name.startswith("!") and name not in variables:
                    yield name.split(".", 1)[0]
        else:
            yield from refs_in(arg, condition)
    elif isinstance(value, dict):
        for v in value.values():
            yield from refs_in(v, condition)
    elif isinstance(value, list):
        for v in value:
            yield from refs_in(v, condition)


def dependencies(lid: str, resources: Mapping[str, Mapping[str, Any]], condition: Callable[[str], bool]) -> list[str]:
    """The resources (of ``resources``) that resource ``lid`` needs made first: its ``DependsOn`` and references."""
    resource = resources[lid]
    deps: list[str] = []
    depends_on = resource.get("DependsOn") or []
    for dep in [depends_on] if isinstance(depends_on, str) else depends_on:
        if dep in resources:
            deps.append(dep)
    # a reference in an UpdatePolicy counts too (SAM's alias names its CodeDeploy deployment group there)
    for ref in refs_in([resource.get("Properties") or {}, resource.get("UpdatePolicy") or {}], condition):
        if ref in resources and ref not in deps:
            deps.append(ref)
    return deps


def dependency_order(resources: Mapping[str, Mapping[str, Any]], condition: Callable[[str], bool]) -> list[str]:
    """The logical ids in an order that makes each resource after those it depends on (template order
    among the ready ones); ``TemplateError`` for a cycle."""
    deps = {lid: dependencies(lid, resources, condition) for lid in resources}
    order: list[str] = []
    done: set[str] = set()
    remaining = list(resources)
    while remaining:
        ready = [lid for lid in remaining if all(d in done for d in deps[lid])]
        if not ready:
            cycle = ", ".join(f"{lid} -> {'/'.join(d for d in deps[lid] if d not in done)}" for lid in remaining)
            raise TemplateError(f"circular dependency between resources: {cycle}")
        order += ready
        done.update(ready)
        remaining = [lid for lid in remaining if lid not in done]
    return order


# --------------------------------------------------------------------------- conditions and resolving


class Intrinsics:
    """Evaluates a template's conditions and resolves its intrinsic functions.

    ``resources`` are those that exist (their condition is true); ``refs`` and ``attrs`` hold what each
    one's ``Ref`` and ``Fn::GetAtt`` give once it is made (recorded by the stack). A reference to an
    existing resource not recorded yet raises ``Unresolved``.
    """

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, Any], pseudo: Mapping[str, Any]) -> None:
        self.template = template
        self.parameters = parameters
        self.pseudo = {**pseudo, "AWS::NoValue": NO_VALUE}
        self.mappings: dict[str, Any] = template.get("Mappings") or {}
        self.resources: dict[str, dict] = {}
        self.refs: dict[str, Any] = {}
        self.attrs: dict[tuple[str, str], Any] = {}
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str, _stack: tuple[str, ...] = ()) -> bool:
        """The value of the template's condition ``name``."""
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

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function resolved (``Unresolved`` if it names a resource not made yet)."""
        out = self._resolve(value)
        return None if out is NO_VALUE else out

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
            return as_str(a) == as_str(b)
        if key == "Fn::Not":
            return not self._evaluate(arg[0], stack)
        if key == "Fn::And":
            return all(self._evaluate(v, stack) for v in arg)
        if key == "Fn::Or":
            return any(self._evaluate(v, stack) for v in arg)
        raise TemplateError(f"{key} cannot be used in a condition")

    def _ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
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

    def _function(self, key: str, arg: Any, conditions: tuple[str, ...]) -> Any:  # noqa: PLR0911
        if key == "Ref":
            return self._ref(arg)
        if key == "Fn::GetAtt":
            return self._getatt(*_getatt_args(self._resolve(arg, conditions)))
        if key == "Fn::Sub":
            return self._sub(arg, conditions)
        if key == "Fn::Join":
            delimiter, items = arg
            return str(delimiter).join(as_str(i) for i in self._resolve(items, conditions))
        if key == "Fn::Select":
            index, items = self._resolve(arg[0], conditions), self._resolve(arg[1], conditions)
            try:
                return items[int(index)]
            except (IndexError, ValueError, TypeError):
                raise TemplateError(f"Fn::Select: index {index!r} is not in {items!r}") from None
        if key == "Fn::Split":
            return str(self._resolve(arg[1], conditions)).split(arg[0])
        if key == "Fn::If":
            name, yes, no = arg
            return self._resolve(yes if self.condition(name) else no, conditions)
        if key in _CONDITION_FUNCTIONS:
            return self._evaluate({key: arg}, conditions)
        if key == "Fn::FindInMap":
            m, top, second = (self._resolve(a, conditions) for a in arg[:3])
            try:
                return self.mappings[m][top][second]
            except KeyError:
                raise TemplateError(f"Fn::FindInMap: {m}/{top}/{second} is not in Mappings") from None
        if key == "Fn::Base64":
            return base64.b64encode(as_str(self._resolve(arg, conditions)).encode()).decode()
        if key == "Fn::GetAZs":
            region = self._resolve(arg, conditions) or self.pseudo["AWS::Region"]
            return [f"{region}{z}" for z in "abc"]
        if key == "Fn::ToJsonString":
            return json.dumps(self._resolve(arg, conditions), separators=(",", ":"))
        if key == "Fn::Length":
            return len(self._resolve(arg, conditions))
        raise TemplateError(f"{key} is not supported by the local cloud")

    def _sub(self, arg: Any, conditions: tuple[str, ...]) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        else:
            text, variables = arg[0], self._resolve(arg[1], conditions)

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return as_str(variables[name])
            if "." in name and name.split(".", 1)[0] not in PSEUDO_PARAMETERS:
                return as_str(self._getatt(*name.split(".", 1)))
            return as_str(self._ref(name))

        return _SUB_VAR.sub(one, text)
