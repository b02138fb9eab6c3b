"""Errors the simulator answers with, in ARM's error shape."""

from __future__ import annotations

from typing import Any


class ArmError(Exception):
    """An ARM error response: HTTP status plus ``{"error": {"code", "message", ...}}``."""

    def __init__(self, status: int, code: str, message: str, *, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def not_found(kind: str, name: str) -> ArmError:
    return ArmError(404, "NotFound", f"The {kind} '{name}' was not found in the vault.")


def bad_request(code: str, message: str) -> ArmError:
    return ArmError(400, code, message)


def conflict(code: str, message: str) -> ArmError:
    return ArmError(409, code, message)
