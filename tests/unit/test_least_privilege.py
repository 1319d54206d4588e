"""Each function's IAM policy, as SAM expands it, reaches only the resources that function is given.

"Given" means named in its environment variables, or its own event source and dead-letter queue.
A statement naming another function's table, bucket, topic or queue, or "*", fails the test.
The expansion and resolution live in ``workshop.iam`` (notebook 01 uses them too).
"""

from __future__ import annotations

import copy

import pytest

from workshop.iam import REGION, Stack, allowed, app_policies, expand, functions, given, load_template, overreach

TEMPLATE = load_template()


@pytest.mark.parametrize("dispatch", ["sns", "stream"])
def test_no_function_reaches_beyond_its_own_resources(dispatch, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    assert overreach(TEMPLATE, dispatch) == {}


def test_every_function_is_given_something_except_ping(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    stack = Stack(expand(TEMPLATE, "sns"), "sns")
    empty = [f for f in functions(TEMPLATE) if not given(TEMPLATE, stack, f)]
    assert empty == ["PingFunction"]


def test_a_policy_on_another_functions_table_is_caught(monkeypatch):
    # GIVEN the photo-reading function also granted the quota table, which its code never uses
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    widened = copy.deepcopy(TEMPLATE)
    widened["Resources"]["GetPhotoFunction"]["Properties"]["Policies"].append(
        {"DynamoDBCrudPolicy": {"TableName": {"Ref": "QuotaTable"}}}
    )
    # THEN the check names that function and that table
    found = overreach(widened, "sns")
    assert list(found) == ["GetPhotoFunction"]
    assert all(resource.endswith("table/thumbnailr-QuotaTable") or "QuotaTable/" in resource for _, resource in found["GetPhotoFunction"])


def test_a_wildcard_resource_is_caught(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
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


def test_allowed_answers_for_the_apps_own_policies(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    policies = app_policies("sns", TEMPLATE)
    stack = Stack(expand(TEMPLATE, "sns"), "sns")
    quota, photos, topic = stack.arn("QuotaTable"), stack.arn("PhotosTable"), stack.arn("CommandsTopic")
    assert not allowed(policies["GetPhotoFunction"], "dynamodb:PutItem", quota)
    assert allowed(policies["GetPhotoFunction"], "dynamodb:GetItem", photos)
    assert allowed(policies["RequestThumbnailFunction"], "sns:Publish", topic)
    assert not allowed(policies["PingFunction"], "sns:Publish", topic)
    # with Dispatch=stream the command goes by the table's stream: no topic, so no publish
    assert not allowed(app_policies("stream", TEMPLATE)["RequestThumbnailFunction"], "sns:Publish", topic)
