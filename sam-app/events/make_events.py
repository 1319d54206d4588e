"""Regenerate the sample events: `sam local generate-event` output, given this app's routes and ids.

Run from sam-app/: `python events/make_events.py`. Both `sam local invoke -e events/X.json` and the
tests use these files, so their shape is exactly what SAM (and AWS) produce.
"""

import base64
import json
import subprocess
from pathlib import Path

HERE = Path(__file__).parent
USER = "7d4e1a52-0c7e-4b8e-9d1a-5f3c2b1a0e9d"  # the Cognito `sub` of the sample user
PHOTO_ID = "0f8fad5bd9cb469fa16570867728950e"
THUMBNAIL_ID = "7c9e6679742540de944be07fc1f90ae7"
CLAIMS = {
    "sub": USER,
    "cognito:username": "ada",
    "token_use": "id",
    "aud": "localclient",
    "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_example",
    "auth_time": "1764186000",
    "exp": "Wed Nov 26 21:00:00 UTC 2026",
    "iat": "Wed Nov 26 20:00:00 UTC 2026",
}


def generate(*args: str) -> dict:
    out = subprocess.run(["sam", "local", "generate-event", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def api_event(method: str, resource: str, path: str, body: dict | None, path_parameters: dict | None, auth: bool) -> dict:
    args = ["apigateway", "aws-proxy", "--method", method, "--resource", resource, "--path", path.lstrip("/"), "--stage", "Prod"]
    if body is not None:
        args += ["--body", json.dumps(body)]
    event = generate(*args)
    event["pathParameters"] = path_parameters
    event["queryStringParameters"] = event["multiValueQueryStringParameters"] = None
    event["stageVariables"] = None
    if body is not None:  # SAM prints it base64-encoded; API Gateway sends JSON text as is
        event["body"] = base64.b64decode(event["body"]).decode()
        event["isBase64Encoded"] = False
    else:
        event["body"], event["isBase64Encoded"] = None, False
    if auth:
        event["requestContext"]["authorizer"] = {"claims": CLAIMS}
    return event


def write(name: str, event: dict) -> None:
    (HERE / f"{name}.json").write_text(json.dumps(event, indent=2) + "\n")


def main() -> None:
    write("ping", api_event("GET", "/ping", "/ping", None, None, auth=False))
    write("create_upload", api_event("POST", "/photos", "/photos", {"content_type": "image/jpeg"}, None, auth=True))
    write("get_photo", api_event("GET", "/photos/{photo_id}", f"/photos/{PHOTO_ID}", None, {"photo_id": PHOTO_ID}, auth=True))
    write(
        "request_thumbnail",
        api_event("POST", "/thumbnails", "/thumbnails",
                  {"photo_id": PHOTO_ID, "width": 256, "height": 256, "format": "PNG"}, None, auth=True),
    )
    write(
        "get_thumbnail",
        api_event("GET", "/thumbnails/{thumbnail_id}", f"/thumbnails/{THUMBNAIL_ID}", None,
                  {"thumbnail_id": THUMBNAIL_ID}, auth=True),
    )
    write("photo_uploaded", generate("s3", "put", "--bucket", "thumbnailr-photos-123456789012-us-east-1",
                                     "--key", f"photos/{PHOTO_ID}"))
    command = {"thumbnail_id": THUMBNAIL_ID, "photo_id": PHOTO_ID, "owner": USER, "width": 256, "height": 256, "format": "PNG"}
    sns = generate("sns", "notification", "--topic", "thumbnailr-create-thumbnail")
    sns["Records"][0]["Sns"]["Message"] = json.dumps(command)  # SAM's template would not escape JSON
    sns["Records"][0]["Sns"]["MessageAttributes"] = {"format": {"Type": "String", "Value": "PNG"}}
    sns["Records"][0]["Sns"]["Subject"] = None
    write("create_thumbnail_sns", sns)
    stream = generate("dynamodb", "update")
    insert = stream["Records"][0]
    item = {**command, "status": "pending", "quota_month": "2026-11", "created_at": "2026-11-26T20:00:00+00:00"}
    image = {k: ({"N": str(v)} if isinstance(v, int) else {"S": v}) for k, v in item.items()}
    insert["dynamodb"].update(Keys={"thumbnail_id": {"S": THUMBNAIL_ID}}, NewImage=image, StreamViewType="NEW_IMAGE")
    insert["eventSourceARN"] = "arn:aws:dynamodb:us-east-1:123456789012:table/thumbnailr-ThumbnailsTable/stream/2026-11-26T20:00:00.000"
    write("create_thumbnail_stream", {"Records": [insert]})


if __name__ == "__main__":
    main()
