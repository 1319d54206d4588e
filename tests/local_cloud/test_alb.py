"""The local ALB front (localcloud.fronts.alb): event shape, routing, 502 on a malformed answer, a round trip."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from localcloud.fronts.alb import AlbRoute, BadAnswer, LocalAlb, adapt_for_app, alb_event, http_answer, match

ROUTES = [AlbRoute("GET", "/ping", "PingFunction"), AlbRoute("GET", "/thumbnails/{thumbnail_id}", "GetThumbnailFunction")]


def test_event_has_the_shape_sam_generate_event_alb_prints():
    event = alb_event("POST", "/path/to/resource?query=1234ABCD&a=b%20c", {"Content-Type": "application/json",
                                                                          "Host": "alb"}, b'{"test":"body"}')
    assert set(event) == {"requestContext", "httpMethod", "path", "queryStringParameters", "headers", "body",
                          "isBase64Encoded"}
    assert event["requestContext"]["elb"]["targetGroupArn"].startswith("arn:aws:elasticloadbalancing:")
    assert event["httpMethod"] == "POST" and event["path"] == "/path/to/resource"
    assert event["queryStringParameters"] == {"query": "1234ABCD", "a": "b%20c"}  # ALB does not decode
    assert event["headers"] == {"content-type": "application/json", "host": "alb"}  # lower-case names
    assert event["body"] == '{"test":"body"}' and event["isBase64Encoded"] is False


def test_binary_bodies_are_base64_and_no_query_is_an_empty_object():
    event = alb_event("POST", "/upload", {"Content-Type": "image/jpeg"}, b"\xff\xd8\xff")
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\xd8\xff"
    assert event["queryStringParameters"] == {}


def test_routing_matches_method_and_path_segments():
    assert match(ROUTES, "GET", "/thumbnails/abc") == (ROUTES[1], {"thumbnail_id": "abc"})
    assert match(ROUTES, "GET", "/ping/") == (ROUTES[0], {})
    assert match(ROUTES, "POST", "/ping") is None
    assert match(ROUTES, "GET", "/thumbnails") is None
    assert match([AlbRoute("ANY", "/x", "F")], "DELETE", "/x") is not None


def test_the_adapter_adds_claims_from_the_header_and_path_parameters():
    event = alb_event("GET", "/thumbnails/abc", {"X-User-Sub": "user-1"})
    adapted = adapt_for_app(event, {"thumbnail_id": "abc"})
    assert adapted["requestContext"]["authorizer"]["claims"] == {"sub": "user-1"}
    assert adapted["requestContext"]["elb"] == event["requestContext"]["elb"]
    assert adapted["pathParameters"] == {"thumbnail_id": "abc"}
    assert "authorizer" not in event["requestContext"]  # a copy
    assert "authorizer" not in adapt_for_app(alb_event("GET", "/x", {}), {})["requestContext"]


@pytest.mark.parametrize("payload", [b"not json", b"[1]", b'{"body": "x"}', b'{"statusCode": "200"}',
                                     b'{"statusCode": 200, "body": {"a": 1}}', b'{"statusCode": 99}',
                                     b'{"statusCode": 200, "headers": []}',
                                     b'{"statusCode": 200, "body": "%%%", "isBase64Encoded": true}'])
def test_malformed_answers_are_refused(payload):
    with pytest.raises(BadAnswer):
        http_answer(payload)


def test_a_good_answer_becomes_status_reason_headers_body():
    answer = {"statusCode": 201, "statusDescription": "201 Created", "headers": {"X-A": "1"},
              "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}
    assert http_answer(json.dumps(answer).encode()) == (201, "Created", {"X-A": "1"}, b"\x00\x01")
    assert http_answer(b'{"statusCode": 204}') == (204, "", {}, b"")


class _Failed:
    function_error = "Unhandled"
    payload = b'{"errorMessage": "boom"}'


def test_round_trip_with_a_fake_invoke():
    seen = []

    def invoke(function, event):
        seen.append((function, event))
        if event["path"] == "/ping":
            return {"statusCode": 200, "statusDescription": "200 OK", "headers": {"Content-Type": "application/json"},
                    "body": json.dumps({"ok": True}), "isBase64Encoded": False}
        if event["path"] == "/thumbnails/bad":
            return b'{"no": "status"}'
        if event["path"] == "/thumbnails/err":
            return _Failed()
        claims = event["requestContext"]["authorizer"]["claims"]
        return {"statusCode": 200, "body": json.dumps({"id": event["pathParameters"]["thumbnail_id"], **claims})}

    with LocalAlb(ROUTES, invoke) as alb, requests.Session() as http:
        answer = http.get(alb.url + "/ping?x=1")
        assert answer.status_code == 200 and answer.json() == {"ok": True}
        assert answer.headers["Server"] == "awselb/2.0"
        assert seen[-1][0] == "PingFunction" and seen[-1][1]["queryStringParameters"] == {"x": "1"}
        answer = http.get(alb.url + "/thumbnails/t1", headers={"x-user-sub": "ada"})
        assert answer.json() == {"id": "t1", "sub": "ada"}
        assert seen[-1][0] == "GetThumbnailFunction"
        assert http.get(alb.url + "/thumbnails/bad").status_code == 502
        assert http.get(alb.url + "/thumbnails/err").status_code == 502
        assert http.get(alb.url + "/nowhere").status_code == 404
        assert http.post(alb.url + "/ping").status_code == 404
