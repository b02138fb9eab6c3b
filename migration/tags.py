"""The EC2 tag vocabulary, parsed in one place.

Users request a migration with tags; aws2azure writes the status back as tags with the same prefix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from migration.errors import InvalidInput

PREFIX = "aws2azure:"
MIGRATE = PREFIX + "migrate"
WAVE = PREFIX + "wave"
CUTOVER_AT = PREFIX + "cutover-at"
TARGET_SIZE = PREFIX + "target-size"
TARGET_SUBNET = PREFIX + "target-subnet"
TEST_FAILOVER = PREFIX + "test-failover"
# InMageRcm's diskType (the SDK's DiskAccountType values) and Azure Hybrid Benefit (licenseType WindowsServer).
TARGET_DISK_TYPE = PREFIX + "target-disk-type"
HYBRID_BENEFIT = PREFIX + "hybrid-benefit"
# Optional checks the validation gate runs in the failed-over VM through Run Command (docs/VALIDATION.md): TCP ports
# on localhost ("443" or "443,22") and one HTTP(S) URL that must answer 2xx.
CHECK_TCP = PREFIX + "check-tcp"
CHECK_HTTP = PREFIX + "check-http"
REQUEST_TAGS = (MIGRATE, WAVE, CUTOVER_AT, TARGET_SIZE, TARGET_SUBNET, TEST_FAILOVER, TARGET_DISK_TYPE, HYBRID_BENEFIT,
                CHECK_TCP, CHECK_HTTP)  # fmt: skip
DISK_TYPES = ("Standard_LRS", "Premium_LRS", "StandardSSD_LRS", "PremiumV2_LRS", "UltraSSD_LRS", "StandardSSD_ZRS",
              "Premium_ZRS")  # fmt: skip
DISK_TYPE_PATTERN = re.compile("^(" + "|".join(DISK_TYPES) + ")$")

# Written back by aws2azure; users should not set these.
STATUS = PREFIX + "status"
PROGRESS = PREFIX + "progress"
REASON = PREFIX + "reason"
UPDATED_AT = PREFIX + "updated-at"
STATUS_TAGS = (STATUS, PROGRESS, REASON, UPDATED_AT)
# Written by the AWS side: the Mobility install command ("<state>:<command-id>:<os>", state installing |
# installed | failed) and the cutover's stop ("<state>:<request-id>:<requested-by>", state stopping | sent |
# not-stopped), so a later event or run knows what was started.
AGENT = PREFIX + "agent"
CUTOVER_STOP = PREFIX + "cutover-stop"
# Written by status sync when it starts a rolled-back source again: the restart request it carried out
# ("rollback-<restart_requested_at>"), so each rollback starts the source once.
ROLLBACK_START = PREFIX + "rollback-start"

MAX_TCP_CHECKS = 4
HTTP_URL_MAX = 200
# Scheme, host (name or IPv4), optional port, optional path and query of URL-safe characters: nothing a shell or
# PowerShell would read specially inside single quotes (no quote, space, '$', '`', ';', '|').
HTTP_URL_PATTERN = re.compile(r"^https?://[A-Za-z0-9.-]{1,100}(:[0-9]{1,5})?(/[A-Za-z0-9._~/%=&?+,:@-]*)?$")
WAVE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
AZURE_VM_SIZE_PATTERN = re.compile(r"^(Standard|Basic)_[A-Za-z0-9_-]{1,60}$")
SUBNET_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
EC2_TAG_VALUE_MAX = 256

_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0", ""})


def parse_bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{key}={value!r} is not a boolean (use true or false)")


def parse_utc_time(key: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{key}={value!r} is not an ISO-8601 time (e.g. 2026-12-01T22:00:00Z)") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{key}={value!r} has no time zone; give it in UTC, e.g. 2026-12-01T22:00:00Z")
    return parsed.astimezone(UTC)


def parse_tcp_ports(value: str, problems: list[str]) -> tuple[int, ...]:
    """aws2azure:check-tcp: "443" or "443,22" (1-65535, at most MAX_TCP_CHECKS, no repeats); "" is none."""
    if not value.strip():
        return ()
    ports: list[int] = []
    for part in value.split(","):
        text = part.strip()
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            problems.append(f"{CHECK_TCP}={value!r}: {text!r} is not a TCP port (1-65535; e.g. 443 or 443,22)")
            return ()
        if int(text) not in ports:
            ports.append(int(text))
    if len(ports) > MAX_TCP_CHECKS:
        problems.append(f"{CHECK_TCP}={value!r} names {len(ports)} ports; at most {MAX_TCP_CHECKS}")
        return ()
    return tuple(ports)


def parse_http_url(value: str, problems: list[str]) -> str | None:
    """aws2azure:check-http: one http:// or https:// URL (up to HTTP_URL_MAX characters) the VM itself GETs."""
    text = value.strip()
    if not text:
        return None
    if len(text) > HTTP_URL_MAX or not HTTP_URL_PATTERN.fullmatch(text):
        problems.append(
            f"{CHECK_HTTP}={value!r} is not an http(s) URL of up to {HTTP_URL_MAX} characters without spaces or "
            "quotes (e.g. http://localhost:8080/health)"
        )
        return None
    port = re.match(r"^https?://[^/:]+:([0-9]+)", text)
    if port is not None and not 1 <= int(port[1]) <= 65535:
        problems.append(f"{CHECK_HTTP}={value!r}: port {port[1]} is not 1-65535")
        return None
    return text


@dataclass(frozen=True, slots=True)
class MigrationTags:
    """What an instance's tags ask for."""

    migrate: bool
    wave: str | None = None
    cutover_at: datetime | None = None
    target_size: str | None = None
    target_subnet: str | None = None
    test_failover: bool = False
    target_disk_type: str | None = None
    # None: the deployment's AZURE_HYBRID_BENEFIT decides.
    hybrid_benefit: bool | None = None
    check_tcp: tuple[int, ...] = ()
    check_http: str | None = None

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> MigrationTags:
        """Parse the request tags; every bad value is reported at once in one InvalidInput."""
        problems: list[str] = []

        def checked(key: str, pattern: re.Pattern[str], what: str) -> str | None:
            value = tags.get(key)
            if value is None or value.strip() == "":
                return None
            if not pattern.fullmatch(value.strip()):
                problems.append(f"{key}={value!r} is not a valid {what}")
                return None
            return value.strip()

        migrate = False
        try:
            migrate = parse_bool(MIGRATE, tags.get(MIGRATE, "false"))
        except ValueError as exc:
            problems.append(str(exc))
        test_failover = False
        try:
            test_failover = parse_bool(TEST_FAILOVER, tags.get(TEST_FAILOVER, "false"))
        except ValueError as exc:
            problems.append(str(exc))
        hybrid_benefit = None
        if tags.get(HYBRID_BENEFIT, "").strip():
            try:
                hybrid_benefit = parse_bool(HYBRID_BENEFIT, tags[HYBRID_BENEFIT])
            except ValueError as exc:
                problems.append(str(exc))
        cutover_at = None
        if tags.get(CUTOVER_AT, "").strip():
            try:
                cutover_at = parse_utc_time(CUTOVER_AT, tags[CUTOVER_AT])
            except ValueError as exc:
                problems.append(str(exc))
        check_tcp = parse_tcp_ports(tags.get(CHECK_TCP, ""), problems)
        check_http = parse_http_url(tags.get(CHECK_HTTP, ""), problems)
        parsed = cls(
            migrate=migrate,
            wave=checked(WAVE, WAVE_PATTERN, "wave name (letters, digits, '.', '_', '-'; up to 64)"),
            cutover_at=cutover_at,
            target_size=checked(TARGET_SIZE, AZURE_VM_SIZE_PATTERN, "Azure VM size (e.g. Standard_D4s_v5)"),
            target_subnet=checked(TARGET_SUBNET, SUBNET_NAME_PATTERN, "subnet name"),
            test_failover=test_failover,
            target_disk_type=checked(
                TARGET_DISK_TYPE, DISK_TYPE_PATTERN, "Azure disk type (" + ", ".join(DISK_TYPES) + ")"
            ),
            hybrid_benefit=hybrid_benefit,
            check_tcp=check_tcp,
            check_http=check_http,
        )
        if problems:
            raise InvalidInput("; ".join(problems), problems=problems)
        return parsed


def status_tags(phase: str, *, updated_at: datetime, reason: str = "", progress: int | None = None) -> dict[str, str]:
    """The tags that report a migration's status on its EC2 instance."""
    tags = {
        STATUS: phase,
        REASON: reason[:EC2_TAG_VALUE_MAX],
        UPDATED_AT: updated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if progress is not None:
        tags[PROGRESS] = str(max(0, min(100, progress)))
    return tags
