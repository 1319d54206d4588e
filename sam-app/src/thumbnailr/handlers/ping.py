"""GET /ping: does nothing, fast. The baseline for latency measurements."""

import json


def lambda_handler(event: dict, context: object) -> dict:
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps({"ok": True})}
