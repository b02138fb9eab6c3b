"""Amazon SNS through boto3: announce an AWS-side phase change on a topic.

Facts from botocore's sns service model (botocore/data/sns/2010-03-31/service-2.json): ``Publish`` takes
``TopicArn``, ``Message`` (required; UTF-8, "by default ... at most 256 KiB in size (262,144 bytes)", and the
limit counts the message body and its attributes together) and ``MessageAttributes``, a map of name ->
``MessageAttributeValue`` whose ``DataType`` is required (String, String.Array, Number or Binary) and whose
"name, type, and value must not be empty or null"; it returns ``MessageId``. Its errors: InvalidParameter (400),
NotFound (404), AuthorizationError (403), Throttled (429), InternalError (500), KMS* ones.

The message is the CloudEvent in JSON (structured mode); ``type``, ``phase`` and ``wave`` (when known) are also
String message attributes, so a subscription filter policy can pick events without parsing the body.
"""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from aws_lambda.adapters.aws_errors import translate
from aws_lambda.models.phase_events import InstancePhaseChanged
from migration.errors import InvalidInput

# Publish's default limit on a topic, body and attributes together (the topic's MaximumMessageSize may be higher).
MESSAGE_MAX_BYTES = 262_144


class SnsClient(Protocol):
    def publish(self, **kwargs: Any) -> Any: ...


def message_attributes(event: InstancePhaseChanged) -> dict[str, dict[str, str]]:
    """What a subscription filter policy can match on: only non-empty String values (SNS refuses empty ones)."""
    values = {"type": event.type, "phase": event.data.phase.value, "wave": event.data.wave or ""}
    return {name: {"DataType": "String", "StringValue": value} for name, value in values.items() if value}


def publish_request(topic_arn: str, event: InstancePhaseChanged) -> dict[str, Any]:
    message = event.to_json()
    attributes = message_attributes(event)
    size = len(message.encode()) + sum(
        len(name.encode()) + len(a["DataType"].encode()) + len(a["StringValue"].encode())
        for name, a in attributes.items()
    )
    if size > MESSAGE_MAX_BYTES:
        raise InvalidInput(f"phase event {event.id} is {size} bytes; SNS Publish takes at most {MESSAGE_MAX_BYTES}")
    return {"TopicArn": topic_arn, "Message": message, "MessageAttributes": attributes}


class SnsPhaseAnnouncer:
    """Implements PhaseAnnouncer over one SNS client and one topic."""

    def __init__(self, client: SnsClient, topic_arn: str) -> None:
        self._client = client
        self._topic_arn = topic_arn

    def announce(self, event: InstancePhaseChanged) -> str:
        request = publish_request(self._topic_arn, event)
        try:
            response = self._client.publish(**request)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"publish {event.id} to {self._topic_arn}") from exc
        return str(response.get("MessageId", ""))
