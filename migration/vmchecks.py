"""The operator's checks in the failed-over VM: the Run Command script that runs them and the reading of its output.

Run Command runs a script through the VM agent (``RunShellScript`` on Linux, ``RunPowerShellScript`` on Windows;
docs/VALIDATION.md has the sources). The script checks each TCP port on localhost and GETs the URL, and prints one
line per check: ``aws2azure-check <tcp|http> <port|url> <ok|fail> <detail>``. Its first line is a comment naming the
checks (``# aws2azure-checks tcp=443,22 http=<url>``), which the shells ignore and the local simulator reads.
Values reach the script only after the strict tag patterns of migration/tags.py (digits; a URL without quotes,
spaces or shell characters), and inside single quotes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migration.events import VmChecks

LINE = "aws2azure-check"
HEADER = "# aws2azure-checks"
LINUX_COMMAND = "RunShellScript"
WINDOWS_COMMAND = "RunPowerShellScript"
TCP_TIMEOUT_SECONDS = 5
HTTP_TIMEOUT_SECONDS = 10


@dataclass(frozen=True, slots=True)
class CheckScript:
    command_id: str
    script: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CheckResults:
    """What one run said: ``lines`` ("tcp 443: ok"), the failed checks, and the checks it printed nothing for."""

    lines: tuple[str, ...]
    failed: tuple[str, ...]
    missing: tuple[str, ...]


def header(checks: VmChecks) -> str:
    words = [HEADER]
    if checks.tcp_ports:
        words.append("tcp=" + ",".join(str(p) for p in checks.tcp_ports))
    if checks.http_url:
        words.append("http=" + checks.http_url)
    return " ".join(words)


def script_for(checks: VmChecks, os_family: Literal["windows", "linux"]) -> CheckScript:
    if os_family == "windows":
        return CheckScript(WINDOWS_COMMAND, _powershell(checks))
    return CheckScript(LINUX_COMMAND, _bash(checks))


def _bash(checks: VmChecks) -> tuple[str, ...]:
    lines = [header(checks)]
    for port in checks.tcp_ports:
        lines.append(
            f"if timeout {TCP_TIMEOUT_SECONDS} bash -c '</dev/tcp/127.0.0.1/{port}' 2>/dev/null; "
            f'then echo "{LINE} tcp {port} ok listening"; else echo "{LINE} tcp {port} fail not listening"; fi'
        )
    if checks.http_url:
        url = checks.http_url
        lines.append(
            f'if ! command -v curl >/dev/null 2>&1; then echo "{LINE} http {url} fail curl is not installed"; '
            f"else code=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time {HTTP_TIMEOUT_SECONDS} '{url}'); "
            f'case "$code" in 2??) echo "{LINE} http {url} ok HTTP $code";; '
            f'*) echo "{LINE} http {url} fail HTTP $code";; esac; fi'
        )
    return tuple(lines)


def _powershell(checks: VmChecks) -> tuple[str, ...]:
    lines = [header(checks)]
    for port in checks.tcp_ports:
        lines.append(
            f"if ((Test-NetConnection -ComputerName localhost -Port {port} -WarningAction SilentlyContinue)"
            f".TcpTestSucceeded) {{ '{LINE} tcp {port} ok listening' }} "
            f"else {{ '{LINE} tcp {port} fail not listening' }}"
        )
    if checks.http_url:
        url = checks.http_url
        lines.append(
            f"try {{ $r = Invoke-WebRequest -Uri '{url}' -UseBasicParsing -TimeoutSec {HTTP_TIMEOUT_SECONDS}; "
            f"'{LINE} http {url} ok HTTP ' + $r.StatusCode }} "
            f"catch {{ '{LINE} http {url} fail ' + $_.Exception.Message }}"
        )
    return tuple(lines)


def read_results(output: str, checks: VmChecks) -> CheckResults:
    """The result of every check from the script's output (the last line for a check wins)."""
    said: dict[str, tuple[bool, str]] = {}
    for raw in output.splitlines():
        parts = raw.strip().split(" ", 4)
        if len(parts) < 4 or parts[0] != LINE or parts[1] not in ("tcp", "http") or parts[3] not in ("ok", "fail"):
            continue
        said[f"{parts[1]} {parts[2]}"] = (parts[3] == "ok", parts[4] if len(parts) > 4 else "")
    wanted = [f"tcp {p}" for p in checks.tcp_ports] + ([f"http {checks.http_url}"] if checks.http_url else [])
    lines: list[str] = []
    failed: list[str] = []
    missing: list[str] = []
    for name in wanted:
        if name not in said:
            missing.append(name)
            continue
        ok, detail = said[name]
        line = f"{name}: {'ok' if ok else 'FAILED'}" + (f" ({detail})" if detail else "")
        lines.append(line)
        if not ok:
            failed.append(line)
    return CheckResults(tuple(lines), tuple(failed), tuple(missing))
