"""botocore errors -> migration.errors, decided by error code and HTTP status, never by message text."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

from migration.errors import (
    InvalidInput,
    MigrationError,
    NotFound,
    PermanentCloudError,
    PreconditionFailed,
    ThrottledError,
    TransientCloudError,
)

# SNS answers Throttled (429) and KMSThrottling (400, a KMS-encrypted topic) when throttled.
THROTTLING_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "Throttled",
        "KMSThrottling",
    }
)
NOT_FOUND_CODES = frozenset(
    {
        "InvalidInstanceID.NotFound",
        "InvalidInstanceID.Malformed",
        "InvalidGroup.NotFound",
        "InvalidAMIID.NotFound",
        "InvalidAMIID.Unavailable",
        "InvalidAMIID.Malformed",
        "InvalidVolume.NotFound",
        "ResourceNotFoundException",
    }
)
PRECONDITION_CODES = frozenset(
    {"IncorrectInstanceState", "OperationNotPermitted", "UnsupportedOperation", "ConflictException"}
)
INVALID_INPUT_CODES = frozenset({"ValidationException", "InvalidParameterValue", "InvalidParameter"})


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def translate(error: ClientError | BotoCoreError, action: str) -> MigrationError:
    """The migration error for a failed AWS call; ``action`` says what was being done, for the message."""
    if isinstance(error, ConnectionError | ReadTimeoutError) or not isinstance(error, ClientError):
        return TransientCloudError(f"{action}: {error}")
    code = error_code(error)
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    message = f"{action}: {code}: {error.response.get('Error', {}).get('Message', '')}"
    if code in THROTTLING_CODES or status == 429:
        return ThrottledError(message)
    if code in NOT_FOUND_CODES:
        return NotFound(message, code=code)
    if code in PRECONDITION_CODES:
        return PreconditionFailed(message, code=code)
    if code in INVALID_INPUT_CODES:
        return InvalidInput(message)
    if status >= 500:
        return TransientCloudError(message)
    return PermanentCloudError(message, code=code)
