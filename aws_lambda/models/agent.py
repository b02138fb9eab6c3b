"""The Mobility service install command, as the AWS side tracks it."""

from __future__ import annotations

from dataclasses import dataclass

# Terminal statuses of an invocation (CommandInvocationStatus); the others are still under way.
PENDING_STATUSES = frozenset({"Pending", "InProgress", "Delayed", "Cancelling"})


@dataclass(frozen=True)
class CommandResult:
    status: str  # Pending | InProgress | Delayed | Success | Cancelled | TimedOut | Failed | Cancelling
    status_details: str = ""
    response_code: int = -1
    stdout: str = ""
    stderr: str = ""

    @property
    def finished(self) -> bool:
        return self.status not in PENDING_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "Success"


def failure_summary(result: CommandResult, *, limit: int) -> str:
    """The command's status and the last lines of its output, cut to ``limit`` characters (a tag's value)."""
    head = f"agent install {result.status}"
    if result.status_details and result.status_details != result.status:
        head += f" ({result.status_details})"
    if result.response_code not in (-1, 0):
        head += f", exit {result.response_code}"
    output = (result.stderr.strip() or result.stdout.strip()).replace("\r", "")
    if not output:
        return head[:limit]
    room = limit - len(head) - 2
    tail = " | ".join(line.strip() for line in output.splitlines() if line.strip())
    if room <= 0:
        return head[:limit]
    if len(tail) > room:
        tail = "…" + tail[-(room - 1) :]
    return f"{head}: {tail}"
