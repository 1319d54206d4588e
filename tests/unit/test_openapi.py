"""The exported OpenAPI document (workshop.openapi) has exactly the template's routes, and their auth."""

from __future__ import annotations

from pathlib import Path

import pytest

from workshop.openapi import CONTRACT, SECURITY_SCHEME, export
from localcloud.cfn.stack import Stack

TEMPLATE = Path(__file__).resolve().parents[2] / "sam-app" / "template.yaml"


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack(TEMPLATE).predict()


@pytest.fixture(scope="module")
def document(stack: Stack) -> dict:
    return export(stack, "http://127.0.0.1:3000/")


def test_one_operation_per_route_of_the_template(stack: Stack, document: dict) -> None:
    exported = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert exported == {(r.method, r.path) for r in stack.routes()}
    assert exported == set(CONTRACT)  # the contract describes every route, and no other


def test_protected_routes_carry_the_cognito_authorizer(stack: Stack, document: dict) -> None:
    scheme = document["components"]["securitySchemes"][SECURITY_SCHEME]
    assert scheme == {"type": "apiKey", "name": "Authorization", "in": "header",
                      "x-amazon-apigateway-authtype": "cognito_user_pools"}
    for route in stack.routes():
        op = document["paths"][route.path][route.method.lower()]
        if route.authorized:
            assert op["security"] == [{SECURITY_SCHEME: []}], route
            assert "401" in op["responses"], route
        else:
            assert not op["security"] and "401" not in op["responses"], route
    assert not document["paths"]["/ping"]["get"]["security"]


def test_the_export_from_a_path_is_the_same_and_no_5xx_but_api_gateways_502(document: dict) -> None:
    assert export(TEMPLATE, "http://127.0.0.1:3000/") == document
    assert document["openapi"].startswith("3.0") and document["servers"] == [{"url": "http://127.0.0.1:3000/"}]
    for ops in document["paths"].values():
        for op in ops.values():
            assert {s for s in op["responses"] if s.startswith("5")} == {"502"}
            for answer in op["responses"].values():
                assert "application/json" in answer["content"]


def test_request_bodies_are_closed_and_bounded(document: dict) -> None:
    schemas = document["components"]["schemas"]
    thumbnail = schemas["ThumbnailRequest"]
    assert thumbnail["additionalProperties"] is False and schemas["UploadRequest"]["additionalProperties"] is False
    assert set(thumbnail["required"]) == {"photo_id", "width", "height", "format"}
    assert thumbnail["properties"]["width"] == {"type": "integer", "minimum": 1, "maximum": 2048}
    assert thumbnail["properties"]["format"]["enum"] == ["JPEG", "PNG", "WEBP"]
    assert schemas["Error"]["required"] == ["message"]


def test_post_thumbnails_documents_its_idempotency_key_and_the_422_of_a_reused_one(document: dict) -> None:
    operation = document["paths"]["/thumbnails"]["post"]
    [header] = [p for p in operation["parameters"] if p["in"] == "header"]
    assert header["name"] == "Idempotency-Key" and header["required"] is False
    assert header["schema"]["maxLength"] == 255
    assert "422" in operation["responses"]
    assert not any(p["in"] == "header" for p in document["paths"]["/thumbnails/{thumbnail_id}"]["get"].get("parameters", []))
