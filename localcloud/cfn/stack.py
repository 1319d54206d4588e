"""A SAM template deployed (in thought) as a stack: what ``sam deploy`` and CloudFormation do before any resource exists.

``Stack`` composes the engine's parts:

1. **Transform** (``localcloud.cfn.transform``): the SAM template made plain CloudFormation, cached.
2. **Parameters, conditions, dependency order, intrinsics** (``localcloud.cfn.intrinsics``); a
   resource or output whose condition is false does not exist.
3. **Names** (``localcloud.cfn.names``): what each resource's ``Ref`` and ``Fn::GetAtt`` give.
   They are *recorded* as resources are made (``record``): ``localcloud.cfn.provision`` records
   moto's answers (a table's ``StreamArn``, a pool's id); ``predict()`` records what they would be
   without making anything, which is all the readers need to be tested offline.
4. **Readers** (``localcloud.cfn.models``): the functions, routes and event sources the local cloud runs.

``Stack(path)`` reads a SAM template file; ``Stack.from_template(cfn)`` takes CloudFormation already
transformed (a dict)::

    stack = Stack("sam-app/template.yaml", parameters={"Dispatch": "sns"}).predict()
    stack.refs["PhotosTable"]                  # 'thumbnailr-PhotosTable-6ZJFJJGAZI3M'
    stack.resource_arn("CommandsTopic")        # 'arn:aws:sns:us-east-1:123456789012:thumbnailr-create-thumbnail'
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from localcloud.cfn import models
from localcloud.cfn.errors import TemplateError, Unresolved
from localcloud.cfn.intrinsics import Intrinsics, as_str, dependencies, dependency_order, parameter_values, refs_in
from localcloud.cfn.models import (
    AsyncConfig,
    FunctionModel,
    RouteModel,
    StageModel,
    S3NotificationModel,
    ScheduleModel,
    SnsSubscriptionModel,
    StreamMappingModel,
)
from localcloud.cfn.names import ARN_ATTRIBUTE, NAME_ATTRIBUTE, Names
from localcloud.cfn.transform import Translation, translate_file

log = logging.getLogger(__name__)

__all__ = [
    "AsyncConfig",
    "FunctionModel",
    "RouteModel",
    "S3NotificationModel",
    "ScheduleModel",
    "SnsSubscriptionModel",
    "Stack",
    "StreamMappingModel",
    "TemplateError",
]


class Stack:
    """One SAM template deployed (in thought) as a stack: parameters, conditions, order, intrinsics, names."""

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
        """``parameters`` must be declared by the template; ``optional_parameters`` are given only to a
        template that declares them. The transform is cached in ``cache_dir`` when given."""
        self.template_path: Path | None = Path(template_path).resolve()
        _check_stack_name(stack_name)
        translation, values = translate_for_deploy(self.template_path, parameters, optional_parameters,
                                                   region=region, cache_dir=cache_dir)
        self._deploy(translation, values, Names(stack_name, region, account_id))

    @classmethod
    def from_template(
        cls,
        template: Mapping[str, Any],
        *,
        parameters: Mapping[str, Any] | None = None,
        stack_name: str = "thumbnailr",
        region: str = "us-east-1",
        account_id: str = "123456789012",
    ) -> Stack:
        """A stack of a template that is CloudFormation already (``sam_transform(...).template``, say);
        its functions have no local code folder."""
        _check_stack_name(stack_name)
        stack = cls.__new__(cls)
        stack.template_path = None
        overrides = {k: as_str(v) for k, v in (parameters or {}).items()}
        stack._deploy(Translation(copy.deepcopy(dict(template)), {}), overrides, Names(stack_name, region, account_id))
        return stack

    def _deploy(self, translation: Translation, overrides: dict[str, str], names: Names) -> None:
        self.names = names
        self.stack_name, self.region, self.account_id = names.stack_name, names.region, names.account_id
        self.partition, self.url_suffix, self.stack_id = names.partition, names.url_suffix, names.stack_id
        self.template, self.code_uris = translation.template, translation.code_uris
        self.parameters = parameter_values(self.template.get("Parameters") or {}, overrides)
        self._intrinsics = Intrinsics(self.template, self.parameters, names.pseudo_parameters())
        self.mappings = self._intrinsics.mappings
        self.conditions = {name: self.condition(name) for name in self.template.get("Conditions") or {}}
        self.resources: dict[str, dict] = self._intrinsics.resources
        for lid, resource in (self.template.get("Resources") or {}).items():
            cond = resource.get("Condition")
            if cond is None or self.condition(cond):
                self.resources[lid] = resource
        self.order = dependency_order(self.resources, self.condition)
        self.refs: dict[str, Any] = self._intrinsics.refs
        self.attrs: dict[tuple[str, str], Any] = self._intrinsics.attrs
        self.warnings: list[str] = []
        #: (logical id, reason) of what the local cloud cannot run as AWS would (``refuse``)
        self.refused: list[tuple[str, str]] = []

    # ----------------------------------------------------------------- the template's language

    def condition(self, name: str) -> bool:
        """The value of the template's condition ``name``."""
        return self._intrinsics.condition(name)

    def dependencies(self, lid: str) -> list[str]:
        """The resources that ``lid`` needs made first (``DependsOn`` and references)."""
        return dependencies(lid, self.resources, self.condition)

    def refs_in(self, value: Any) -> Iterator[str]:
        """The names ``value`` refers to (Ref, GetAtt, Sub), following the branch of each Fn::If taken here."""
        return refs_in(value, self.condition)

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function resolved (``Unresolved`` if it names a resource not made yet)."""
        return self._intrinsics.resolve(value)

    def properties(self, lid: str) -> dict[str, Any]:
        return self.resolve(self.resources[lid].get("Properties") or {}) or {}

    def outputs(self) -> dict[str, Any]:
        """The template's outputs whose condition holds and whose value can be resolved now."""
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

    # ----------------------------------------------------------------- names and what exists

    def resource_type(self, lid: str) -> str:
        return self.resources[lid].get("Type", "")

    def of_type(self, rtype: str) -> list[str]:
        """The logical ids of the resources of type ``rtype``, in dependency order."""
        return [lid for lid in self.order if self.resource_type(lid) == rtype]

    def generated_name(self, lid: str, *, lower: bool = False, max_length: int = 255) -> str:
        """CloudFormation's name for a resource the template does not name: ``stack-LogicalId-SUFFIX``."""
        return self.names.generated_name(lid, lower=lower, max_length=max_length)

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        """An ARN in this stack's partition, region and account."""
        return self.names.arn(service, resource, region=region, account=account)

    def predicted(self, lid: str, props: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        """What ``Ref``/``Fn::GetAtt`` would give for ``lid``, computed without AWS (placeholders for ids)."""
        return self.names.predicted(self.resource_type(lid), lid, props)

    def record(self, lid: str, ref: Any, attrs: Mapping[str, Any] | None = None) -> None:
        """What resource ``lid``'s ``Ref`` and ``Fn::GetAtt`` give from now on."""
        self.refs[lid] = ref
        for attr, value in (attrs or {}).items():
            self.attrs[(lid, attr)] = value

    def predict(self) -> Stack:
        """Record every resource's predicted Ref/GetAtt (nothing is made). Returns self."""
        for lid in self.order:
            if lid not in self.refs:
                ref, attrs = self.predicted(lid, self.properties(lid))
                self.record(lid, ref, attrs)
        return self

    def physical_name(self, lid: str) -> str:
        """A recorded resource's name (a topic's or queue's name, not the ARN or URL its Ref gives)."""
        attribute = NAME_ATTRIBUTE.get(self.resource_type(lid))
        return self.resolve({"Fn::GetAtt": [lid, attribute]} if attribute else {"Ref": lid})

    def resource_arn(self, lid: str) -> str:
        """A recorded resource's ARN (``TemplateError`` for a type that has none the engine knows)."""
        return self.resolve({"Fn::GetAtt": [lid, ARN_ATTRIBUTE.get(self.resource_type(lid), "Arn")]})

    # ----------------------------------------------------------------- what the local cloud runs

    def function_for(self, target: Any) -> str | None:
        """The logical id of the function a name or ARN (Ref/GetAtt of a function) points to."""
        return models.function_for(self, target)

    def functions(self) -> list[FunctionModel]:
        return models.functions(self)

    def stage(self, api_lid: str) -> StageModel:
        """The REST API's stage (name, variables, method settings) and its binary media types."""
        return models.stage(self, api_lid)

    def routes(self) -> list[RouteModel]:
        """Every REST API method that integrates with a function (Lambda proxy) or is a mock, with its auth."""
        return models.routes(self)

    def user_pool_for_api(self) -> tuple[str, list[str]] | None:
        """(user pool id, its app client ids) of the Cognito authorizer, or None."""
        return models.user_pool_for_api(self)

    def s3_notifications(self) -> list[S3NotificationModel]:
        return models.s3_notifications(self)

    def sns_subscriptions(self) -> list[SnsSubscriptionModel]:
        return models.sns_subscriptions(self)

    def stream_mappings(self) -> list[StreamMappingModel]:
        return models.stream_mappings(self)

    def schedules(self) -> list[ScheduleModel]:
        return models.schedules(self)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            log.warning("%s", message)

    def refuse(self, lid: str, reason: str) -> None:
        """Resource ``lid`` asks for what the local cloud cannot do: a warning here, a failed deploy for the deployer."""
        if (lid, reason) not in self.refused:
            self.refused.append((lid, reason))
        self.warn(f"{lid}: {reason}")


def translate_for_deploy(
    template_path: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    optional_parameters: Mapping[str, Any] | None = None,
    *,
    region: str = "us-east-1",
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Translation, dict[str, str]]:
    """A SAM template file made plain CloudFormation (cached in ``cache_dir``), and the parameter values to deploy
    it with: ``parameters`` (which the template must declare: ``TemplateError`` otherwise, when the stack reads
    them) and those of ``optional_parameters`` that it declares."""
    path = Path(template_path).resolve()
    if not path.is_file():
        raise TemplateError(f"no SAM template at {path}")
    optional = {k: as_str(v) for k, v in (optional_parameters or {}).items()}
    overrides = {k: as_str(v) for k, v in (parameters or {}).items()}
    translation = translate_file(path, {**optional, **overrides}, region=region, cache_dir=cache_dir)
    declared = translation.template.get("Parameters") or {}
    return translation, {**{k: v for k, v in optional.items() if k in declared}, **overrides}


def _check_stack_name(stack_name: str) -> None:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", stack_name):
        raise TemplateError(f"stack name {stack_name!r}: letters, digits and '-', starting with a letter")
