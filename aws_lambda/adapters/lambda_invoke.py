"""Invoke another Lambda asynchronously (reconcile re-runs intake this way)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from aws_lambda.adapters.aws_errors import translate

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


class LambdaIntakeInvoker:
    """Implements IntakeInvoker: an asynchronous (Event) invocation, so intake's retries and DLQ apply."""

    def __init__(self, client: LambdaClient, function_name: str) -> None:
        self._client = client
        self._function_name = function_name

    def invoke(self, event: Mapping[str, object]) -> None:
        try:
            self._client.invoke(
                FunctionName=self._function_name,
                InvocationType="Event",
                Payload=json.dumps(event).encode(),
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"invoke {self._function_name}") from exc
