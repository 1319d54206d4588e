"""The SAM transform, offline: a SAM template (text or dict) made plain CloudFormation by AWS's own translator.

What ``sam validate`` and ``sam deploy`` do first. ``samcli.yamlhelper`` reads the short forms
(``!Ref``, ``!Sub``...); every local ``CodeUri`` is swapped for an S3 location, as ``sam package``
swaps it for an upload, and the local folder is remembered; ``samtranslator`` expands the serverless
resources with a managed-policy loader that knows no policies (offline there is no IAM to ask) and
the region given to it, never read from or written to the process environment. ``translate_file``
caches its result: the translator takes seconds to import, a cache hit milliseconds. This is the
only module that imports ``samtranslator``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud.cfn.errors import TemplateError
from localcloud.sdk import fake_session

__all__ = ["CODE_BUCKET", "Translation", "parse", "read_template", "sam_transform", "translate_file"]

#: Bump when the translation or what is cached with it changes.
_CACHE_VERSION = "1"
#: The S3 bucket local CodeUris are swapped for (never created: the code runs from its folder).
CODE_BUCKET = "workshop-local-code"


@dataclass(frozen=True)
class Translation:
    """A SAM template made plain CloudFormation, and where each function's code is on this machine."""

    template: dict[str, Any]
    code_uris: dict[str, Path | None]  # function logical id -> its local code folder (None: not local)


def read_template(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The template file at ``path`` as a dict (``parse`` of its text)."""
    return parse(Path(path).read_text())


def parse(text: str) -> dict[str, Any]:
    """Template text (YAML or JSON, short forms such as ``!Ref`` included) as a dict."""
    from samcli.yamlhelper import yaml_parse

    try:
        template = yaml_parse(text)
    except Exception as e:  # noqa: BLE001 - yaml errors of several kinds
        raise TemplateError(f"the template is not valid YAML: {e}") from None
    if not isinstance(template, dict) or "Resources" not in template:
        raise TemplateError("the template has no Resources")
    return template


def sam_transform(
    template: Mapping[str, Any],
    parameters: Mapping[str, str] | None = None,
    *,
    region: str = "us-east-1",
    base_dir: str | os.PathLike[str] | None = None,
    code_uri: str | None = None,
) -> Translation:
    """The plain CloudFormation the SAM transform makes of ``template`` (a dict, not changed), offline.

    ``parameters`` are the stack's parameter values, ``region`` the one the stack is deployed in,
    ``base_dir`` the folder relative ``CodeUri`` paths start from (default: the current one).
    Each local ``CodeUri`` becomes ``code_uri`` when given (``"s3://bucket/key"``), else
    ``s3://workshop-local-code/<LogicalId>``::

        sam_transform(parse(text), {"Dispatch": "sns"}).template["Resources"]["PingFunction"]["Type"]
        # 'AWS::Lambda::Function'
    """
    if "Resources" not in template:
        raise TemplateError("the template has no Resources")
    sam = copy.deepcopy(dict(template))
    codes = _swap_code_uris(sam, Path(base_dir or "."), code_uri)
    return Translation(_translate(sam, dict(parameters or {}), region), codes)


def translate_file(
    path: Path, parameters: Mapping[str, str], *, region: str, cache_dir: str | os.PathLike[str] | None
) -> Translation:
    """``sam_transform`` of the template at ``path``, cached in ``cache_dir`` (when given) by its text,
    folder, parameters, region and translator version."""
    text = path.read_text()
    key_src = json.dumps(
        {
            "v": _CACHE_VERSION,
            "template": text,
            "dir": str(path.parent),
            "params": dict(parameters),
            "region": region,
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
            return Translation(cached["template"], codes)
        except (OSError, ValueError, KeyError):
            pass
    translation = sam_transform(parse(text), parameters, region=region, base_dir=path.parent)
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"template": translation.template, "code_uris": {
                k: (str(v) if v else None) for k, v in translation.code_uris.items()}}))
            os.replace(tmp, cache_file)
        except OSError:
            pass
    return translation


def _swap_code_uris(sam: dict[str, Any], base_dir: Path, code_uri: str | None) -> dict[str, Path | None]:
    """Point every function with local code at S3 (in place); returns each function's local folder (or zip file)."""
    codes: dict[str, Path | None] = {}
    globals_fn = ((sam.get("Globals") or {}).get("Function")) or {}
    global_code = globals_fn.get("CodeUri")
    for lid, resource in sam["Resources"].items():
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Lambda::Function":
            props = resource.get("Properties") or {}
            if isinstance(props.get("Code"), str):  # a local path, as `aws cloudformation package` takes it
                codes[lid] = (base_dir / props["Code"]).resolve()
                props["Code"] = {"S3Bucket": CODE_BUCKET, "S3Key": lid}
            continue
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties") or {}
        resource["Properties"] = props
        if props.get("PackageType") == "Image":
            codes[lid] = None
            continue
        code = props.get("CodeUri", global_code)
        if isinstance(code, str) and not code.startswith("s3://"):
            codes[lid] = (base_dir / code).resolve()
            props["CodeUri"] = code_uri or {"Bucket": CODE_BUCKET, "Key": lid}
        else:
            codes[lid] = None
            if code is None and props.get("InlineCode") is None:
                props["CodeUri"] = code_uri or {"Bucket": CODE_BUCKET, "Key": lid}
    if "CodeUri" in globals_fn:
        globals_fn["CodeUri"] = code_uri or {"Bucket": CODE_BUCKET, "Key": "globals"}
    return codes


class _NoManagedPolicies:
    """The managed-policy loader the translator wants: offline there is no IAM to ask."""

    def load(self) -> dict[str, str]:
        return {}


def _translate(sam: dict[str, Any], parameters: dict[str, str], region: str) -> dict[str, Any]:
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template

    # the translator asks this session for the region (to pick the partition); it makes no call
    session = fake_session(region)
    to_py27_compatible_template(sam, parameters)
    # its metrics are never published offline, and it says so at every translation
    logging.getLogger("samtranslator.metrics").setLevel(logging.ERROR)
    # with no feature-toggle config (SAM CLI passes none either), every DeploymentPreference warns of its defaults
    logging.getLogger("samtranslator.feature_toggle").setLevel(logging.ERROR)
    try:
        out = Translator(None, Parser(), boto_session=session).translate(
            sam, parameter_values=parameters, get_managed_policy_map=_NoManagedPolicies().load
        )
    except InvalidDocumentException as e:
        causes = "; ".join(str(getattr(c, "message", c)) for c in e.causes)
        raise TemplateError(f"the SAM template is invalid: {causes}") from None
    return json.loads(json.dumps(undo_mark_unicode_str_in_template(out), default=str))


def _translator_version() -> str:
    try:
        from importlib.metadata import version

        return version("aws-sam-translator")
    except Exception:  # noqa: BLE001
        return "unknown"
