"""Each function's IAM policy, as SAM expands it, reaches only the resources that function is given.

"Given" means named in its environment variables, or its own event source and dead-letter queue.
A statement naming another function's table, bucket, topic or queue, or "*", fails the test.
The expansion and resolution live in ``workshop.iam`` (notebook 01 uses them too), on top of the
local cloud's CloudFormation engine: the ARNs are the ones the local cloud gives the same stack.
"""

from __future__ import annotations

import copy
import os
import re

import pytest

from localcloud import Stack as CloudFormationStack
from workshop.iam import TEMPLATE_PATH, Stack, allowed, app_policies, expand, functions, given, load_template, overreach

TEMPLATE = load_template()


@pytest.mark.parametrize("dispatch", ["sns", "stream"])
def test_no_function_reaches_beyond_its_own_resources(dispatch):
    assert overreach(TEMPLATE, dispatch) == {}


def test_names_and_arns_are_the_local_clouds(tmp_path):
    # GIVEN the app's stack as iam names it, and as the local cloud deploys it
    stack = Stack(expand(TEMPLATE, "sns"), "sns")
    deployed = CloudFormationStack(TEMPLATE_PATH, parameters={"Dispatch": "sns"}, cache_dir=tmp_path).predict()
    # THEN a table is named as CloudFormation names it, and every ARN is the one the local cloud has
    assert re.fullmatch(r"arn:aws:dynamodb:us-east-1:123456789012:table/thumbnailr-PhotosTable-[A-Z0-9]{12}",
                        stack.arn("PhotosTable"))
    for lid in ("PhotosTable", "PhotosBucket", "CommandsTopic", "DeadLetterQueue"):
        assert stack.arn(lid) == deployed.resource_arn(lid)


def test_expanding_reads_and_writes_no_region_in_the_environment(monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    before = dict(os.environ)
    assert expand(TEMPLATE, "sns")["Resources"]["PingFunction"]["Type"] == "AWS::Lambda::Function"
    assert dict(os.environ) == before


def test_every_function_is_given_something_except_ping():
    stack = Stack(expand(TEMPLATE, "sns"), "sns")
    empty = [f for f in functions(TEMPLATE) if not given(TEMPLATE, stack, f)]
    assert empty == ["PingFunction"]


def test_a_policy_on_another_functions_table_is_caught():
    # GIVEN the photo-reading function also granted the quota table, which its code never uses
    widened = copy.deepcopy(TEMPLATE)
    widened["Resources"]["GetPhotoFunction"]["Properties"]["Policies"].append(
        {"DynamoDBCrudPolicy": {"TableName": {"Ref": "QuotaTable"}}}
    )
    # THEN the check names that function and that table
    found = overreach(widened, "sns")
    assert list(found) == ["GetPhotoFunction"]
    quota = Stack(expand(widened, "sns"), "sns").arn("QuotaTable")
    assert found["GetPhotoFunction"] and all(resource == quota or resource.startswith(quota + "/")
                                             for _, resource in found["GetPhotoFunction"])


def test_a_wildcard_resource_is_caught():
    widened = copy.deepcopy(TEMPLATE)
    widened["Resources"]["PingFunction"]["Properties"]["Policies"] = [
        {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    ]
    assert overreach(widened, "sns") == {"PingFunction": [("s3:GetObject", "*")]}


BUCKET_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::my-bucket/*"},
    {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::my-bucket/private/*"},
]}


@pytest.mark.parametrize("action, resource, expected", [
    ("s3:GetObject", "arn:aws:s3:::my-bucket/photos/a.jpg", True),         # the wildcard Allow
    ("S3:getobject", "arn:aws:s3:::my-bucket/photos/a.jpg", True),         # actions ignore case
    ("s3:GetObject", "arn:aws:s3:::my-bucket/private/a.jpg", False),       # the explicit Deny wins
    ("s3:GetObjectTagging", "arn:aws:s3:::my-bucket/private/a.jpg", True), # the Deny names one action
    ("s3:PutObject", "arn:aws:s3:::my-bucket/photos/a.jpg", False),        # nothing allows it: implicit deny
    ("s3:GetObject", "arn:aws:s3:::other-bucket/a.jpg", False),            # another resource
    ("s3:GetObject", "arn:aws:s3:::MY-BUCKET/photos/a.jpg", False),        # resources keep their case
])
def test_allowed_evaluates_allow_deny_and_wildcards(action, resource, expected):
    assert allowed(BUCKET_POLICY, action, resource) is expected


def test_allowed_answers_for_the_apps_own_policies():
    policies = app_policies("sns", TEMPLATE)
    stack = Stack(expand(TEMPLATE, "sns"), "sns")
    quota, photos, topic = stack.arn("QuotaTable"), stack.arn("PhotosTable"), stack.arn("CommandsTopic")
    assert not allowed(policies["GetPhotoFunction"], "dynamodb:PutItem", quota)
    assert allowed(policies["GetPhotoFunction"], "dynamodb:GetItem", photos)
    assert allowed(policies["RequestThumbnailFunction"], "sns:Publish", topic)
    assert not allowed(policies["PingFunction"], "sns:Publish", topic)
    # with Dispatch=stream the command goes by the table's stream: no topic, so no publish
    assert not allowed(app_policies("stream", TEMPLATE)["RequestThumbnailFunction"], "sns:Publish", topic)
