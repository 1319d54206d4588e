"""Every name the template refers to exists: cfn-lint 1.58 misses some (e.g. a !Ref in an environment
variable whose name has an underscore), and CloudFormation would refuse the stack for them."""

import copy
import re
from pathlib import Path

from samcli.yamlhelper import yaml_parse

TEMPLATE = yaml_parse((Path(__file__).resolve().parents[2] / "sam-app" / "template.yaml").read_text())
PSEUDO = {"AWS::AccountId", "AWS::NoValue", "AWS::Partition", "AWS::Region", "AWS::StackName", "AWS::URLSuffix",
          "AWS::StackId", "AWS::NotificationARNs"}


def references(value, local: frozenset = frozenset()):
    """(kind, name) of every Ref, GetAtt and ${Name} in a template value."""
    if isinstance(value, list):
        for item in value:
            yield from references(item, local)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref":
                yield "Ref", arg
            elif key == "Fn::GetAtt":
                yield "GetAtt", (arg[0] if isinstance(arg, list) else arg.split(".")[0])
            elif key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                for name in re.findall(r"\$\{([^}!]+)\}", text):
                    if name.split(".")[0] not in variables:
                        yield "Sub", name.split(".")[0]
                yield from references(variables, local)
            else:
                yield from references(arg, local)


def unknown(template: dict) -> list[tuple[str, str]]:
    known = set(template["Resources"]) | set(template.get("Parameters", {})) | PSEUDO
    return sorted({ref for ref in references([template["Resources"], template.get("Outputs", {}),
                                              template.get("Globals", {})]) if ref[1] not in known})


def test_every_reference_names_a_resource_a_parameter_or_a_pseudo_parameter():
    assert unknown(TEMPLATE) == []


def test_a_misspelt_table_in_an_environment_variable_is_caught():
    broken = copy.deepcopy(TEMPLATE)
    broken["Resources"]["CreateUploadFunction"]["Properties"]["Environment"]["Variables"]["PHOTOS_TABLE"] = {"Ref": "PhotoTable"}
    assert unknown(broken) == [("Ref", "PhotoTable")]


def test_a_misspelt_queue_in_a_getatt_is_caught():
    broken = copy.deepcopy(TEMPLATE)
    broken["Resources"]["CreateThumbnailFunction"]["Properties"]["DeadLetterQueue"]["TargetArn"] = {
        "Fn::GetAtt": ["DeadLetterQueu", "Arn"]}
    assert unknown(broken) == [("GetAtt", "DeadLetterQueu")]
