"""The create command published to an SNS topic."""

from __future__ import annotations

import json
from typing import Any

from thumbnailr.ports import CommandDispatcher


class SnsCommandDispatcher(CommandDispatcher):
    def __init__(self, client, topic_arn: str):
        self._client = client
        self._topic_arn = topic_arn

    def send(self, command: dict[str, Any]) -> None:
        self._client.publish(
            TopicArn=self._topic_arn,
            Message=json.dumps(command),
            # attributes let subscribers filter (an SNS filter policy) without parsing the message
            MessageAttributes={"format": {"DataType": "String", "StringValue": command["format"]}},
        )
