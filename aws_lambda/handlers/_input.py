"""Turning a bad event into a clear, logged reason instead of an unhandled exception."""

from __future__ import annotations

from pydantic import ValidationError

from aws_lambda.observability import count, logger

MAX_PROBLEMS_REPORTED = 5


def describe_invalid(error: Exception, what: str) -> str:
    if isinstance(error, ValidationError):
        problems = [
            f"{'.'.join(str(p) for p in item['loc']) or 'event'}: {item['msg']}"
            for item in error.errors()[:MAX_PROBLEMS_REPORTED]
        ]
        more = error.error_count() - len(problems)
        reason = f"not a valid {what}: " + "; ".join(problems) + (f" (+{more} more)" if more > 0 else "")
    else:
        reason = f"not a valid {what}: {error}"
    count("RejectedEvents")
    logger.error(reason)
    return reason
